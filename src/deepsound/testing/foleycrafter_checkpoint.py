"""Small FoleyCrafter checkpoints in the published formats, with weights seeded by key name.

The golden script writes these files from the official modules' layouts and runs the official
code on them; the tests write the same files from the committed layouts
(``tests/data/foleycrafter/tiny_files.json``) and run ours. Every tensor depends only on its
file, its key and the seed, so both sides load identical numbers through their own loaders.

Layout (three folders, as the hub repositories hold them):

* ``auffusion/`` — ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``;
* ``foleycrafter/`` — ``temporal_adapter.ckpt``, ``timestamp_detector.pth.tar``,
  ``semantic/semantic_adapter.bin``, ``vocoder/{config.json, vocoder.pt}``;
* ``image_encoder/`` — ``config.json``, ``model.safetensors``.

A key ``"a/b/name"`` of a layout is tensor ``name`` inside the nested dicts ``a`` → ``b`` of a
``torch.save`` file; safetensors files are flat.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import torch

from deepsound.testing.equivalence import seeded_tensor

Layout = dict[str, dict[str, list[int]]]  # file (relative path) -> key -> shape


def seeded_value(file: str, key: str, shape: list[int], seed: int) -> torch.Tensor:
    """The tensor stored under ``key`` of ``file``; integer buffers get their natural values."""
    leaf = key.rsplit("/", 1)[-1]
    if leaf.endswith("num_batches_tracked"):
        return torch.tensor(0, dtype=torch.long)
    if leaf.endswith("position_ids"):
        return torch.arange(shape[-1], dtype=torch.long).expand(*shape).clone()
    salt = zlib.crc32(file.encode()) % 1000
    value = seeded_tensor(key, tuple(shape), seed + salt)
    if leaf.endswith("running_var"):
        value = value.abs() + 0.5  # a variance is positive
    return value


def _nest(flat: dict[str, torch.Tensor]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in flat.items():
        *path, leaf = key.split("/")
        node = root
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return root


def write_tiny_checkpoint(
    root: Path, layout: Layout, configs: dict[str, Any], seed: int = 0
) -> dict[str, Path]:
    """Write every file of ``layout`` and the JSON/tokenizer files of ``configs`` under ``root``.

    Returns the three folders: ``{"auffusion": …, "foleycrafter": …, "image_encoder": …}``.
    """
    from safetensors.torch import save_file

    root = Path(root)
    for file, keys in layout.items():
        tensors = {k: seeded_value(file, k, shape, seed) for k, shape in keys.items()}
        target = root / file
        target.parent.mkdir(parents=True, exist_ok=True)
        if file.endswith(".safetensors"):
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(target), metadata={"format": "pt"})
        else:
            data = _nest(tensors)
            if file.endswith(".pth.tar"):
                data["epoch"] = 1
            torch.save(data, target)
    for file, content in configs["json_files"].items():
        target = root / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(content, indent=1), encoding="utf-8")
    write_clip_tokenizer(root / "auffusion" / "tokenizer", configs["tokenizer_max_length"])
    return {name: root / name for name in ("auffusion", "foleycrafter", "image_encoder")}


def write_clip_tokenizer(folder: Path, max_length: int = 77) -> Path:
    """A CLIP BPE tokenizer over the 256 byte symbols (no merges): every letter is one token."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "model_max_length": max_length,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "do_lower_case": True,
                "tokenizer_class": "CLIPTokenizer",
            }
        ),
        encoding="utf-8",
    )
    return folder


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    out, extra = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out
