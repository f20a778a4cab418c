"""Shared test settings: where the real PostgreSQL server is, and a private home for the signing key."""

import os
import tempfile
from pathlib import Path

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Apps built in-process by the tests sign checkpoints with a key of their own, never one under ./var.
_STATE = Path(tempfile.mkdtemp(prefix="il6-tests-"))
os.environ["IL6_SIGNING_KEY_FILE"] = str(_STATE / "audit-signing-key.pem")
os.environ["IL6_CHECKPOINT_FILE"] = str(_STATE / "audit-checkpoints.jsonl")
