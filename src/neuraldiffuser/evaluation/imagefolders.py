"""Reconstructions and stimuli that another program wrote: plain image folders, side-by-side strips, arrays.

``evaluate-images`` scores folders that have no ``manifest.json``. Two layouts (docs/evaluation.md,
"Scoring anyone's reconstructions"):

* **files** — one image per test image and repeat, named by the test image's index:
  ``00012.png`` (repeat 0) or ``00012_r2.png`` (repeat 2, counted from 0). Every image must have the
  same repeats, and a folder uses one form only (``00012.png`` beside ``00012_r0.png`` is ambiguous).
* **strips** (``--strips K``) — one file per test image (``00012.png``), K equal tiles side by side;
  tile ``truth_tile`` (default 0) is the stimulus and the others are the repeats, left to right.

Folders are checked once when scanned (names, counts, one size per folder, a width that K divides),
reading only image headers, so a long evaluation never fails half way on a bad file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
NAME = re.compile(r"^(?P<index>\d+)(?:_r(?P<repeat>\d+))?$")
FIX_NAMES = (
    "name files <index>.png or <index>_r<repeat>.png (e.g. 00012.png, 00012_r2.png); see docs/evaluation.md"
)


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) of any image file PIL reads; a one-line error otherwise."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read image ({exc})", where=str(path), fix="replace or remove the file"
        ) from None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read image ({exc})", where=str(path), fix="replace or remove the file"
        ) from None


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError("folder not found", where=str(folder), fix="give a folder of reconstruction images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise DataError(f"no image files ({', '.join(EXTENSIONS)})", where=str(folder), fix=FIX_NAMES)
    return files


def _one_size(files: list[Path], folder: Path) -> tuple[int, int]:
    sizes: dict[tuple[int, int], Path] = {}
    for f in files:
        sizes.setdefault(image_size(f), f)
        if len(sizes) > 1:
            (a, fa), (b, fb) = list(sizes.items())[:2]
            raise DataError(
                f"mixed image sizes: {fa.name} is {a[0]}x{a[1]} but {fb.name} is {b[0]}x{b[1]}",
                where=str(folder),
                fix="every file of a folder must have the same size (resolutions may differ between folders)",
            )
    return next(iter(sizes))


def parse_files(folder: Path) -> dict[int, list[Path]]:
    """{image index: [file of repeat 0, 1, ...]} of a files-layout folder, validated."""
    found: dict[int, dict[int, Path]] = {}
    plain, numbered = [], []
    for f in _image_files(folder):
        m = NAME.match(f.stem)
        if m is None:
            raise DataError(
                f"file name '{f.name}' is not <index>[_r<repeat>]", where=str(folder), fix=FIX_NAMES
            )
        index, rep = int(m["index"]), m["repeat"]
        (numbered if rep is not None else plain).append(f)
        r = int(rep) if rep is not None else 0
        if r in found.setdefault(index, {}):
            raise DataError(
                f"image {index} repeat {r} appears twice ({found[index][r].name}, {f.name})",
                where=str(folder),
                fix=FIX_NAMES,
            )
        found[index][r] = f
    if plain and numbered:
        raise DataError(
            f"mixed naming: '{plain[0].name}' and '{numbered[0].name}'",
            where=str(folder),
            fix="use either <index>.png (one repeat) or <index>_r<k>.png throughout",
        )
    out = {}
    expected = None
    for index in sorted(found):
        reps = sorted(found[index])
        if reps != list(range(len(reps))):
            raise DataError(
                f"image {index} has repeats {reps}; repeats must run 0..R-1", where=str(folder), fix=FIX_NAMES
            )
        if expected is None:
            expected = (index, len(reps))
        elif len(reps) != expected[1]:
            raise DataError(
                f"image {index} has {len(reps)} repeats but image {expected[0]} has {expected[1]}",
                where=str(folder),
                fix="every image needs the same number of repeats",
            )
        out[index] = [found[index][r] for r in reps]
    return out


def parse_strips(folder: Path) -> dict[int, Path]:
    """{image index: strip file} of a strips-layout folder (file names are the image indices)."""
    out: dict[int, Path] = {}
    for f in _image_files(folder):
        m = NAME.match(f.stem)
        if m is None or m["repeat"] is not None:
            raise DataError(
                f"strip file name '{f.name}' is not <index>.png",
                where=str(folder),
                fix="name each strip by its test image's index, e.g. 00012.png",
            )
        if int(m["index"]) in out:
            raise DataError(
                f"image {int(m['index'])} has two strips ({out[int(m['index'])].name}, {f.name})",
                where=str(folder),
            )
        out[int(m["index"])] = f
    return out


@dataclass
class ImageFolder:
    """A scanned folder; quacks like ``recon.ReconFolder`` so the evaluator scores it the same way."""

    path: Path
    files: dict[int, list[Path]]  # files layout: per image, one file per repeat; strips: one strip per image
    size: tuple[int, int]  # (width, height) of a file
    strips: int | None = None
    truth_tile: int | None = 0
    method: str = "reconstructions"
    setting: str = ""
    subject: str | None = None
    images: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.images is None:
            self.images = np.array(sorted(self.files), dtype=np.int64)

    @property
    def repeats(self) -> int:
        if self.strips:
            return self.strips - (self.truth_tile is not None)
        return len(self.files[int(self.images[0])])

    @property
    def params(self) -> dict:
        return {}

    @property
    def manifest(self) -> dict:
        """What identifies this folder's contents (for the result cache): layout, names, sizes and
        times of the files."""
        stats = [
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for i in self.images for p in self.files[int(i)]
        ]
        return {
            "layout": self.layout(),
            "setting": self.setting,
            "method": self.method,
            "files": stats,
            "complete": True,
        }

    def layout(self) -> dict:
        return {
            "kind": "strips" if self.strips else "files",
            "strips": self.strips,
            "truth_tile": self.truth_tile,
            "size": list(self.size),
        }

    def sweep_point(self):
        return None

    def tile(self, strip: np.ndarray, k: int) -> np.ndarray:
        w = strip.shape[1] // self.strips
        return strip[:, k * w : (k + 1) * w]

    def repeat_tiles(self) -> list[int]:
        return [k for k in range(self.strips) if k != self.truth_tile]

    def load(self, images, repeat: int) -> np.ndarray:
        """uint8 (n, H, W, 3) reconstructions of these images for one repeat."""
        if self.strips:
            k = self.repeat_tiles()[repeat]
            return np.stack([self.tile(read_image(self.files[int(i)][0]), k) for i in images])
        return np.stack([read_image(self.files[int(i)][repeat]) for i in images])

    def load_truth(self, images) -> np.ndarray:
        """The stimulus tiles of a strips folder."""
        if not self.strips or self.truth_tile is None:
            raise DataError(
                "this folder holds no stimulus tile",
                where=str(self.path),
                fix="give --truth, or --strips K with --truth-tile",
            )
        return np.stack([self.tile(read_image(self.files[int(i)][0]), self.truth_tile) for i in images])

    def strip(self, image: int) -> Path | None:
        """The strip file when its first tile is the stimulus (the report shows its left square)."""
        return self.files[int(image)][0] if self.strips and self.truth_tile == 0 else None


def scan_folder(
    path: str | Path, strips: int | None = None, truth_tile: int | None = 0, subset=None, **names
) -> ImageFolder:
    """Scan and validate one folder of reconstructions (``strips``: K tiles per file, else
    the files layout)."""
    folder = Path(path)
    if strips is not None:
        if strips < 2:
            raise DataError(f"--strips {strips}: a strip needs at least 2 tiles", where=str(folder))
        if truth_tile is not None and not 0 <= truth_tile < strips:
            raise DataError(f"--truth-tile {truth_tile} is outside 0..{strips - 1}", where=str(folder))
        if truth_tile is not None and strips < 2:
            raise DataError("a strip with a stimulus tile needs at least one repeat tile", where=str(folder))
        files = {i: [f] for i, f in parse_strips(folder).items()}
    else:
        files = parse_files(folder)
    files = _restrict(files, subset, folder)
    size = _one_size([f for fs in files.values() for f in fs], folder)
    if strips is not None and size[0] % strips:
        raise DataError(
            f"strip width {size[0]} is not divisible by --strips {strips}",
            where=str(folder),
            fix="check K: a strip holds K equal tiles side by side",
        )
    return ImageFolder(folder, files, size, strips, truth_tile if strips else None, **names)


def _restrict(files: dict, subset, folder: Path) -> dict:
    if subset is None:
        return files
    keep = [int(i) for i in subset]
    missing = [i for i in keep if i not in files]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) of the subset are missing, e.g. {missing[:5]}",
            where=str(folder),
            fix="the subset file lists image indices that every folder must hold",
        )
    return {i: files[i] for i in keep}


def read_index_file(path: str | Path) -> np.ndarray:
    """Image indices from a .npy array or a text file (whitespace/comma separated; '#' comments)."""
    p = Path(path)
    try:
        if p.suffix == ".npy":
            arr = np.load(p)
        else:
            text = " ".join(line.split("#", 1)[0] for line in p.read_text().splitlines())
            arr = np.array([int(t) for t in text.replace(",", " ").split()], dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read image indices ({exc})",
            where=str(p),
            fix="give a .npy array or a text file of integer indices",
        ) from None
    arr = np.asarray(arr).reshape(-1)
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or len(np.unique(arr)) != arr.size:
        raise DataError(
            f"expected distinct integer image indices, got {arr.size} values of {arr.dtype}", where=str(p)
        )
    return arr.astype(np.int64)
