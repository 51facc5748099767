"""The errors a client can see: each carries the HTTP status and the message it will show."""

from __future__ import annotations


class LocalForgeError(Exception):
    """Base of every error that becomes an HTTP response."""

    status = 500
    openai_type = "api_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(LocalForgeError):
    status = 400
    openai_type = "invalid_request_error"


class Unauthorized(LocalForgeError):
    """A missing or wrong API key; the message never repeats the key."""

    status = 401
    openai_type = "invalid_request_error"


class ModelNotFound(LocalForgeError):
    status = 404
    openai_type = "not_found_error"

    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' not found")
        self.name = name


class NotFound(LocalForgeError):
    status = 404
    openai_type = "not_found_error"


class Unsupported(BadRequest):
    """The model lacks a capability the request needs (tools, vision, insert, embedding)."""


class PayloadTooLarge(LocalForgeError):
    status = 413
    openai_type = "invalid_request_error"


class ServerBusy(LocalForgeError):
    status = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(LocalForgeError):
    """No model can serve the request right now (a policy removed them all, a backend is down)."""

    status = 503


class StaysLocal(Unavailable):
    """A private request (it carries what the sensitivity profiler flagged) and a remote model:
    refused before a byte is sent."""


class Canceled(LocalForgeError):
    status = 499


class BackendFailed(LocalForgeError):
    """The backend failed while serving; the message names the backend, never a secret."""

    status = 502


class RunnerCrashed(BackendFailed):
    """A runner process died (a native fault, the OOM killer, a signal): Ollama's
    `500 llama runner process has terminated`. The model is a fault; the server is not.
    `healed`: the backend already knows the cause and restarts the model without it (safe mode)."""

    status = 500

    def __init__(self, message: str, healed: bool = False) -> None:
        super().__init__(message)
        self.healed = healed
