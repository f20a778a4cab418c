"""The audit chain's pure rules: record hashing, linking, verification, checkpoints and export files."""

import csv
import hashlib
import io
import json
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from app.domain.audit import (
    GENESIS_HASH,
    RECORD_FIELDS,
    Break,
    BrokenLink,
    ChainHead,
    ChainVerifier,
    Checkpoint,
    canonical_time,
    joined,
    next_link,
    record_hash,
    to_record,
)
from app.service.checkpoints import (
    CheckpointSigner,
    InvalidCheckpoint,
    SignedCheckpoint,
    SigningKeyMissing,
    load_signing_key,
    parse_public_key,
    public_key_text,
)
from app.service.offline import UnreadableExport, read_checkpoints, read_export, verify_records

START = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)


def _row(seq: int, prev_hash: str, recorded_at: datetime, **changes: Any) -> dict[str, Any]:
    body = json.dumps({"subject_id": f"S-{seq}"})
    row: dict[str, Any] = {
        "seq": seq,
        "prev_hash": prev_hash,
        "id": uuid.UUID(int=seq),
        "recorded_at": recorded_at,
        "client_id": "edc",
        "request_id": f"req-{seq}",
        "idempotency_key": None,
        "subject_id": f"S-{seq}",
        "site_id": "PIT",
        "classifier_name": "il6-enrichment",
        "classifier_version": "1.0.0",
        "classifier_digest": "sha256:" + "a" * 64,
        "eligibility_status": "eligible",
        "risk_group": "low",
        "request_media_type": "application/json",
        "request_sha256": hashlib.sha256(body.encode()).hexdigest(),
        "input": {"il6": {"value": "1.5", "comparator": "<"}},
        "decision": {"eligibility": {"status": "eligible", "reasons": []}},
        "supersedes": None,
        "correction_reason": None,
    }
    row.update(changes)
    return {**to_record(row), "request_body": body}


def chain(length: int) -> list[tuple[dict[str, Any], str, str]]:
    """(record, hash, request body) triples of a well-formed chain."""
    links: list[tuple[dict[str, Any], str, str]] = []
    head = ChainHead.empty()
    for index in range(length):
        seq, prev_hash, recorded_at = next_link(head, START + timedelta(seconds=index))
        record = _row(seq, prev_hash, recorded_at)
        body = record.pop("request_body")
        digest = record_hash(record)
        links.append((record, digest, body))
        head = ChainHead(seq, digest, recorded_at)
    return links


def verify(links: list[tuple[dict[str, Any], str, str]], **kwargs: Any) -> Any:
    verifier = ChainVerifier(**kwargs)
    for record, digest, body in links:
        if not verifier.feed(record, digest, body):
            break
    return verifier.finish()


def test_times_are_written_in_one_form() -> None:
    assert canonical_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    with pytest.raises(ValueError, match="aware"):
        canonical_time(datetime(2026, 1, 2))  # noqa: DTZ001 - the naive instant is the point


def test_a_record_hash_is_sha256_of_its_rfc8785_form_whatever_the_key_order() -> None:
    record, _, _ = chain(1)[0]
    reordered = dict(reversed(list(record.items())))

    assert record_hash(reordered) == record_hash(record) == hashlib.sha256(rfc8785.dumps(record)).hexdigest()
    assert list(record) == list(RECORD_FIELDS)


def test_the_record_format_is_frozen() -> None:
    # Changing what a record holds or how it is serialised breaks every stored chain: never silently.
    record, digest, _ = chain(1)[0]
    assert record["recorded_at"] == "2026-11-25T23:00:00.000000Z"
    # For ASCII strings and small integers, RFC 8785 is sorted keys without whitespace: an independent
    # reading of the documented format gives the same hash.
    plain = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert digest == hashlib.sha256(plain.encode()).hexdigest()
    assert digest == FROZEN_FIRST_HASH


