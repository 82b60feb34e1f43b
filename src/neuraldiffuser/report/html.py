"""The self-contained HTML report: one file, CSS inline, every figure a base64 PNG.

Sections: headline cards, the metrics table (with published rows for context), guided settings against
κ = 0 paired over the images, reconstructions
(stimulus | methods, and stimulus | repeats per method), the κ×η ablation (Fig. 5 of the paper plus
metric heatmaps) when a sweep exists, brain correlation per ROI, retrieval, unavailable metrics
with their reasons, and what every metric means.
"""

from __future__ import annotations

import base64
import datetime
from html import escape
from pathlib import Path

import numpy as np

from ..evaluation.files import is_unavailable
from ..evaluation.registry import BRAIN_PREFIX, METRICS, spec_of
from . import figures, tables
from .collect import Entry, ReportData, collect

CSS = (Path(__file__).parent / "templates" / "report.css").read_text()
HEADLINE = [
    "CLIP",
    "AlexNet(2)",
    "EffNet-Lite0 2-way",
    "mini-CLIP 2-way",
    "PixCorr",
    "SSIM",
    "Brain corr. all",
]
KPI_LABEL = {"EffNet-Lite0 2-way": "Lite0 2-way", "Brain corr. all": "brain corr."}
TWO_WAY_PRIORITY = ["CLIP", "EffNet-Lite0 2-way", "mini-CLIP 2-way", "InceptionV3", "AlexNet(2)"]


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def figure(png: bytes, alt: str, caption: str) -> str:
    return f"<figure>{img(png, alt)}<figcaption>{caption}</figcaption></figure>"


def number(v) -> bool:
    return isinstance(v, (int, float)) and np.isfinite(v)


# ------------------------------------------------------------------ header


def hero(data: ReportData, title: str) -> str:
    truths = sorted({d.get("truth", "?") for d in data.docs})
    subjects = sorted({s for d in data.docs for s in d.get("subjects", [])})
    n_set = len(data.entries)
    meta = (
        f"dataset <code>{escape(', '.join(truths))}</code> · subject "
        f"{escape(', '.join(subjects) or '—')} · {len(data.methods())} method(s), {n_set} setting(s)"
    )
    cards = []
    for e in data.headline_entries():
        m = e.method
        kpis = [k for k in HEADLINE if number(e.row["values"].get(k))][:3]
        kp = "".join(
            '<div class="kpi"><div '
            f'class="v">{figures.format_value(k, e.row["values"][k])}</div><div '
            f'class="k">{escape(KPI_LABEL.get(k, k))}</div></div>'
            for k in kpis
        )
        shows = (
            f"{escape(data.setting_words(e))} · <code>{escape(e.setting)}</code>"
            if e.sweep
            else escape(e.setting)
        )
        cards.append(
            f'<div class="card"><div class="name">{escape(m)}</div><div '
            f'class="setting">{shows} · {e.row["n_images"]} images × {e.row["repeats"]} '
            f'repeats · {escape(e.row["policy"])}</div><div class="kpis">{kp}</div></div>'
        )
    return (
        '<header class="hero"><div class="wrap"><div class="eyebrow">neuraldiffuser · '
        f'evaluation report</div><h1>{escape(title)}</h1><p class="meta">{meta}</p><div '
        f'class="cards">{"".join(cards)}</div></div></header>'
    )


# ------------------------------------------------------------------ sections


def metrics_section(data: ReportData, notes: tables.Footnotes) -> str:
    policy = data.entries[0].row["policy"] if data.entries else "repeat0"
    lead = (
        "MindEye2's evaluation protocol (both image sets resized to 256², PixCorr/SSIM at "
        "425², 2-way identification and correlation distance on the named networks). One "
        f"reconstruction per image (<code>{escape(policy)}</code>), as published tables score; "
        "the best value of each column is highlighted. Hover a header for its definition."
    )
    insilico = any(Path(d.get("truth", "")).joinpath("simulator").is_dir() for d in data.docs)
    call = (
        (
            '<div class="callout">These numbers come from the <b>in-silico</b> '
            "dataset and the mini zoo. The published rows are NSD results, "
            "shown for context only: they are not comparable. Embedded-scale "
            "metrics use small networks and are labelled as such.</div>"
        )
        if insilico
        else '<div class="callout">Published rows are shown for context, from the sources '
        "listed below; cells marked * are unconfirmed against a primary source.</div>"
    )
    paper = f"<h3>MindEye2 protocol</h3>{tables.paper_table(data.entries, notes)}"
    emb = tables.embedded_table(data.entries, notes)
    emb_html = (
        (
            '<h3>Embedded scale and brain correlation</h3><p class="lead">Two-way '
            "identification and correlation distance on networks "
            "that ship with the package (the mini zoo's CLIP, EfficientNet-Lite0 "
            "with real ImageNet weights): not the paper's metrics.</p>" + emb
        )
        if emb
        else ""
    )
    mean = tables.mean_table(data.entries, notes)
    mean_html = (
        '<h3>Mean over repeats</h3><p class="lead">Each metric computed per '
        f"repeat over all images, then averaged (± SD across repeats).</p>{mean}"
        if mean
        else ""
    )
    return (
        '<section id="metrics"><h2>Metrics</h2><p '
        f'class="lead">{lead}</p>{call}{paper}{emb_html}{mean_html}</section>'
    )


