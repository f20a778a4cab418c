"""The monitoring page: what the service has been deciding, for the people around the trial who never call
the API (data manager, monitor, inspector, on-call engineer).

Pure presentation of ``app.service.monitoring.Overview``, in the model card's manner (``app/api/cards.py``):
every string reaches the page through ``html.escape``, the plots are inline SVG drawn in
``app/api/svg_plots.py``, and the page has no script and no external asset, so ``CONTENT_SECURITY_POLICY``
allows only its own <style> element, by hash. Subjects appear by their pseudonymous trial ids only, and no
IL6 value is listed against a subject.
"""

from collections.abc import Iterable
from datetime import datetime
from urllib.parse import quote

from app.api.html_pages import content_security_policy, text
from app.api.svg_plots import horizontal_bars, log_histogram, share_bar, stacked_days, timeline
from app.domain.reasons import ReasonCode
from app.service.monitoring import MAX_SITE_SERIES, OUTCOMES, ChainStatus, Overview

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:64rem;margin:1.5rem auto;padding:0 1rem;"
    "line-height:1.45;color:#1a1a1a}h1{margin-bottom:.2rem}section{margin:1.5rem 0}"
    "table{border-collapse:collapse;width:100%}th,td{border:1px solid #bbb;padding:.25rem .5rem;"
    "text-align:left;vertical-align:top}caption{text-align:left;font-weight:600}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}"
    "code{overflow-wrap:anywhere}figure{margin:0}figcaption,.note{color:#444;font-size:.9rem}"
    "svg{max-width:100%;height:auto}svg text{font:12px sans-serif;fill:#1a1a1a}"
    ".axis,.tick{stroke:#333}.grid{stroke:#e4e4e4}.cutoff{stroke:#b00020;stroke-width:2}"
    ".lod{stroke:#555;stroke-width:1.5;stroke-dasharray:5 3}.none{fill:#eee}"
    ".eligible{fill:#228833}.ineligible{fill:#4477aa}.indeterminate{fill:#ccbb44}"
    ".site-0{fill:#4477aa}.site-1{fill:#ee6677}.site-2{fill:#228833}.site-3{fill:#ccbb44}"
    ".site-4{fill:#66ccee}.site-5{fill:#aa3377}.site-6{fill:#332288}.site-7{fill:#bbbbbb}"
    ".il6-0{fill:#4477aa}.il6-1{fill:#66ccee}.reason{fill:#ccbb44}.period{fill:#4477aa}"
)
CONTENT_SECURITY_POLICY = content_security_policy(STYLE)
"""The page needs its own <style> element and nothing else: no script, image, font, frame or form."""

REASONS: dict[str, str] = {
    ReasonCode.SPECIMEN_NOT_SERUM: "the specimen is not serum",
    ReasonCode.IL6_CENSORED_ABOVE_LOD: "reported below a limit that is above the assay's limit of detection",
    ReasonCode.IL6_CENSORED_BELOW_LOD: "reported above a limit that is below the assay's limit of detection",
}
"""What each reason for an indeterminate result means, in a few words."""


_e = text


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else _e(f"{moment:%Y-%m-%d %H:%M:%S} UTC")


def _section(section_id: str, heading: str, *body: str) -> str:
    return f'<section id="{_e(section_id)}"><h2>{_e(heading)}</h2>{"".join(body)}</section>'