def test_the_first_record_follows_the_genesis_hash_and_time_never_goes_back() -> None:
    assert next_link(ChainHead.empty(), START) == (1, GENESIS_HASH, START)
    head = ChainHead(7, "b" * 64, START)
    assert next_link(head, START - timedelta(seconds=3)) == (8, "b" * 64, START)
    assert next_link(head, START + timedelta(seconds=3)) == (8, "b" * 64, START + timedelta(seconds=3))


def test_an_untouched_chain_verifies() -> None:
    links = chain(5)
    outcome = verify(links)
    assert outcome.intact
    assert (outcome.checked, outcome.first_seq, outcome.last_seq) == (5, 1, 5)
    assert outcome.last_hash == links[-1][1]


def test_an_empty_chain_verifies() -> None:
    assert verify([]).intact
    assert verify([]).checked == 0


def test_an_edited_record_is_pinpointed() -> None:
    links = chain(5)
    links[2][0]["eligibility_status"] = "ineligible"
    outcome = verify(links)
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (3, Break.HASH)
    assert outcome.checked == 2


def test_a_removed_record_is_pinpointed_at_the_next() -> None:
    links = chain(5)
    del links[2]
    outcome = verify(links)
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (4, Break.SEQUENCE_GAP)
    assert (outcome.broken.expected, outcome.broken.found) == ("3", "4")


def test_swapped_records_are_pinpointed() -> None:
    links = chain(5)
    links[1], links[3] = links[3], links[1]
    outcome = verify(links)
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (4, Break.SEQUENCE_GAP)


def test_swapped_contents_under_the_same_numbers_are_pinpointed() -> None:
    links = chain(5)
    first, second = links[1][0], links[3][0]
    for name in ("subject_id", "request_id", "id"):
        first[name], second[name] = second[name], first[name]
    outcome = verify(links)
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (2, Break.HASH)


def test_a_forged_record_that_does_not_link_is_pinpointed() -> None:
    links = chain(3)
    forged = dict(links[2][0], seq=4, prev_hash="c" * 64)
    links.append((forged, record_hash(forged), links[2][2]))
    outcome = verify(links)
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (4, Break.PREVIOUS_HASH)


def test_a_first_record_not_on_the_genesis_hash_is_pinpointed() -> None:
    links = chain(2)
    record = dict(links[0][0], prev_hash="d" * 64)
    links[0] = (record, record_hash(record), links[0][2])
    outcome = verify(links)
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (1, Break.FIRST_LINK)


def test_a_record_timed_before_its_predecessor_is_pinpointed() -> None:
    links = chain(3)
    record = dict(links[2][0], recorded_at=canonical_time(START - timedelta(hours=1)))
    links[2] = (record, record_hash(record), links[2][2])
    outcome = verify(links)
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (3, Break.TIME_REVERSED)


def test_an_altered_request_body_is_pinpointed() -> None:
    links = chain(3)
    links[1] = (links[1][0], links[1][1], links[1][2] + " ")
    outcome = verify(links)
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (2, Break.REQUEST_BODY)


def test_an_erased_request_body_is_pinpointed_and_one_not_given_is_not_checked() -> None:
    links = chain(3)
    verifier, unchecked = ChainVerifier(), ChainVerifier()

    fed = [
        verifier.feed(record, digest, None if record["seq"] == 2 else body) for record, digest, body in links
    ]
    for record, digest, _ in links:
        unchecked.feed(record, digest)

    assert fed == [True, False, False]
    assert verifier.broken == BrokenLink(2, Break.REQUEST_BODY, links[1][0]["request_sha256"], "none stored")
    assert unchecked.finish().intact


def rewrite(
    links: list[tuple[dict[str, Any], str, str]], seq: int, **changes: Any
) -> list[tuple[dict[str, Any], str, str]]:
    """The chain as an owner rewrites it: record ``seq`` changed, every hash from there recomputed."""
    rewritten: list[tuple[dict[str, Any], str, str]] = []
    previous = GENESIS_HASH
    for record, _, body in links:
        record = dict(record, prev_hash=previous, **(changes if record["seq"] == seq else {}))
        previous = record_hash(record)
        rewritten.append((record, previous, body))
    return rewritten


