"""The monitoring page as rendered from an overview: its plots, lines, escaping and policy; and the pure
parts of the monitoring service (binning, per-day series, the cutoff and limits it draws, checkpoints)."""

import base64
import hashlib
import json
import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.api.svg_plots import LEFT, RIGHT, W
from app.api.ui_page import CONTENT_SECURITY_POLICY, STYLE, render_monitoring_page
from app.domain.access import ALL_SITES, SiteAccess
from app.domain.audit import ChainHead
from app.domain.classifiers.base import VersionStatus
from app.domain.classifiers.lifecycle import Event, Lifecycle, LifecycleEvent
from app.domain.classifiers.manifest import manifest_digest, parse_manifest
from app.domain.classifiers.registry import ClassifierRegistry, RegisteredVersion
from app.domain.classifiers.rules import CUTOFF, RuleSetClassifier
from app.service.audit import AuditService
from app.service.checkpoints import CheckpointSigner
from app.service.classifiers import ClassifierCatalog
from app.service.monitoring import (
    CENSORED,
    CHECKPOINT_TAIL_BYTES,
    EXACT,
    MAX_SITE_SERIES,
    OTHER_SITES,
    ChainStatus,
    ClassifierStatus,
    Daily,
    Indeterminate,
    Line,
    MonitoringService,
    Overview,
    Series,
    by_site,
    daily,
    il6_histogram,
    last_checkpoint,
)
from app.store.monitoring_repository import DecisionCount, RecentDecision
from app.store.unit_of_work import UnitOfWork
from tests.unit.factories import bundled_manifest, parameter

SVG = "{http://www.w3.org/2000/svg}"
SCRIPT = "<script>alert(1)</script>"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAYS = tuple(date(2026, 11, 26) + timedelta(days=i) for i in range(7))
LINES = (Line("cutoff", "risk cutoff 17.85 pg/mL", Decimal("17.85")), Line("lod", "LOD", Decimal("1.5")))


def no_store() -> UnitOfWork:
    raise AssertionError("the store is not read here")


def count(day: date, status: str, site: str | None, n: int) -> DecisionCount:
    return DecisionCount(day.isoformat(), status, site, "il6-enrichment", "1.0.0", n)


def overview(*, sites: SiteAccess = ALL_SITES, by_site_series: tuple[Series, ...] | None = None) -> Overview:
    zeros = (0,) * len(DAYS)
    outcomes = Daily(
        DAYS,
        (
            Series("eligible", (1, 0, 0, 0, 0, 2, 3)),
            Series("ineligible", (0, 0, 0, 0, 0, 1, 1)),
            Series("indeterminate", (*zeros[:-1], 2)),
        ),
    )
    events = (
        Event(
            "il6-enrichment",
            "1.0.0",
            LifecycleEvent.REGISTERED,
            NOW - timedelta(days=40),
            "service:bundled",
            "x",
        ),
        Event(
            "il6-enrichment",
            "1.0.0",
            LifecycleEvent.ACTIVATED,
            NOW - timedelta(days=40),
            "service:bundled",
            "x",
        ),
        Event("il6-enrichment", "1.0.0", LifecycleEvent.RETIRED, NOW - timedelta(days=2), "cli:ops", SCRIPT),
        Event(
            "il6-enrichment", "1.1.0", LifecycleEvent.ACTIVATED, NOW - timedelta(days=2), "cli:ops", SCRIPT
        ),
    )
    recent = tuple(
        RecentDecision(10 - i, NOW, f"PIT-{i:04d}", "PIT", "eligible", "low", "il6-enrichment", "1.1.0")
        for i in range(3)
    )
    chain = ChainStatus(NOW, ChainHead(10, "ab" * 32, NOW), Path("checkpoints.jsonl"), None)
    return Overview(
        generated_at=NOW,
        since=datetime.combine(DAYS[0], datetime.min.time(), UTC),
        days=len(DAYS),
        sites=sites,
        by_outcome=outcomes,
        by_site=Daily(DAYS, by_site_series or (Series("PIT", (1, 0, 0, 0, 0, 3, 6)),)),
        il6=il6_histogram(
            [(Decimal("0.8"), False), (Decimal("1.5"), True), (Decimal("40"), False), (Decimal("41"), False)],
            (line.pg_per_ml for line in LINES),
        ),
        lines=LINES,
        indeterminate=Indeterminate(10, 2, (("SPECIMEN_NOT_SERUM", 2), ("IL6_CENSORED_ABOVE_LOD", 1)), 2),
        recent=recent,
        classifier=ClassifierStatus(
            "il6-enrichment",
            "1.1.0",
            "sha256:" + "cd" * 32,
            Lifecycle("il6-enrichment", events),
            (("x", 10),),
        ),
        chain=chain if sites.every_site else None,
    )


