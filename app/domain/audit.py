"""The audit chain: how a record is hashed, how records link, and how a chain is checked.

A record is the stored row as a flat JSON object: every column except ``hash`` (which it determines),
``request_body`` (which ``request_sha256`` covers) and ``canonical_record`` (the serialisation below, kept
as hashed). Its hash is the lowercase hex SHA-256 of the record's RFC 8785 (JSON Canonicalization Scheme)
serialisation. Record ``seq`` = n holds ``prev_hash`` = the hash of
record n - 1; record 1 holds ``GENESIS_HASH``. Sequence numbers start at 1 and have no gaps, and
``recorded_at`` never decreases along the chain. docs/audit.md describes the format for offline checking.
"""

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.domain import canonical_json

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first record."""


def canonical_time(value: datetime) -> str:
    """A UTC instant as the chain writes it: RFC 3339, six fraction digits, 'Z'.

    For example 2026-11-25T23:00:00.000000Z.
    """
    if value.tzinfo is None:
        raise ValueError("the chain records aware UTC instants only")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    record: dict[str, Any] = {}
    for name in RECORD_FIELDS:
        value = values[name]
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = canonical_time(value)
        record[name] = value
    return record


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """The RFC 8785 serialisation a record's hash is taken over."""
    return canonical_json.dumps(dict(record))


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def seal(record: Mapping[str, Any]) -> tuple[bytes, str]:
    """A record's canonical bytes and their hash, as the writer stores both."""
    canonical = canonical_bytes(record)
    return canonical, hashlib.sha256(canonical).hexdigest()


SealedLink = tuple[int, str, str, str, bytes, bool, str, str]
"""A stored record as the chain check reads it when its canonical bytes are kept: seq, prev_hash, hash,
recorded_at (canonical text), the canonical bytes, whether the columns say what the bytes say (compared by
the store), request_sha256, and the SHA-256 of the stored request body (taken by the store)."""


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
    COLUMNS = "columns-mismatch"
    REQUEST_BODY = "request-body-mismatch"
    TIME_REVERSED = "time-reversed"
    CHECKPOINT_MISSING = "checkpoint-beyond-chain"
    CHECKPOINT_HASH = "checkpoint-hash-mismatch"


_EXPLANATIONS = {
    Break.FIRST_LINK: "the first record of the chain does not link to the genesis hash",
    Break.SEQUENCE_GAP: "a record is missing before this one, or records were reordered",
    Break.PREVIOUS_HASH: "this record does not link to the stored hash of the record before it",
    Break.HASH: "this record's content does not match its stored hash: it was altered",
    Break.COLUMNS: "this record's columns differ from the canonical bytes its hash covers: they were altered",
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
        request_body: str | None = None,
        canonical: bytes | None = None,
    ) -> bool:
        """Check one record rebuilt from its columns (and its request body, when given); False once the
        chain is broken. With the ``canonical`` bytes stored beside it, the hash is checked over those and
        the record must serialise to them; without (records kept before the bytes were), over the record.
        """
        if self.broken is not None:
            return False
        self.broken = self._check(record, stored_hash, canonical)
        if self.broken is None and request_body is not None:
            body_hash = hashlib.sha256(request_body.encode("utf-8")).hexdigest()
            if body_hash != record["request_sha256"]:
                self.broken = BrokenLink(
                    record["seq"], Break.REQUEST_BODY, record["request_sha256"], body_hash
                )
        if self.broken is not None:
            return False
        self._previous = ChainHead(record["seq"], stored_hash, datetime.fromisoformat(record["recorded_at"]))
        self._first = self._first if self._first is not None else record["seq"]
        self._checked += 1
        return True

    def feed_sealed(self, links: Iterable[SealedLink]) -> bool:
        """Check records whose canonical bytes are stored, in order; False once the chain is broken.

        The same checks as ``feed``, in the same order, with nothing rebuilt or re-serialised: the stored
        bytes are hashed, and the store has compared them with the columns and the request body.
        """
        if self.broken is not None:
            return False
        previous = self._previous
        last_seq, last_hash = previous.seq, previous.hash
        last_time = "" if previous.recorded_at is None else canonical_time(previous.recorded_at)
        checkpoints, sha256 = self._checkpoints, hashlib.sha256
        checked, first, broken = 0, self._first, None
        for (
            seq,
            prev_hash,
            stored_hash,
            recorded_at,
            canonical,
            columns_match,
            request_sha,
            body_sha,
        ) in links:
            if seq != last_seq + 1:
                broken = BrokenLink(seq, Break.SEQUENCE_GAP, str(last_seq + 1), str(seq))
            elif prev_hash != last_hash:
                reason = Break.FIRST_LINK if seq == 1 else Break.PREVIOUS_HASH
                broken = BrokenLink(seq, reason, last_hash, prev_hash)
            elif (actual := sha256(canonical).hexdigest()) != stored_hash:
                broken = BrokenLink(seq, Break.HASH, stored_hash, actual)
            elif not columns_match:
                broken = BrokenLink(seq, Break.COLUMNS, stored_hash)
            elif recorded_at < last_time:  # canonical times, fixed width: text order is time order
                broken = BrokenLink(seq, Break.TIME_REVERSED, last_time, recorded_at)
            elif seq in checkpoints and (
                wrong := [kept for kept in checkpoints[seq] if kept.hash != stored_hash]
            ):
                broken = BrokenLink(seq, Break.CHECKPOINT_HASH, wrong[0].hash, stored_hash)
            elif body_sha != request_sha:
                broken = BrokenLink(seq, Break.REQUEST_BODY, request_sha, body_sha)
            if broken is not None:
                break
            last_seq, last_hash, last_time = seq, stored_hash, recorded_at
            first = seq if first is None else first
            checked += 1
        if checked:
            self._previous = ChainHead(last_seq, last_hash, datetime.fromisoformat(last_time))
        self._first, self._checked, self.broken = first, self._checked + checked, broken
        return broken is None

    def _check(
        self, record: Mapping[str, Any], stored_hash: str, canonical: bytes | None
    ) -> BrokenLink | None:
        seq, previous = record["seq"], self._previous
        if seq != previous.seq + 1:
            return BrokenLink(seq, Break.SEQUENCE_GAP, str(previous.seq + 1), str(seq))
        if record["prev_hash"] != previous.hash:
            reason = Break.FIRST_LINK if seq == 1 else Break.PREVIOUS_HASH
            return BrokenLink(seq, reason, previous.hash, record["prev_hash"])
        actual = record_hash(record) if canonical is None else hashlib.sha256(canonical).hexdigest()
        if actual != stored_hash:
            return BrokenLink(seq, Break.HASH, stored_hash, actual)
        if canonical is not None and canonical_bytes(record) != canonical:
            return BrokenLink(seq, Break.COLUMNS, stored_hash)
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
