"""A fitted scikit-learn version from end to end, as a trial team would run it: train from a CSV with the
installed ``il6`` command, register and activate it there, then decide, replay, read its history and card
and analyse its impact through the API, on a database of its own.

The cohort is SYNTHETIC (tests/ml_factories.py): the model fitted on it is never a clinical model.
"""

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from app.ml.artifact import loads
from tests.factories import assessment_body
from tests.integration.conftest import app_client
from tests.integration.test_classifier_lifecycle import settings_for
from tests.integration.test_keys_cli import CLI_CALLER, Cli
from tests.ml_factories import synthetic_cohort

NAME = "il6-model"
REF = f"{NAME}@1.0.0"


async def test_train_register_activate_decide_replay(own_database: str, tmp_path: Path) -> None:
    il6 = Cli(own_database, tmp_path)
    data = tmp_path / "cohort.csv"
    data.write_bytes(synthetic_cohort(40, seed=3))

    trained = await il6(
        "classifiers", "train", "--data", str(data), "--name", NAME, "--version", "1.0.0",
        "--out", str(tmp_path / "versions"), "--repeats", "2",
    )  # fmt: skip
    version_dir = tmp_path / "versions" / NAME / "1.0.0"
    (digest,) = [line.split()[1] for line in trained.stdout.splitlines() if line.startswith("digest ")]
    tampered = tmp_path / "tampered"
    shutil.copytree(version_dir, tampered)
    manifest = json.loads((tampered / "manifest.json").read_text(encoding="utf-8"))
    manifest["training"]["n"] += 1
    (tampered / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    refused = await il6("classifiers", "register", str(tampered), "--digest", digest, "--reason", "x")
    registered = await il6(
        "classifiers", "register", str(version_dir), "--digest", digest, "--reason", "fitted on cohort A"
    )
    early = await il6("classifiers", "activate", "il6-model@9.9.9", "--reason", "no such version")
    activated = await il6("classifiers", "activate", REF, "--reason", "protocol amendment 4")
    history = await il6("classifiers", "history", NAME)

    assert trained.code == 0, trained.stderr
    assert "AUC" in trained.stdout
    assert refused.code == 1
    assert "digest mismatch" in refused.stderr
    assert registered.code == 0, registered.stderr
    assert f"registered {REF} as a draft" in registered.stdout
    assert early.code == 1
    assert "not registered" in early.stderr
    assert "Traceback" not in early.stderr
    assert activated.code == 0, activated.stderr
    assert [line.split()[2] for line in history.stdout.splitlines()] == ["registered", "activated"]
    assert CLI_CALLER in history.stdout

    model = loads((version_dir / "model.skops").read_bytes())
    values = [Decimal(v) for v in ("1.6", "2.5", "4", "7.5", "12", "20", "35", "60", "150", "900", "4000")]
    async for client in app_client(settings_for(own_database)):
        listed = {i["name"]: i for i in (await client.get("/v1/classifiers")).json()["items"]}
        decisions = []
        for value in values:
            body = assessment_body(value=float(value), comparator=None, classifier=NAME)
            decided = await client.post("/v1/assessments", json=body)
            assert decided.status_code == 201, decided.text
            assert decided.headers["Classifier-Version"] == REF
            decisions.append(decided.json())
        censored = await client.post("/v1/assessments", json=assessment_body(classifier=NAME))
        replays = [await client.post(f"/v1/assessments/{d['id']}/replay") for d in decisions]
        api_history = (await client.get(f"/v1/classifiers/{NAME}/history")).json()
        card = await client.get(f"/v1/classifiers/{NAME}/1.0.0/card")
        page = await client.get(f"/v1/classifiers/{NAME}/1.0.0/card", params={"format": "html"})
        impact = await client.post(f"/v1/classifiers/{NAME}/1.0.0/impact", json={})

    assert listed[NAME]["kind"] == "sklearn-logistic-il6"
    assert listed[NAME]["status"] == "active"
    expected = model.predict(np.array([[float(v)] for v in values]))
    assert [d["risk"]["group"] for d in decisions] == [
        "high" if label == "progressive" else "low" for label in expected
    ]  # the compiled cutoff decides exactly as scikit-learn's own predict
    assert censored.json()["risk"]["group"] == "low"  # "<1.5": every value it allows is below the cutoff
    assert all(r.status_code == 200 and r.json()["matches"] for r in replays)
    assert [(e["event"], e["by"], e["reason"]) for e in api_history["events"]] == [
        ("registered", CLI_CALLER, "fitted on cohort A"),
        ("activated", CLI_CALLER, "protocol amendment 4"),
    ]
    assert card.status_code == 200, card.text
    training: dict[str, Any] = card.json()["training"]
    assert training["n"] == 40
    assert page.status_code == 200
    assert "<svg" in page.text
    # Replayed under the version that made them, the decisions cannot change.
    assert impact.json()["decisions"] == len(values) + 1
    assert impact.json()["eligibility"]["changed"] == impact.json()["risk_group"]["changed"] == 0
    assert impact.json()["subjects_changed"] == 0