def svg(page: str, plot_id: str) -> ET.Element:
    """A plot of the page, parsed as the XML it must be."""
    match = re.search(rf'<svg id="{plot_id}".*?</svg>', page, re.DOTALL)
    assert match is not None, plot_id
    return ET.fromstring(match.group(0))  # noqa: S314 - markup this test rendered itself


def bars(plot: ET.Element) -> list[ET.Element]:
    return [r for r in plot.iter(f"{SVG}rect") if "bar" in (r.get("class") or "").split()]


def test_the_policy_allows_the_pages_own_style_and_nothing_else() -> None:
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    page = render_monitoring_page(overview(), "reader")

    assert f"<style>{STYLE}</style>" in page
    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none';")
    assert "script-src" not in CONTENT_SECURITY_POLICY
    assert "<script" not in page
    assert " style=" not in page  # inline style attributes would need 'unsafe-inline'


def test_each_plot_draws_a_bar_per_non_zero_count() -> None:
    page = render_monitoring_page(overview(), "reader")

    outcomes = bars(svg(page, "plot-outcomes"))
    assert len(outcomes) == 6  # (day, outcome) cells with decisions
    assert sum(int(b.get("data-count") or 0) for b in outcomes) == 10
    assert {
        (b.get("data-day"), b.get("data-series")) for b in outcomes if b.get("data-day") == "2026-12-02"
    } == {
        ("2026-12-02", "eligible"),
        ("2026-12-02", "ineligible"),
        ("2026-12-02", "indeterminate"),
    }
    assert len(bars(svg(page, "plot-sites"))) == 3
    assert [b.get("data-count") for b in bars(svg(page, "plot-il6"))] == ["1", "1", "2"]
    assert [b.get("data-series") for b in bars(svg(page, "plot-reasons"))] == [
        "SPECIMEN_NOT_SERUM",
        "IL6_CENSORED_ABOVE_LOD",
    ]
    assert [b.get("data-count") for b in bars(svg(page, "plot-share"))] == ["6", "2", "2"]
    assert [b.get("data-version") for b in bars(svg(page, "plot-classifier"))] == ["1.0.0", "1.1.0"]


def test_the_cutoff_and_limit_of_detection_sit_where_their_values_are_on_the_log_axis() -> None:
    page = render_monitoring_page(overview(), "reader")
    plot = svg(page, "plot-il6")
    lines = {line.get("class"): line for line in plot.iter(f"{SVG}line") if line.get("data-pg-per-ml")}
    lo, hi = -1, 2  # 0.8 to 41 pg/mL, and the lines: 0.1 to 100 pg/mL

    for kind, value in (("cutoff", 17.85), ("lod", 1.5)):
        x = float(lines[kind].get("x1") or "nan")
        expected = LEFT + (math.log10(value) - lo) / (hi - lo) * (W - LEFT - RIGHT)
        assert x == pytest.approx(expected, abs=0.01)
        assert lines[kind].get("data-pg-per-ml") == str(value)
    assert "cutoff 17.85" in page
    assert "LOD 1.5" in page


def test_every_string_is_escaped() -> None:
    page = render_monitoring_page(overview(), SCRIPT)

    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_chain_is_shown_to_a_caller_of_every_site_only() -> None:
    every = render_monitoring_page(overview(), "reader")
    restricted = render_monitoring_page(overview(sites=SiteAccess(frozenset({"PIT"}))), "reader")

    assert "record 10, recorded 2026-12-02 12:00:00 UTC" in every
    assert "none by this server process since it started" in every
    assert "none in the checkpoint log yet" in every
    assert "ab" * 32 not in restricted
    assert "shown only to callers with access to every site" in restricted
    assert "of sites PIT" in restricted


def test_subjects_are_listed_by_pseudonymous_id_without_values() -> None:
    page = render_monitoring_page(overview(), "reader")
    table = page.split('id="recent"')[1]

    assert re.findall(r'<code class="subject">([^<]*)</code>', table) == ["PIT-0000", "PIT-0001", "PIT-0002"]
    assert "pg/mL" not in table


