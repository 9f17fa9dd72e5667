"""The HTTP/1.1 protocol the services serve with (shared/platform/kit.py ``serve``): uvicorn's
httptools protocol with the request head bounded.

uvicorn's h11 protocol refuses a request whose head (request line and headers) passes 16 KiB
(``h11_max_incomplete_event_size``: 400, connection closed); its httptools protocol has no such
bound, and httptools gathers a header's value until it ends, so one client could make a service
hold a header of any size in memory (200 MB sent in one header grew the process by 330 MB). The
bound is kept here: the bytes of every read that ends inside a request's head count against
:data:`MAX_HEAD_BYTES`, except a read that also holds the end of the message before it on the
connection (pipelining; where the head begins in it is not known), so a request is never refused
for its predecessor's bytes, and a service holds at most one read (256 KiB) more."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: A request head's bytes at most (uvicorn's h11 default).
MAX_HEAD_BYTES = 16 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol refusing a request head over :data:`MAX_HEAD_BYTES` with 400
    and closing the connection, as its h11 protocol does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # between a message's first byte and the end of its headers
        self._head_bytes = 0
        self._previous_ended = False  # in this read, a message ended
        self._uncounted = False  # this read is not counted (a message ended in it, then one began)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._uncounted = True, 0, self._previous_ended

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._previous_ended = True
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        self._previous_ended = self._uncounted = False
        super().data_received(data)
        if not self._in_head or self._uncounted or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._in_head = False
            msg = "Request head too large."
            self.logger.warning(msg)
            self.send_400_response(msg)
