"""What the service's start-up costs: scikit-learn and skops (seconds to import) only when a fitted version
is served."""

import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import fresh_sqlite

START_UP = """
import asyncio, sys
from pydantic import SecretStr
from app.main import create_app
from app.settings import Environment, Settings

async def main() -> None:
    app = create_app(Settings(database_url=SecretStr(sys.argv[1]), environment=Environment.TEST))
    async with app.router.lifespan_context(app):
        served = [entry.definition.ref for entry in app.state.services.catalog.current.listing()]
    print(",".join(served))
    print(",".join(sorted(name for name in ("sklearn", "skops", "scipy") if name in sys.modules)))

asyncio.run(main())
"""


def test_a_service_without_fitted_versions_starts_without_scikit_learn(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", START_UP, fresh_sqlite(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    served, imported = completed.stdout.splitlines()
    assert served  # the bundled rule sets were loaded and listed
    assert imported == ""
