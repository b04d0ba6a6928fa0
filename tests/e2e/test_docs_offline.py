"""The documentation pages work without network: each one, opened in headless Chromium that reaches nothing but
loopback, renders every operation of the OpenAPI document, and everything the page loads comes from the service."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from app.docs import ASSETS_PATH, DOCS_PAGES
from tests.support import LiveServer, visit_offline

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class RenderedOperations(HTMLParser):
    """Swagger UI's operation blocks in a rendered DOM: each block's method, path and summary (when it shows one)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[dict[str, str]] = []
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if "opblock" in classes:
            self.blocks.append({})
        elif "opblock-summary-path" in classes:
            self.blocks[-1]["path"] = attributes.get("data-path") or ""
        elif "opblock-summary-method" in classes:
            self._field = "method"
        elif "opblock-summary-description" in classes:
            self._field = "summary"

    def handle_data(self, data: str) -> None:
        if self._field:
            self.blocks[-1][self._field] = self.blocks[-1].get(self._field, "") + data

    def handle_endtag(self, tag: str) -> None:
        self._field = None


def rendered_operations(dom: str) -> list[tuple[str, str, str | None]]:
    parser = RenderedOperations()
    parser.feed(dom)
    return sorted(((b.get("method", ""), b.get("path", ""), b.get("summary")) for b in parser.blocks), key=str)


def documented_operations(document: dict[str, dict[str, dict[str, object]]]) -> list[tuple[str, str, str | None]]:
    return sorted(
        (
            (method.upper(), path, str(operation["summary"]) if operation.get("summary") else None)
            for path, item in document["paths"].items()
            for method, operation in item.items()
            if method in HTTP_METHODS
        ),
        key=str,
    )


@pytest.mark.parametrize("page", DOCS_PAGES)
async def test_docs_page_renders_every_operation_with_no_network(
    server: LiveServer, client: httpx.AsyncClient, tmp_path: Path, page: str
) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    expected = documented_operations(document)
    assert len(expected) > 10, expected  # the document lists the API, so the comparison below means something

    visit = await visit_offline(f"{server.url}{page}", tmp_path)

    assert rendered_operations(visit.dom) == expected
    update = [op for op in rendered_operations(visit.dom) if op[0] == "PATCH" and op[1].endswith("/update")]
    assert len(update) == 1, update  # the ticket update operation is on the page, with its summary
    assert update[0][2], update
    # Everything the page loaded came from the service, its Swagger UI files among them; nothing else was tried.
    assert [url for url in visit.page_requests if not url.startswith(f"{server.url}/")] == []
    assets = {url.removeprefix(f"{server.url}{ASSETS_PATH}/") for url in visit.page_requests}
    assert {"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"} <= assets
