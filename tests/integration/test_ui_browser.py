"""The monitoring page in a real browser: headless Chromium (Debian's package) over real HTTP.

The service runs under uvicorn in a thread, on a fresh database of each backend; decisions are made through
the API; Chromium opens /ui sending the API key (Playwright's ``extra_http_headers``), and the test counts
what the plots drew, checks the lines, the site restriction and the subject ids, and that nothing was
refused (a Content-Security-Policy violation is a console error) and the page is not blank.
"""

import asyncio
import base64
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright
from pydantic import SecretStr

from app.api.ui_page import CONTENT_SECURITY_POLICY
from app.domain.access import ALL_SITES, Scope
from app.main import create_app
from app.settings import Environment, Settings
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import bearer, fresh_postgresql, fresh_sqlite
from tests.integration.test_monitoring import DECISIONS

CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT_S = 30.0
T = TypeVar("T")

SITE_A = DECISIONS
SITE_B: Sequence[tuple[dict[str, Any], str]] = [
    ({"value": 250, "comparator": None}, "ineligible"),
    ({"value": 0.5, "comparator": None}, "eligible"),
]
IL6_BARS_A = 5
"""Site A's serum values (DECISIONS) fall in five distinct (bin, series) cells of quarter-decade bins:
exact 0.8, 5 and 40, censored <1.5 and <20 (its plasma result, 3 pg/mL, is not drawn against serum lines)."""
IL6_BARS_ALL = 7
"""Site B adds exact 250 and 0.5, each in a bin of its own."""

COUNT_PIXELS = """async (png) => {
    const image = new Image();
    image.src = "data:image/png;base64," + png;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const data = context.getImageData(0, 0, image.width, image.height).data;
    let sum = 0, squares = 0, colours = new Set();
    for (let i = 0; i < data.length; i += 4) {
        const grey = (data[i] + data[i + 1] + data[i + 2]) / 3;
        sum += grey;
        squares += grey * grey;
        if (i % 64 === 0) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
    const n = data.length / 4, mean = sum / n;
    const variance = squares / n - mean * mean;
    return {width: image.width, height: image.height, variance: variance, colours: colours.size};
}"""
"""Decodes a screenshot in the browser (no image library needed) and measures it."""


@dataclass(frozen=True)
class Server:
    url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's event loop (where the app's engine lives) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=START_TIMEOUT_S)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is required by the browser tests and is missing at {CHROMIUM} "
            "(Debian: apt-get install chromium; .ci/run installs it)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The service with its monitoring page, on a fresh database, under uvicorn in a thread."""
    if request.param == "sqlite":
        yield from _serve(fresh_sqlite(tmp_path), tmp_path)
        return
    with fresh_postgresql() as url:
        yield from _serve(url, tmp_path)


def _serve(database_url: str, tmp_path: Path) -> Iterator[Server]:
    settings = Settings(
        database_url=SecretStr(database_url),
        environment=Environment.TEST,
        signing_key_file=tmp_path / "audit-signing-key.pem",
        checkpoint_file=tmp_path / "audit-checkpoints.jsonl",
    )
    app = create_app(settings)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, access_log=False, ws="none", lifespan="on")
    uvicorn_server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(uvicorn_server.serve(sockets=[listener]),), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not uvicorn_server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{listener.getsockname()[1]}", app, loop)
    finally:
        uvicorn_server.should_exit = True
        thread.join(START_TIMEOUT_S)
        loop.close()
        listener.close()


