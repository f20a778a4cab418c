"""Model cards: the JSON document and the HTML page, for the bundled rule set and a fitted-style manifest.

The fitted manifest follows the spec of model-backed versions (a training section, provenance) but keeps the
``rules`` kind, so the rule-set classifier loads it; its numbers are made up for the test, not clinical.
"""

import base64
import copy
import hashlib
import json
import math
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from app.api.cards import CONTENT_SECURITY_POLICY, card_document, render_card_html
from app.api.routers.cards import prefers_html
from app.api.schemas.cards import ClassifierCard
from app.domain.classifiers.base import VersionStatus
from app.domain.classifiers.manifest import manifest_digest, parse_manifest
from app.domain.classifiers.registry import RegisteredVersion, load_registry
from app.domain.classifiers.rules import CUTOFF, RuleSetClassifier
from tests.unit.factories import bundled_manifest, parameter

SCRIPT = "<script>alert(1)</script>"
FITTED_CUTOFF = "23.4567"
EDGES = [-0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
COUNTS = {"stable": [1, 2, 2, 1, 0, 0], "progressive": [0, 1, 1, 2, 2, 1]}


def fitted_manifest() -> dict[str, Any]:
    """The bundled manifest with a second assay, a compiled-looking cutoff and a training section."""
    manifest = bundled_manifest()
    manifest["version"] = "1.1.0"
    parameter(manifest, CUTOFF)["value"] = FITTED_CUTOFF
    prieto = copy.deepcopy(manifest["assays"][0]) | {"id": "elecsys-il6-prieto", "lod_pg_per_ml": "2.63"}
    manifest["assays"].append(prieto)
    manifest["training"] = {
        "data_sha256": "sha256:" + "ab" * 32,
        "n": 13,
        "outcome_counts": {"stable": 6, "progressive": 7},
        "censored_n": 4,
        "positive_label": "progressive",
        "censoring_rule": "a result reported as '<x' enters the fit at x, its upper bound",
        "cv": {"scheme": "repeated stratified k-fold", "folds": 3, "repeats": 20, "seed": 0},
        "threshold_selection": "TunedThresholdClassifierCV (balanced accuracy), inner CV",
        "metrics": {
            "auc": {"estimate": 0.81, "ci95": [0.52, 0.97], "method": "bootstrap percentile interval"},
            "sensitivity": {"estimate": 0.714, "ci95": [0.359, 0.918], "method": "Wilson score interval"},
        },
        "survival": {
            "test": "log-rank",
            "statistic": -1.76,
            "chi_square": 3.1,
            "p_value": 0.08,
            "groups": {"low": {"n": 6, "events": 2}, "high": {"n": 7, "events": 6}},
        },
        "il6_distribution": {
            "axis": "log10 pg/mL",
            "edges": EDGES,
            "counts": COUNTS,
            "note": "censored at x",
        },
        "survival_only_n": 2,  # keys beyond the spec are left off the card
        "warnings": ["13 subjects: every interval is wide."],
    }
    manifest["sources"] = [{"citation": "fitted by il6 classifiers train", "url": "javascript:alert(1)"}]
    manifest["software"] = {"python": "3.11.7", "scikit-learn": "1.9.1"}
    manifest["created_by"], manifest["created_at"] = "tests", "2026-12-02T05:00:00Z"
    manifest["artifact"] = {"file": "model.skops", "sha256": "sha256:" + "cd" * 32, "format": "skops"}
    return manifest


def entry_of(manifest: dict[str, Any]) -> RegisteredVersion:
    classifier = RuleSetClassifier(parse_manifest(manifest))
    return RegisteredVersion(
        classifier=classifier, status=VersionStatus.DRAFT, digest=manifest_digest(manifest)
    )


class Page(HTMLParser):
    """The elements of a page (tag, attributes) in order, and its text as a browser would show it."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())

    def having(self, tag: str, css_class: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements if t == tag and css_class in (a.get("class") or "").split()]


def x_of(attributes: dict[str, str | None]) -> float:
    return float(attributes["x1"] or "nan")


@pytest.fixture(scope="module")
def bundled() -> dict[str, Any]:
    registry = load_registry()
    return card_document(registry.resolve(None), default=True)


@pytest.fixture
def fitted() -> dict[str, Any]:
    return card_document(entry_of(fitted_manifest()), default=False)


def test_the_bundled_rules_card_states_its_intended_use_and_has_no_training(bundled: dict[str, Any]) -> None:
    page = Page(render_card_html(bundled))

    assert bundled["training"] is None
    assert bundled["unreadable"] == []
    assert "dasatinib + cetuximab" in bundled["intended_use"]
    assert bundled["restriction"]["statement"].startswith("For the dasatinib + cetuximab combination only")
    assert "cetuximab + bevacizumab" in page.text
    assert "PMID 28559019" in page.text
    assert bundled["intended_use"] in page.text
    assert "No training data" in page.text
    assert "No metrics" in page.text
    assert [t for t, _ in page.elements].count("title") >= 2  # the page's and the plot's


def test_a_card_without_training_draws_the_cutoff_and_lod_on_a_plain_axis(bundled: dict[str, Any]) -> None:
    page = Page(render_card_html(bundled))

    assert page.having("rect", "bar") == []
    assert len(page.having("line", "cutoff")) == 1
    assert len(page.having("line", "lod")) == 1
    assert "No training data in this version, so no histogram." in page.text


@pytest.mark.parametrize("which", ["bundled", "fitted"])
def test_the_json_card_is_json_and_matches_the_schema(which: str, request: pytest.FixtureRequest) -> None:
    card: dict[str, Any] = request.getfixturevalue(which)

    assert json.loads(json.dumps(card, allow_nan=False)) == card
    assert ClassifierCard.model_validate(card).model_dump(mode="json") == card


def test_the_fitted_card_carries_its_training_summary_and_provenance(fitted: dict[str, Any]) -> None:
    training = fitted["training"]
    page = Page(render_card_html(fitted))

    assert (training["n"], training["outcome_counts"], training["censored_n"]) == (
        13,
        {"stable": 6, "progressive": 7},
        4,
    )
    assert training["data_sha256"] in page.text
    assert "progressive 7 (the positive label)" in page.text
    assert "scheme repeated stratified k-fold, folds 3, repeats 20, seed 0" in page.text
    assert "Censored results 4 (a result reported as '<x' enters the fit at x, its upper bound)" in page.text
    assert "log-rank: statistic -1.76, chi-square 3.1, p 0.08" in page.text
    assert "13 subjects: every interval is wide." in page.text
    assert "scikit-learn 1.9.1" in page.text
    assert "2026-12-02T05:00:00Z" in page.text
    assert fitted["artifact"]["sha256"] in page.text
    assert fitted["digest"] in page.text


def test_metrics_are_a_table_with_their_95_percent_intervals(fitted: dict[str, Any]) -> None:
    markup = render_card_html(fitted)
    table = markup[
        markup.index("<caption>Metrics") : markup.index("</table>", markup.index("<caption>Metrics"))
    ]

    rows = [Page(row).text for row in table.split("<tr>")[2:]]
    assert rows == [
        "AUC 0.81 0.52 to 0.97 bootstrap percentile interval",
        "Sensitivity 0.714 0.359 to 0.918 Wilson score interval",
    ]
    assert '<th scope="col">95% interval</th>' in table


def test_the_histogram_has_a_bar_for_each_nonzero_count_by_outcome(fitted: dict[str, Any]) -> None:
    page = Page(render_card_html(fitted))

    bars = page.having("rect", "bar")
    assert len(bars) == sum(1 for counts in COUNTS.values() for n in counts if n)
    assert len(page.having("rect", "bar-0")) == sum(1 for n in COUNTS["stable"] if n) + 1  # + legend
    heights = sorted(float(bar["height"] or 0) for bar in bars)
    assert heights[-1] == pytest.approx(2 * heights[0])  # counts are 1s and 2s
    assert "stable: 6 subjects" in page.text
    assert "progressive: 7 subjects" in page.text
    assert "Histogram: censored at x." in page.text


def test_the_cutoff_and_lod_lines_sit_at_log10_of_their_values(fitted: dict[str, Any]) -> None:
    page = Page(render_card_html(fitted))
    ticks = {float(a["data-pg-per-ml"] or 0): x_of(a) for a in page.having("line", "tick")}
    decade = ticks[10] - ticks[1]

    def expected(pg_per_ml: float) -> float:
        return ticks[1] + math.log10(pg_per_ml) * decade

    (cutoff,) = page.having("line", "cutoff")
    assert x_of(cutoff) == pytest.approx(expected(float(FITTED_CUTOFF)), abs=0.01)
    assert sorted(x_of(lod) for lod in page.having("line", "lod")) == pytest.approx(
        [expected(1.5), expected(2.63)], abs=0.01
    )
    assert f"risk cutoff {FITTED_CUTOFF} pg/mL" in page.text


def test_the_plot_is_an_image_with_a_title_and_a_description(fitted: dict[str, Any]) -> None:
    page = Page(render_card_html(fitted))
    ((_, svg),) = [(t, a) for t, a in page.elements if t == "svg"]

    assert svg["role"] == "img"
    assert svg["aria-labelledby"] == "plot-title"
    assert svg["aria-describedby"] == "plot-desc"
    assert ("title", {"id": "plot-title"}) in page.elements
    assert ("desc", {"id": "plot-desc"}) in page.elements
    assert "Histogram of subjects (stable 6, progressive 7) on a log10 axis" in page.text
    assert f"a vertical line at the risk cutoff {FITTED_CUTOFF} pg/mL" in page.text


def test_manifest_strings_are_escaped_everywhere() -> None:
    manifest = fitted_manifest()
    manifest["title"] = manifest["intended_use"] = manifest["created_by"] = SCRIPT
    manifest["limitations"].append(SCRIPT)
    manifest["assays"][0]["name"] = manifest["assays"][0]["notes"] = SCRIPT
    parameter(manifest, CUTOFF)["description"] = SCRIPT
    manifest["sources"].append({"citation": SCRIPT, "quote": SCRIPT, "url": f'https://x/"{SCRIPT}'})
    training = manifest["training"]
    training["warnings"].append(SCRIPT)
    training["metrics"][SCRIPT] = {"estimate": 0.5, "method": SCRIPT}
    training["outcome_counts"][SCRIPT] = 0
    training["il6_distribution"]["counts"][SCRIPT] = [1, 0, 0, 0, 0, 0]
    manifest["software"][SCRIPT] = SCRIPT

    markup = render_card_html(card_document(entry_of(manifest), default=False))
    page = Page(markup)

    assert "<script" not in markup.lower()
    assert "script" not in {tag for tag, _ in page.elements}
    assert page.text.count(SCRIPT) >= 10  # shown as text
    assert not [a for t, a in page.elements if t == "a" and not (a["href"] or "").startswith("https://")]


def test_a_source_url_that_is_not_https_is_shown_but_not_linked(fitted: dict[str, Any]) -> None:
    page = Page(render_card_html(fitted))

    assert "javascript:alert(1)" in page.text
    assert all((a["href"] or "").startswith("https://") for t, a in page.elements if t == "a")


def test_a_malformed_training_section_is_named_unreadable_and_left_off() -> None:
    manifest = fitted_manifest()
    manifest["training"]["il6_distribution"]["counts"]["stable"].append(3)  # one count too many
    del manifest["criteria"]

    card = card_document(entry_of(manifest), default=False)
    page = Page(render_card_html(card))

    assert card["unreadable"] == ["training"]
    assert "Criteria None stated." in page.text  # the criteria were left out too
    assert card["training"] is None
    assert "The manifest's training section does not follow the card's schema" in page.text
    assert page.having("rect", "bar") == []


def test_the_content_security_policy_allows_exactly_the_page_style(bundled: dict[str, Any]) -> None:
    markup = render_card_html(bundled)
    (style,) = re.findall(r"<style>(.*?)</style>", markup, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()

    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none';")
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert " style=" not in markup  # inline style attributes would need 'unsafe-inline'


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("text/html, application/json", False),  # a tie: JSON, the default
        ("text/html", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # a browser
        ("application/json;q=0.5, text/html", True),
        ("text/html;q=0.4, application/json;q=0.9", False),
        ("text/*, */*;q=0.1", True),
        ("text/html;q=0", False),
    ],
)
def test_html_is_chosen_only_when_accept_prefers_it(accept: str | None, html: bool) -> None:
    assert prefers_html(accept) is html
