"""Errors the SageMaker-compatible service returns, in the JSON 1.1 wire shape."""

from __future__ import annotations


class SageMakerError(Exception):
    """An API error: HTTP 400 with ``__type`` set to the error code and a ``message``.

    :param code: the AWS error code, e.g. ``ValidationException``.
    :param message: the human-readable message.
    :param status: the HTTP status code (400 for every client error SageMaker returns).
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def to_body(self) -> dict[str, str]:
        """Return the JSON body of the error response."""
        return {"__type": self.code, "message": self.message}


def validation_error(message: str) -> SageMakerError:
    """Return a ``ValidationException``."""
    return SageMakerError("ValidationException", message)


def resource_in_use(message: str) -> SageMakerError:
    """Return a ``ResourceInUse`` error (duplicate names)."""
    return SageMakerError("ResourceInUse", message)


def resource_not_found(message: str) -> SageMakerError:
    """Return a ``ResourceNotFound`` error."""
    return SageMakerError("ResourceNotFound", message)


def conflict(message: str) -> SageMakerError:
    """Return a ``ConflictException``."""
    return SageMakerError("ConflictException", message)


def throttling(message: str = "Rate exceeded") -> SageMakerError:
    """Return a ``ThrottlingException``."""
    return SageMakerError("ThrottlingException", message)


def unknown_operation(message: str) -> SageMakerError:
    """Return an ``UnknownOperationException`` (the JSON 1.1 answer to an unknown target)."""
    return SageMakerError("UnknownOperationException", message)


def serialization_error(message: str) -> SageMakerError:
    """Return a ``SerializationException`` (body that is not the JSON the operation takes)."""
    return SageMakerError("SerializationException", message)