def _decide(http: httpx.Client, site: str, cases: Sequence[tuple[dict[str, Any], str]]) -> list[str]:
    subjects = []
    for fields, outcome in cases:
        subjects.append(subject_id("UI"))
        answer = http.post(
            "/v1/assessments", json=assessment_body(subject=subjects[-1], site_id=site, **fields)
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["eligibility"]["status"] == outcome
    return subjects


def _open(browser: Browser, url: str, secret: str, screenshot: Path) -> tuple[Page, list[str]]:
    """The page as Chromium shows it to a caller with this key; and what went wrong while loading it."""
    context = browser.new_context(extra_http_headers=bearer(secret), viewport={"width": 1100, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    response = page.goto(url + "/ui")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page.screenshot(path=screenshot, full_page=True)
    return page, problems


def _counts(page: Page, selector: str) -> dict[str, int]:
    """The counts drawn by the bars under ``selector``, summed by series."""
    bars: list[list[str]] = page.eval_on_selector_all(
        selector, "bars => bars.map(b => [b.dataset.series, b.dataset.count])"
    )
    totals: dict[str, int] = {}
    for series, count in bars:
        totals[series] = totals.get(series, 0) + int(count)
    return totals


def _not_blank(browser: Browser, screenshot: Path) -> None:
    page = browser.new_page()
    try:
        measured = page.evaluate(COUNT_PIXELS, base64.b64encode(screenshot.read_bytes()).decode())
    finally:
        page.close()
    assert measured["width"] == 1100
    assert measured["height"] > 1500  # every section drew
    assert measured["variance"] > 100, measured  # not one flat colour
    assert measured["colours"] > 8, measured  # the plots' colours, not just text on white


def test_the_page_draws_real_decisions_in_chromium(browser: Browser, server: Server, tmp_path: Path) -> None:
    keys = server.app.state.services.keys
    admin = server.run(
        keys.create(f"tests-{uuid.uuid4().hex[:12]}", frozenset(Scope), ALL_SITES, created_by="tests")
    ).secret
    site_a, site_b = f"UI-A-{uuid.uuid4().hex[:8]}", f"UI-B-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, headers=bearer(admin), timeout=30) as http:
        subjects_a = _decide(http, site_a, SITE_A)
        subjects_b = _decide(http, site_b, SITE_B)
        created = http.post(
            "/v1/keys", json={"name": f"tests-{uuid.uuid4().hex[:12]}", "scopes": ["read"], "sites": [site_a]}
        )
        assert created.status_code == 201, created.text
        reader = created.json()["secret"]

    page, problems = _open(browser, server.url, reader, tmp_path / "site-a.png")

    assert problems == []
    assert _counts(page, "#plot-outcomes rect.bar") == {"eligible": 2, "ineligible": 2, "indeterminate": 2}
    assert _counts(page, "#plot-sites rect.bar") == {site_a: 6}
    assert page.locator("#plot-il6 rect.bar").count() == IL6_BARS_A
    assert _counts(page, "#plot-il6 rect.bar") == {"exact value": 3, "censored (at its reported limit)": 2}
    assert page.locator('#plot-il6 line.cutoff[data-pg-per-ml="17.85"]').count() == 1
    assert page.locator('#plot-il6 line.lod[data-pg-per-ml="1.5"]').count() == 1
    assert _counts(page, "#plot-reasons rect.bar") == {"SPECIMEN_NOT_SERUM": 1, "IL6_CENSORED_ABOVE_LOD": 1}
    assert _counts(page, "#plot-share rect.bar") == {"eligible": 2, "ineligible": 2, "indeterminate": 2}
    assert page.locator("#plot-classifier rect.bar").count() == 1
    assert page.locator("#recent code.subject").all_inner_texts() == subjects_a[::-1]
    assert not any(subject in page.content() for subject in subjects_b)
    assert "shown only to callers with access to every site" in page.locator("#chain").inner_text()
    # The page's own style applied (the Content-Security-Policy let its hashed <style> through).
    fill = page.eval_on_selector("#plot-outcomes rect.eligible", "bar => getComputedStyle(bar).fill")
    assert fill == "rgb(34, 136, 51)"
    for svg in page.locator("svg").all():
        box = svg.bounding_box()
        assert box is not None
        assert box["width"] > 300
        assert box["height"] > 40
    _not_blank(browser, tmp_path / "site-a.png")
    page.context.close()

    page, problems = _open(browser, server.url, admin, tmp_path / "every-site.png")

    assert problems == []
    assert _counts(page, "#plot-sites rect.bar") == {site_a: 6, site_b: 2}
    assert page.locator("#plot-il6 rect.bar").count() == IL6_BARS_ALL
    assert set(page.locator("#recent code.subject").all_inner_texts()) == set(subjects_a + subjects_b)
    assert "record 8" in page.locator("#chain").inner_text()
    _not_blank(browser, tmp_path / "every-site.png")
    page.context.close()
