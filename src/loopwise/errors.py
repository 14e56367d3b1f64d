"""Every error Loopwise raises on purpose, in one tree.

Each class carries a stable ``code`` (used in the JSON error envelope of the API and in
``--json`` CLI output) and an HTTP status for the control plane::

    LoopwiseError                          (code: error, 500)
    ├── InvalidArgumentError               (invalid_argument, 400)
    │   ├── SignatureMismatchError         (signature_mismatch, 422)
    │   ├── ValidationFailedError          (validation_failed, 422)
    │   ├── PipelineDefinitionError        (invalid_pipeline, 400)
    │   └── PayloadTooLargeError           (payload_too_large, 413)
    ├── NotFoundError                      (not_found, 404)
    ├── ConflictError                      (conflict, 409)
    ├── AuthenticationError                (unauthenticated, 401)
    ├── PermissionDeniedError              (permission_denied, 403)
    ├── RequestTimeoutError                (request_timeout, 408)
    ├── StoreError                         (store_error, 500)
    │   ├── NotAStoreError                 (not_a_store, 400)
    │   ├── SchemaTooOldError              (schema_too_old, 503)
    │   ├── SchemaTooNewError              (schema_too_new, 503)
    │   └── ArtifactCorruptedError         (artifact_corrupted, 500)
    ├── PipelineFailedError                (pipeline_failed, 500)
    ├── UnsafeModelError                   (unsafe_model, 400)
    └── MissingDependencyError             (missing_dependency, 501)

Warnings (not errors: the call goes on)::

    UserWarning
    └── ValidationWarning                  data broke a suite attached with on_failure="warn"

Messages follow one rule: say what was expected, what was received, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

__all__ = [
    "HTTP_STATUS",
    "ArtifactCorruptedError",
    "AuthenticationError",
    "ConflictError",
    "InvalidArgumentError",
    "LoopwiseError",
    "MissingDependencyError",
    "NotAStoreError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PipelineDefinitionError",
    "PipelineFailedError",
    "RequestTimeoutError",
    "SchemaTooNewError",
    "SchemaTooOldError",
    "SignatureMismatchError",
    "StoreError",
    "UnavailableError",
    "UnsafeModelError",
    "ValidationFailedError",
    "ValidationWarning",
    "error_from_dict",
]


class LoopwiseError(Exception):
    """Base of every error Loopwise raises on purpose."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error envelope: ``{"error": {"code", "message", "details"}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidArgumentError(LoopwiseError, ValueError):
    """A caller passed a value of the wrong type, shape or range."""

    code = "invalid_argument"
    http_status = 400


class SignatureMismatchError(InvalidArgumentError):
    """Model input does not match the model version's signature."""

    code = "signature_mismatch"
    http_status = 422


class ValidationFailedError(InvalidArgumentError):
    """Data broke the validation suite attached to its dataset with ``on_failure="fail"``;
    ``details["findings"]`` lists the violations."""

    code = "validation_failed"
    http_status = 422


class ValidationWarning(UserWarning):
    """Data broke the validation suite attached to its dataset with ``on_failure="warn"``."""


class PipelineDefinitionError(InvalidArgumentError):
    """A pipeline cannot run as written (a cycle, a missing input, connected ports of different
    types, an undeclared param); ``details`` name the step and the port."""

    code = "invalid_pipeline"
    http_status = 400


class PayloadTooLargeError(InvalidArgumentError):
    """A request body is larger than the server accepts."""

    code = "payload_too_large"
    http_status = 413


class NotFoundError(LoopwiseError, LookupError):
    """A named or identified object does not exist."""

    code = "not_found"
    http_status = 404


class ConflictError(LoopwiseError):
    """The request conflicts with the current state (e.g. a name already taken)."""

    code = "conflict"
    http_status = 409


class AuthenticationError(LoopwiseError):
    """No credentials, or credentials that belong to no live API token."""

    code = "unauthenticated"
    http_status = 401


class PermissionDeniedError(LoopwiseError):
    """The caller is known, but its role or project scope does not allow the request."""

    code = "permission_denied"
    http_status = 403


