"""Signed checkpoints are written out as the chain grows, and production never signs with a made-up key."""

import json
from functools import partial
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.main import create_app
from app.service.audit import AuditService, CheckpointPublisher
from app.service.checkpoints import CheckpointSigner, SignedCheckpoint, SigningKeyMissing, load_signing_key
from app.settings import Environment, Settings
from app.store.database import create_engine_for, create_session_factory
from app.store.unit_of_work import UnitOfWork
from tests.factories import assessment_body


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