def guidance_section(data: ReportData) -> str:
    """Guided settings against κ = 0, paired over the same images (empty when no method has both)."""
    from ..evaluation.compare import against_unguided

    rows = [e.row for e in data.entries] + [e.mean for e in data.entries if e.mean is not None]
    comparisons = against_unguided(rows)
    given = [
        {**c, "setting": f"{c['setting']} − {c['baseline']}"}
        for d in data.docs
        for c in d.get("comparisons", [])
    ]
    if given and not comparisons:  # evaluate-images: the given folders against the first (or --baseline)
        lead = (
            "Each folder minus the baseline folder, image by image: the mean "
            "difference ± the half-width of its 95% interval (normal, sample SD of "
            "the differences / √N). Green: better beyond that interval; red: worse."
        )
        return (
            '<section id="guidance"><h2>Paired comparisons</h2><p '
            f'class="lead">{lead}</p>{tables.comparison_table(given, against="baseline")}</section>'
        )
    if not comparisons:
        return ""
    lead = (
        "Each guided setting minus the same method's κ = 0 setting, image by image: the mean "
        "difference ± the half-width of its 95% interval (normal, sample SD of the differences / "
        "√N). Green: better beyond that interval; red: worse. <code>repeat0</code> compares one "
        "reconstruction per image, <code>mean</code> the per-image values averaged over repeats."
    )
    return (
        '<section id="guidance"><h2>Guidance against κ = 0</h2><p '
        f'class="lead">{lead}</p>{tables.comparison_table(comparisons)}</section>'
    )


def shown_images(entries: list[Entry], k: int) -> list[int]:
    common = None
    for e in entries:
        imgs = [int(i) for i in e.row["images"]]
        common = imgs if common is None else [i for i in common if i in set(imgs)]
    return (common or [])[:k]


def reconstructions_section(data: ReportData, k: int) -> str:
    mains = [e for e in data.headline_entries() if e.recon is not None]
    if not mains:
        return (
            '<section id="reconstructions"><h2>Reconstructions</h2><p class="lead">The '
            "reconstruction folders were not found next to the metric files.</p></section>"
        )
    images = shown_images(mains, k)
    parts = []
    if images:
        cells = [[data.stimulus(mains[0], i) for i in images]] + [
            [e.recon.load([i], 0)[0] for i in images] for e in mains
        ]
        rows = ["stimulus"] + [f"{e.method}\n{e.setting}" for e in mains]
        png = figures.image_grid(cells, [f"#{i}" for i in images], rows, tile=132)
        shown = "; ".join(f"{escape(e.method)}: {escape(data.setting_words(e))}" for e in mains)
        parts.append(
            figure(
                png,
                "stimulus and reconstructions",
                "Top row: stimuli. Below: the first reconstruction "
                f"(repeat 0) of each method's main setting ({shown}).",
            )
        )
    grids = []
    for e in mains:
        imgs = shown_images([e], k)
        cells = [[data.stimulus(e, i) for i in imgs]] + [
            [e.recon.load([i], r)[0] for i in imgs] for r in range(e.recon.repeats)
        ]
        png = figures.image_grid(
            cells,
            [f"#{i}" for i in imgs],
            ["stimulus"] + [f"repeat {r}" for r in range(e.recon.repeats)],
            tile=92,
        )
        rs = e.row["values"].get("Repeat SSIM")
        cons = f" Repeat consistency (mean pairwise SSIM) {rs:.3f}." if number(rs) else ""
        grids.append(
            figure(
                png,
                f"{e.method} repeats",
                f"<b>{escape(e.method)}</b> · {escape(data.setting_words(e))}: "
                f"every repeat from the same decoded targets.{cons}",
            )
        )
    parts.append(f'<h3>Repeats</h3><div class="grid2">{"".join(grids)}</div>')
    return (
        '<section id="reconstructions"><h2>Reconstructions</h2><p class="lead">Stimulus '
        f"| reconstructions | repeats.</p>{''.join(parts)}</section>"
    )


def heatmap_metrics(entries: list[Entry]) -> list[str]:
    avail = lambda k: any(number(e.row["values"].get(k)) for e in entries)  # noqa: E731
    chosen = [k for k in ("PixCorr", "SSIM") if avail(k)]
    chosen += [k for k in TWO_WAY_PRIORITY if avail(k)][:1]
    chosen += [k for k in ("Brain corr. all",) if avail(k)]
    return chosen


