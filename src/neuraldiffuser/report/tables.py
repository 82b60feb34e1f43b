"""HTML tables of the report: our rows, published rows for context, unavailable-metric footnotes."""

from __future__ import annotations

from html import escape

import numpy as np

from ..evaluation.files import is_unavailable
from ..evaluation.published import load_published
from ..evaluation.registry import BRAIN_PREFIX, EMBEDDED_TABLE, METRICS, PAPER_TABLE, spec_of
from .figures import format_value

SHORT = {"AlexNet(2)": "Alex(2)", "AlexNet(5)": "Alex(5)", "InceptionV3": "Incep", "EffNet-B": "EffNet-B", "mini-CLIP 2-way": "mini-CLIP",
         "EffNet-Lite0 2-way": "Lite0", "mini-CLIP dist": "mini-CLIP", "EffNet-Lite0 dist": "Lite0", "Repeat SSIM": "Repeat SSIM",
         "Brain corr. all": "all voxels"}


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
    brain = [k for k in present if k.startswith(BRAIN_PREFIX) and k.endswith(" all")] or [k for k in present if k == BRAIN_PREFIX.strip()]
    return paper, embedded, brain


def header(name: str) -> str:
    spec = spec_of(name)
    arrow = "↑" if spec.higher_is_better else "↓"
    return f'<th title="{escape(spec.description)}">{escape(SHORT.get(name, name))} {arrow}</th>'


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
    flags = "" if entry.row.get("complete", True) else '<span class="badge warn" title="the reconstruct run had not finished">incomplete</span>'
    return f'<td class="l"><b>{escape(entry.method)}</b> <span class="sub">{escape(entry.setting)}</span>{flags}</td><td>{entry.row["n_images"]}×{entry.row["repeats"]}</td>'


def _table(entries, cols: list[str], notes: Footnotes, groups: str = "", extra_rows: list[str] | None = None) -> str:
    head = f'<thead>{groups}<tr><th class="l">method · setting</th><th>N×R</th>{"".join(header(c) for c in cols)}</tr></thead>'
    best = best_values(entries, cols)
    body = [f"<tr>{label_cell(e)}{''.join(value_cell(c, e.row['values'].get(c), notes, best.get(c)) for c in cols)}</tr>" for e in entries]
    return f'<div class="table-wrap"><table class="metrics">{head}<tbody>{"".join(body + (extra_rows or []))}</tbody></table></div>'


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
    groups = "".join(f'<th colspan="{len(g)}">{t}</th>' for g, t in ((embedded, "Embedded scale (small networks)"), (brain, "Brain")) if g)
    return _table(entries, embedded + brain, notes, groups=f'<tr class="groups"><th></th><th></th>{groups}</tr>')


def mean_table(entries, notes: Footnotes) -> str:
    """The 'mean' policy: every metric averaged over repeats, with the SD across repeats (computed columns only)."""
    rows = [e for e in entries if e.mean is not None]
    if not rows:
        return ""
    paper, embedded, brain = columns(rows)
    cols = [c for c in paper + embedded + brain if any(isinstance(e.mean["values"].get(c), (int, float)) for e in rows)]
    head = f'<thead><tr><th class="l">method · setting</th><th>N×R</th>{"".join(header(c) for c in cols)}</tr></thead>'
    body = []
    for e in rows:
        sd = e.mean.get("per_repeat_std", {})
        cells = "".join(value_cell(c, e.mean["values"].get(c), notes, sd=sd.get(c)) for c in cols)
        body.append(f"<tr>{label_cell(e)}{cells}</tr>")
    return f'<div class="table-wrap"><table class="metrics">{head}<tbody>{"".join(body)}</tbody></table></div>'


def published_rows(cols: list[str]) -> list[str]:
    out = []
    for n, table in enumerate(load_published(), start=1):
        out.append(f'<tr class="divider"><td colspan="{len(cols) + 2}">published · {escape(table["title"])} <sup><a href="#src-{n}">[{n}]</a></sup></td></tr>')
        for row in table["rows"]:
            unconf = set(row.get("unconfirmed", []))
            cells = []
            for c in cols:
                v = row["values"].get(c)
                if v is None:
                    cells.append('<td class="na">—</td>')
                else:
                    mark = '<span title="unconfirmed against a primary source">*</span>' if c in unconf else ""
                    cells.append(f"<td>{format_value(c, v)}{mark}</td>")
            note = f' title="{escape(row["note"])}"' if row.get("note") else ""
            out.append(f'<tr class="published"><td class="l"{note}>{escape(row["method"])}<span class="badge pub">published</span></td><td class="sub">{escape(table["subjects"])}</td>{"".join(cells)}</tr>')
    return out


def sources_list() -> str:
    items = []
    for n, table in enumerate(load_published(), start=1):
        items.append(f'<li id="src-{n}"><b>{escape(table["title"])}</b>. {escape(table["source"])}. <span class="sub">{escape(table.get("protocol", ""))}</span></li>')
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
        rows.append(f"<dt>{escape(n)} {'↑' if spec.higher_is_better else '↓'}{scale}</dt><dd>{escape(spec.description)}</dd>")
    return f'<dl class="defs">{"".join(rows)}</dl>'
