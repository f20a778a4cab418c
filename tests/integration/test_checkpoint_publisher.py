"""Signed checkpoints are written out as the chain grows, and production never signs with a made-up key."""

import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from app.main import create_app
from app.service.audit import AuditService, ChainBroken, CheckpointPublisher
from app.service.checkpoints import (
    CheckpointSigner,
    SignedCheckpoint,
    SigningKeyMissing,
    last_signed,
    load_signing_key,
)
from app.settings import Environment, Settings
from app.store.database import create_engine_for, create_session_factory
from app.store.unit_of_work import UnitOfWork
from tests.factories import assessment_body
from tests.integration.conftest import behind_the_service
from tests.integration.test_audit_chain import rehash, set_values, tampering


async def test_a_checkpoint_is_written_each_time_the_chain_has_grown(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(database_url=SecretStr(database_url), environment=Environment.TEST)
    engine = create_engine_for(settings)
    signer = CheckpointSigner(load_signing_key(tmp_path / "key.pem", create=True))
    audit = AuditService(partial(UnitOfWork, create_session_factory(engine)), signer)
    log = tmp_path / "checkpoints" / "log.jsonl"
    publisher = CheckpointPublisher(audit, log, interval_s=300)
    try:
        with caplog.at_level("INFO", logger="app.service.audit"):
            first = await publisher.publish()
            unchanged = await publisher.publish()
            created = await client.post("/v1/assessments", json=assessment_body())
            second = await publisher.publish()
    finally:
        await engine.dispose()

    assert created.status_code == 201
    assert first is not None
    assert unchanged is None
    assert second is not None
    assert (second.seq, second.hash) == (created.json()["audit"]["seq"], created.json()["audit"]["hash"])
    lines = [SignedCheckpoint.from_document(json.loads(line)) for line in log.read_text().splitlines()]
    assert lines == [first, second]
    for checkpoint in lines:
        checkpoint.verify(signer.public_key)
    assert sum("audit checkpoint" in record.getMessage() for record in caplog.records) == 2


def test_production_refuses_to_start_without_a_signing_key(tmp_path: Path) -> None:
    settings = Settings(
        database_url=SecretStr("postgresql+psycopg://il6:s3cr3t-Xq9@127.0.0.1:5432/il6"),
        environment=Environment.PRODUCTION,
        signing_key_file=tmp_path / "absent.pem",
    )

    with pytest.raises(SigningKeyMissing, match="il6 audit keygen"):
        create_app(settings)
    assert not (tmp_path / "absent.pem").exists()


async def test_no_checkpoint_is_signed_for_a_chain_that_does_not_extend_the_last_one(
    client: httpx.AsyncClient, database_url: str, db: Engine, tmp_path: Path
) -> None:
    settings = Settings(database_url=SecretStr(database_url), environment=Environment.TEST)
    engine = create_engine_for(settings)
    signer = CheckpointSigner(load_signing_key(tmp_path / "key.pem", create=True))
    audit = AuditService(partial(UnitOfWork, create_session_factory(engine)), signer)
    try:
        assert (await client.post("/v1/assessments", json=assessment_body())).status_code == 201
        kept = await audit.checkpoint()
        # The owner rewrites the head and recomputes its hash: the chain alone still verifies.
        with tampering(db, kept.seq):
            with behind_the_service(db) as connection:
                set_values(connection, kept.seq, risk_group="high", eligibility_status="ineligible")
                rehash(connection, kept.seq)
            assert (await audit.verify()).intact
            with pytest.raises(ChainBroken, match=f"seq {kept.seq}"):
                await audit.checkpoint()
        again = await audit.checkpoint()  # restored: the chain extends the last checkpoint again
    finally:
        await engine.dispose()

    assert again.seq >= kept.seq


def test_the_last_checkpoint_a_key_signed_is_read_back_from_the_log(tmp_path: Path) -> None:
    ours = CheckpointSigner(load_signing_key(tmp_path / "ours.pem", create=True))
    theirs = CheckpointSigner(load_signing_key(tmp_path / "theirs.pem", create=True))
    log = tmp_path / "log.jsonl"
    first = ours.sign(3, "a" * 64, datetime.now(UTC))
    lines = [first.document(), theirs.sign(4, "b" * 64, datetime.now(UTC)).document()]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines) + "not json\n")

    assert last_signed(log, ours) == first
    assert last_signed(tmp_path / "absent.jsonl", ours) is None
    assert last_signed(None, ours) is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_production_refuses_a_login_that_could_alter_the_audit_trail(
    database_url: str, tmp_path: Path
) -> None:
    # The tests' URL names a superuser: it could RESET ROLE and drop the triggers, so production says no.
    settings = Settings(
        database_url=SecretStr(database_url),
        environment=Environment.PRODUCTION,
        signing_key_file=tmp_path / "key.pem",
    )
    load_signing_key(settings.signing_key_file, create=True)
    app = create_app(settings)

    with pytest.raises(RuntimeError, match="is a superuser"):
        async with app.router.lifespan_context(app):
            pass
