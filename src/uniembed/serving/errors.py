"""OpenAI-style error responses: `{"error": {"message", "type", "param", "code"}}` with a fitting status.

Every client mistake becomes a 4xx with a message that names the offending item; only genuine server
faults give a 500.
"""
from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from ..errors import ConfigError, InputError


class ApiError(Exception):
    """An error the API reports to the client as JSON with `status`."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, type=self.type, param=self.param, code=self.code,
                              headers=self.headers)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type=type, param=param, code=code), status_code=status, headers=headers)


def bad_input(exc: InputError | ConfigError, field: str = "input") -> ApiError:
    """A 400 for a bad item; `param` points at the item (`input[3]`) when the error knows its position."""
    position = getattr(exc, "position", None)
    param = f"{field}[{position}]" if position is not None else field
    return ApiError(400, str(exc), param=param, code="invalid_item" if position is not None else "invalid_input")