def test_a_recomputed_chain_differs_from_an_earlier_checkpoint() -> None:
    links = chain(4)
    kept = Checkpoint(3, links[2][1])
    rewritten = rewrite(links, 2, eligibility_status="ineligible")
    assert verify(rewritten).intact  # the chain alone cannot tell

    outcome = verify(rewritten, checkpoints=[kept])
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (3, Break.CHECKPOINT_HASH)


def test_a_later_checkpoint_of_a_rewritten_chain_does_not_hide_an_earlier_one() -> None:
    links = chain(4)
    true = Checkpoint(3, links[2][1])
    rewritten = rewrite(links, 2, risk_group="high")
    forged = Checkpoint(3, rewritten[2][1])  # what the service would sign of the rewritten head

    for kept in ([true, forged], [forged, true]):
        outcome = verify(rewritten, checkpoints=kept)
        assert outcome.broken is not None
        assert (outcome.broken.seq, outcome.broken.reason) == (3, Break.CHECKPOINT_HASH)


def test_a_cut_tail_is_shown_by_a_checkpoint_beyond_the_end() -> None:
    links = chain(5)
    kept = Checkpoint(5, links[4][1])
    assert verify(links[:3]).intact

    outcome = verify(links[:3], checkpoints=[kept])
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (5, Break.CHECKPOINT_MISSING)
    assert verify(links, checkpoints=[kept]).intact


def test_a_range_is_checked_from_the_link_before_it() -> None:
    links = chain(5)
    before = links[1]
    after = ChainHead(2, before[1], datetime.fromisoformat(before[0]["recorded_at"]))
    assert verify(links[2:], after=after).intact
    outcome = verify(links[2:], after=ChainHead(2, "e" * 64, None))
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (3, Break.PREVIOUS_HASH)


# Checkpoints


@pytest.fixture
def signer(tmp_path: Path) -> CheckpointSigner:
    return CheckpointSigner(load_signing_key(tmp_path / "key.pem", create=True))


def test_a_checkpoint_verifies_under_its_key_only(signer: CheckpointSigner, tmp_path: Path) -> None:
    signed = signer.sign(12, "f" * 64, START)
    signed.verify(signer.public_key)
    assert SignedCheckpoint.from_document(json.loads(json.dumps(signed.document()))) == signed

    other = CheckpointSigner(load_signing_key(tmp_path / "other.pem", create=True))
    with pytest.raises(InvalidCheckpoint, match="another key"):
        signed.verify(other.public_key)
    forged = SignedCheckpoint(13, signed.hash, signed.issued_at, signed.key_id, signed.signature)
    with pytest.raises(InvalidCheckpoint, match="invalid signature"):
        forged.verify(signer.public_key)


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"log": "another-log", "seq": 1, "hash": "f" * 64},
        {"log": "il6-eligibility-audit", "seq": -1, "hash": "f" * 64},
        {"log": "il6-eligibility-audit", "seq": True, "hash": "f" * 64},
        {"log": "il6-eligibility-audit", "seq": 1, "hash": "F" * 64},
        {"log": "il6-eligibility-audit", "seq": 1, "hash": "f" * 64, "issued_at": 1},
    ],
)
def test_malformed_checkpoints_are_refused(document: Any) -> None:
    with pytest.raises(InvalidCheckpoint):
        SignedCheckpoint.from_document(document)


def test_the_signing_key_is_made_private_once_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.pem"
    with pytest.raises(SigningKeyMissing, match="il6 audit keygen"):
        load_signing_key(path, create=False)

    made = load_signing_key(path, create=True)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_text(load_signing_key(path, create=False).public_key()) == public_key_text(
        made.public_key()
    )
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_public_keys_are_read_from_pem_or_base64(signer: CheckpointSigner) -> None:
    pem = signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    text = public_key_text(signer.public_key)
    assert public_key_text(parse_public_key(pem)) == text
    assert public_key_text(parse_public_key(text)) == text
    with pytest.raises(InvalidCheckpoint):
        parse_public_key("not a key")


# Export files


