"""Checking an audit export and kept checkpoints away from the service: files in, a verification out.

An export (GET /v1/audit/export) is NDJSON, one record per line, or CSV with a header row, empty cells
for null and ``input``/``decision`` as JSON text. Either way each record carries its chain fields, its
hash and its request body, so the chain can be recomputed from the file alone.
"""

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.domain.audit import RECORD_FIELDS, ChainHead, ChainVerifier, Verification
from app.service.checkpoints import InvalidCheckpoint, SignedCheckpoint

_INTEGER_FIELDS = frozenset({"seq"})
_EXPORT_FIELDS = frozenset({*RECORD_FIELDS, "hash", "request_body"})
_JSON_FIELDS = frozenset({"input", "decision"})


class UnreadableExport(ValueError):
    """A file that is not an audit export in either format."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: of two values for one field, neither is the record's."""
    document = dict(pairs)
    if len(document) != len(pairs):
        raise UnreadableExport("not an audit export: an object repeats a key")
    return document


def _loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_unique_keys)


def read_checkpoints(path: Path) -> list[SignedCheckpoint]:
    """Checkpoints from a file holding one checkpoint (JSON, on one line or laid out over several, as
    ``jq .`` writes it) or a checkpoint log (one per line)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidCheckpoint(f"{path}: not UTF-8 text") from None
    try:
        documents = [json.loads(text)]
    except json.JSONDecodeError:
        try:
            documents = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise InvalidCheckpoint(f"{path}: not JSON ({error.msg}, line {error.lineno})") from None
    return [SignedCheckpoint.from_document(document) for document in documents]


def _from_csv_row(row: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, cell in row.items():
        if cell == "":
            record[name] = None
        elif name in _INTEGER_FIELDS:
            record[name] = int(cell)
        elif name in _JSON_FIELDS:
            record[name] = _loads(cell)
        else:
            record[name] = cell
    return record


def read_export(file: TextIO) -> Iterator[dict[str, Any]]:
    """The records of an export, NDJSON or CSV (told apart by the first character)."""
    first = file.read(1)
    file.seek(0)
    try:
        if first == "{":
            for line in file:
                if line.strip():
                    yield _checked(_loads(line))
        elif first:
            reader = csv.DictReader(file)
            expected = [*RECORD_FIELDS, "hash", "request_body"]
            if reader.fieldnames != expected:
                raise UnreadableExport("the CSV header is not an audit export's")
            for row in reader:
                yield _checked(_from_csv_row(row))
    except UnreadableExport:
        raise
    except (ValueError, TypeError, csv.Error) as error:  # JSONDecodeError is a ValueError
        raise UnreadableExport(f"not an audit export: {error}") from None


def verify_records(
    records: Iterable[dict[str, Any]],
    checkpoints: Iterable[SignedCheckpoint] = (),
    public_key: Ed25519PublicKey | None = None,
) -> tuple[Verification, int | None]:
    """Recompute the chain of exported records, and compare it with signed checkpoints.

    Every checkpoint's signature is checked under ``public_key``, the service's key as published (a
    checkpoint without a trusted key proves nothing, so checkpoints require one). An export that starts
    after seq 1 is checked from its first record's link on. Returns the verification and the first
    sequence number in the file.
    """
    kept = list(checkpoints)
    if kept and public_key is None:
        raise InvalidCheckpoint("checking checkpoints needs the service's public key")
    for checkpoint in kept:
        checkpoint.verify(cast(Ed25519PublicKey, public_key))
    iterator = iter(records)
    first = next(iterator, None)
    if first is None:
        verifier = ChainVerifier(None, [checkpoint.link for checkpoint in kept if checkpoint.seq > 0])
        return verifier.finish(), None
    start = first["seq"]
    after = ChainHead.empty() if start == 1 else ChainHead(start - 1, first["prev_hash"], None)
    verifier = ChainVerifier(after, [checkpoint.link for checkpoint in kept if checkpoint.seq >= start])
    for record in itertools.chain([first], iterator):
        stored_hash, body = record.pop("hash"), record.pop("request_body")
        try:
            intact = verifier.feed({name: record.get(name) for name in RECORD_FIELDS}, stored_hash, body)
        except (TypeError, ValueError, AttributeError) as error:  # a field of the wrong type or form
            raise UnreadableExport(f"not an audit export: record {record.get('seq')}: {error}") from None
        if not intact:
            break
    return verifier.finish(), start


def _checked(record: Any) -> dict[str, Any]:
    """A record with every field an export record has, the chain fields of the right JSON types."""
    if not isinstance(record, dict) or not record.keys() >= _EXPORT_FIELDS:
        raise UnreadableExport("not an audit export: a record lacks its fields")
    if not isinstance(record["seq"], int) or isinstance(record["seq"], bool):
        raise UnreadableExport("not an audit export: a record's seq is not an integer")
    if not all(
        isinstance(record[name], str) for name in ("prev_hash", "hash", "recorded_at", "request_body")
    ):
        raise UnreadableExport(f"not an audit export: record {record['seq']} has malformed chain fields")
    return record