def ablation_section(data: ReportData, k: int) -> str:
    blocks = []
    for m in data.methods():
        sweep = [e for e in data.of(m) if e.sweep is not None]
        guided = [e for e in sweep if e.sweep[0] > 0]
        if len(guided) < 2:
            continue
        kappas = sorted({e.sweep[0] for e in guided})
        etas = sorted({e.sweep[1] for e in guided})
        by = {e.sweep: e for e in guided}
        unguided = next((e for e in sweep if e.sweep[0] == 0), None)
        names = heatmap_metrics(sweep)
        if names:
            values = {
                n: {s: e.row["values"][n] for s, e in by.items() if number(e.row["values"].get(n))}
                for n in names
            }
            higher = {n: spec_of(n).higher_is_better for n in names}
            blocks.append(
                figure(
                    figures.sweep_heatmaps(kappas, etas, values, higher),
                    "kappa eta heatmaps",
                    f"<b>{escape(m)}</b>: metrics over the guidance "
                    "scale κ and the guided fraction η (repeat 0).",
                )
            )
        with_images = [e for e in guided if e.recon is not None]
        if with_images:
            figs = []
            for i in shown_images(with_images, min(k, 2)):

                def cell(kappa, eta, i=i, by=by):
                    e = by.get((kappa, eta))
                    return (
                        e.recon.load([i], 0)[0]
                        if e is not None and e.recon is not None and i in e.row["images"]
                        else None
                    )

                ung = (
                    unguided.recon.load([i], 0)[0]
                    if unguided is not None and unguided.recon is not None and i in unguided.row["images"]
                    else None
                )
                png = figures.sweep_grid(kappas, etas, cell, data.stimulus(with_images[0], i), ung)
                figs.append(
                    figure(
                        png,
                        f"ablation image {i}",
                        f"Test image #{i}: rows κ, columns η (as in the paper's Fig. "
                        "5); left, the stimulus and the unguided sample (κ = 0).",
                    )
                )
            blocks.append(f'<div class="grid2">{"".join(figs)}</div>')
    if not blocks:
        return ""
    lead = (
        "Primary-visual-feature guidance swept over κ (scale) and η (fraction of steps "
        "guided). Large κ adds colour and texture artefacts; small κ barely changes the sample."
    )
    return (
        '<section id="ablation"><h2>Guidance ablation (κ × η)</h2><p '
        f'class="lead">{lead}</p>{"".join(blocks)}</section>'
    )


