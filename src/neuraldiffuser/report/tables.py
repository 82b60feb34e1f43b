"""HTML tables of the report: our rows, published rows for context, unavailable-metric footnotes."""

from __future__ import annotations

from html import escape

import numpy as np

from ..evaluation.files import is_unavailable
from ..evaluation.published import load_published
from ..evaluation.registry import BRAIN_PREFIX, EMBEDDED_TABLE, METRICS, PAPER_TABLE, spec_of
from .figures import format_value

SHORT = {
    "AlexNet(2)": "Alex(2)",
    "AlexNet(5)": "Alex(5)",
    "InceptionV3": "Incep",
    "EffNet-B": "EffNet-B",
    "mini-CLIP 2-way": "mini-CLIP",
    "EffNet-Lite0 2-way": "Lite0",
    "mini-CLIP dist": "mini-CLIP",
    "EffNet-Lite0 dist": "Lite0",
    "Repeat SSIM": "Repeat SSIM",
    "Brain corr. all": "all voxels",
}


class Footnotes:
    """Unavailable reasons, numbered once each and linked from every cell they explain."""

    def __init__(self):
        self.items: dict[str, str] = {}

    def ref(self, reason: str) -> str:
        if reason not in self.items:
            self.items[reason] = f"na-{len(self.items) + 1}"
        anchor = self.items[reason]
        return f'<sup><a href="#{anchor}" title="{escape(reason)}">{anchor[3:]}</a></sup>'


def columns(entries) -> tuple[list[str], list[str], list[str]]:
    """(paper, embedded, brain) metric columns present in the rows, in table order."""
    present = list(dict.fromkeys(k for e in entries for k in e.row["values"]))
    paper = [k for k in PAPER_TABLE if k in present]
    embedded = [k for k in EMBEDDED_TABLE if k in present]
    brain = [k for k in present if k.startswith(BRAIN_PREFIX) and k.endswith(" all")] or [
        k for k in present if k == BRAIN_PREFIX.strip()
    ]
    return paper, embedded, brain


def header(name: str, short: bool = True) -> str:
    spec = spec_of(name)
    arrow = "↑" if spec.higher_is_better else "↓"
    return (
        f'<th title="{escape(spec.description)}">{escape(SHORT.get(name, name) if short else name)} '
        f"{arrow}</th>"
    )


def best_values(entries, cols: list[str]) -> dict[str, float]:
    out = {}
    for c in cols:
        vals = [e.row["values"].get(c) for e in entries]
        nums = [v for v in vals if isinstance(v, (int, float)) and np.isfinite(v)]
        if len(nums) > 1:
            out[c] = max(nums) if spec_of(c).higher_is_better else min(nums)
    return out


def value_cell(name: str, value, notes: Footnotes, best: float | None = None, sd: float | None = None) -> str:
    if is_unavailable(value):
        return f'<td class="na">n/a{notes.ref(value["unavailable"])}</td>'
    if value is None:
        return '<td class="na">—</td>'
    text = format_value(name, value)
    if sd is not None and np.isfinite(sd):
        text += f' <span class="sub">±{format_value(name, sd).rstrip("%")}</span>'
    cls = ' class="best"' if best is not None and value == best else ""
    return f"<td{cls}>{text}</td>"


def label_cell(entry) -> str:
    flags = (
        ""
        if entry.row.get("complete", True)
        else '<span class="badge warn" title="the reconstruct run had not finished">incomplete</span>'
    )
    return (
        f'<td class="l"><b>{escape(entry.method)}</b> <span '
        f'class="sub">{escape(entry.setting)}</span>{flags}</td><td>{entry.row["n_images"]}×{entry.row["repeats"]}</td>'
    )