def export_lines(links: list[tuple[dict[str, Any], str, str]]) -> list[dict[str, Any]]:
    return [{**record, "hash": digest, "request_body": body} for record, digest, body in links]


def as_csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = [*RECORD_FIELDS, "hash", "request_body"]
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(
            [
                ""
                if record[name] is None
                else json.dumps(record[name], separators=(",", ":"))
                if isinstance(record[name], dict)
                else record[name]
                for name in columns
            ]
        )
    return buffer.getvalue()


@pytest.mark.parametrize("form", ["ndjson", "csv"])
def test_an_export_file_verifies_offline(form: str) -> None:
    records = export_lines(chain(4))
    text = "".join(json.dumps(r) + "\n" for r in records) if form == "ndjson" else as_csv(records)

    outcome, start = verify_records(read_export(io.StringIO(text, newline="")))

    assert start == 1
    assert outcome.intact
    assert outcome.checked == 4


def test_an_export_of_a_later_range_is_checked_from_its_first_link() -> None:
    records = export_lines(chain(6))[3:]
    outcome, start = verify_records(read_export(io.StringIO("".join(json.dumps(r) + "\n" for r in records))))
    assert start == 4
    assert outcome.intact
    assert outcome.checked == 3


def test_an_edited_export_line_is_pinpointed() -> None:
    records = export_lines(chain(4))
    records[1]["risk_group"] = "high"
    outcome, _ = verify_records(read_export(io.StringIO("".join(json.dumps(r) + "\n" for r in records))))
    assert outcome.broken is not None
    assert (outcome.broken.seq, outcome.broken.reason) == (2, Break.HASH)


def test_a_checkpoint_file_is_read_in_each_form_it_is_kept_in(
    signer: CheckpointSigner, tmp_path: Path
) -> None:
    links = chain(3)
    first, last = (signer.sign(seq, links[seq - 1][1], START).document() for seq in (1, 3))
    forms = {
        "one.json": json.dumps(first),
        "laid-out.json": json.dumps(first, indent=2) + "\n",  # as jq . writes it
        "log.jsonl": "".join(json.dumps(document) + "\n" for document in (first, last)),
    }
    for name, text in forms.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "latin-1.json").write_bytes(json.dumps(first).encode() + b"\xe9")
    (tmp_path / "torn.jsonl").write_text(json.dumps(first) + "\n{", encoding="utf-8")

    read = {name: [kept.seq for kept in read_checkpoints(tmp_path / name)] for name in forms}

    assert read == {"one.json": [1], "laid-out.json": [1], "log.jsonl": [1, 3]}
    with pytest.raises(InvalidCheckpoint, match="not UTF-8"):
        read_checkpoints(tmp_path / "latin-1.json")
    with pytest.raises(InvalidCheckpoint, match="not JSON"):
        read_checkpoints(tmp_path / "torn.jsonl")


def test_checkpoints_for_an_export_need_the_services_key(signer: CheckpointSigner, tmp_path: Path) -> None:
    links = chain(3)
    records = export_lines(links)
    text = "".join(json.dumps(r) + "\n" for r in records)
    kept = tmp_path / "checkpoints.jsonl"
    kept.write_text(json.dumps(signer.sign(3, links[2][1], START).document()) + "\n")
    checkpoints = read_checkpoints(kept)

    with pytest.raises(InvalidCheckpoint, match="public key"):
        verify_records(read_export(io.StringIO(text)), checkpoints)
    outcome, _ = verify_records(read_export(io.StringIO(text)), checkpoints, signer.public_key)
    assert outcome.intact
    cut, _ = verify_records(
        read_export(io.StringIO("".join(json.dumps(r) + "\n" for r in records[:2]))),
        checkpoints,
        signer.public_key,
    )
    assert cut.broken is not None
    assert cut.broken.reason is Break.CHECKPOINT_MISSING


@pytest.mark.parametrize("text", ["{not json\n", "a,b,c\r\n1,2,3\r\n"])
def test_files_that_are_not_exports_are_refused(text: str) -> None:
    with pytest.raises(UnreadableExport):
        list(read_export(io.StringIO(text)))