class RequestTimeoutError(LoopwiseError):
    """A request's body did not arrive in the time the server allows (a stalled or slow
    client); sending it again at once, whole, is the fix."""

    code = "request_timeout"
    http_status = 408


class UnavailableError(LoopwiseError):
    """The server cannot answer in time now (a full queue, a deadline it cannot meet, a model
    still warming up); ``retry_after_s`` says when trying again makes sense."""

    code = "unavailable"
    http_status = 503

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class StoreError(LoopwiseError):
    """The store cannot be used as it is."""

    code = "store_error"
    http_status = 500


class NotAStoreError(StoreError):
    """A path given as a Loopwise store is something else."""

    code = "not_a_store"
    http_status = 400


class SchemaTooOldError(StoreError):
    """The store's schema predates this Loopwise; it needs ``loopwise db upgrade``."""

    code = "schema_too_old"
    http_status = 503


class SchemaTooNewError(StoreError):
    """The store was written by a newer Loopwise than the one running."""

    code = "schema_too_new"
    http_status = 503


class ArtifactCorruptedError(StoreError):
    """An artifact's bytes no longer match the digest it was stored under."""

    code = "artifact_corrupted"
    http_status = 500


class PipelineFailedError(LoopwiseError):
    """One or more steps of a pipeline raised; the message names them and carries the first
    traceback, and ``details["failed"]`` maps each failed step to its run id."""

    code = "pipeline_failed"
    http_status = 500


class UnsafeModelError(LoopwiseError):
    """Loading or saving would execute untrusted code (pickle, unknown types)."""

    code = "unsafe_model"
    http_status = 400


class MissingDependencyError(LoopwiseError, ImportError):
    """An optional dependency (an extra) is needed but not installed."""

    code = "missing_dependency"
    http_status = 501


HTTP_STATUS: dict[str, int] = {
    cls.code: cls.http_status
    for cls in (
        LoopwiseError,
        InvalidArgumentError,
        SignatureMismatchError,
        ValidationFailedError,
        PipelineDefinitionError,
        PayloadTooLargeError,
        NotFoundError,
        ConflictError,
        AuthenticationError,
        PermissionDeniedError,
        RequestTimeoutError,
        UnavailableError,
        StoreError,
        NotAStoreError,
        SchemaTooOldError,
        SchemaTooNewError,
        ArtifactCorruptedError,
        PipelineFailedError,
        UnsafeModelError,
        MissingDependencyError,
    )
}


def error_from_dict(envelope: Any, status: int = 500) -> LoopwiseError:
    """Rebuild the error an API response carries (the JSON envelope), keeping its class."""
    body = envelope.get("error") if isinstance(envelope, dict) else None
    if not isinstance(body, dict):
        return LoopwiseError(f"The server answered HTTP {status} without an error body.")
    code = str(body.get("code", "error"))
    message = str(body.get("message", ""))
    raw = body.get("details")
    details: dict[str, Any] = raw if isinstance(raw, dict) else {}
    cls = _BY_CODE.get(code, LoopwiseError)
    error = cls(message, **details)
    if cls is LoopwiseError:
        error.details.setdefault("code", code)
    return error


def _subclasses(cls: type[LoopwiseError]) -> Iterable[type[LoopwiseError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _subclasses(sub)


_BY_CODE: dict[str, type[LoopwiseError]] = {cls.code: cls for cls in _subclasses(LoopwiseError)}


def not_found(kind: str, wanted: str, existing: Iterable[str], hint: str = "") -> NotFoundError:
    """A NotFoundError that lists what does exist, so the user can pick the right name."""
    names = sorted(existing)
    shown = ", ".join(repr(n) for n in names[:20]) + (" …" if len(names) > 20 else "")
    message = f"No {kind} named {wanted!r}. " + (
        f"Existing {kind}s: {shown}." if names else f"There are no {kind}s yet."
    )
    if hint:
        message += f" {hint}"
    return NotFoundError(message, kind=kind, wanted=wanted, existing=names[:100])


def require_extra(module: str, extra: str) -> Any:
    """Import an optional dependency or explain which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"This needs the optional package {module!r}, which is not installed. "
            f"Install it with: pip install 'loopwise[{extra}]'",
            module=module,
            extra=extra,
        ) from exc