def brain_section(data: ReportData) -> str:
    mains = data.headline_entries()
    keys = list(
        dict.fromkeys(
            k for e in mains for k, v in e.row["values"].items() if k.startswith(BRAIN_PREFIX) and number(v)
        )
    )
    if not keys:
        reasons = {
            e.row["values"].get(BRAIN_PREFIX.strip(), {}).get("unavailable")
            for e in mains
            if is_unavailable(e.row["values"].get(BRAIN_PREFIX.strip()))
        }
        if not reasons:
            return ""
        return (
            '<section id="brain"><h2>Brain correlation</h2><p class="lead">Unavailable: '
            f"{escape('; '.join(sorted(r for r in reasons if r)))}</p></section>"
        )
    rois = [k[len(BRAIN_PREFIX) :] for k in keys]
    series = {
        f"{e.method} ({data.setting_words(e)})": {
            k[len(BRAIN_PREFIX) :]: e.row["values"][k] for k in keys if number(e.row["values"].get(k))
        }
        for e in mains
    }
    ref = data.references[0]["values"] if data.references else None
    ceiling = {k[len(BRAIN_PREFIX) :]: v for k, v in ref.items()} if ref else None
    png = figures.roi_bars(series, rois, ceiling)
    lead = (
        "Each reconstruction goes through the encoding model; its predicted betas are correlated "
        "(Pearson r across the ROI's voxels) with the subject's measured betas for that image, "
        "averaged over its test repeats, then averaged over images. The marker shows the same "
        "score for the stimulus itself: what a perfect reconstruction would reach."
    )
    head = "".join(f"<th>{escape(label)}</th>" for label in series) + (
        "<th>stimulus (ceiling)</th>" if ceiling else ""
    )
    body = "".join(
        f'<tr><td class="l">{escape(r)}</td>'
        + "".join(
            f"<td>{figures.format_value('Brain corr.', v.get(r, float('nan')))}</td>" for v in series.values()
        )
        + (f"<td>{figures.format_value('Brain corr.', ceiling.get(r, float('nan')))}</td>" if ceiling else "")
        + "</tr>"
        for r in rois
    )
    table = (
        '<div class="table-wrap"><table class="metrics"><thead><tr><th '
        f'class="l">ROI</th>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )
    shown = "; ".join(f"{escape(e.method)}: {escape(data.setting_words(e))}" for e in mains)
    fig = figure(
        png,
        "brain correlation per ROI",
        "Brain correlation per ROI, main setting of each method "
        f"({shown}); 'all' uses every voxel (MindEye2's nsd_general).",
    )
    return (
        '<section id="brain"><h2>Brain correlation per '
        f'ROI</h2><p class="lead">{lead}</p>{fig}{table}</section>'
    )


def retrieval_section(data: ReportData) -> str:
    if not data.retrieval:
        return ""
    rows = []
    for r in data.retrieval:
        f_ci, b_ci = r["forward_ci95"], r["backward_ci95"]
        rows.append(
            f'<tr><td class="l"><code>{escape(Path(r["decoded"]).name)}</code> '
            f"· {escape(r['key'])}</td><td>{100 * r['forward']:.1f}% <span "
            f'class="sub">[{100 * f_ci[0]:.1f}, '
            f"{100 * f_ci[1]:.1f}]</span></td><td>{100 * r['backward']:.1f}% "
            f'<span class="sub">[{100 * b_ci[0]:.1f}, '
            f"{100 * b_ci[1]:.1f}]</span></td><td>{100 / r['subset']:.2f}%</td><td>{r['draws']} "
            f"× {r['subset']}</td></tr>"
        )
    head = (
        '<thead><tr><th class="l">embeddings</th><th>forward (brain → image)</th><th>backward '
        "(image → brain)</th><th>chance</th><th>draws × subset</th></tr></thead>"
    )
    lead = (
        "Top-1 retrieval on cosine similarity of flattened, "
        "L2-normalised embeddings, over random subsets; mean and 95% CI."
    )
    return (
        '<section id="retrieval"><h2>Retrieval</h2><p '
        f'class="lead">{lead}</p><div class="table-wrap"><table '
        f'class="metrics">{head}<tbody>{"".join(rows)}</tbody></table></div></section>'
    )


def about_section(data: ReportData, notes: tables.Footnotes) -> str:
    names = list(dict.fromkeys(n for d in data.docs for n in d.get("metrics", {})))
    proto = data.docs[0].get("protocol", {}) if data.docs else {}
    aa = "on" if proto.get("antialias") else "off (torchvision 0.16 tensor default, as MindEye2 ran)"
    return (
        '<section id="unavailable"><h2>Unavailable metrics</h2><p class="lead">'
        "Metrics whose weights are not on this machine are reported, never computed on random weights. "
        f"What was looked for, where, and how to enable each:</p>{tables.footnotes_list(notes)}</section>"
        '<section id="about"><h2>About the metrics</h2><p class="lead">'
        f"Resize antialiasing {escape(aa)}; table repeat {escape(str(proto.get('table_repeat', 0)))}; "
        "details in <code>docs/evaluation.md</code>.</p>"
        f"{tables.definitions([n for n in names if n in METRICS])}"
        f"<h3>Sources of published rows</h3>{tables.sources_list()}</section>"
    )


# ------------------------------------------------------------------ page


def build_html(data: ReportData, title: str = "Reconstruction report", images: int = 6) -> str:
    notes = tables.Footnotes()
    body = [
        metrics_section(data, notes),
        guidance_section(data),
        reconstructions_section(data, images),
        ablation_section(data, images),
        brain_section(data),
        retrieval_section(data),
        about_section(data, notes),
    ]
    toc = [
        (s, t)
        for s, t in (
            ("metrics", "Metrics"),
            ("guidance", "Guidance vs κ 0"),
            ("reconstructions", "Reconstructions"),
            ("ablation", "κ × η ablation"),
            ("brain", "Brain correlation"),
            ("retrieval", "Retrieval"),
            ("unavailable", "Unavailable metrics"),
            ("about", "About"),
        )
        if f'id="{s}"' in "".join(body)
    ]
    nav = "".join(f'<a href="#{s}">{t}</a>' for s, t in toc)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta '
        'name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{hero(data, title)}<nav "
        f'class="toc wrap">{nav}</nav>'
        f'<main class="wrap">{"".join(body)}</main><footer '
        f'class="wrap">Generated by neuraldiffuser on {stamp} from '
        f"{escape(', '.join(d['_path'] for d in data.docs))}.</footer></body></html>"
    )


def write_report(run_dirs, out: str | Path, title: str = "Reconstruction report", images: int = 6) -> Path:
    """Collect the runs' metrics and reconstructions and write one self-contained HTML file."""
    from ..utils.io import atomic_write_text

    data = collect(run_dirs)
    out = Path(out)
    atomic_write_text(out, build_html(data, title, images))
    return out