FROZEN_FIRST_HASH = "d3337175e8150e9247dde361e5a32ce3ad50514323b0929348ccf15b93f80180"


@pytest.mark.parametrize(
    "line",
    [
        '{"seq": 1}',
        '"a record"',
        "[1, 2]",
    ],
)
def test_records_without_their_fields_are_refused(line: str) -> None:
    records = export_lines(chain(1))
    text = json.dumps(records[0]) + "\n" + line + "\n"
    with pytest.raises(UnreadableExport):
        verify_records(read_export(io.StringIO(text)))


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", "1"), ("seq", True), ("recorded_at", 5), ("hash", None), ("recorded_at", "not a time")],
)
def test_records_with_malformed_chain_fields_are_refused(field: str, value: Any) -> None:
    record = export_lines(chain(1))[0]
    record[field] = value
    if field == "recorded_at" and isinstance(value, str):
        record["hash"] = record_hash({name: record[name] for name in RECORD_FIELDS})  # gets past the hash
    with pytest.raises(UnreadableExport):
        verify_records(read_export(io.StringIO(json.dumps(record) + "\n")))


def test_only_checkpoints_inside_an_export_are_counted(signer: CheckpointSigner) -> None:
    links = chain(5)
    records = export_lines(links)[2:]
    before = signer.sign(2, links[1][1], START)
    inside = signer.sign(4, links[3][1], START)
    text = "".join(json.dumps(r) + "\n" for r in records)

    outcome, _ = verify_records(read_export(io.StringIO(text)), [before, inside], signer.public_key)

    assert outcome.intact
    assert outcome.checkpoints == 1


def test_an_export_line_that_repeats_a_field_is_refused() -> None:
    record = export_lines(chain(1))[0]
    line = json.dumps(record)[:-1] + ', "risk_group": "high"}'  # the same key again: which one counts?
    with pytest.raises(UnreadableExport, match="repeats a key"):
        verify_records(read_export(io.StringIO(line + "\n")))


# --- the record's hash, tried first through orjson -----------------------------------------------------


def check_one(record: dict[str, Any], digest: str, *, exact: bool = False) -> Any:
    verifier = ChainVerifier(ChainHead(record["seq"] - 1, record["prev_hash"], None))
    verifier.feed(record, digest, exact=exact)
    return verifier.finish()


@pytest.mark.parametrize(
    "value",
    [
        1e16,  # orjson writes 1e16, RFC 8785 10000000000000000
        5.0,  # orjson writes 5.0, RFC 8785 5
        -0.0,
        {"é": 1, "z": 2, "\U0001f600": 3, "\uffff": 4},  # non-ASCII keys: RFC 8785 orders by UTF-16 units
        2**53 - 1,
        "line\u2028break \x7f",
    ],
)
@pytest.mark.parametrize("exact", [False, True])
def test_a_record_orjson_writes_otherwise_than_rfc_8785_verifies_by_rfc_8785(value: Any, exact: bool) -> None:
    record = chain(1)[0][0]
    record["input"] = {"value": value}
    digest = hashlib.sha256(rfc8785.dumps(record)).hexdigest()
    assert check_one(record, digest, exact=exact).intact


@pytest.mark.parametrize(
    ("original", "altered"),
    [
        (False, 0),  # equal in Python, not in JSON
        (True, 1),
        (1, 1.5),
        (None, float("nan")),  # orjson writes NaN as null: it must not pass for the null hashed
        (None, float("inf")),
        ("1.5", 1.5),
        (1, 2**64),  # an integer orjson refuses: RFC 8785 decides (and refuses it)
    ],
)
def test_a_value_altered_to_one_orjson_writes_alike_is_still_found(original: Any, altered: Any) -> None:
    record = chain(1)[0][0]
    record["input"] = {"value": original}
    digest = record_hash(record)
    record["input"] = {"value": altered}
    try:
        outcome = check_one(record, digest)
    except (ValueError, TypeError, OverflowError):  # RFC 8785 refuses what JSON cannot hold: never intact
        return
    assert outcome.broken is not None
    assert outcome.broken.reason is Break.HASH


