"""A classifier version's model card: its manifest as a JSON-ready document and as a readable HTML page.

Pure presentation. Everything shown comes from the verified manifest, except ``RESTRICTION``: the source
study's finding that serum IL6 is specific to the dasatinib + cetuximab combination, shown on every card.
Manifest strings are data: each one reaches the page through ``html.escape``, the plot is inline SVG drawn
here, and the page has no script and no external asset, so ``CONTENT_SECURITY_POLICY`` allows only its own
<style> element, by hash.
"""

import math
from collections.abc import Iterable
from dataclasses import asdict
from itertools import pairwise
from typing import Any

from pydantic import ValidationError

from app.api.html_pages import content_security_policy, text
from app.api.schemas.cards import ClassifierCard, ManifestSections
from app.domain.classifiers.registry import RegisteredVersion
from app.domain.classifiers.rules import CUTOFF
from app.domain.il6 import PG_PER_ML

Card = dict[str, Any]

RESTRICTION: Card = {
    "statement": "For the dasatinib + cetuximab combination only: the IL6 classifier of the source study was "
    "validated in a separate trial of the same combination, but did not separate survival risk in a trial "
    "of cetuximab + bevacizumab.",
    "sources": [
        {
            "citation": "Stabile LP, Egloff AM, Gibson MK, et al. IL6 is associated with response to "
            "dasatinib and cetuximab: Phase II clinical trial with mechanistic correlatives in "
            "cetuximab-resistant head and neck cancer. Oral Oncol 2017;69:38-45. PMID 28559019",
            "url": "https://doi.org/10.1016/j.oraloncology.2017.03.011",
            "quote": "The IL6 classifier was validated in a separate trial of the same combination, but was "
            "unable to segregate survival risk in a clinical trial of cetuximab and bevacizumab suggesting "
            "serum IL6 may be specific for the dasatinib-cetuximab combination.",
        }
    ],
}
"""What every card says about intended use, whatever the manifest's own wording (CLINICAL.md)."""

METRIC_LABELS = {"auc": "AUC", "sensitivity": "Sensitivity", "specificity": "Specificity"}

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45;color:#1a1a1a}"
    "table{border-collapse:collapse;width:100%}th,td{border:1px solid #bbb;padding:.3rem .5rem;"
    "text-align:left;vertical-align:top}caption{text-align:left;font-weight:600}"
    "dt{font-weight:600}code{overflow-wrap:anywhere}.restriction{border-left:4px solid #b00020;"
    "padding-left:.75rem}svg{max-width:100%;height:auto}svg text{font:12px sans-serif}"
    ".axis,.tick{stroke:#333}.cutoff{stroke:#b00020;stroke-width:2}.lod{stroke:#555;stroke-dasharray:5 3}"
    ".bar-0{fill:#4477aa}.bar-1{fill:#ee6677}.bar-2{fill:#228833}.bar-3{fill:#ccbb44}"
)
CONTENT_SECURITY_POLICY = content_security_policy(STYLE)
"""The page needs its own <style> element and nothing else: no script, image, font, frame or form."""


def card_document(entry: RegisteredVersion, *, default: bool) -> Card:
    """The card of one verified version as a JSON-ready document (the ``ClassifierCard`` schema).

    Each manifest section the loader does not check is read on its own: one that does not follow the
    schema is named in ``unreadable`` and left off, and the rest of the card still shows.
    """
    definition, manifest = entry.definition, entry.definition.manifest
    readable: Card = {}
    unreadable: list[str] = []
    for key in ManifestSections.model_fields:
        if manifest.get(key) is None:
            continue
        try:
            ManifestSections.model_validate({key: manifest[key]})
        except ValidationError:
            unreadable.append(key)
        else:
            readable[key] = manifest[key]
    card = ClassifierCard.model_validate(
        readable
        | {
            "name": definition.name,
            "version": definition.version,
            "kind": definition.kind,
            "title": definition.title,
            "status": entry.status,
            "default": default,
            "digest": entry.digest,
            "intended_use": definition.intended_use,
            "restriction": RESTRICTION,
            "limitations": list(definition.limitations),
            "parameters": [asdict(parameter) for parameter in definition.parameters],
            "assays": [asdict(assay) for assay in definition.assays],
            "unreadable": unreadable,
        }
    )
    return card.model_dump(mode="json")


_e = text


