"""The step's inputs are made by a reader thread while the previous step runs: the same values in the same
order as a loop that makes its own, and the prior's noise may be drawn where the step runs (as under CUDA)."""

from __future__ import annotations

import time

import torch

from decoder_fixtures import make_decoder_data, tiny_config
from neuraldiffuser.training.loop import Trainer
from neuraldiffuser.training.prefetch import DeviceFeeder, prefetched
from neuraldiffuser.training.runner import train_decoders
from test_train_resume import weights


def test_prefetched_keeps_the_order_and_overlaps_the_caller():
    def make(step):
        time.sleep(0.05)
        return step * step

    t0 = time.perf_counter()
    seen, waits = [], []
    for step, item, waited in prefetched(make, 2, 8):
        seen.append((step, item))
        waits.append(waited)
        time.sleep(0.08)  # the caller's "step": the reader makes the next item meanwhile
    wall = time.perf_counter() - t0
    assert seen == [(s, s * s) for s in range(2, 8)]
    assert all(w >= 0 for w in waits)
    assert wall < 0.70  # serial: 6 × (0.05 + 0.08) = 0.78 s; overlapped: 0.05 + 6 × 0.08 = 0.53 s
    assert list(prefetched(make, 5, 5)) == []
    made = []
    for depth in (0, 1, 4):  # inline or however far ahead, each item once and in order
        made.clear()
        out = [item for _, item, _ in prefetched(lambda s: made.append(s) or s, 0, 7, depth)]
        assert out == list(range(7)) and made == list(range(7))


def test_device_feeder_is_a_no_op_off_cuda():
    feeder = DeviceFeeder("cpu")
    tree = {"a": torch.ones(2), "b": [torch.zeros(1), None]}
    sent, ready = feeder.send(tree)
    assert sent is tree and ready is None and feeder.receive(sent, ready) is tree


def test_noise_drawn_on_the_step_device_gives_the_same_training(tmp_path, monkeypatch):
    """The CUDA path (the prior's noise drawn in the step thread on the accelerator from the step's seed), run
    on the CPU, trains exactly as the CPU path (drawn by the reader): same seeds, same values."""
    ds, targets, _ = make_decoder_data(tmp_path)
    cfg = tiny_config(ds, decoder={"targets": ["c"]}, train={"stages": ["finetune"], "ridge": False})
    host = train_decoders(cfg, tmp_path / "host", targets)
    assert host["runs"][0]["data_wait_s"] >= 0
    init = Trainer.__init__

    def on_device(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.draw_device = torch.device("cpu")

    monkeypatch.setattr(Trainer, "__init__", on_device)
    train_decoders(cfg, tmp_path / "device", targets)
    a = weights(tmp_path / "host" / "finetune" / "c" / "model")
    b = weights(tmp_path / "device" / "finetune" / "c" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_reader_thread_trains_as_making_inputs_inline(tmp_path, monkeypatch):
    """A CPU run makes each step's inputs inline (prefetch_depth 0: a reader thread competes with the step for
    the cores); an accelerator's run uses the thread. Same seeds, same values, so the same weights."""
    ds, targets, _ = make_decoder_data(tmp_path)
    cfg = tiny_config(ds, decoder={"targets": ["c"]}, train={"stages": ["finetune"], "ridge": False})
    train_decoders(cfg, tmp_path / "inline", targets)
    init = Trainer.__init__

    def threaded(self, *args, **kwargs):
        init(self, *args, **kwargs)
        assert self.prefetch_depth == 0  # the CPU default
        self.prefetch_depth = 3

    monkeypatch.setattr(Trainer, "__init__", threaded)
    train_decoders(cfg, tmp_path / "thread", targets)
    a = weights(tmp_path / "inline" / "finetune" / "c" / "model")
    b = weights(tmp_path / "thread" / "finetune" / "c" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
