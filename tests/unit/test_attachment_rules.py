"""Attachment rules without a server: safe names, the type read from content, the inspection of a streamed file,
byte ranges, the download name header and the multipart form reader."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import AsyncIterator

import pytest

from app.attachment.content import (
    FALLBACK_FILENAME,
    HEAD_BYTES,
    MAX_FILENAME_BYTES,
    Inspection,
    content_type,
    declared_type,
    safe_filename,
)
from app.attachment.controller import content_disposition
from app.attachment.errors import FileRefused, FileTooLarge, RangeNotSatisfiable
from app.attachment.multipart import FormRefused, MultipartFile, boundary_of
from app.attachment.service import byte_range, resolve_range
from app.tenancy.model import AttachmentLimits
from tests.support import FORM_BOUNDARY, PNG_HEAD, form, form_part_head


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\..\\secret.txt", "secret.txt"),
        ("..", FALLBACK_FILENAME),
        ("...", FALLBACK_FILENAME),
        (".bashrc", "bashrc"),
        ("a..b", "a.b"),
        ("name.", "name"),
        ("  spaced  ", "spaced"),
        ("tab\there\nnewline\r.txt", "tabherenewline.txt"),
        ("\u202egnp.exe", "gnp.exe"),
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("console.txt", "console.txt"),
        ("what?.txt", "what_.txt"),
        (None, FALLBACK_FILENAME),
        ("", FALLBACK_FILENAME),
        ("e\u0301.txt", "\u00e9.txt"),  # NFC
    ],
)
def test_file_names_are_reduced_to_a_safe_name(raw: str | None, safe: str) -> None:
    assert safe_filename(raw) == safe


def test_a_long_name_is_cut_on_a_character_boundary_keeping_its_extension() -> None:
    name = safe_filename("é" * 200 + ".docx")
    assert name.endswith(".docx")
    assert len(name.encode()) <= MAX_FILENAME_BYTES
    assert name == "é" * 125 + ".docx"  # 250 bytes of two-byte characters, then the extension
    assert safe_filename("x" * 400) == "x" * MAX_FILENAME_BYTES
    # An "extension" too long to be one is not kept.
    assert safe_filename("a." + "b" * 300) == ("a." + "b" * 300)[:MAX_FILENAME_BYTES]


@pytest.mark.parametrize(
    ("raw", "declared"),
    [
        (None, None),
        ("", None),
        ("application/octet-stream", None),
        ("IMAGE/PNG", "image/png"),
        ("image/jpg", "image/jpeg"),
        ("text/plain; charset=utf-8", "text/plain"),
        ("not a type", None),
        ("text/", None),
    ],
)
def test_a_declared_type_is_normalised(raw: str | None, declared: str | None) -> None:
    assert declared_type(raw) == declared


PNG = PNG_HEAD + bytes(100)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
TEXT = b"hello, world\n"
HTML = b"<!DOCTYPE html><html><script>alert(1)</script></html>"
BINARY = bytes(range(256))


@pytest.mark.parametrize(
    ("head", "declared", "stored", "contradiction"),
    [
        (PNG, None, "image/png", None),
        (PNG, "image/png", "image/png", None),
        (PNG, "image/jpeg", "image/png", "declared image/jpeg, but the content is image/png"),
        (PNG, "text/plain", "image/png", "declared text/plain, but the content is image/png"),
        (PDF, "application/pdf", "application/pdf", None),
        (TEXT, None, "text/plain", None),
        (TEXT, "text/csv", "text/csv", None),
        (TEXT, "application/json", "application/json", None),
        (HTML, "text/html", "text/html", None),
        (HTML, "image/png", "text/plain", "declared image/png, but the content is text"),
        (HTML, "application/pdf", "text/plain", "declared application/pdf, but the content is text"),
        (TEXT, "application/x-msdownload", "text/plain", "declared application/x-msdownload, but the content is text"),
        (BINARY, None, "application/octet-stream", None),
        (BINARY, "application/vnd.ms-outlook", "application/octet-stream", None),
        (
            BINARY,
            "image/png",
            "application/octet-stream",
            "declared image/png, but the content is binary data of no known type",
        ),
        (
            BINARY,
            "text/plain",
            "application/octet-stream",
            "declared text/plain, but the content is binary data of no known type",
        ),
        ("é ü".encode("latin-1") * 10, "text/plain", "text/plain", None),
    ],
)
def test_the_type_comes_from_the_content(
    head: bytes, declared: str | None, stored: str, contradiction: str | None
) -> None:
    assert content_type(head, declared) == (stored, contradiction)


def test_a_zip_based_format_may_be_declared_a_zip() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<document/>")
    docx = buffer.getvalue()
    word = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert content_type(docx, "application/zip") == (word, None)
    assert content_type(docx, word) == (word, None)
    assert content_type(docx, "application/pdf")[1] == f"declared application/pdf, but the content is {word}"


LIMITS = AttachmentLimits(max_file_bytes=3 * HEAD_BYTES, allowed_types=("image/*", "text/plain"))


def test_an_inspection_hashes_counts_and_types_what_passes() -> None:
    inspection = Inspection("a.png", "image/png", LIMITS, "file")
    for piece in (PNG_HEAD, bytes(HEAD_BYTES), bytes(10)):
        inspection.feed(piece)
    checked = inspection.finish()
    assert (checked.filename, checked.size, checked.mime_type) == (
        "a.png",
        len(PNG_HEAD) + HEAD_BYTES + 10,
        "image/png",
    )
    assert checked.sha256 == hashlib.sha256(PNG_HEAD + bytes(HEAD_BYTES) + bytes(10)).hexdigest()


def test_an_inspection_refuses_a_type_once_the_head_has_arrived_not_at_the_end() -> None:
    inspection = Inspection("a.bin", None, LIMITS, "file")
    inspection.feed(BINARY * 16)  # 4096 bytes: not yet enough to decide
    with pytest.raises(FileRefused) as refused:
        inspection.feed(BINARY * 16)
    assert refused.value.reason == {"file": "files of type application/octet-stream are not accepted"}


def test_an_inspection_refuses_the_chunk_that_crosses_the_size_limit() -> None:
    inspection = Inspection("big.txt", None, LIMITS, "attachments[2]")
    inspection.feed(b"a" * LIMITS.max_file_bytes)
    with pytest.raises(FileTooLarge, match=r"^The file 'big\.txt' is larger than the limit of 24576 bytes per file$"):
        inspection.feed(b"a")


def test_an_empty_file_is_refused_under_its_member() -> None:
    with pytest.raises(FileRefused) as refused:
        Inspection("e.txt", None, LIMITS, "attachments[1]").finish()
    assert refused.value.reason == {"attachments[1]": "the file is empty"}


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, None)),
        ("bytes=-3", (None, 3)),
        ("BYTES = 1-2", (1, 2)),
        ("bytes=0-1,4-5", None),
        ("bytes=5-1", None),
        ("bytes=-", None),
        ("bytes=x-1", None),
        ("bytes=1-2-3", None),
        ("bytes=" + "9" * 30 + "-", None),
        ("pages=1-2", None),
        (None, None),
    ],
)
def test_one_byte_range_is_read_from_a_range_header(header: str | None, wanted: tuple[int | None, int | None]) -> None:
    assert byte_range(header) == wanted


@pytest.mark.parametrize(
    ("wanted", "size", "resolved"),
    [
        ((0, 9), 100, (0, 10)),
        ((90, None), 100, (90, 10)),
        ((50, 1000), 100, (50, 50)),
        ((None, 10), 100, (90, 10)),
        ((None, 1000), 100, (0, 100)),
        ((99, 99), 100, (99, 1)),
    ],
)
def test_a_byte_range_resolves_against_the_size(
    wanted: tuple[int | None, int | None], size: int, resolved: tuple[int, int]
) -> None:
    assert resolve_range(wanted, size) == resolved


@pytest.mark.parametrize("wanted", [(100, None), (100, 200), (None, 0)])
def test_a_range_outside_the_file_is_not_satisfiable(wanted: tuple[int | None, int | None]) -> None:
    with pytest.raises(RangeNotSatisfiable) as refused:
        resolve_range(wanted, 100)
    assert refused.value.headers == {"Content-Range": "bytes */100"}


@pytest.mark.parametrize(
    ("filename", "header"),
    [
        ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
        ("Grüße 100%.txt", "attachment; filename=\"Gr__e 100_.txt\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20100%25.txt"),
        ("a'b;c.txt", "attachment; filename=\"a'b;c.txt\"; filename*=UTF-8''a%27b%3Bc.txt"),
    ],
)
def test_the_download_name_is_given_for_every_client(filename: str, header: str) -> None:
    assert content_disposition(filename) == header


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "multipart/form-data", "multipart/mixed; boundary=x", "multipart/form-data; boundary="],
)
def test_only_a_form_with_a_boundary_is_read(content_type: str | None) -> None:
    with pytest.raises(FormRefused):
        boundary_of(content_type)
    assert boundary_of(f'multipart/form-data; boundary="{FORM_BOUNDARY}"') == FORM_BOUNDARY


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
async def test_the_form_reader_yields_the_file_however_the_body_is_cut(size: int) -> None:
    content = PNG_HEAD + bytes(range(256)) * 20 + b"\r\n--not-the-boundary\r\n"
    reader = MultipartFile(pieces(form("x.png", content, "image/png"), size), FORM_BOUNDARY)
    part = await reader.part()
    assert (part.filename, part.content_type) == ("x.png", "image/png")
    assert b"".join([chunk async for chunk in reader.content()]) == content
    await reader.finish()


async def test_the_form_reader_allows_the_final_line_break_in_a_chunk_of_its_own() -> None:
    body = form("x.txt", b"text")
    reader = MultipartFile(_two(body), FORM_BOUNDARY)
    await reader.part()
    assert b"".join([chunk async for chunk in reader.content()]) == b"text"
    await reader.finish()


async def _two(body: bytes) -> AsyncIterator[bytes]:
    yield body[:-2]
    yield body[-2:]


async def test_the_form_reader_refuses_what_follows_the_file() -> None:
    body = form_part_head("a.txt") + b"a\r\n" + form("b.txt", b"b")
    reader = MultipartFile(pieces(body, 1000), FORM_BOUNDARY)
    await reader.part()
    assert b"".join([chunk async for chunk in reader.content()]) == b"a"
    with pytest.raises(FormRefused) as refused:
        await reader.finish()
    assert refused.value.reason == {
        "body": "one file per request: a multipart/form-data body with one part, named 'file'"
    }
