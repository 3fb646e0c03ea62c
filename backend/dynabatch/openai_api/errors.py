"""Errors in OpenAI's own format: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from typing import Any


class OpenAIError(Exception):
    def __init__(
        self,
        message: str,
        status: int = 400,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.type, self.param, self.code = (
            message,
            status,
            type_,
            param,
            code,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def model_not_found(name: str) -> OpenAIError:
    return OpenAIError(
        f"The model '{name}' does not exist", 404, param="model", code="model_not_found"
    )


def from_triton(message: str) -> OpenAIError:
    """A Triton error -> OpenAI error: the model's validation messages are the client's
    fault (400); anything else is the server's (500)."""
    client_side = any(
        k in message
        for k in ("must be", "is empty", "expects", "missing", "outside", "exceeds", "invalid")
    )
    if client_side:
        return OpenAIError(message, 400)
    return OpenAIError(message, 500, type_="server_error")
