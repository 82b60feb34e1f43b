"""The HTML report: self-contained, published rows marked, unavailable reasons shown, figures present."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from neuraldiffuser.config import load_config
from neuraldiffuser.evaluation.runner import run_evaluation
from neuraldiffuser.report import figures
from neuraldiffuser.report.html import write_report
from test_eval_helpers import FakeEncoder, degrade, photo_stimuli, register_encoder, write_recon, write_truth


class Resources(HTMLParser):
    """Collects every src/href and the ids of a page."""

    def __init__(self):
        super().__init__()
        self.src, self.href, self.ids, self.tags = [], [], set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "src" in a:
            self.src.append(a["src"])
        if "href" in a:
            self.href.append(a["href"])
        if "id" in a:
            self.ids.add(a["id"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_run")
    stimuli = photo_stimuli(8, size=32)
    encoder = FakeEncoder(n_voxels=24)
    truth = write_truth(root / "truth", stimuli, encoder, n_test=4)
    recon = root / "run" / "recon"
    test = [0, 1, 2, 3]
    for kappa, eta in ((0.0, 0.0), (3e3, 0.2), (3e3, 1.0), (3e5, 0.2), (3e5, 1.0)):
        amount = 0.8 - 0.1 * np.log10(kappa + 1) * eta
        name = "kappa=0_eta=0" if kappa == 0 else f"kappa={kappa:.3g}_eta={eta:.3g}"
        reps = np.stack([degrade(stimuli[test], amount, r) for r in range(2)])
        write_recon(recon, "neuraldiffuser", name, test, reps, stimuli, {"kappa": kappa, "eta": eta})
    write_recon(recon, "minddiffuser", "default", test, np.stack([degrade(stimuli[test], 0.5, 9)]), stimuli)
    mp = pytest.MonkeyPatch()
    config = load_config(
        overrides={
            "evaluate": {
                "metrics": ["PixCorr", "SSIM", "AlexNet(2)", "CLIP", "Repeat SSIM", "Brain corr."],
                "torch_home": str(root / "torch"),
                "clip_model": str(root / "no_clip_here"),
                "brain_encoder": register_encoder(mp, encoder),
            }
        }
    )
    run_evaluation([recon], truth, config, root / "run")
    mp.undo()
    return root / "run"


def page(path):
    html = path.read_text()
    parser = Resources()
    parser.feed(html)
    return html, parser


def test_report_is_self_contained_and_complete(run):
    out = write_report([run], run / "report.html", title="Test report", images=3)
    html, res = page(out)
    # one file: no external resources, every image an embedded, valid PNG
    assert "link" not in res.tags and "script" not in res.tags
    assert res.src and all(s.startswith("data:image/png;base64,") for s in res.src)
    sizes = [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).size for s in res.src]
    assert all(w > 100 and h > 50 for w, h in sizes)
    assert all(
        h.startswith("#") and h[1:] in res.ids for h in res.href
    )  # only internal anchors, all resolvable
    assert {"metrics", "reconstructions", "ablation", "brain", "unavailable", "about"} <= res.ids
    # published rows are there for context, marked as published, with their sources
    assert html.count('class="badge pub">published</span>') >= 10
    assert (
        "MindEye2 (ICML&#x27;24), 40 h" in html
        and "arXiv 2510.27128), Table 1" in html
        and "final_evaluations.ipynb" in html
    )
    # unavailable metrics show their reasons (AlexNet: the file looked for; CLIP: the folder given)
    assert str(run.parent / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in html
    assert "no_clip_here" in html and html.count("n/a<sup>") >= 2 * 6
    assert "at least 2" in html  # minddiffuser has a single repeat: consistency unavailable, with the reason
    # images: comparison + 2 repeat grids + heatmaps + 2 sweep grids (Fig. 5) + ROI bars
    assert len(res.src) == 1 + 2 + 1 + 2 + 1
    assert (
        "Brain correlation per ROI" in html
        and '<td class="l">higher</td>' in html
        and "stimulus (ceiling)" in html
    )


def test_report_without_sweep_or_brain_has_no_such_sections(run, tmp_path):
    import json
    import shutil

    doc = json.loads((run / "metrics.json").read_text())
    doc["rows"] = [r for r in doc["rows"] if r["method"] == "minddiffuser"]
    for r in doc["rows"]:
        r["values"] = {k: v for k, v in r["values"].items() if not k.startswith("Brain")}
    doc["references"] = []
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    shutil.rmtree(tmp_path / "recon", ignore_errors=True)
    html, res = page(write_report([tmp_path / "metrics.json"], tmp_path / "r.html"))
    assert "ablation" not in res.ids and "brain" not in res.ids and "metrics" in res.ids


def test_cli_report(run, capsys):
    from neuraldiffuser.cli.main import main

    assert main(["report", str(run), "--title", "CLI", "--images", "2"]) == 0
    assert (run / "report.html").is_file() and "wrote" in capsys.readouterr().out
    assert main(["report", str(run / "recon")]) == 2  # a folder without metrics.json: says to run evaluate
    assert "neuraldiffuser evaluate" in capsys.readouterr().err


def test_mosaic_places_tiles_and_blanks():
    a = np.full((4, 4, 3), 10, np.uint8)
    b = np.full((8, 8, 3), 200, np.uint8)
    m = figures.mosaic([[a, b], [figures.BLANK, None]], tile=8, gap=2)
    assert m.shape == (18, 18, 3)
    assert (m[:8, :8] == 10).all() and (m[:8, 10:] == 200).all()
    assert (m[10:, :8] == 255).all() and (m[10:, 10:] == 242).all() and (m[8:10] == 255).all()
    assert (
        figures.format_value("CLIP", 0.9312) == "93.1%" and figures.format_value("SSIM", 0.43949) == "0.439"
    )


def test_report_compares_every_guided_setting_with_kappa_zero_paired_over_images(run):
    import json
    import re

    from neuraldiffuser.evaluation.compare import paired_difference

    html, res = page(write_report([run], run / "report_guidance.html", images=2))
    assert "guidance" in res.ids
    section = html[html.index('id="guidance"') : html.index("</section>", html.index('id="guidance"'))]
    rows = re.findall(
        r"<tr><td class=\"l\"><b>(\w+)</b> <span "
        r"class=\"sub\">([^<]+)</span></td><td>(\w+)</td><td>(\d+)</td>(.*?)</tr>",
        section,
    )
    # 4 guided settings × (repeat0, mean); minddiffuser has no κ 0 setting and is not compared
    assert sorted((m, s, p) for m, s, p, _, _ in rows) == sorted(
        ("neuraldiffuser", s, p)
        for s in ("kappa=3e+03_eta=0.2", "kappa=3e+03_eta=1", "kappa=3e+05_eta=0.2", "kappa=3e+05_eta=1")
        for p in ("repeat0", "mean")
    )
    # the strongest setting degrades the images far less than κ 0: PixCorr better beyond its interval, and the
    # printed difference is the paired mean over the 4 test images
    doc = {(r["setting"], r["policy"]): r for r in json.loads((run / "metrics.json").read_text())["rows"]}
    want = paired_difference(
        doc["kappa=3e+05_eta=1", "repeat0"]["per_image"]["PixCorr"],
        doc["kappa=0_eta=0", "repeat0"]["per_image"]["PixCorr"],
    )
    cells = next(c for m, s, p, n, c in rows if s == "kappa=3e+05_eta=1" and p == "repeat0")
    first = re.match(r'<td( class="(\w+)")?>([+−])([\d.]+) <span class="sub">±([\d.]+)</span></td>', cells)
    assert want["mean"] > 0 and want["ci95"][0] > 0 and first.group(2) == "up"
    assert (first.group(3), float(first.group(4)), float(first.group(5))) == (
        "+",
        round(want["mean"], 3),
        round(want["ci95"][1] - want["mean"], 3),
    )


def test_headline_and_brain_figure_show_the_presets_guided_setting_not_kappa_zero(run, tmp_path):
    import json

    doc = json.loads((run / "metrics.json").read_text())
    for name, preset, words in (
        ("preset", {"kappa": 3e3, "eta": 1.0}, "guided, κ = 3000, η = 1 (the preset&#x27;s setting)"),
        ("old", None, "guided, κ = 3000, η = 0.2"),
    ):
        d = (
            dict(doc, preset_setting=preset)
            if preset
            else {k: v for k, v in doc.items() if k != "preset_setting"}
        )
        # a metrics file from before preset_setting, without the paper's κ 3e5: the first guided setting,
        # not κ 0
        if preset is None:
            d["rows"] = [r for r in d["rows"] if not r["setting"].startswith("kappa=3e+05")]
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(d))
        html, _ = page(write_report([tmp_path / name], tmp_path / name / "report.html", images=2))
        hero = html[html.index('<header class="hero"') : html.index("</header>")]
        card = hero[hero.index(">neuraldiffuser<") :]
        assert words in card and "κ = 0" not in card
        brain = html[html.index('id="brain"') :]
        assert f"neuraldiffuser: {words}" in brain[: brain.index("</figure>")]
        recon = html[html.index('id="reconstructions"') :]
        assert words in recon[: recon.index("</section>")]


def test_published_rows_carry_their_source_and_a_secondary_mark():
    from neuraldiffuser.evaluation.published import load_published
    from neuraldiffuser.report.tables import published_rows, sources_list

    tables = load_published()
    rows = [r for t in tables for r in t["rows"]]
    assert all(r.get("source") and isinstance(r.get("secondary"), bool) for r in rows)
    names = {r["method"] for r in rows}
    assert {
        "ZEBRA (NeurIPS'25), zero-shot",
        "MindTuner (AAAI'25), 1 h",
        "Brain-IT (ICLR'26), 40 h",
        "NeuroSwift (arXiv'25), 40 h",
    } <= names
    html = "".join(published_rows(["PixCorr", "SSIM"]))
    assert html.count('class="badge sec"') == sum(r["secondary"] for r in rows)
    assert "en.papernotes.org/ICLR2026" in sources_list()
    # every value is a fraction in [0, 1] under a metric the registry knows
    from neuraldiffuser.evaluation.registry import METRICS

    assert all(k in METRICS and 0 <= v <= 1 for r in rows for k, v in r["values"].items())
