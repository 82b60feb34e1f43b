"""The real CLIP BPE tokenizer, built from the vocabulary that ships in the open_clip_torch wheel (MIT).

The gzip file holds a version line followed by the BPE merges. CLIP's vocabulary is: the 256 byte
symbols, the same with an end-of-word marker, one token per merge (the first 49152-256-2 merges),
then <|startoftext|> and <|endoftext|>: 49408 ids in all. We write it as Hugging Face's
vocab.json + merges.txt so ``transformers.CLIPTokenizer`` loads it like any CLIP checkpoint.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from ..errors import ModelLoadError

VOCAB_SIZE = 49408
N_MERGES = 49152 - 256 - 2


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable unicode map."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, (chr(c) for c in chars), strict=True))


def open_clip_vocab_path() -> Path:
    try:
        import open_clip
    except ImportError:
        raise ModelLoadError(
            "open_clip_torch is not installed, so the CLIP BPE vocabulary is not available",
            fix="pip install 'neuraldiffuser[zoo]' (only needed to build tokenizer files)",
        ) from None
    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise ModelLoadError(
            "bpe_simple_vocab_16e6.txt.gz missing from the open_clip package", where=str(path.parent)
        )
    return path


def write_clip_tokenizer(
    out_dir: str | Path, bpe_path: str | Path | None = None, model_max_length: int = 77
) -> Path:
    """Write vocab.json, merges.txt and tokenizer_config.json for the CLIP BPE into ``out_dir``."""
    bpe_path = Path(bpe_path) if bpe_path else open_clip_vocab_path()
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 1 + N_MERGES]]
    symbols = list(bytes_to_unicode().values())
    vocab = (
        symbols
        + [s + "</w>" for s in symbols]
        + ["".join(m) for m in merges]
        + ["<|startoftext|>", "<|endoftext|>"]
    )
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out / "special_tokens_map.json").write_text(
        json.dumps({k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}, indent=2)
    )
    return out