def test_sites_past_the_busiest_are_drawn_together_in_grey() -> None:
    counts = [count(DAYS[-1], "eligible", f"S{i:02d}", 20 - i) for i in range(MAX_SITE_SERIES + 3)]
    counts.append(count(DAYS[-1], "eligible", None, 1))
    series = by_site(counts, DAYS)
    page = render_monitoring_page(overview(by_site_series=series), "reader")

    assert [s.label for s in series][:2] == ["S00", "S01"]
    assert series[-1].label == f"{OTHER_SITES} (4)"
    assert series[-1].total == 1 + sum(20 - i for i in range(MAX_SITE_SERIES, MAX_SITE_SERIES + 3))
    assert {
        b.get("class") for b in bars(svg(page, "plot-sites")) if b.get("data-series") == series[-1].label
    } == {f"bar site-{MAX_SITE_SERIES}"}


def test_an_empty_window_still_draws_its_axes() -> None:
    empty = Daily(DAYS, (Series("eligible", (0,) * 7),))
    quiet = overview(by_site_series=empty.series)
    page = render_monitoring_page(quiet, "reader")

    assert bars(svg(page, "plot-sites")) == []
    assert "No decisions in this window." in page


def test_daily_counts_fall_on_their_day_and_other_days_are_left_out() -> None:
    counts = [
        count(DAYS[0], "eligible", "A", 2),
        count(DAYS[0], "eligible", "B", 1),
        count(DAYS[-1], "indeterminate", "A", 4),
        count(DAYS[0] - timedelta(days=1), "eligible", "A", 9),
    ]

    assert daily(counts, DAYS, lambda c: c.eligibility_status) == {
        "eligible": [3, 0, 0, 0, 0, 0, 0],
        "indeterminate": [0, 0, 0, 0, 0, 0, 4],
    }


def test_results_are_binned_a_quarter_decade_wide_on_an_axis_that_holds_the_lines() -> None:
    results = [
        (Decimal("10"), False),  # a power of ten opens its bin
        (Decimal("9.99"), False),
        (Decimal("1.5"), True),
        (Decimal("0"), False),
    ]
    histogram = il6_histogram(results, [Decimal("17.85"), Decimal("1.5")])

    assert (histogram.lo, histogram.hi, histogram.bins_per_decade) == (0, 2, 4)
    assert histogram.edges[0] == 0
    assert histogram.edges[-1] == 2
    exact, censored = histogram.series
    assert (exact.label, censored.label) == (EXACT, CENSORED)
    assert exact.counts == (0, 0, 0, 1, 1, 0, 0, 0)
    assert censored.counts == (1, 0, 0, 0, 0, 0, 0, 0)
    assert histogram.zero == 1
    assert histogram.sampled == 4


def test_values_far_outside_are_kept_in_the_end_bins() -> None:
    histogram = il6_histogram([(Decimal("1E-9"), False), (Decimal("1E+12"), False)], [])

    assert (histogram.lo, histogram.hi) == (-3, 10)
    assert histogram.series[0].counts[0] == 1
    assert histogram.series[0].counts[-1] == 1


def test_the_lines_come_from_the_active_versions_parameters_and_assays() -> None:
    manifest = bundled_manifest()
    manifest["version"] = "1.1.0"
    parameter(manifest, CUTOFF)["value"] = "23.4567"
    manifest["assays"].append(
        manifest["assays"][0] | {"id": "other-il6", "name": "Other", "lod_pg_per_ml": "2.63"}
    )
    entry = RegisteredVersion(
        RuleSetClassifier(parse_manifest(manifest)), VersionStatus.ACTIVE, manifest_digest(manifest)
    )
    catalog = ClassifierCatalog(ClassifierRegistry("il6-enrichment", (entry,)), no_store, {})
    signer = CheckpointSigner(Ed25519PrivateKey.generate())

    lines = MonitoringService(no_store, catalog, AuditService(no_store, signer), None).lines()

    assert [(line.kind, line.pg_per_ml) for line in lines] == [
        ("cutoff", Decimal("23.4567")),
        ("lod", Decimal("1.5")),
        ("lod", Decimal("2.63")),
    ]


def test_the_last_checkpoint_is_the_last_line_this_key_signed(tmp_path: Path) -> None:
    signer, stranger = (CheckpointSigner(Ed25519PrivateKey.generate()) for _ in range(2))
    log = tmp_path / "checkpoints.jsonl"
    ours = [signer.sign(seq, f"{seq:064x}", NOW) for seq in range(1, 2000)]
    lines = [json.dumps(c.document()) for c in ours]
    lines += [json.dumps(stranger.sign(5000, "f" * 64, NOW).document()), "not json", '{"log": "other"}']
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert log.stat().st_size > CHECKPOINT_TAIL_BYTES  # read from its tail only
    assert last_checkpoint(log, signer.public_key) == ours[-1]
    assert last_checkpoint(log, stranger.public_key) is not None
    assert last_checkpoint(tmp_path / "absent.jsonl", signer.public_key) is None