def _table(
    entries, cols: list[str], notes: Footnotes, groups: str = "", extra_rows: list[str] | None = None
) -> str:
    head = (
        f'<thead>{groups}<tr><th class="l">method · setting</th><th>N×R</th>'
        f"{''.join(header(c) for c in cols)}</tr></thead>"
    )
    best = best_values(entries, cols)

    def cells(e) -> str:
        return "".join(value_cell(c, e.row["values"].get(c), notes, best.get(c)) for c in cols)

    body = [f"<tr>{label_cell(e)}{cells(e)}</tr>" for e in entries]
    return (
        f'<div class="table-wrap"><table class="metrics">{head}'
        f"<tbody>{''.join(body + (extra_rows or []))}</tbody></table></div>"
    )


def paper_table(entries, notes: Footnotes) -> str:
    """The eight MindEye2 metrics for our rows, then the published rows for context."""
    paper, _, _ = columns(entries)
    cols = paper or PAPER_TABLE
    return _table(entries, cols, notes, extra_rows=published_rows(cols))


def embedded_table(entries, notes: Footnotes) -> str:
    """Embedded-scale metrics (small networks), repeat consistency and brain correlation (all voxels)."""
    _, embedded, brain = columns(entries)
    if not embedded + brain:
        return ""
    groups = "".join(
        f'<th colspan="{len(g)}">{t}</th>'
        for g, t in ((embedded, "Embedded scale (small networks)"), (brain, "Brain"))
        if g
    )
    return _table(
        entries, embedded + brain, notes, groups=f'<tr class="groups"><th></th><th></th>{groups}</tr>'
    )


def mean_table(entries, notes: Footnotes) -> str:
    """The 'mean' policy: every metric averaged over repeats, with the SD across repeats (computed columns
    only)."""
    rows = [e for e in entries if e.mean is not None]
    if not rows:
        return ""
    paper, embedded, brain = columns(rows)
    cols = [
        c
        for c in paper + embedded + brain
        if any(isinstance(e.mean["values"].get(c), (int, float)) for e in rows)
    ]
    head = (
        '<thead><tr><th class="l">method · '
        f"setting</th><th>N×R</th>{''.join(header(c) for c in cols)}</tr></thead>"
    )
    body = []
    for e in rows:
        sd = e.mean.get("per_repeat_std", {})
        cells = "".join(value_cell(c, e.mean["values"].get(c), notes, sd=sd.get(c)) for c in cols)
        body.append(f"<tr>{label_cell(e)}{cells}</tr>")
    return (
        f'<div class="table-wrap"><table class="metrics">{head}<tbody>{"".join(body)}</tbody></table></div>'
    )


def signed(name: str, value: float) -> str:
    """A difference with its sign, in the metric's units (2-way in percentage points)."""
    text = format_value(name, abs(value))
    return ("−" if value < 0 else "+") + (text[:-1] + " pt" if text.endswith("%") else text)


def difference_cell(name: str, diff: dict | None) -> str:
    """Mean paired difference ± the 95% half-width; coloured when the interval excludes 0."""
    if diff is None:
        return '<td class="na">—</td>'
    half = diff["ci95"][1] - diff["mean"]
    better = diff["mean"] > 0 if spec_of(name).higher_is_better else diff["mean"] < 0
    cls = (
        ""
        if not np.isfinite(half) or diff["ci95"][0] <= 0 <= diff["ci95"][1]
        else (' class="up"' if better else ' class="down"')
    )
    width = format_value(name, abs(half)).rstrip("%")
    return f'<td{cls}>{signed(name, diff["mean"])} <span class="sub">±{width}</span></td>'


