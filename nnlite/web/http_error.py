"""The one exception the web demo's logic raises to answer a request with an error status."""


class HttpError(Exception):
    """Answered as ``{"error": message}`` with ``status``; ``close`` also ends the connection (the
    request body was not read, so the stream cannot carry another request)."""

    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status, self.message, self.close = status, message, close