def _dl(rows: Iterable[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(label)}</dt><dd>{dd}</dd>" for label, dd in rows) + "</dl>"


def _table(table_id: str, caption: str, headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """Rows of markup cells."""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f'<table id="{_e(table_id)}"><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _il6(overview: Overview) -> str:
    histogram, entry = overview.il6, overview.classifier
    notes = [
        "Each decision's IL6 in pg/mL as its decision recorded it (converted from the unit sent). A censored "
        "result (<, <=, >, >=) is drawn at the limit it reports.",
        f"Solid line: the risk cutoff, dashed: the assays' limits of detection, both of the active version "
        f"{entry.name}@{entry.active_version}.",
    ]
    if histogram.limited:
        notes.append(f"The window holds more serum results: the newest {histogram.sampled} are drawn.")
    if histogram.zero:
        notes.append(f"{histogram.zero} results of exactly 0 pg/mL are not on the log axis.")
    return _figure(
        log_histogram("plot-il6", "Serum IL6 of decided results", histogram, overview.lines), " ".join(notes)
    )


def _indeterminate(overview: Overview) -> str:
    share = overview.indeterminate
    counts = {s.label: s.total for s in overview.by_outcome.series}
    reasons = [(code, n) for code, n in share.reasons]
    meaning = "".join(
        f"<li><code>{_e(code)}</code>: {_e(REASONS[code])}</li>" for code, _ in reasons if code in REASONS
    )
    sampled = (
        f" Reasons are counted over the newest {share.sampled} of them."
        if share.sampled < share.indeterminate
        else ""
    )
    summary = (
        f"<p>{share.indeterminate} of {share.decisions} decisions ({share.share:.0%}) were indeterminate: "
        f"the rules could not place the result, or it was not a serum result.{_e(sampled)}</p>"
    )
    return (
        summary
        + _figure(
            share_bar("plot-share", "Outcomes", [(o, counts.get(o, 0)) for o in OUTCOMES], OUTCOMES),
            "Share of each outcome among the window's decisions.",
        )
        + _figure(
            horizontal_bars(
                "plot-reasons", "Why results were indeterminate", reasons, share.sampled, "reason"
            ),
            "Indeterminate decisions citing each reason code (a decision may cite two).",
        )
        + (f"<ul>{meaning}</ul>" if meaning else "")
    )


def _classifier(overview: Overview) -> str:
    entry = overview.classifier
    ref = f"{entry.name}@{entry.active_version}"
    card = (
        f"v1/classifiers/{quote(entry.name, safe='')}/{quote(entry.active_version, safe='')}/card?format=html"
    )
    events = entry.lifecycle.events if entry.lifecycle else ()
    periods = entry.lifecycle.periods() if entry.lifecycle else []
    markup = _dl(
        [
            ("Active version", f'<code>{_e(ref)}</code> (<a href="{_e(card)}">model card</a>)'),
            ("Digest", f"<code>{_e(entry.digest)}</code>"),
            ("Shadow", _e(entry.lifecycle.shadow() or "none") if entry.lifecycle else "none"),
        ]
    )
    markup += _table(
        "classifier-usage",
        "Decisions of the window by classifier version",
        ("Version", "Decisions"),
        ([f"<code>{_e(name)}</code>", _e(n)] for name, n in entry.usage),
    )
    markup += _figure(
        timeline(
            "plot-classifier",
            f"When each version of {entry.name} was active",
            periods,
            overview.since,
            overview.generated_at,
        ),
        "A bar for each period a version was the one deciding requests that pin no version.",
    )
    return markup + _table(
        "classifier-events",
        f"Lifecycle of {entry.name}, oldest first",
        ("At", "Version", "Event", "By", "Reason"),
        ([_time(ev.at), _e(ev.version), _e(ev.event), _e(ev.by), _e(ev.reason)] for ev in events),
    )


def _chain(overview: Overview) -> str:
    chain = overview.chain
    if chain is None:
        return (
            "<p>The audit chain spans every site: it is shown only to callers with access to every site.</p>"
        )
    checkpoint = chain.checkpoint
    if checkpoint is not None:
        behind = chain.head.seq - checkpoint.seq
        signed = (
            f"record {_e(checkpoint.seq)}, signed {_e(checkpoint.issued_at)} by <code>{_e(checkpoint.key_id)}"
            f"</code> ({_e(behind)} record{'s' if behind != 1 else ''} appended since)"
        )
    elif chain.checkpoint_unreadable:
        signed = "the checkpoint log could not be read"
    elif chain.checkpoint_log is None:
        signed = "checkpoints are written to the service's log only (IL6_CHECKPOINT_FILE is empty)"
    else:
        signed = "none in the checkpoint log yet"
    return _dl(
        [
            ("Head", f"record {_e(chain.head.seq)}, recorded {_time(chain.head.recorded_at)}"),
            ("Head hash", f"<code>{_e(chain.head.hash)}</code>"),
            ("Last signed checkpoint", signed),
            ("Last verification", _verification(chain)),
        ]
    ) + (
        '<p class="note">The last verification is this server process\'s own: a check asked of it '
        "(<code>GET /v1/audit/verify</code>), or the one it runs before signing each checkpoint (from the "
        "last checkpoint on). Verify the whole chain with <code>GET /v1/audit/verify</code> or "
        "<code>il6 audit verify</code>, against kept checkpoints with <code>POST /v1/audit/verify</code> "
        "(docs/audit.md).</p>"
    )


def _verification(chain: ChainStatus) -> str:
    run = chain.last_verification
    if run is None:
        return "none by this server process since it started"
    span = "no records" if run.last_seq is None else f"records {_e(run.from_seq)} to {_e(run.last_seq)}"
    found = (
        "<strong>intact</strong>" if run.intact else f"<strong>BROKEN at record {_e(run.broken_seq)}</strong>"
    )
    counted = f"{_e(run.checked)} checked, {_e(run.checkpoints)} checkpoints"
    return f"{_time(run.finished_at)}: {found}, {span} ({counted})"


def _recent(overview: Overview) -> str:
    # Record numbers run across every site: their gaps would show another site's pace.
    numbered = overview.sites.every_site
    rows = [
        [
            *([_e(d.seq)] if numbered else []),
            _time(d.recorded_at),
            f'<code class="subject">{_e(d.subject_id)}</code>',
            _e(d.site_id or "-"),
            _e(d.eligibility_status),
            _e(d.risk_group or "-"),
            _e(f"{d.classifier_name}@{d.classifier_version}"),
        ]
        for d in overview.recent
    ]
    if not rows:
        return "<p>No decisions yet.</p>"
    return _table(
        "recent",
        f"The newest {len(rows)} decisions, newest first",
        (
            *(["Record"] if numbered else []),
            "Recorded",
            "Subject (pseudonymous id)",
            "Site",
            "Eligibility",
            "Risk group",
            "Classifier",
        ),
        rows,
    )


def render_monitoring_page(overview: Overview, caller: str) -> str:
    """The monitoring page as a standalone HTML document (no script, no external asset)."""
    sites = overview.sites
    scope = "every site" if sites.every_site else "sites " + ", ".join(sorted(sites.sites or ()))
    site_classes = [f"site-{i}" for i in range(len(overview.by_site.series))]
    if len(overview.by_site.series) > MAX_SITE_SERIES:
        site_classes[-1] = f"site-{MAX_SITE_SERIES}"  # the sites drawn together, in grey
    header = (
        "<header><h1>IL6 eligibility service: monitoring</h1>"
        f"<p>Decisions recorded from {_time(overview.since)} to {_time(overview.generated_at)} (the last "
        f"{_e(overview.days)} days, UTC, by the database's clock), of {_e(scope)}, as seen by "
        f"<code>{_e(caller)}</code>. Subjects appear by their pseudonymous trial ids only.</p></header>"
    )
    share = overview.indeterminate
    entry = overview.classifier
    head = overview.chain.head.seq if overview.chain else None
    summary = _dl(
        [
            ("Decisions", _e(overview.by_outcome.total)),
            ("Indeterminate", f"{_e(share.indeterminate)} ({share.share:.0%})"),
            ("Active classifier", f"<code>{_e(entry.name)}@{_e(entry.active_version)}</code>"),
        ]
        + ([] if head is None else [("Audit chain head", f"record {_e(head)}")])
    )
    body = (
        header
        + f'<section id="summary">{summary}</section>'
        + _section(
            "outcomes",
            "Decisions per day by outcome",
            _figure(
                stacked_days(
                    "plot-outcomes",
                    "Decisions per day by outcome",
                    overview.by_outcome,
                    OUTCOMES,
                    "No decisions in this window.",
                ),
                "Each bar is one UTC day's decisions, stacked by eligibility outcome.",
            ),
        )
        + _section(
            "sites",
            "Decisions per day by site",
            _figure(
                stacked_days(
                    "plot-sites",
                    "Decisions per day by site",
                    overview.by_site,
                    site_classes,
                    "No decisions in this window.",
                ),
                f"Each bar is one UTC day's decisions, stacked by site (the {MAX_SITE_SERIES} busiest "
                "apart, any others together).",
            ),
        )
        + _section("il6", "Serum IL6 of decided results", _il6(overview))
        + _section("indeterminate", "Indeterminate results", _indeterminate(overview))
        + _section("classifier", "Classifier", _classifier(overview))
        + _section("chain", "Audit chain", _chain(overview))
        + _section("recent-decisions", "Newest decisions", _recent(overview))
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        'content="width=device-width, initial-scale=1"><title>IL6 eligibility service: monitoring</title>'
        f"<style>{STYLE}</style></head><body><main>{body}</main></body></html>\n"
    )
