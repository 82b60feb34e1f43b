"""Shared fixtures: small datasets in both layouts, built from known arrays."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
# One BLAS/OpenMP thread per process, inherited by the CLI subprocesses the tests start: the tests' models are
# tiny, so an idle 2-core machine runs the suite as fast (154 s against 152 s), and a loaded one no longer
# oversubscribes its cores (the zoo fixture took 188 s instead of 2 s beside other work).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pytest

from neuraldiffuser.data.layout import SubjectArrays, write_generic
from neuraldiffuser.data.nsd import write_mindeye2


def make_arrays(seed: int = 0):
    """10 images; two subjects. Image 7 is shared and seen 3 times, image 8 twice, image 9 once."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    captions = {i: [f"image {i} caption a", f"image {i} caption b"] for i in range(10)}
    subjects = {}
    for s, n_vox in (("subj01", 6), ("subj02", 5)):
        # session 1: train 0,1,2 + test 7 ; session 2: train 3,0 + test 8,7 ; session 3:
        # train 4,1 + test 9,7,8
        image = np.array([0, 1, 7, 2, 3, 8, 0, 7, 4, 9, 7, 1, 8])
        session = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3])
        split = np.where(np.isin(image, [7, 8, 9]), "test", "train")
        betas = rng.standard_normal((len(image), n_vox)).astype(np.float32)
        subjects[s] = SubjectArrays(
            betas, image, session, split, roi=np.arange(n_vox) % 2, roi_names=["V1", "higher"]
        )
    return images, captions, subjects


@pytest.fixture
def arrays():
    return make_arrays()


@pytest.fixture
def generic_dir(tmp_path, arrays):
    images, captions, subjects = arrays
    return write_generic(tmp_path / "generic", images, captions, subjects)


@pytest.fixture
def mindeye2_dir(tmp_path, arrays):
    images, captions, subjects = arrays
    return write_mindeye2(tmp_path / "nsd", images, captions, subjects)


@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory):
    from neuraldiffuser.zoo.tokenizer import write_clip_tokenizer

    return write_clip_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tiny_stack(tmp_path_factory, clip_tokenizer_dir):
    """A tiny SD-shaped stack with random weights, saved with save_pretrained (session-wide, read-only)."""
    from neuraldiffuser.zoo.build import build_stack, tiny_configs

    return build_stack(
        tmp_path_factory.mktemp("tiny_stack"), tiny_configs(), seed=0, tokenizer_dir=clip_tokenizer_dir
    )


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a whole module of tiny-model tests (``pytestmark =
    pytest.mark.usefixtures(...)``)."""
    from decoder_fixtures import one_thread

    with one_thread():
        yield


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory):
    """A tiny demo run (``demo.SMALL_DEMO``: simulate, extract, train) under ROOT/demo, shared by the examples
    and the notebook test; returns ROOT. Read-only: copy it before changing anything."""
    from decoder_fixtures import one_thread
    from neuraldiffuser.demo import SMALL_DEMO, train_demo_decoders

    root = tmp_path_factory.mktemp("small_demo")
    with one_thread():
        train_demo_decoders(root / "demo", overrides=SMALL_DEMO)
    return root