def comparison_table(comparisons: list[dict], against: str = "κ 0") -> str:
    """One row per guided setting: the paired difference to κ = 0 (or ``against``) of every metric both
    have."""
    cols = list(
        dict.fromkeys(
            k for c in comparisons for k in c["differences"] if k in METRICS or k.startswith(BRAIN_PREFIX)
        )
    )
    order = [k for k in PAPER_TABLE + EMBEDDED_TABLE if k in cols] + [
        k for k in cols if k not in PAPER_TABLE + EMBEDDED_TABLE
    ]
    head = (
        f'<thead><tr><th class="l">method · setting − {escape(against)}</th><th>policy</th><th>N</th>'
        f"{''.join(header(c, short=False) for c in order)}</tr></thead>"
    )
    body = []
    for c in comparisons:
        n = max((d["n"] for d in c["differences"].values()), default=0)
        cells = "".join(difference_cell(k, c["differences"].get(k)) for k in order)
        body.append(
            f'<tr><td class="l"><b>{escape(c["method"])}</b> <span '
            f'class="sub">{escape(c["setting"])}</span></td><td>{escape(c["policy"])}</td><td>{n}</td>{cells}</tr>'
        )
    return (
        f'<div class="table-wrap"><table class="metrics">{head}<tbody>{"".join(body)}</tbody></table></div>'
    )


def published_rows(cols: list[str]) -> list[str]:
    out = []
    for n, table in enumerate(load_published(), start=1):
        out.append(
            f'<tr class="divider"><td colspan="{len(cols) + 2}">published · '
            f'{escape(table["title"])} <sup><a href="#src-{n}">[{n}]</a></sup></td></tr>'
        )
        for row in table["rows"]:
            unconf = set(row.get("unconfirmed", []))
            cells = []
            for c in cols:
                v = row["values"].get(c)
                if v is None:
                    cells.append('<td class="na">—</td>')
                else:
                    mark = (
                        '<span title="unconfirmed against a primary source">*</span>' if c in unconf else ""
                    )
                    cells.append(f"<td>{format_value(c, v)}{mark}</td>")
            tip = " · ".join(
                x for x in (row.get("note"), row.get("source") and f"source: {row['source']}") if x
            )
            note = f' title="{escape(tip)}"' if tip else ""
            second = (
                '<span class="badge sec" title="quoted by another paper or a note, not read from '
                "the authors' own table\">secondary</span>"
                if row.get("secondary")
                else ""
            )
            out.append(
                f'<tr class="published"><td class="l"{note}>{escape(row["method"])}<span '
                f'class="badge pub">published</span>{second}</td><td '
                f'class="sub">{escape(table["subjects"])}</td>{"".join(cells)}</tr>'
            )
    return out


def sources_list() -> str:
    items = []
    for n, table in enumerate(load_published(), start=1):
        rows = [r for r in table["rows"] if r.get("source") and r["source"] != table["source"]]
        per_row = "".join(
            f"<li>{escape(r['method'])}: "
            f"{escape(r['source'])}{' (secondary)' if r.get('secondary') else ''}</li>"
            for r in rows
        )
        items.append(
            f'<li id="src-{n}"><b>{escape(table["title"])}</b>. {escape(table["source"])}. <span '
            f'class="sub">{escape(table.get("protocol", ""))}</span>'
            + (f"<ul>{per_row}</ul>" if per_row else "")
            + "</li>"
        )
    return f'<ol class="sources">{"".join(items)}</ol>'


def footnotes_list(notes: Footnotes) -> str:
    if not notes.items:
        return '<p class="lead">Every requested metric was computed.</p>'
    items = "".join(f'<li id="{a}"><b>[{a[3:]}]</b> {escape(r)}</li>' for r, a in notes.items.items())
    return f'<ul class="reasons">{items}</ul>'


def definitions(names: list[str]) -> str:
    rows = []
    for n in names:
        spec = METRICS.get(n)
        if spec is None:
            continue
        scale = '<span class="badge embedded">embedded scale</span>' if spec.scale == "embedded" else ""
        rows.append(
            f"<dt>{escape(n)} "
            f"{'↑' if spec.higher_is_better else '↓'}{scale}</dt><dd>{escape(spec.description)}</dd>"
        )
    return f'<dl class="defs">{"".join(rows)}</dl>'
