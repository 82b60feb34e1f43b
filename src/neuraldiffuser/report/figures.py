"""Report figures, drawn with matplotlib's Agg backend and returned as PNG bytes.

Image grids are composed as one mosaic (crisp pixels, one ``imshow``) and labelled with axis ticks,
which stays fast and sharp for small 64-px stimuli and 512-px reconstructions alike.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

PALETTE = [
    "#3b6fb6",
    "#e07b39",
    "#3a9d6a",
    "#c0424b",
    "#8a64b5",
    "#8c6d46",
    "#d16fae",
    "#6f7a86",
    "#b3a12a",
    "#2aa3b3",
]
INK = "#1f2933"
BLANK = ""  # a cell left white on purpose
MUTED = "#6b7785"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 10,
            "axes.edgecolor": "#c9d1d9",
            "axes.labelcolor": INK,
            "xtick.color": MUTED,
            "ytick.color": MUTED,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
            "axes.titlesize": 11,
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
        }
    )
    return plt


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=0.08)
    _plt().close(fig)
    return buf.getvalue()


def fit(image: np.ndarray | None, size: int) -> np.ndarray:
    """An image as a (size, size, 3) tile: nearest-neighbour when enlarging, LANCZOS when shrinking."""
    from PIL import Image

    if image is None:  # a missing image: light grey
        return np.full((size, size, 3), 242, np.uint8)
    if isinstance(image, str):  # BLANK: layout space
        return np.full((size, size, 3), 255, np.uint8)
    im = Image.fromarray(np.asarray(image, np.uint8))
    resample = Image.NEAREST if im.width <= size and size % im.width == 0 else Image.LANCZOS
    return np.asarray(im.resize((size, size), resample))


def mosaic(cells: Sequence[Sequence[np.ndarray | None]], tile: int, gap: int = 4) -> np.ndarray:
    rows, cols = len(cells), max(len(r) for r in cells)
    out = np.full((rows * (tile + gap) - gap, cols * (tile + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(cells):
        for j, im in enumerate(row):
            out[i * (tile + gap) : i * (tile + gap) + tile, j * (tile + gap) : j * (tile + gap) + tile] = fit(
                im, tile
            )
    return out


def image_grid(
    cells,
    col_labels: Sequence[str],
    row_labels: Sequence[str] = (),
    tile: int = 128,
    title: str | None = None,
) -> bytes:
    """A labelled grid of images (rows × columns); ``None`` cells are left blank."""
    plt = _plt()
    gap = 4
    grid = mosaic(cells, tile, gap)
    h, w = grid.shape[:2]
    dpi = 100
    fig, ax = plt.subplots(
        figsize=(w / dpi + (1.3 if row_labels else 0.2), h / dpi + 0.5 + (0.3 if title else 0)), dpi=dpi
    )
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks(
        [j * (tile + gap) + tile / 2 for j in range(len(col_labels))], col_labels, fontsize=9, color=INK
    )
    ax.xaxis.tick_top()
    ax.set_yticks(
        [i * (tile + gap) + tile / 2 for i in range(len(row_labels))], row_labels, fontsize=9, color=INK
    )
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, pad=22, loc="left", color=INK)
    return to_png(fig)


def sweep_grid(
    kappas: Sequence[float],
    etas: Sequence[float],
    cell,
    stimulus: np.ndarray,
    unguided: np.ndarray | None,
    tile: int = 104,
) -> bytes:
    """Fig.-5-style ablation: rows κ, columns η; the stimulus and the unguided sample (κ = 0) top left."""
    lead = [stimulus, unguided if unguided is not None else BLANK]
    cells = [(lead if i == 0 else [BLANK, BLANK]) + [cell(k, e) for e in etas] for i, k in enumerate(kappas)]
    cols = ["stimulus", "w/o guidance" if unguided is not None else ""] + [f"η = {e:g}" for e in etas]
    rows = [f"κ = {k:.0e}".replace("e+0", "e") for k in kappas]
    plt = _plt()
    gap = 4
    grid = mosaic(cells, tile, gap)
    h, w = grid.shape[:2]
    fig, ax = plt.subplots(figsize=(w / 100 + 1.0, h / 100 + 0.5), dpi=100)
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([j * (tile + gap) + tile / 2 for j in range(len(cols))], cols, fontsize=9, color=INK)
    ax.xaxis.tick_top()
    ax.set_yticks([i * (tile + gap) + tile / 2 for i in range(len(rows))], rows, fontsize=9, color=INK)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.axvline(2 * (tile + gap) - gap / 2 - 0.5, color="#9aa5b1", lw=1.2)
    return to_png(fig)


def sweep_heatmaps(
    kappas, etas, values: dict[str, dict[tuple[float, float], float]], higher: dict[str, bool]
) -> bytes:
    """One κ×η heatmap per metric, annotated; colour runs from worse (light) to better (dark)."""
    plt = _plt()
    names = list(values)
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.1 * len(names) + 0.4, 0.55 * len(kappas) + 1.5), dpi=100, squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=False):
        grid = np.array([[values[name].get((k, e), np.nan) for e in etas] for k in kappas], dtype=float)
        shown = grid if higher[name] else -grid
        ax.imshow(shown, cmap="Blues", aspect="auto")
        for i in range(len(kappas)):
            for j in range(len(etas)):
                if np.isfinite(grid[i, j]):
                    frac = (shown[i, j] - np.nanmin(shown)) / (np.nanmax(shown) - np.nanmin(shown) + 1e-12)
                    ax.text(
                        j,
                        i,
                        format_value(name, grid[i, j]),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if frac > 0.6 else INK,
                    )
        ax.set_xticks(range(len(etas)), [f"{e:g}" for e in etas])
        ax.set_yticks(range(len(kappas)), [f"{k:.0e}".replace("e+0", "e") for k in kappas])
        ax.set_xlabel("η (fraction of guided steps)")
        ax.set_ylabel("κ (guidance scale)")
        ax.set_title(f"{name} {'↑' if higher[name] else '↓'}", loc="left")
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.tight_layout()
    return to_png(fig)


def roi_bars(
    series: dict[str, dict[str, float]], rois: Sequence[str], ceiling: dict[str, float] | None = None
) -> bytes:
    """Grouped bars: brain correlation per ROI for each method; the stimulus ceiling as a marker."""
    plt = _plt()
    n = max(len(series), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(min(11.5, max(7.5, 1.2 * len(rois) * (1 + 0.3 * n))), 3.6), dpi=100)
    x = np.arange(len(rois))
    for i, (label, vals) in enumerate(series.items()):
        ys = [vals.get(r, np.nan) for r in rois]
        ax.bar(x - 0.4 + width * (i + 0.5), ys, width * 0.92, label=label, color=PALETTE[i % len(PALETTE)])
    if ceiling:
        ax.hlines(
            [ceiling.get(r, np.nan) for r in rois],
            x - 0.42,
            x + 0.42,
            colors=INK,
            linewidths=2,
            zorder=4,
            label="stimulus (encoder ceiling)",
        )
    ax.set_xticks(x, rois)
    ax.set_ylabel("Pearson r (predicted vs measured betas)")
    ax.axhline(0, color="#c9d1d9", lw=1)
    ax.grid(axis="y", color="#eef1f4", lw=1)
    ax.set_axisbelow(True)
    ax.legend(
        frameon=False, fontsize=8.5, ncols=min(4, n + 1), loc="upper center", bbox_to_anchor=(0.5, -0.12)
    )
    fig.tight_layout()
    return to_png(fig)


def format_value(name: str, value: float) -> str:
    """Two-way and retrieval scores as percentages, the rest with three decimals (as tables print them)."""
    from ..evaluation.registry import METRICS

    if value is None or not np.isfinite(value):
        return "nan"
    spec = METRICS.get(name)
    if spec is not None and spec.kind == "two_way":
        return f"{100 * value:.1f}%"
    return f"{value:.3f}"
