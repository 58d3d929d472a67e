"""`curate report`: one self-contained HTML page about a run, for the person who reads the night's results.

The page holds the funnel (records read, quarantined, dropped by stage and reason, revised, tagged, published),
score histograms per principle with the constitution's thresholds, the scoring cascade's counts, a sample of
revisions side by side, the Great Expectations gates, and a trend chart of the last nightly runs. Everything is
inline (CSS and SVG figures, no script, a Content-Security-Policy that forbids fetching anything), so the file
can be mailed, attached to an MLflow run (every successful `curate run` does: `log_report`) or opened offline.

Numbers come from the run's `runs` row (its counts, as the executor recorded them) and from the tables read at
the versions that row names (`table_versions`), so a report of an old run shows that run's scores even after
`curate iterate` rescored the corpus. Documents are untrusted: every string from the lake is HTML-escaped.

This module renders; pipelines/ops/report_data.py collects.
"""

from __future__ import annotations

import difflib
import html
import math
import re
import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.constitution import Constitution
from pipelines.core.lake import Lake
from schemas.vocab import Action, Count, RunStatus

if TYPE_CHECKING:
    from pipelines.core.execute import RunSummary
    from pipelines.core.progress import Progress
from pipelines.ops.report_data import SAMPLE_CHARS, ReportData, TrendPoint, collect, logger, published

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2330;
background:#f5f6f8}
main{max-width:1180px;margin:0 auto;padding:20px 28px 48px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dce3;
padding-bottom:4px}h3{font-size:14px;margin:12px 0 4px}
.meta{color:#5b6474;font-size:13px}.meta code{font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:8px 14px;min-width:120px}
.card .v{font-size:20px;font-weight:600}.card .k{color:#5b6474;font-size:12px}
table{border-collapse:collapse;background:#fff;border:1px solid #d8dce3;margin:6px 0}
th,td{padding:4px 10px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.l1 td:first-child{padding-left:28px;color:#4a5263}tr.l2 td:first-child{padding-left:48px;color:#4a5263}
.bar{height:12px;background:#4c72b0;border-radius:2px;min-width:1px}
.bar.b-drop{background:#c44e52}.bar.b-quar{background:#8c8c8c}.bar.b-pub{background:#55a868}
.bar.b-rev{background:#dd8452}
.figs{display:flex;flex-wrap:wrap;gap:12px}.fig{background:#fff;border:1px solid #d8dce3;border-radius:6px;
padding:6px}
.status-success{color:#2f7d3b}.status-failed,.status-failed_gate{color:#b3262d}
.rev{background:#fff;border:1px solid #d8dce3;border-radius:6px;margin:10px 0;padding:8px 12px}
.sxs{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.sxs pre{white-space:pre-wrap;word-wrap:break-word;font:13px/1.45 ui-monospace,"DejaVu Sans Mono",monospace;
margin:4px 0;padding:8px;background:#fafbfc;border:1px solid #eceef2;max-height:420px;overflow:auto}
del{background:#fbd3d4;text-decoration:line-through}ins{background:#cdebd3;text-decoration:none}
.muted{color:#6b7385}.note{background:#fff7e0;border:1px solid #f0dca0;padding:6px 10px;border-radius:4px}
.error{background:#fde8e8;border:1px solid #f0b4b4;padding:6px 10px;border-radius:4px;white-space:pre-wrap}
"""


COLORS = {"records": "#4c72b0", "published": "#55a868", "dropped": "#c44e52", "quarantined": "#8c8c8c"}


def e(value: object) -> str:
    """Escape anything that reaches the page: documents, reasons, paths and errors are all untrusted."""
    return html.escape("" if value is None else str(value), quote=True)


def _n(value: int) -> str:
    return f"{value:,}"


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else e(value or "-")


def _table(head: list[str], rows: list[str], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    cells = "".join(f'<th class="n">{e(h)}</th>' if i in numeric else f"<th>{e(h)}</th>" for i, h in enumerate(head))
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _funnel(data: ReportData) -> str:
    c = data.counts
    records = c.get("records", 0)
    widest = max(records, c.get("pending", 0), 1)

    def row(key: str, label: str, n: int, kind: str = "", level: int = 0) -> str:
        width = 100.0 * n / widest
        bar = f'<div class="bar {f"b-{kind}" if kind else ""}" style="width:{width:.1f}%"></div>'
        return (
            f'<tr id="funnel-{e(key)}" class="l{level}"><td>{e(label)}</td><td class="n">{_n(n)}</td>'
            f'<td style="width:420px">{bar}</td></tr>'
        )

    rows = [row("records", "records read", records)]
    rows.append(row("quarantined", "quarantined (malformed records)", c.get("quarantined", 0), "quar"))
    for key, n in sorted(((k, v) for k, v in c.items() if k.startswith("quarantine:")), key=lambda kv: -kv[1]):
        reason = key.split(":", 1)[1]
        rows.append(row(f"quarantine-{reason}", reason, n, "quar", level=1))
    rows.append(row("documents", "documents parsed", c.get("documents", 0)))
    rows.append(row("already_ingested", "already ingested by an earlier run", c.get("already_ingested", 0), level=1))
    rows.append(row("repeated_in_batch", "repeated within the batch", c.get("repeated_in_batch", 0), level=1))
    if Count.REDECIDED in c:
        rows.append(row("redecided", "re-decided (iteration round)", c[Count.REDECIDED]))
    rows.append(row("decided", "decided this run", c.get(Count.PENDING, c.get(Count.REDECIDED, 0))))
    if c.get(Count.PENDING_DEFERRED, 0):
        rows.append(row("backlog", "of them deferred by an earlier run", c[Count.PENDING_DEFERRED], level=1))
    rows.append(row("dropped", "dropped", c.get(Count.action(Action.DROP), 0), "drop", level=1))
    for stage, n in sorted(data.drop_stages.items(), key=lambda kv: -kv[1]):
        rows.append(row(f"dropped-{stage}", f"by {stage}", n, "drop", level=2))
    if c.get(Count.action(Action.DEFER), 0) or c.get(Count.PENDING_DEFERRED, 0):
        rows.append(
            row(
                "deferred",
                "deferred (no revision budget: the next run takes them first)",
                c.get(Count.action(Action.DEFER), 0),
                "quar",
                level=1,
            )
        )
    rows.append(row("revised", "revised (rewritten or excised)", c.get(Count.action(Action.REVISE), 0), "rev", 1))
    rows.append(row("tagged", "tagged", c.get(Count.action(Action.TAG), 0), "rev", level=1))
    rows.append(row("kept", "kept unchanged", c.get(Count.action(Action.KEEP), 0), "pub", level=1))
    rows.append(row("published", "published (kept + revised + tagged)", published(c), "pub"))
    out = [_table(["", "documents", ""], rows, {1})]
    if data.drops:
        drop_rows = [
            f'<tr data-stage="{e(stage)}" data-reason="{e(reason)}"><td>{e(stage)}</td><td>{e(reason)}</td>'
            f'<td class="n">{_n(n)}</td></tr>'
            for (stage, reason), n in sorted(data.drops.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))
        ]
        out.append("<h3>drops by stage and reason</h3>")
        out.append('<p class="muted">A document dropped for several reasons counts once under each.</p>')
        out.append(_table(["stage", "reason", "documents"], drop_rows, {2}))
    return "".join(out)


def histogram_svg(name: str, hist: list[int], lines: list[tuple[str, float, str]]) -> str:
    """Bars on a log scale (most documents sit near 0; the tail is what matters) with threshold lines."""
    w, h, left, bottom, top = 300, 166, 34, 38, 16
    pw, ph = w - left - 8, h - bottom - top
    peak = max(hist) if hist else 0
    scale = math.log1p(peak) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="score histogram of {e(name)}">',
        f'<text x="{left}" y="11" font-size="11" fill="#1d2330">{e(name)} ({_n(sum(hist))} scored)</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>',
    ]
    bw = pw / len(hist) if hist else pw
    for i, n in enumerate(hist):
        bh = ph * math.log1p(n) / scale
        lo, hi = i / len(hist), (i + 1) / len(hist)
        parts.append(
            f'<rect x="{left + i * bw + 0.5:.1f}" y="{top + ph - bh:.1f}" width="{bw - 1:.1f}" height="{bh:.1f}" '
            f'fill="#4c72b0"><title>{lo:.2f}-{hi:.2f}: {n} document(s)</title></rect>'
        )
    for x, label in ((0, "0"), (0.5, "0.5"), (1, "1")):
        parts.append(
            f'<text x="{left + x * pw:.1f}" y="{top + ph + 13}" font-size="10" text-anchor="middle" fill="#555">{label}'
            "</text>"
        )
    parts.append(f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end" fill="#555">{peak}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + ph}" font-size="10" text-anchor="end" fill="#555">0</text>')
    lx = left
    for label, value, color in lines:
        x = left + max(0.0, min(1.0, value)) * pw
        text = f"{label} {value:g}"
        # labelled in a legend under the axis: beside their lines, close thresholds' labels would overlap
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="{color}" stroke-width="1.5" '
            f'stroke-dasharray="4 3"><title>{e(text)}</title></line>'
            f'<line x1="{lx}" y1="{h - 8}" x2="{lx + 14}" y2="{h - 8}" stroke="{color}" stroke-width="1.5" '
            f'stroke-dasharray="4 3"/><text x="{lx + 18}" y="{h - 4}" font-size="10" fill="{color}">{e(text)}</text>'
        )
        lx += 30 + 6 * len(text)
    parts.append("</svg>")
    return "".join(parts)


def _scores(data: ReportData) -> str:
    if not data.hists:
        return '<p class="muted">No document was scored in this run.</p>'
    figs = []
    for name, hist in data.hists.items():
        p = None
        if data.constitution is not None and name in data.constitution.names:
            p = data.constitution.get(name)
        if p is None:
            lines: list[tuple[str, float, str]] = []
            mode = "not in the constitution"
        elif p.positive_kind:
            lines, mode = [("upsample", p.upsample_threshold, "#55a868")], f"positive, x{p.upsample:g}"
        else:
            lines = [("revise", p.revise_threshold, "#dd8452"), ("filter", p.filter_threshold, "#c44e52")]
            mode = p.mode
        flagged = data.counts.get(Count.flagged(name, bool(p and p.positive_kind)))
        caption = f"mode {mode}" + ("" if flagged is None else f"; flagged {flagged}")
        figs.append(
            f'<div class="fig" data-principle="{e(name)}">{histogram_svg(name, hist, lines)}'
            f'<div class="muted" style="font-size:12px">{e(caption)}</div></div>'
        )
    return (
        f'<p class="muted">Final score per document and principle (log scale); thresholds from '
        f'{e(data.constitution_source)}.</p><div class="figs">{"".join(figs)}</div>'
    )


def _cascade(data: ReportData) -> str:
    per: dict[str, dict[str, int]] = defaultdict(dict)
    for key, n in data.counts.items():
        parts = key.split(":")
        if len(parts) == 3 and parts[0] in ("cascade", "cascade_changed"):
            per[parts[1]][f"{parts[0]}:{parts[2]}"] = n
    names = list(dict.fromkeys([*data.hists, *per]))
    if not names:
        return '<p class="muted">The cascade did not run in this run.</p>'
    rows = []
    for p in names:
        c, by = per.get(p, {}), data.decided_by.get(p, {})
        cells = [
            c.get("cascade:teacher", 0),
            c.get("cascade_changed:teacher", 0),
            c.get("cascade:judge", 0),
            c.get("cascade_changed:judge", 0),
            by.get("classifier", 0),
            by.get("teacher", 0),
            by.get("judge", 0),
        ]
        rows.append(
            f'<tr data-principle="{e(p)}"><td>{e(p)}</td>' + "".join(f'<td class="n">{_n(v)}</td>' for v in cells)
        )
    head = [
        "principle",
        "to teacher",
        "teacher changed",
        "to judge",
        "judge changed",
        "decided by classifier",
        "by teacher",
        "by judge",
    ]
    return (
        '<p class="muted">Documents whose classifier score lies near a threshold go to the teacher, then the judge; '
        '"changed": decisions that stage changed.</p>' + _table(head, rows, set(range(1, 8)))
    )


def _diff(original: str, revised: str) -> tuple[str, str]:
    """Word-level diff, each token escaped: deletions marked in the original, insertions in the result."""
    a, b = re.split(r"(\s+)", original), re.split(r"(\s+)", revised)
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, new = e("".join(a[i1:i2])), e("".join(b[j1:j2]))
        if op == "equal":
            left.append(old)
            right.append(new)
            continue
        if old:
            left.append(f"<del>{old}</del>")
        if new:
            right.append(f"<ins>{new}</ins>")
    return "".join(left), "".join(right)


def _clip(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS]


def _more(text: str | None) -> str:
    extra = len(text or "") - SAMPLE_CHARS
    return f'<div class="muted">... {_n(extra)} more characters</div>' if extra > 0 else ""


def _revisions(data: ReportData) -> str:
    if not data.revision_statuses:
        return '<p class="muted">No document was revised in this run.</p>'
    rows = [
        f'<tr data-method="{e(m)}" data-status="{e(s)}"><td>{e(m)}</td><td>{e(s)}</td><td class="n">{_n(n)}</td></tr>'
        for (m, s), n in sorted(data.revision_statuses.items())
    ]
    out = [_table(["method", "status", "documents"], rows, {2})]
    out.append(f"<h3>sample: {len(data.revisions)} of {_n(sum(data.revision_statuses.values()))}</h3>")
    for r in data.revisions:
        if r.revised is not None:
            left, right = _diff(_clip(r.original), _clip(r.revised))
        else:
            left, right = e(_clip(r.original)), '<span class="muted">(no result)</span>'
        facts = [
            f"principles {', '.join(r.principles) or '-'}",
            f"score {_f(r.score_before)} -> {_f(r.score_after)}",
            f"similarity {_f(r.similarity)}",
        ]
        if r.fallback_from:
            facts.append(f"after the LLM's {r.fallback_from}")
        if r.reject_reasons:
            facts.append("rejected: " + "; ".join(r.reject_reasons))
        out.append(
            f'<div class="rev" data-doc-id="{e(r.doc_id)}"><div><b>{e(r.method)}</b>, '
            f'<span class="status-{e(r.status)}">{e(r.status)}</span> <code class="muted">{e(r.doc_id)}</code></div>'
            f'<div class="muted">{e(" | ".join(facts))}</div><div class="sxs">'
            f'<div><h3>original</h3><pre class="original">{left}</pre>{_more(r.original)}</div>'
            f'<div><h3>result</h3><pre class="revised">{right}</pre>{_more(r.revised)}</div></div></div>'
        )
    return "".join(out)


def _gates(data: ReportData) -> str:
    c = data.counts
    gates = {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("gate:")}
    status = str(data.run.get("status"))
    parts = []
    if gates:
        rows = [
            f'<tr data-gate="{e(g)}"><td>{e(g)}</td><td class="n">{_n(n)}</td>'
            '<td class="status-success">passed</td></tr>'
            for g, n in gates.items()
        ]
        parts.append(_table(["gate (Great Expectations suite)", "expectations", "result"], rows, {1}))
    passed = c.get(Count.GATES_PASSED, len(gates))
    parts.append(f'<p id="gates-passed">{_n(passed)} gate(s) passed.</p>')
    if status == RunStatus.FAILED_GATE and data.run.get("error"):
        parts.append(f'<div class="error" id="gate-failure">{e(data.run["error"])}</div>')
    return "".join(parts)


def trend_svg(points: list[TrendPoint]) -> str:
    """Records read, published, dropped and quarantined per night, one line each."""
    w, h, left, right, top, bottom = 760, 220, 48, 130, 14, 40
    pw, ph = w - left - right, h - top - bottom
    series = {
        "records": [p.records for p in points],
        "published": [p.published for p in points],
        "dropped": [p.dropped for p in points],
        "quarantined": [p.quarantined for p in points],
    }
    peak = max([1, *[v for vs in series.values() for v in vs]])
    step = pw / max(len(points) - 1, 1)

    def xy(i: int, v: int) -> tuple[float, float]:
        x = left + (i * step if len(points) > 1 else pw / 2)
        return x, top + ph - ph * v / peak

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="trend of the last '
        f'nights"><line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#888"/>'
        f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end" fill="#555">{_n(peak)}</text>'
        f'<text x="{left - 4}" y="{top + ph}" font-size="10" text-anchor="end" fill="#555">0</text>'
    ]
    for i, p in enumerate(points):
        x, _ = xy(i, 0)
        parts.append(
            f'<text x="{x:.1f}" y="{h - bottom + 14}" font-size="10" text-anchor="middle" fill="#555">'
            f"{e(p.crawl_id[-12:])}</text>"
        )
    for k, (name, values) in enumerate(series.items()):
        color = COLORS[name]
        coords = [xy(i, v) for i, v in enumerate(values)]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for (x, y), v, p in zip(coords, values, points, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{e(p.crawl_id)}: {v} {name}</title>'
                "</circle>"
            )
        ly = top + 12 + 16 * k
        parts.append(
            f'<line x1="{w - right + 12}" y1="{ly - 4}" x2="{w - right + 30}" y2="{ly - 4}" stroke="{color}" '
            f'stroke-width="2"/><text x="{w - right + 34}" y="{ly}" font-size="11" fill="#1d2330">{name}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _trend(data: ReportData) -> str:
    if not data.trend:
        return '<p class="muted">No successful nightly run yet.</p>'
    rows = [
        f'<tr data-run-id="{e(p.run_id)}"><td>{e(p.crawl_id)}</td><td>{_when(p.started_at)}</td>'
        f'<td class="n">{_n(p.records)}</td><td class="n">{_n(p.published)}</td><td class="n">{_n(p.dropped)}</td>'
        f'<td class="n">{_n(p.quarantined)}</td></tr>'
        for p in data.trend
    ]
    table = _table(["crawl", "started", "records", "published", "dropped", "quarantined"], rows, {2, 3, 4, 5})
    return f'<div class="fig">{trend_svg(data.trend)}</div>{table}'


def _hygiene(data: ReportData) -> str:
    """Benchmark contamination per set and action, personal data per kind: from the run's counts."""
    c = data.counts
    rows = [
        f'<tr id="hygiene-{e(k)}"><td>{e(label)}</td><td>{e(k.split(":", 1)[1])}</td><td class="n">{_n(v)}</td></tr>'
        for prefix, label in (
            ("contaminated:", "contaminated documents by benchmark set"),
            ("decontaminate:", "decontamination action"),
            ("pii:", "personal data values redacted, by kind"),
        )
        for k, v in sorted(c.items())
        if k.startswith(prefix)
    ]
    summary = (
        f'<p class="meta">{_n(c.get("contaminated", 0))} contaminated documents (rows of <code>contamination</code>); '
        f"{_n(c.get('pii_docs', 0))} documents with personal data (offsets in <code>pii</code>, never the values).</p>"
    )
    return summary + (_table(["what", "which", "count"], rows, {2}) if rows else "")


def render(data: ReportData) -> str:
    run, c = data.run, data.counts
    status = str(run.get("status"))
    cards = [
        ("records read", c.get("records", 0)),
        ("published", published(c)),
        ("dropped", c.get(Count.action(Action.DROP), 0)),
        ("deferred backlog", c.get(Count.DEFERRED_TOTAL, 0)),
        ("corpus size", c.get(Count.CORPUS_SIZE, 0)),
        ("gates passed", c.get(Count.GATES_PASSED, 0)),
        ("seconds", c.get(Count.SECONDS, 0)),
    ]
    card_html = "".join(
        f'<div class="card"><div class="v">{_n(v)}</div><div class="k">{e(k)}</div></div>' for k, v in cards
    )
    unaccounted = c.get(Count.UNACCOUNTED)
    invariant = (
        "not checked (the run did not reach the end)"
        if unaccounted is None
        else f"{'holds' if unaccounted == 0 else 'BROKEN'}: {_n(c.get(Count.RAW_DOCS_TOTAL, 0))} ingested documents, "
        f"{_n(unaccounted)} unaccounted for, {_n(c.get(Count.QUARANTINE_TOTAL, 0))} quarantined records in the lake"
    )
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in data.notes)
    error = f'<div class="error">{e(run["error"])}</div>' if run.get("error") else ""
    title = f"curate run {run['run_id']} ({run.get('crawl_id') or '-'})"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>curate run <code>{e(run["run_id"])}</code></h1>
<div class="meta">crawl <b id="crawl-id">{e(run.get("crawl_id") or "-")}</b> from
<code>{e(run.get("input_path") or "-")}</code>; status <b id="run-status" class="status-{e(status)}">{e(status)}</b>;
started {_when(run.get("started_at"))}, finished {_when(run.get("finished_at"))}; engine {e(run.get("engine") or "-")};
config <code>{e(run.get("config_hash") or "-")}</code>;
MLflow run <code>{e(run.get("mlflow_run_id") or "-")}</code></div>
{error}<div class="cards">{card_html}</div>
<p class="meta" id="invariant">Accounting invariant {e(invariant)}.</p>{notes}
<h2>Funnel</h2>{_funnel(data)}
<h2>Benchmark contamination and personal data</h2>{_hygiene(data)}
<h2>Scores</h2>{_scores(data)}
<h2>Scoring cascade</h2>{_cascade(data)}
<h2>Revisions</h2>{_revisions(data)}
<h2>Gates</h2>{_gates(data)}
<h2>Last nights</h2>{_trend(data)}
<p class="meta">Generated {_when(data.generated_at)} by <code>curate report</code>.</p>
</main></body></html>
"""


def write_report(
    lake: Lake, out: str | Path, run_id: str | None = None, constitution: Constitution | None = None
) -> tuple[Path, ReportData]:
    data = collect(lake, run_id, constitution)
    path = Path(out)
    path.write_text(render(data), encoding="utf-8")
    return path, data


def log_report(lake: Lake, summary: RunSummary, constitution: Constitution, tracking: Any, progress: Progress) -> None:
    """Attach `report.html` to a successful run's MLflow run. A report is a convenience: when it fails the run
    has still succeeded, so the failure is a warning and a note, never an exception."""
    if summary.status != RunStatus.SUCCESS or not summary.mlflow_run_id or not tracking.enabled:
        return
    try:
        with progress.stage("report: report.html to MLflow"), tempfile.TemporaryDirectory() as tmp:
            import mlflow

            from pipelines.core.tracking import tracking_uri

            path, _ = write_report(lake, Path(tmp) / "report.html", summary.run_id, constitution)
            client = mlflow.MlflowClient(tracking_uri=tracking_uri(lake.state_dir, tracking, create=False))
            client.log_artifact(summary.mlflow_run_id, str(path))
    except Exception as exc:
        message = f"the run's HTML report was not logged: {type(exc).__name__}: {exc}"
        logger.warning(message)
        summary.notes["report"] = message
