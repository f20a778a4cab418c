"""The audit chain: how a record is hashed, how records link, and how a chain is checked.

A record is the stored row as a flat JSON object: every column except ``hash`` (which it determines) and
``request_body`` (which ``request_sha256`` covers). Its hash is the lowercase hex SHA-256 of the record's
RFC 8785 (JSON Canonicalization Scheme) serialisation. Record ``seq`` = n holds ``prev_hash`` = the hash of
record n - 1; record 1 holds ``GENESIS_HASH``. Sequence numbers start at 1 and have no gaps, and
``recorded_at`` never decreases along the chain. docs/audit.md describes the format for offline checking.
"""

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, Literal

import orjson

from app.domain import canonical_json

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first record."""


def canonical_time(value: datetime) -> str:
    """A UTC instant as the chain writes it: RFC 3339, six fraction digits, 'Z'.

    For example 2026-11-25T23:00:00.000000Z.
    """
    if value.tzinfo is None:
        raise ValueError("the chain records aware UTC instants only")
    # isoformat, not strftime: the same text for years 1000 to 9999, in two thirds of the time.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


RECORD_FIELDS = (
    "seq",
    "prev_hash",
    "id",
    "recorded_at",
    "client_id",
    "request_id",
    "idempotency_key",
    "subject_id",
    "site_id",
    "classifier_name",
    "classifier_version",
    "classifier_digest",
    "eligibility_status",
    "risk_group",
    "request_media_type",
    "request_sha256",
    "input",
    "decision",
    "supersedes",
    "correction_reason",
)
"""The fields of a record, in the order docs/audit.md lists them (the hash does not depend on order)."""


def to_record(values: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a stored row: its ``RECORD_FIELDS``, ids and times as canonical strings."""
    record = {name: values[name] for name in RECORD_FIELDS}
    for name, value in record.items():
        if type(value) in _JSON_TYPES:  # most fields: nothing to convert
            continue
        if isinstance(value, uuid.UUID):
            record[name] = str(value)
        elif isinstance(value, datetime):
            record[name] = canonical_time(value)
    return record


_JSON_TYPES = frozenset({str, int, dict, list, bool, float, type(None)})


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """The RFC 8785 serialisation a record's hash is taken over."""
    return canonical_json.dumps(dict(record))


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def hashes_to(record: Mapping[str, Any], stored_hash: str, *, exact: bool = False) -> str | None:
    """None when ``record`` hashes to ``stored_hash``; else the record's hash (or why it has none).

    Tried first over orjson's serialisation with sorted keys, which for the records the service writes
    (ASCII keys, strings, booleans, integers, decimal strings) is byte for byte the RFC 8785 one, at a
    fraction of its cost. When those bytes hash to the stored hash they are the bytes the hash was taken
    over (SHA-256 has no known second preimage), and when they also read back as the record, orjson wrote
    the record exactly (it writes a non-finite number as null, which reads back as another value): the
    record is as hashed. Otherwise the record's own RFC 8785 serialisation decides, as it always did.

    ``exact``: the caller vouches that the record holds only values orjson writes as themselves, as
    ``orjson.loads`` makes them (strings, integers, booleans, None, finite floats, lists, objects with
    string keys); the read-back, a sixth of a record's check, is then skipped, since all it could find is
    a value the caller vouches is not there.
    """
    try:
        quick: bytes | None = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # a type, a key or an integer orjson does not write
        quick = None
    if (
        quick is not None
        and hashlib.sha256(quick).hexdigest() == stored_hash
        and (exact or orjson.loads(quick) == record)
    ):
        return None
    try:
        actual = record_hash(record)
    except canonical_json.CanonicalizationError:
        # No record was hashed with such a value (the writer hashes every record it appends): it was put
        # there afterwards, and the record is not what was hashed.
        return "none: the record has no RFC 8785 form"
    return None if actual == stored_hash else actual


@dataclass(frozen=True)
class ChainHead:
    """The newest record's link fields, or the empty chain's (seq 0, the genesis hash)."""

    seq: int
    hash: str
    recorded_at: datetime | None

    @classmethod
    def empty(cls) -> "ChainHead":
        return cls(0, GENESIS_HASH, None)


def next_link(head: ChainHead, clock: datetime) -> tuple[int, str, datetime]:
    """The sequence number, previous hash and time of the record appended after ``head``.

    ``clock`` is the database's time when the append began; it is raised to the head's time if the clock
    has stepped back, so that time never decreases along the chain.
    """
    recorded_at = clock if head.recorded_at is None else max(clock, head.recorded_at)
    return head.seq + 1, head.hash, recorded_at


class Break(StrEnum):
    """Why a chain stops verifying at a record."""

    FIRST_LINK = "first-link"
    SEQUENCE_GAP = "sequence-gap"
    PREVIOUS_HASH = "previous-hash-mismatch"
    HASH = "hash-mismatch"
    REQUEST_BODY = "request-body-mismatch"
    TIME_REVERSED = "time-reversed"
    CHECKPOINT_MISSING = "checkpoint-beyond-chain"
    CHECKPOINT_HASH = "checkpoint-hash-mismatch"


_EXPLANATIONS = {
    Break.FIRST_LINK: "the first record of the chain does not link to the genesis hash",
    Break.SEQUENCE_GAP: (
        "a record is missing before this one, or records were reordered or stored twice under one seq"
    ),
    Break.PREVIOUS_HASH: "this record does not link to the stored hash of the record before it",
    Break.HASH: "this record's content does not match its stored hash: it was altered",
    Break.REQUEST_BODY: "the stored request body does not match the record's request_sha256: it was altered",
    Break.TIME_REVERSED: "this record is timed before the record it follows",
    Break.CHECKPOINT_MISSING: "a signed checkpoint names a record the chain does not hold: its tail was cut",
    Break.CHECKPOINT_HASH: "the record differs from the signed checkpoint: the chain was rewritten",
}


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    reason: Break
    expected: str | None = None
    found: str | None = None

    @property
    def explanation(self) -> str:
        return _EXPLANATIONS[self.reason]


