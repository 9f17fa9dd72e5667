"""Streaming an import upload to a temporary file: the raw body or the multipart ``file`` part
(and the ``mapping`` part), with a size limit and a UTF-8 check on the way, so a bad file is
refused before any row is stored."""

from __future__ import annotations

import codecs
import os
import tempfile

from fastapi import HTTPException, Request


class _Utf8Check:
    """Incremental UTF-8 validation of a byte stream, tracking the line for error messages."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.line = 1

    def feed(self, chunk: bytes, final: bool = False) -> None:
        """Validate ``chunk``.

        Raises:
            HTTPException: 422 ``invalid_utf8`` naming the line of the first invalid byte.
        """
        try:
            text = self.decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            line = self.line + chunk[: exc.start].count(b"\n")
            raise HTTPException(
                422,
                detail={"error": "invalid_utf8", "field": "file", "line": line,
                        "message": f"the file is not UTF-8: invalid byte on line {line}; nothing was imported"},
            ) from None
        self.line += text.count("\n")


async def spool_body(request: Request, limit: int) -> tuple[str, str | None]:
    """Stream the request body (raw, or the ``file`` part of a multipart form) to a temp file,
    checking that it is UTF-8 on the way, so a bad file is refused before any row is stored.
    Returns the file's path and the multipart ``mapping`` part's text (``None`` if absent).

    Raises:
        HTTPException: 413 when larger than ``limit`` bytes, 422 when not UTF-8 or no file part.
    """
    fd, path = tempfile.mkstemp(prefix="gridcase-import-", suffix=".dat")
    size = 0
    mapping_text: str | None = None
    check = _Utf8Check()
    ctype = request.headers.get("content-type", "")

    def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail={"error": "too_large", "message": "import file too large", "limit_bytes": limit})
        check.feed(chunk)
        out.write(chunk)

    try:
        with os.fdopen(fd, "wb") as out:
            if ctype.startswith("multipart/form-data"):
                form = await request.form(max_part_size=limit)
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise HTTPException(422, detail={"error": "missing_file", "field": "file",
                                                     "message": "send the file as the form field 'file'"})
                while chunk := await upload.read(1 << 20):
                    take(chunk)
                part = form.get("mapping")
                if part is not None:
                    raw = part if isinstance(part, str) else (await part.read((1 << 16) + 1)).decode("utf-8", "replace")
                    if len(raw) > 1 << 16:
                        raise HTTPException(413, detail={"error": "too_large", "field": "mapping",
                                                         "message": "a column mapping may be at most 64 KiB"})
                    mapping_text = raw
            else:
                async for chunk in request.stream():
                    take(chunk)
            check.feed(b"", final=True)
    except BaseException:
        os.unlink(path)
        raise
    return path, mapping_text