def _opt(value: Any) -> str | None:
    return None if value is None else _e(value)


def _stat(value: float) -> str:
    """A statistic for reading, to 3 significant digits (the JSON card keeps every digit)."""
    return f"{value:.3g}"


def _exact(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _section(heading: str, *body: str) -> str:
    return f"<section><h2>{_e(heading)}</h2>{''.join(body)}</section>"


def _dl(rows: Iterable[tuple[str, str | None]]) -> str:
    """A definition list of (label, markup) rows; rows without markup are left out."""
    items = "".join(f"<dt>{_e(label)}</dt><dd>{dd}</dd>" for label, dd in rows if dd)
    return f"<dl>{items}</dl>" if items else "<p>None stated.</p>"


def _ul(items: Iterable[str], empty: str = "None stated.") -> str:
    markup = "".join(f"<li>{item}</li>" for item in items)
    return f"<ul>{markup}</ul>" if markup else f"<p>{_e(empty)}</p>"


def _table(caption: str, headers: Iterable[str], rows: Iterable[list[str]]) -> str:
    """Rows of markup cells; the first cell of each row is its header."""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = "".join(
        f'<tr><th scope="row">{first}</th>' + "".join(f"<td>{cell}</td>" for cell in rest) + "</tr>"
        for first, *rest in rows
    )
    return (
        f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _sources(sources: list[Card], empty: str = "None stated.") -> str:
    """Citations, with a link only to an https URL (a manifest's URL is data, never a script)."""

    def one(source: Card) -> str:
        url = source["url"] or ""
        link = f'<a href="{_e(url)}">{_e(url)}</a>' if url.lower().startswith("https://") else _e(url)
        quote = f"<q>{_e(source['quote'])}</q>" if source["quote"] else ""
        return " ".join(part for part in (_e(source["citation"]), link, quote) if part)

    return _ul((one(source) for source in sources), empty)


W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 300, 48, 16, 52, 64
"""The plot's size and margins in SVG user units: line labels above, tick labels and legend below."""


def _vertical_lines(card: Card) -> list[tuple[str, str, str, float]]:
    """(class, short label, full label, pg/mL): the risk cutoff, then each assay's limit of detection."""
    cutoffs = [p for p in card["parameters"] if p["name"] == CUTOFF and p["unit"] == PG_PER_ML]
    lines = [
        ("cutoff", f"cutoff {p['value']}", f"risk cutoff {p['value']} pg/mL", float(p["value"]))
        for p in cutoffs
    ]
    for a in card["assays"]:
        lod = _exact(a["lod_pg_per_ml"])
        lines.append(
            ("lod", f"LOD {lod}", f"limit of detection of {a['name']}: {lod} pg/mL", a["lod_pg_per_ml"])
        )
    return [line for line in lines if math.isfinite(line[3]) and line[3] > 0]


def _plot(card: Card) -> str:
    """The training data's IL6 by outcome on a log10 pg/mL axis, the cutoff and the limits of detection
    drawn as vertical lines; without training data, the axis and the lines alone."""
    histogram = (card["training"] or {}).get("il6_distribution")
    edges: list[float] = histogram["edges"] if histogram else []
    counts: dict[str, list[int]] = histogram["counts"] if histogram else {}
    lines = _vertical_lines(card)
    logs = [math.log10(line[3]) for line in lines] + edges
    if not logs:
        return "<p>No plot: no training data, cutoff or limit of detection to draw.</p>"
    lo, hi = math.floor(min(logs)), math.ceil(max(logs))
    hi = max(hi, lo + 1)
    width, height, base = W - LEFT - RIGHT, H - TOP - BOTTOM, H - BOTTOM
    tallest = max((n for column in counts.values() for n in column), default=0)
    step = max(1, math.ceil(tallest / 5))
    ymax = step * max(1, math.ceil(tallest / step))

    def x(log10: float) -> float:
        return LEFT + (log10 - lo) / (hi - lo) * width

    def y(n: int) -> float:
        return base - n / ymax * height

    parts = [f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{LEFT + width}" y2="{base}"/>']
    parts += [
        f'<line class="tick" data-pg-per-ml="{10.0**k:g}" x1="{x(k):.2f}" y1="{base}" x2="{x(k):.2f}" '
        f'y2="{base + 5}"/><text x="{x(k):.2f}" y="{base + 18}" text-anchor="middle">{10.0**k:g}</text>'
        for k in range(lo, hi + 1)
    ]
    parts.append(f'<text x="{LEFT + width / 2}" y="{base + 36}" text-anchor="middle">Serum IL6, pg/mL</text>')
    if histogram:
        parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}"/>')
        parts += [
            f'<text x="{LEFT - 6}" y="{y(n) + 4:.2f}" text-anchor="end">{n}</text>'
            for n in range(0, ymax + 1, step)
        ]
        legend_x = LEFT
        for j, (label, column) in enumerate(counts.items()):
            for (a, b), n in zip(pairwise(edges), column, strict=True):
                slot = (x(b) - x(a)) / len(counts)  # each bin holds one bar per outcome, side by side
                if n:
                    parts.append(
                        f'<rect class="bar bar-{j % 4}" x="{x(a) + j * slot + 0.5:.2f}" y="{y(n):.2f}" '
                        f'width="{max(slot - 1, 0.5):.2f}" height="{base - y(n):.2f}"><title>{_e(label)}: '
                        f"{n} with IL6 {10**a:.3g} to {10**b:.3g} pg/mL</title></rect>"
                    )
            text = f"{label}: {sum(column)} subjects"
            parts.append(
                f'<rect class="bar-{j % 4}" x="{legend_x}" y="{base + 46}" width="10" height="10"/>'
                f'<text x="{legend_x + 14}" y="{base + 55}">{_e(text)}</text>'
            )
            legend_x += 30 + 7 * len(text)
    for i, (kind, short, full, value) in enumerate(lines):
        lx = x(math.log10(value))
        left_half = lx < LEFT + width / 2  # the label runs towards the middle; labels stack in 3 rows
        parts.append(
            f'<line class="{kind}" x1="{lx:.2f}" y1="{TOP}" x2="{lx:.2f}" y2="{base}"><title>{_e(full)}'
            f'</title></line><text x="{lx + (4 if left_half else -4):.2f}" y="{TOP - 6 - 13 * (i % 3)}" '
            f'text-anchor="{"start" if left_half else "end"}">{_e(short)}</text>'
        )
    axis = f"a log10 axis of serum IL6 from {10.0**lo:g} to {10.0**hi:g} pg/mL"
    if histogram:
        groups = ", ".join(f"{label} {sum(column)}" for label, column in counts.items())
        title, desc = (
            "Serum IL6 in the training data by outcome",
            f"Histogram of subjects ({groups}) on {axis}",
        )
    else:
        title, desc = "Risk cutoff and limits of detection on the IL6 axis", f"No training data: {axis}"
    desc += "".join(f"; a vertical line at the {line[2]}" for line in lines) + "."
    caption = "Solid line: the risk cutoff; dashed: the assays' limits of detection. " + (
        f"Histogram: {histogram['note'] or 'training subjects by outcome'}."
        if histogram
        else "No training data in this version, so no histogram."
    )
    return (
        '<figure><svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="plot-title" '
        f'aria-describedby="plot-desc" viewBox="0 0 {W} {H}" width="{W}" height="{H}"><title id="plot-title">'
        f'{_e(title)}</title><desc id="plot-desc">{_e(desc)}</desc>{"".join(parts)}</svg>'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _training(training: Card | None) -> str:
    if training is None:
        return "<p>No training data: this version's numbers come from the sources cited with them.</p>"
    outcomes = ", ".join(
        f"{_e(label)} {n}" + (" (the positive label)" if label == training["positive_label"] else "")
        for label, n in training["outcome_counts"].items()
    )
    censored, rule = training["censored_n"], training["censoring_rule"]
    censored = None if censored is None else _e(censored) + (f" ({_e(rule)})" if rule else "")
    return _dl(
        [
            ("Subjects", _e(training["n"])),
            ("Outcomes", outcomes),
            ("Censored results", censored),
            ("Data SHA-256", training["data_sha256"] and f"<code>{_e(training['data_sha256'])}</code>"),
            ("Cross-validation", ", ".join(f"{_e(k)} {_e(v)}" for k, v in (training["cv"] or {}).items())),
            ("Threshold selection", _opt(training["threshold_selection"])),
        ]
    )


def _metrics(training: Card | None) -> str:
    metrics: dict[str, Card] = (training or {}).get("metrics") or {}
    survival: Card | None = (training or {}).get("survival")
    rows = [
        [
            _e(METRIC_LABELS.get(name, name)),
            _stat(m["estimate"]),
            f"{_stat(m['ci95'][0])} to {_stat(m['ci95'][1])}" if m["ci95"] else "not given",
            _e(m["method"] or "not stated"),
        ]
        for name, m in metrics.items()
    ]
    markup = (
        _table("Metrics with their 95% intervals", ("Metric", "Estimate", "95% interval", "Method"), rows)
        if rows
        else "<p>No metrics in this version's manifest.</p>"
    )
    if survival:
        result = ", ".join(
            f"{name} {_stat(survival[key])}"
            for name, key in (("statistic", "statistic"), ("chi-square", "chi_square"), ("p", "p_value"))
            if survival[key] is not None
        )
        markup += f"<h3>Survival</h3><p>{_e(survival['test'])}: {_e(result or 'no result given')}</p>"
        rows = [[_e(name), _e(g["n"]), _e(g["events"])] for name, g in survival["groups"].items()]
        markup += _table("Survival by risk group", ("Group", "Subjects", "Events"), rows)
    return markup


def render_card_html(card: Card) -> str:
    """The card as a standalone HTML page: no script and no external asset (``CONTENT_SECURITY_POLICY``)."""
    ref, training, artifact = f"{card['name']}@{card['version']}", card["training"], card["artifact"]
    notices = [
        f"The manifest's {key} section does not follow the card's schema: see the manifest."
        for key in card["unreadable"]
    ]
    parameters = [
        [
            f"<code>{_e(p['name'])}</code>",
            _e(" ".join(filter(None, (p["value"], p["unit"])))),
            _e(p["description"]),
            _sources(p["sources"]),
        ]
        for p in card["parameters"]
    ]
    assays = [
        [
            _e(f"{a['name']} ({a['manufacturer']}; {a['method']})"),
            _e(f"{_exact(a['lod_pg_per_ml'])} pg/mL"),
            _e(" to ".join(_exact(v) for v in a["measuring_range_pg_per_ml"]) + " pg/mL"),
            _e(", ".join(a["specimens"])),
            _e(a["notes"]) + _sources(a["sources"]),
        ]
        for a in card["assays"]
    ]
    provenance = [
        ("Digest", f"<code>{_e(card['digest'])}</code>"),
        (
            "Status",
            _e(card["status"]) + (" (decides requests that pin no version)" if card["default"] else ""),
        ),
        ("Created by", _opt(card["created_by"])),
        ("Created at", _opt(card["created_at"])),
        ("Software", ", ".join(f"{_e(k)} {_e(v)}" for k, v in card["software"].items())),
        ("Artifact", artifact and _e(f"{artifact['file']} ({artifact['format'] or 'format not stated'})")),
        ("Artifact SHA-256", artifact and f"<code>{_e(artifact['sha256'])}</code>"),
    ]
    restriction = card["restriction"]
    body = (
        f"<header><h1>{_e(card['title'])}</h1><p>Model card of <code>{_e(ref)}</code> ({_e(card['kind'])}, "
        f"{_e(card['status'])}).</p></header>"
        + _section(
            "Intended use",
            f"<p>{_e(card['intended_use'])}</p>",
            f'<div class="restriction"><p><strong>{_e(restriction["statement"])}</strong></p>',
            _sources(restriction["sources"]) + "</div>",
        )
        + _section(
            "Criteria",
            _dl((c["name"], _e(c["statement"]) + _sources(c["sources"])) for c in card["criteria"]),
        )
        + _section("Training data", _training(training), _plot(card))
        + _section("Metrics", _metrics(training))
        + _section(
            "Warnings and limitations",
            _ul(
                _e(text)
                for text in notices + (training["warnings"] if training else []) + card["limitations"]
            ),
        )
        + _section(
            "Parameters",
            _table(
                "Parameters and their sources", ("Parameter", "Value", "Description", "Sources"), parameters
            ),
        )
        + _section(
            "Assays",
            _table(
                "Assays and their limits of detection",
                ("Assay", "Limit of detection", "Measuring range", "Specimens", "Notes and sources"),
                assays,
            ),
        )
        + _section(
            "Sources", _sources(card["sources"], "None beyond those given with the parameters and assays.")
        )
        + _section("Provenance", _dl(provenance))
    )
    title = _e(f"Model card: {card['title']} ({ref})")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>{title}</title><style>{STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>\n"
    )
