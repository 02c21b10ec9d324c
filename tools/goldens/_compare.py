"""Compare regenerated goldens with the committed ones, leaf by leaf.

Files are nested dicts/lists of tensors, arrays and plain values (``.pt``), ``.npz`` archives or
JSON. Plain values, shapes and dtypes must be equal; for floating leaves the largest absolute and
relative-L2 differences are reported. A file "reproduces" when everything is equal except
floating-point noise: relative L2 at most ``RTOL`` for float32/float64 leaves (rerunning the official
code with other kernels or thread counts rounds differently; a sampler or a saturating vocoder
amplifies that to ~1e-5), at most ``RTOL_HALF`` for bfloat16/float16 results, whose rounding depends
on the CPU's kernels (see ``BF16_ACROSS_CPUS`` in ``tests/test_mmaudio_network.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

RTOL = 1e-4
RTOL_HALF = 0.05


def _load(path: Path) -> object:
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    return torch.load(path, map_location="cpu", weights_only=False)


def _walk(a: object, b: object, where: str, stats: dict) -> None:
    if (
        isinstance(a, np.ndarray)
        and a.dtype.kind not in "fiub"
        or isinstance(b, np.ndarray)
        and b.dtype.kind not in "fiub"
    ):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)):
            stats["problems"].append(f"{where}: values differ")
        return
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(a)
    if isinstance(b, np.ndarray):
        b = torch.from_numpy(b)
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            stats["problems"].append(f"{where}: keys {sorted(a.keys() ^ b.keys())} differ")
        for k in a.keys() & b.keys():
            _walk(a[k], b[k], f"{where}/{k}", stats)
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            stats["problems"].append(f"{where}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _walk(x, y, f"{where}[{i}]", stats)
    elif isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            stats["problems"].append(f"{where}: {a.dtype}{tuple(a.shape)} != {b.dtype}{tuple(b.shape)}")
        elif a.dtype.is_floating_point:
            x, y = a.double(), b.double()
            diff = (x - y).abs().max().item() if x.numel() else 0.0
            norm = y.norm().item()
            rel = (x - y).norm().item() / (norm if norm > 0 else 1.0)
            stats["leaves"] += 1
            stats["by_leaf"].append((rel, where, str(a.dtype).removeprefix("torch.")))
            if diff > stats["abs"]:
                stats["abs"], stats["abs_at"] = diff, where
            if rel > stats["rel"]:
                stats["rel"], stats["rel_at"] = rel, where
        elif not torch.equal(a, b):
            stats["problems"].append(f"{where}: values differ")
    elif a != b:
        stats["problems"].append(f"{where}: {a!r} != {b!r}"[:200])


def compare(new: Path, old: Path) -> dict:
    stats = {"problems": [], "by_leaf": [], "leaves": 0, "abs": 0.0, "rel": 0.0, "abs_at": "", "rel_at": ""}
    if not old.exists():
        stats["problems"].append("no committed file")
        return stats
    _walk(_load(new), _load(old), "", stats)
    return stats


def report(written: list[Path], out: Path, committed: Path) -> int:
    """Print one line per file; returns how many do not reproduce."""
    failed = 0
    for rel in written:
        s = compare(out / rel, committed / rel)
        ok = not s["problems"] and all(
            r <= (RTOL_HALF if d in ("bfloat16", "float16") else RTOL) for r, _, d in s["by_leaf"]
        )
        failed += not ok
        verdict = "reproduces" if ok else "DIFFERS"
        print(
            f"{verdict:10s} {rel}: max |diff| {s['abs']:.3g} ({s['abs_at'] or '-'}), "
            f"max rel-L2 {s['rel']:.3g} over {s['leaves']} float leaves"
        )
        worst = sorted(s["by_leaf"], reverse=True)[:3]
        if worst and worst[0][0] > 0:
            print("           worst leaves: " + ", ".join(f"{w} {d} {r:.2g}" for r, w, d in worst))
        for problem in s["problems"][:8]:
            print(f"           {problem}")
    return failed
