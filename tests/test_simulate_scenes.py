"""Scenes: determinism, exact redraw from records, anti-aliased shape areas, captions true to records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuraldiffuser.simulate import scenes as sc
from neuraldiffuser.simulate.shapes import SDF, SHAPES


def test_generate_scenes_is_deterministic_and_seed_dependent():
    a, b, c = sc.generate_scenes(40, 3), sc.generate_scenes(40, 3), sc.generate_scenes(40, 4)
    assert a.images.shape == (40, 64, 64, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and a.records == b.records and a.captions == b.captions
    assert not np.array_equal(a.images, c.images) and a.captions != c.captions
    json.dumps(a.records)  # JSON-serialisable


def test_records_redraw_their_images_at_any_size():
    s = sc.generate_scenes(12, 0, size=48)
    assert np.array_equal(sc.render(s.records, 48), s.images)
    assert sc.render(s.records[:2], 96).shape == (2, 96, 96, 3)


def test_attribute_ranges_and_vocabulary():
    recs = sc.sample_records(3000, 1)
    objs = [o for r in recs for o in r["objects"]]
    assert {o["shape"] for o in objs} == set(SHAPES) and len(SHAPES) >= 8
    assert {o["color"] for o in objs} == set(sc.COLORS) and len(sc.COLORS) >= 8
    assert {r["background"]["kind"] for r in recs} == set(sc.BACKGROUNDS)
    assert {len(r["objects"]) for r in recs} == {1, 2, 3}
    assert all(o["color"] != r["background"]["color"] for r in recs for o in r["objects"])
    for r in recs:  # objects of one scene sit in distinct cells of the 3x3 layout grid
        cells = [(o["row"], o["col"]) for o in r["objects"]]
        assert len(set(cells)) == len(cells)
    xs = np.array([o["x"] for o in objs])
    cols = np.array([sc.COLS.index(o["col"]) for o in objs])
    assert np.all(np.abs(xs - np.take(sc.CELL_CENTRES, cols)) <= sc.JITTER + 1e-6)


def _lens(r1, r2, d):
    a = r1**2 * np.arccos((d**2 + r1**2 - r2**2) / (2 * d * r1)) + r2**2 * np.arccos(
        (d**2 + r2**2 - r1**2) / (2 * d * r2)
    )
    return a - 0.5 * np.sqrt((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2))


AREAS = {  # analytic areas in units of radius^2
    "circle": np.pi,
    "square": 1.64**2,
    "triangle": 3 * np.sqrt(3) / 4 * 1.15**2,
    "hexagon": 3 * np.sqrt(3) / 2,
    "diamond": 2 * 0.62 * 1.12,
    "star": 5 * 1.12 * 0.47 * np.sin(np.pi / 5),
    "ring": np.pi * (1.02**2 - 0.54**2),
    "cross": 2 * (2.0 * 0.64) - 0.64**2,
    "heart": 2 * 0.88**2 + np.pi * 0.88**2 / 2,
    "crescent": np.pi - _lens(1.0, 0.86, 0.48),
}


@pytest.mark.parametrize("name", SHAPES)
def test_antialiased_coverage_matches_analytic_area(name):
    r_px = 40.0
    coords = (np.arange(-64, 64) + 0.5) / r_px
    u, v = np.meshgrid(coords, coords)
    coverage = np.clip(0.5 - SDF[name](u, v) * r_px, 0, 1)
    assert coverage.sum() / r_px**2 == pytest.approx(AREAS[name], rel=0.01)
    assert 0 < np.mean((coverage > 0) & (coverage < 1)) < 0.05  # a one-pixel soft edge, not a blur


def test_object_and_background_colours_are_drawn_where_the_record_says():
    rec = {
        "background": {"kind": "solid", "color": "blue"},
        "objects": [
            {
                "shape": "square",
                "color": "yellow",
                "size": "large",
                "x": 0.3,
                "y": 0.7,
                "rotation": 0.0,
                "row": "bottom",
                "col": "left",
            }
        ],
    }
    img = sc.render([rec], 64)[0].astype(int)
    assert tuple(img[int(0.7 * 64), int(0.3 * 64)]) == sc.COLORS["yellow"]
    assert tuple(img[5, 60]) == sc.COLORS["blue"]


def test_captions_are_varied_and_true_to_the_record():
    s = sc.generate_scenes(200, 5)
    for rec, caps in zip(s.records, s.captions, strict=True):
        assert len(caps) == 5 and len(set(caps)) >= 3
        for cap in caps:
            assert all(o["shape"] in cap for o in rec["objects"]) or "shapes" in cap or "objects" in cap
            shapes_named = [w for w in SHAPES if w in cap.lower()]
            assert set(shapes_named) <= {o["shape"] for o in rec["objects"]}
    first = [c for caps in s.captions for c in caps]
    assert len({c.split()[0] for c in first}) >= 5  # several sentence openings


def test_scene_dataset_reads_back_through_open_dataset(tmp_path):
    from neuraldiffuser.data import open_dataset

    root = sc.write_scene_dataset(tmp_path / "scenes", 30, seed=2)
    ds = open_dataset(root)
    ref = sc.generate_scenes(30, 2)
    assert ds.subjects == {} and len(ds.images) == 30
    assert np.array_equal(ds.images.get(np.arange(30)), ref.images)
    assert ds.captions[7] == ref.captions[7]
    assert json.loads((root / "simulator" / "scenes.json").read_text()) == ref.records


def test_scenes_command_writes_a_stimuli_only_dataset(tmp_path, capsys):
    from neuraldiffuser.cli.main import main
    from neuraldiffuser.data import open_dataset

    out = tmp_path / "stimuli"
    assert main(["simulate", "--preset", "scenes", "--n-images", "12", "--seed", "4", "--out", str(out)]) == 0
    ds = open_dataset(out)
    assert (
        len(ds.images) == 12
        and ds.subjects == {}
        and np.array_equal(ds.images.get(np.arange(12)), sc.generate_scenes(12, 4).images)
    )
    assert (out / "simulator" / "config.yaml").is_file()
    assert main(["simulate", "--preset", "scenes", "--out", str(tmp_path / "x")]) == 2
    assert "--n-images" in capsys.readouterr().err
