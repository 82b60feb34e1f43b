#!/usr/bin/env python3
"""Render a report.html in headless Chromium and save a full-page screenshot (plus tiles to inspect).

    python scripts/render_report.py runs/demo/report.html --out runs/demo/report.png

Chromium runs offline and isolated: no GPU, no sandbox (containers), no first-run, no background
networking, no component updates, no sync, and a fresh throw-away profile. The page is captured in
a tall window, then the empty bottom is trimmed; ``--tiles`` also writes window-sized crops
(report_01.png, ...) that are easier to look at. Install Chromium with ``apt-get install chromium``.
The test suite does not need this script (CI may have no browser).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--disable-extensions",
    "--mute-audio",
]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("error: no Chromium found — install it with `apt-get install -y chromium` (Debian) and retry")


def screenshot(html: Path, out: Path, width: int, height: int, timeout: int) -> None:
    with tempfile.TemporaryDirectory(prefix="nd-chromium-") as profile:
        cmd = [
            find_chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=4000",
            f"--screenshot={out}",
            html.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.is_file():
        sys.exit(f"error: chromium failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def trim_bottom(path: Path, margin: int = 24) -> tuple[int, int]:
    """Cut the uniform background below the page's last content; return the new size."""
    import numpy as np
    from PIL import Image

    im = np.asarray(Image.open(path).convert("RGB")).astype(int)
    bg = im[-1, 0]
    rows = np.nonzero(np.abs(im - bg).sum(axis=(1, 2)) > 0)[0]
    bottom = min(im.shape[0], int(rows[-1]) + margin) if len(rows) else im.shape[0]
    Image.fromarray(im[:bottom].astype("uint8")).save(path)
    return im.shape[1], bottom


def tiles(path: Path, height: int) -> list[Path]:
    from PIL import Image

    im = Image.open(path)
    out = []
    for k, top in enumerate(range(0, im.height, height), start=1):
        p = path.with_name(f"{path.stem}_{k:02d}{path.suffix}")
        im.crop((0, top, im.width, min(im.height, top + height))).save(p)
        out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="PNG to write (default: next to the HTML)")
    ap.add_argument("--width", type=int, default=1360)
    ap.add_argument("--height", type=int, default=12000, help="window height; must exceed the page height")
    ap.add_argument("--tiles", type=int, default=0, metavar="H", help="also write crops H pixels tall")
    ap.add_argument("--timeout", type=int, default=120)
    args = ap.parse_args(argv)
    if not args.html.is_file():
        sys.exit(f"error: {args.html} not found")
    out = args.out or args.html.with_suffix(".png")
    screenshot(args.html, out, args.width, args.height, args.timeout)
    w, h = trim_bottom(out)
    print(f"wrote {out} ({w}×{h})")
    if h >= args.height - 30:
        print(f"warning: the page may be taller than the window; rerun with --height {2 * args.height}")
    for p in tiles(out, args.tiles) if args.tiles else []:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
