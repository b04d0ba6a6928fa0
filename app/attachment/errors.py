"""Attachment errors, in the v2 envelope. A refused file is named in the message (its safe name)."""

from __future__ import annotations

from app.errors import AppError, InputValidationFailure

PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


class AttachmentNotFound(AppError):
    status = 404
    include_status = False

    def __init__(self, attachment_id: str) -> None:
        super().__init__(f"Attachment not found ({attachment_id[:64]})")


class FileRefused(InputValidationFailure):
    """A file whose content contradicts its declared type, whose type the tenant does not accept, or that is empty:
    400 naming the file, with the problem under the request member that carried it."""

    def __init__(self, filename: str, field: str, problem: str) -> None:
        super().__init__(f"The file {filename!r} was refused: {problem}", {field: problem})


class FileTooLarge(AppError):
    status = 413
    code = PAYLOAD_TOO_LARGE

    def __init__(self, filename: str | None, limit: int) -> None:
        subject = f"The file {filename!r}" if filename is not None else "The upload"
        super().__init__(f"{subject} is larger than the limit of {limit} bytes per file")


class TicketAttachmentsFull(AppError):
    status = 413
    code = PAYLOAD_TOO_LARGE

    def __init__(self, filename: str, limit: int) -> None:
        super().__init__(
            f"The file {filename!r} would take the ticket's attachments over their limit of {limit} bytes in all"
        )


class TicketFilesFull(AppError):
    status = 413
    code = PAYLOAD_TOO_LARGE

    def __init__(self, filename: str, limit: int) -> None:
        super().__init__(f"The file {filename!r} would take the ticket over its limit of {limit} files")


class RangeNotSatisfiable(AppError):
    status = 416
    code = "RANGE_NOT_SATISFIABLE"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"The requested range is not within the file's {size} bytes", headers={"Content-Range": f"bytes */{size}"}
        )


class UploadInterrupted(AppError):
    """The client went away before its upload ended; nothing was kept. (Nobody reads this answer.)"""

    status = 400
    code = "UPLOAD_INTERRUPTED"

    def __init__(self) -> None:
        super().__init__("The upload ended before the whole request body arrived")
