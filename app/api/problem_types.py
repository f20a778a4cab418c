"""The problem types the service answers with: each a stable URI under ``/problems/``, documented there."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ProblemType:
    slug: str
    title: str
    status: int
    description: str

    @property
    def uri(self) -> str:
        return f"/problems/{self.slug}"


VALIDATION = ProblemType(
    "validation-error",
    "Request is not valid",
    422,
    "The request is well-formed JSON but does not satisfy the contract; 'errors' lists each field.",
)
UNSUPPORTED_MEDIA_TYPE = ProblemType(
    "unsupported-media-type",
    "Unsupported media type",
    415,
    "The request body must be JSON (Content-Type: application/json, UTF-8).",
)
NOT_FOUND = ProblemType("not-found", "Not found", 404, "No such resource.")
METHOD_NOT_ALLOWED = ProblemType(
    "method-not-allowed", "Method not allowed", 405, "The resource does not support this method; see Allow."
)
PAYLOAD_TOO_LARGE = ProblemType(
    "payload-too-large", "Request body too large", 413, "The request body exceeds the configured limit."
)
BAD_REQUEST = ProblemType("bad-request", "Bad request", 400, "The request could not be read.")
STORE_UNAVAILABLE = ProblemType(
    "audit-store-unavailable",
    "Audit store unavailable",
    503,
    "The audit store could not be reached or could not confirm the record, so no decision was given. "
    "Retry after Retry-After seconds with the same Idempotency-Key: if the record was in fact committed, "
    "the retry returns it instead of deciding twice.",
)
REQUEST_IN_PROGRESS = ProblemType(
    "request-in-progress",
    "Request in progress",
    409,
    "A request with the same Idempotency-Key is still being decided; retry after it completes.",
)
IDEMPOTENCY_KEY_REUSED = ProblemType(
    "idempotency-key-reused",
    "Idempotency-Key reused",
    422,
    "This Idempotency-Key was first sent with a different request; a new request needs a new key.",
)
ALREADY_SUPERSEDED = ProblemType(
    "already-superseded",
    "Already superseded",
    409,
    "The decision named in 'supersedes' was corrected already; correct the newest decision instead.",
)
APPEND_CONFLICT = ProblemType(
    "append-conflict",
    "Conflicting write",
    409,
    "A record written at the same moment conflicts with this one; nothing was recorded. Retry.",
)
CHAIN_BROKEN = ProblemType(
    "audit-chain-broken",
    "Audit chain broken",
    409,
    "The audit chain no longer extends the last checkpoint this service signed (records were cut or "
    "rewritten), so it signs no checkpoint; `il6 audit verify` finds the broken link.",
)
INVALID_CHECKPOINT = ProblemType(
    "invalid-checkpoint",
    "Invalid checkpoint",
    422,
    "A checkpoint is malformed or its signature does not verify under this service's key.",
)
REPLAY_UNAVAILABLE = ProblemType(
    "replay-unavailable",
    "Replay unavailable",
    409,
    "The classifier version that made the decision is not loaded with its recorded digest.",
)
NOT_READY = ProblemType(
    "not-ready",
    "Not ready",
    503,
    "The database is unreachable or not at the newest schema migration.",
)
UPSTREAM_UNAVAILABLE = ProblemType(
    "upstream-unavailable",
    "Upstream system unavailable",
    502,
    "A system the result had to be read from (REDCap) could not be reached, or answered with an error or in "
    "an unexpected shape, so nothing was decided. What it answered is not repeated.",
)
SOURCE_NOT_ACCEPTED = ProblemType(
    "source-not-accepted",
    "Source not accepted",
    403,
    "The request names a source (a REDCap project) this service is not configured to accept; nothing was "
    "read or decided.",
)
UNAUTHENTICATED = ProblemType(
    "unauthenticated",
    "Credentials not accepted",
    401,
    "The request carries no bearer credential, or one that is unknown, malformed, expired or revoked. Send "
    "Authorization: Bearer <API key or access token>.",
)
FORBIDDEN = ProblemType(
    "forbidden",
    "Not allowed",
    403,
    "The credential is valid but does not allow this operation: a scope it lacks (assess, read, admin), a "
    "site it is not given, or data that needs access to every site.",
)
RATE_LIMITED = ProblemType(
    "rate-limited",
    "Too many requests",
    429,
    "This caller has used its request allowance for now; retry after Retry-After seconds.",
)
KEY_NAME_TAKEN = ProblemType(
    "key-name-taken",
    "Key name taken",
    409,
    "A key with this name exists, or existed: the audit trail names callers by key name, so names are "
    "never reused.",
)
KEY_REVOKED = ProblemType("key-revoked", "Key revoked", 409, "The key is revoked; it can no longer change.")
ISSUER_UNAVAILABLE = ProblemType(
    "issuer-unavailable",
    "Identity provider unavailable",
    503,
    "The configured OIDC issuer's signing keys could not be fetched, so the access token could not be "
    "checked. Retry after Retry-After seconds.",
)
LIFECYCLE_REFUSED = ProblemType(
    "lifecycle-refused",
    "Lifecycle change refused",
    409,
    "The classifier version's current state does not allow this change (activating the active version, "
    "retiring the default classifier's only active version, shadowing with the active version ...); the "
    "detail says why. Versions move draft -> active -> retired; see GET /v1/classifiers/{name}/history.",
)
INTERNAL = ProblemType("internal-error", "Internal error", 500, "An unexpected error; it was logged.")

PROBLEM_TYPES = {
    problem.slug: problem
    for problem in (
        VALIDATION,
        UNSUPPORTED_MEDIA_TYPE,
        NOT_FOUND,
        LIFECYCLE_REFUSED,
        METHOD_NOT_ALLOWED,
        PAYLOAD_TOO_LARGE,
        BAD_REQUEST,
        STORE_UNAVAILABLE,
        REQUEST_IN_PROGRESS,
        IDEMPOTENCY_KEY_REUSED,
        ALREADY_SUPERSEDED,
        APPEND_CONFLICT,
        INVALID_CHECKPOINT,
        CHAIN_BROKEN,
        REPLAY_UNAVAILABLE,
        NOT_READY,
        UPSTREAM_UNAVAILABLE,
        SOURCE_NOT_ACCEPTED,
        UNAUTHENTICATED,
        FORBIDDEN,
        RATE_LIMITED,
        KEY_NAME_TAKEN,
        KEY_REVOKED,
        ISSUER_UNAVAILABLE,
        INTERNAL,
    )
}
