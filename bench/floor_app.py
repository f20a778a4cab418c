"""The floor for bench/audit_appends.py: a bare FastAPI endpoint that only validates the service's request.

``POST /v1/assessments`` takes the body ``POST /v1/assessments`` of the service validates
(``app.api.schemas.assessments.AssessmentIn``, imported, not copied, so the two cannot drift apart), as an
ordinary FastAPI body parameter, and answers 201 with a small JSON object. Nothing else: no database, no
authentication, no middleware, no rate limit, no FastAPI telemetry (off, as in the service), no audit
record, no decision. Whatever a service request costs beyond this is what the service adds to the cheapest
FastAPI endpoint that accepts the same request on the same server settings; the benchmark reports the
service's throughput as a share of this one's.

The request's other headers (Authorization, Idempotency-Key) are ignored, so the load generator can send
the service's requests unchanged. ``GET /readyz`` answers 200 so that the benchmark waits for this server
as it waits for the service; it is not measured. Importing the model imports the parts of ``app`` it is
defined beside (pydantic models, SQLAlchemy), once at start-up; nothing connects anywhere.

With ``BENCH_SKLEARN_ARTIFACT`` naming a fitted version's skops artifact (``--classifier model``), the
endpoint also calls the model's ``predict_proba`` on the submitted value, once per request: what serving
the scikit-learn model directly would cost, which the service avoids by compiling it to its cutoff.

Run by the benchmark (``uvicorn floor_app:app --app-dir bench``), not on its own.
"""

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from app.api.schemas.assessments import AssessmentIn
from app.ml.artifact import loads

app = FastAPI(
    title="IL6 bench floor",
    openapi_url=None,
    docs_url=None,
    redoc_url=None,
    # As the service runs FastAPI: without its own OpenTelemetry instrumentation, which otherwise looks
    # up the global providers on every request. The floor stays the cheapest endpoint FastAPI serves.
    telemetry={"tracing": False, "metrics": False, "logs": False},
)
_ARTIFACT = os.environ.get("BENCH_SKLEARN_ARTIFACT")
MODEL: Any = None if _ARTIFACT is None else loads(Path(_ARTIFACT).read_bytes())


@app.post("/v1/assessments", status_code=201)
async def create_assessment(body: AssessmentIn) -> dict[str, Any]:
    """Validate the submission and answer 201 with its subject id (nothing is decided or recorded); with a
    model, also its probability of progression for the value as given."""
    if MODEL is None:
        return {"subject_id": body.subject_id}
    probability = MODEL.predict_proba([[float(body.il6.value)]])[0][0]
    return {"subject_id": body.subject_id, "p": float(probability)}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    """Ready as soon as it answers: there is nothing to wait for."""
    return {"status": "ready"}
