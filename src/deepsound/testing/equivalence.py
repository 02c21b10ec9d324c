"""Tools to prove that our modules equal the official ones without their weights.

Published weights cannot always be downloaded where the checks run, so
equivalence is shown with *deterministic random weights*: every parameter and
buffer is filled from a generator seeded by the run seed and the CRC32 of its
name. Two implementations with identical parameter names and shapes therefore
receive identical weights, whichever order they create them in, and must
produce identical outputs.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch
from torch import nn


def seeded_tensor(
    name: str, shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A tensor that depends only on ``(name, shape, seed)``.

    Values are normal with std ``1/sqrt(fan_in)`` (fan-in = product of all dims
    but the first), which keeps deep stacks numerically tame; 1-D tensors named
    like norm weights are centred on 1 so that normalisations do not collapse.
    """
    gen = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    if dtype in (torch.int64, torch.int32, torch.bool, torch.uint8):
        raise TypeError(f"{name}: integer buffers are not randomised")
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    values = torch.randn(shape, generator=gen, dtype=torch.float64)
    if len(shape) <= 1:
        values = values * 0.1
        last = name.rsplit(".", 1)[-1]
        if last in ("weight", "gamma", "scale", "g") and "norm" in name.lower():
            values = values + 1.0
    else:
        values = values / max(fan_in, 1) ** 0.5
    return values.to(dtype)


def fill_seeded(module: nn.Module, seed: int = 0, *, include_buffers: bool = False) -> nn.Module:
    """Overwrite every floating parameter (and optionally buffer) of ``module`` in place."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.dtype.is_floating_point:
                param.copy_(seeded_tensor(name, tuple(param.shape), seed, param.dtype))
        if include_buffers:
            for name, buf in module.named_buffers():
                if buf.dtype.is_floating_point:
                    buf.copy_(seeded_tensor(name, tuple(buf.shape), seed, buf.dtype))
    return module


def parameter_manifest(state_dict: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    """Name -> shape of every tensor in a state dict (what a checkpoint must fit)."""
    return {k: list(v.shape) for k, v in sorted(state_dict.items())}


def load_manifest(path: Path) -> dict[str, list[int]]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def manifest_diff(ours: dict[str, list[int]], official: dict[str, list[int]]) -> list[str]:
    """Human-readable differences; an empty list means the layouts are identical."""
    problems = [f"missing: {k} {official[k]}" for k in sorted(official.keys() - ours.keys())]
    problems += [f"unexpected: {k} {ours[k]}" for k in sorted(ours.keys() - official.keys())]
    problems += [
        f"shape of {k}: ours {ours[k]} official {official[k]}"
        for k in sorted(ours.keys() & official.keys())
        if list(ours[k]) != list(official[k])
    ]
    return problems


def relative_l2(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||a - e|| / ||e||: the error measure of the equivalence checks."""
    actual = actual.detach().double().cpu()
    expected = expected.detach().double().cpu()
    if actual.shape != expected.shape:
        raise AssertionError(f"shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    denom = expected.norm().item()
    return (actual - expected).norm().item() / (denom if denom > 0 else 1.0)
