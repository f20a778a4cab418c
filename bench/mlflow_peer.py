"""A peer for bench/audit_appends.py ``--peer-mlflow PYTHON``: the same fitted model served by MLflow's
scoring server (``mlflow models serve``), which records nothing.

MLflow is not a dependency of the service: give the benchmark a Python that has it (and scikit-learn at
the service's version, skops and rfc8785, which loading the service's model imports), e.g.
``python3.11 -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install mlflow scikit-learn==<the service's> skops
rfc8785``. The model is the very artifact the service serves, loaded
with the service's own loader (``app.ml.artifact``, so the project directory is on that Python's path) and
saved in MLflow's scikit-learn format; MLflow then serves it with uvicorn, ``--env-manager local``, the
same number of workers, and answers ``POST /invocations`` with ``{"inputs": [[value]]}`` by calling the
model's ``predict``.
"""

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PATH = "/invocations"
BODY = '{"inputs": [[12.5]]}'
"""One result, the value the service's requests carry (pg/mL), as MLflow's tensor input."""
READY_PATH = "/ping"

SAVE = """
import pathlib, sys
import mlflow.sklearn
from app.ml.artifact import artifact_types, loads
data = pathlib.Path(sys.argv[1]).read_bytes()
mlflow.sklearn.save_model(loads(data), sys.argv[2], skops_trusted_types=list(artifact_types(data)))
"""
"""MLflow saves scikit-learn models with skops too: it is told the types the service's own loader allowed."""


def environment(python: str) -> dict[str, str]:
    """That Python's bin first on PATH (MLflow starts its own uvicorn from there), the project importable,
    no tracking server."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("IL6_")}
    bin_dir = str(Path(python).parent)
    return {
        **inherited,
        "PATH": f"{bin_dir}{os.pathsep}{inherited.get('PATH', '')}",
        "PYTHONPATH": str(PROJECT),
        "MLFLOW_TRACKING_URI": "",
        "PYTHONUNBUFFERED": "1",
    }


def save_model(python: str, artifact: Path, destination: Path) -> None:
    """The service's artifact, saved in MLflow's scikit-learn model format at ``destination``."""
    completed = subprocess.run(  # noqa: S603 - the operator's Python, no shell
        [python, "-c", SAVE, str(artifact), str(destination)],
        env=environment(python),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"saving the model for MLflow failed:\n{completed.stderr[-2000:]}")


def serve_command(python: str, model: Path, workers: int) -> Callable[[int], list[str]]:
    """``mlflow models serve`` on loopback at a given port, as bench/audit_appends.py's servers run."""

    def command(port: int) -> list[str]:
        return [
            python, "-m", "mlflow", "models", "serve", "-m", str(model), "--env-manager", "local",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        ]  # fmt: skip

    return command