@dataclass(frozen=True)
class Checkpoint:
    """A chain head someone kept: the record ``seq`` had hash ``hash`` (signature checked by the caller)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Verification:
    checked: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    broken: BrokenLink | None
    checkpoints: int = 0
    """How many checkpoints fell in the checked range and were compared."""

    @property
    def intact(self) -> bool:
        return self.broken is None


class Unchecked(Enum):
    """What ``ChainVerifier.feed`` is not given, and so does not check."""

    BODY = "no request body given"


class ChainVerifier:
    """Checks records fed in sequence order, stopping at the first broken link.

    ``after`` is the link the first fed record must follow: the empty chain's head when verifying from the
    start, or the stored head of the record before a range.
    """

    def __init__(self, after: ChainHead | None = None, checkpoints: Iterable[Checkpoint] = ()) -> None:
        self._previous = after or ChainHead.empty()
        # Every checkpoint counts, several at one seq included: two signed heads of one seq that differ
        # (a true one and one signed after a rewrite) must not let the later hide the earlier.
        self._checkpoints: dict[int, list[Checkpoint]] = {}
        for checkpoint in checkpoints:
            self._checkpoints.setdefault(checkpoint.seq, []).append(checkpoint)
        self._first: int | None = None
        self._checked = 0
        self.broken: BrokenLink | None = None

    def feed(
        self,
        record: Mapping[str, Any],
        stored_hash: str,
        request_body: str | Literal[Unchecked.BODY] | None = Unchecked.BODY,
        *,
        exact: bool = False,
    ) -> bool:
        """Check one record (and its request body, when given); False once the chain is broken.

        ``request_body``: the body stored with the record, or None where none is (every record is stored
        with its body, so a missing one was erased: ``request-body-mismatch``); left out, not checked.
        ``exact``: the record holds only values orjson writes as themselves (``hashes_to``).
        """
        if self.broken is not None:
            return False
        self.broken = self._check(record, stored_hash, exact)
        if self.broken is None and request_body is not Unchecked.BODY:
            self.broken = self._check_body(record, request_body)
        if self.broken is not None:
            return False
        self._previous = ChainHead(record["seq"], stored_hash, datetime.fromisoformat(record["recorded_at"]))
        self._first = self._first if self._first is not None else record["seq"]
        self._checked += 1
        return True

    @staticmethod
    def _check_body(record: Mapping[str, Any], request_body: str | None) -> BrokenLink | None:
        expected = record["request_sha256"]
        if request_body is None:
            return BrokenLink(record["seq"], Break.REQUEST_BODY, expected, "none stored")
        body_hash = hashlib.sha256(request_body.encode("utf-8")).hexdigest()
        if body_hash != expected:
            return BrokenLink(record["seq"], Break.REQUEST_BODY, expected, body_hash)
        return None

    def _check(self, record: Mapping[str, Any], stored_hash: str, exact: bool) -> BrokenLink | None:
        seq, previous = record["seq"], self._previous
        if seq != previous.seq + 1:
            return BrokenLink(seq, Break.SEQUENCE_GAP, str(previous.seq + 1), str(seq))
        if record["prev_hash"] != previous.hash:
            reason = Break.FIRST_LINK if seq == 1 else Break.PREVIOUS_HASH
            return BrokenLink(seq, reason, previous.hash, record["prev_hash"])
        actual = hashes_to(record, stored_hash, exact=exact)
        if actual is not None:
            return BrokenLink(seq, Break.HASH, stored_hash, actual)
        recorded_at = datetime.fromisoformat(record["recorded_at"])
        if previous.recorded_at is not None and recorded_at < previous.recorded_at:
            return BrokenLink(
                seq, Break.TIME_REVERSED, canonical_time(previous.recorded_at), record["recorded_at"]
            )
        for checkpoint in self._checkpoints.get(seq, ()):
            if checkpoint.hash != stored_hash:
                return BrokenLink(seq, Break.CHECKPOINT_HASH, checkpoint.hash, stored_hash)
        return None

    def finish(self) -> Verification:
        """The outcome; a checkpoint beyond the last record checked means the tail was cut."""
        last = self._previous
        if self.broken is None:
            beyond = sorted(seq for seq in self._checkpoints if seq > last.seq)
            if beyond:
                self.broken = BrokenLink(beyond[0], Break.CHECKPOINT_MISSING, str(beyond[0]), str(last.seq))
        return Verification(
            checked=self._checked,
            first_seq=self._first,
            last_seq=last.seq if self._checked else None,
            last_hash=last.hash if self._checked else None,
            broken=self.broken,
            checkpoints=sum(len(kept) for kept in self._checkpoints.values()),
        )


def joined(parts: Sequence[Verification]) -> Verification:
    """One verification of consecutive ranges checked apart, in chain order.

    Each range's first record was checked against the stored hash of the record before it, which the range
    before checked as its last: together they check what one pass checks. The first break, in chain order,
    is the chain's; the records checked are those before it. Every range's checkpoints count.
    """
    checked, first, last_seq, last_hash, broken = 0, None, None, None, None
    for part in parts:
        if broken is not None:
            break
        checked += part.checked
        first = part.first_seq if first is None else first
        if part.checked:
            last_seq, last_hash = part.last_seq, part.last_hash
        broken = part.broken
    return Verification(checked, first, last_seq, last_hash, broken, sum(part.checkpoints for part in parts))
