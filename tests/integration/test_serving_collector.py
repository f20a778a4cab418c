"""While the app serves, the garbage collector is set for serving (app/collector.py); after, as it was."""

import gc

from pydantic import SecretStr

from app.collector import SERVING_THRESHOLD
from app.settings import Environment, Settings
from tests.integration.conftest import app_client


async def test_the_collector_is_set_for_serving_while_the_app_serves_and_restored_after(
    sqlite_url: str,
) -> None:
    before = gc.get_threshold()
    assert before[0] != SERVING_THRESHOLD

    settings = Settings(database_url=SecretStr(sqlite_url), environment=Environment.TEST)
    async for client in app_client(settings):
        assert (await client.get("/healthz")).status_code == 200
        assert gc.get_threshold() == (SERVING_THRESHOLD, *before[1:])

    assert gc.get_threshold() == before