@pytest.mark.parametrize(
    ("original", "altered"),
    [
        (False, 0),
        (True, 1),
        (1, 1.5),
        ("1.5", 1.5),
        (None, 0.0),
        ("x", ["x"]),
        (2**53 - 1, 2.0**53),
        (1, 2**64),  # orjson.loads makes none, and orjson refuses to write it: RFC 8785 decides
    ],
)
def test_a_record_vouched_exact_is_found_altered_without_reading_its_bytes_back(
    original: Any, altered: Any
) -> None:
    """Values orjson reads JSON as (finite numbers only): with the read-back skipped, the hash of the bytes
    orjson writes still tells each from the value hashed."""
    record = chain(1)[0][0]
    record["input"] = {"value": original}
    digest = record_hash(record)
    assert check_one(record, digest, exact=True).intact
    record["input"] = {"value": altered}
    try:
        outcome = check_one(record, digest, exact=True)
    except (ValueError, TypeError, OverflowError):  # RFC 8785 refuses what JSON cannot hold: never intact
        return
    assert outcome.broken is not None
    assert outcome.broken.reason is Break.HASH


# --- ranges checked apart -----------------------------------------------------------------------------------


def in_ranges(
    links: list[tuple[dict[str, Any], str, str]], bounds: list[int], checkpoints: list[Checkpoint]
) -> Any:
    """Verify consecutive ranges apart (each after the stored record before it) and join them, as
    AuditService does with ranges checked at once; ``bounds`` are the seqs the ranges after the first
    start at. The last range takes every checkpoint beyond the others."""
    starts = [1, *bounds]
    parts = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - 1 if index + 1 < len(starts) else None
        part = [link for link in links if link[0]["seq"] >= start and (end is None or link[0]["seq"] <= end)]
        before = [link for link in links if link[0]["seq"] == start - 1]
        after = (
            ChainHead(start - 1, before[0][1], datetime.fromisoformat(before[0][0]["recorded_at"]))
            if before
            else ChainHead.empty()
        )
        kept = [c for c in checkpoints if c.seq >= start and (end is None or c.seq <= end)]
        verifier = ChainVerifier(after, kept)
        for record, digest, body in part:
            if not verifier.feed(record, digest, body):
                break
        parts.append(verifier.finish())
    return joined(parts)


def one_pass(links: list[tuple[dict[str, Any], str, str]], checkpoints: list[Checkpoint]) -> Any:
    verifier = ChainVerifier(checkpoints=checkpoints)
    for record, digest, body in links:
        if not verifier.feed(record, digest, body):
            break
    return verifier.finish()


def with_record(link: tuple[dict[str, Any], str, str], **changes: Any) -> tuple[dict[str, Any], str, str]:
    record, digest, body = link
    return {**record, **changes}, digest, body


@pytest.mark.parametrize("bounds", [[4], [3, 6], [2, 5, 8]])
@pytest.mark.parametrize(
    "change",
    [
        None,
        lambda links: links.__setitem__(1, with_record(links[1], eligibility_status="ineligible")),
        lambda links: links.__setitem__(4, with_record(links[4], eligibility_status="ineligible")),
        lambda links: links.__setitem__(7, (*links[7][:2], "altered")),
        lambda links: links.pop(5),
    ],
)
def test_ranges_checked_apart_and_joined_say_what_one_pass_says(bounds: list[int], change: Any) -> None:
    links = chain(9)
    if change is not None:
        change(links)
    checkpoints = [Checkpoint(3, links[2][1]), Checkpoint(12, "f" * 64)]

    assert in_ranges(links, bounds, checkpoints) == one_pass(links, checkpoints)
    assert in_ranges(links, bounds, checkpoints[:1]) == one_pass(links, checkpoints[:1])


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2),  # noqa: DTZ001 - naive bounds; the zone comes from timezones
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.timezones(),
    )
)
def test_canonical_time_is_the_rfc_3339_text_the_chain_has_always_written(instant: datetime) -> None:
    assert canonical_time(instant) == instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
