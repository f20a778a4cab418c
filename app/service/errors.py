"""Errors the use cases surface to their callers."""

import uuid

from app.store.repositories import AppendConflict
from app.store.unit_of_work import StoreUnavailable

__all__ = [
    "AlreadySuperseded",
    "AppendConflict",
    "Forbidden",
    "IdempotencyKeyReused",
    "RateLimited",
    "RequestInProgress",
    "StoreUnavailable",
    "Unauthenticated",
]


class Unauthenticated(Exception):
    """No credentials, or credentials that are unknown, malformed, expired or revoked.

    ``reason`` is a short code for metrics and logs (``missing``, ``unknown-key``, ``expired`` ...); the
    caller is told only that its credentials were not accepted.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("the credentials were not accepted")
        self.reason = reason


class Forbidden(Exception):
    """Authenticated, but not allowed this operation (a missing scope, or every site needed)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class RateLimited(Exception):
    """The caller has used up its request allowance for now."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many requests from this caller")
        self.retry_after_s = retry_after_s


class RequestInProgress(Exception):
    """A request with the same Idempotency-Key is still being decided."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used with a different request."""


class AlreadySuperseded(Exception):
    """The decision a correction names has been corrected already; correct the newest one."""

    def __init__(self, successor: uuid.UUID) -> None:
        super().__init__("this decision has already been superseded")
        self.successor = successor
