"""The one way a weight file becomes a loaded module: read, unwrap, rename, drop, check, load.

Every model of the project (MMAudio's networks, encoders and decoders, BS-RoFormer, the
MLLMs' towers, the evaluation models) loads through :func:`load_into`, so a file that does
not fit always fails the same way: one ``WeightsError`` line naming the file, what it was
meant for, and the first missing, unexpected and wrongly shaped tensors. The per-model
differences are data (:class:`LoadRules`), not code paths.

Files are read with ``weights_only=True``: a checkpoint is data and must never run code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from deepsound.devices import resolve_device, resolve_dtype_name
from deepsound.errors import ConfigError, WeightsError

__all__ = ["resolve_device", "resolve_dtype", "torch_dtype"]  # resolve_device: its old home, kept

StateDict = dict[str, torch.Tensor]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"`` / ``"bf16"`` / ``torch.bfloat16`` → ``torch.bfloat16``; anything else is a user error."""
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[str(name).lower()]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r}; choose one of: float32, bfloat16, float16") from None


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` is bf16 on CUDA (the reference's inference precision) and fp32 on the CPU."""
    return torch_dtype(resolve_dtype_name(dtype, device))


@dataclass(frozen=True)
class LoadRules:
    """How one published file maps onto our module.

    ``unwrap``: container keys tried in order (``{"state_dict": …}``, ``{"model": …}``);
    ``rename``: regex → replacement applied to every key, in order;
    ``drop``: regexes of keys the file holds but the module derives or never uses
    (buffers recomputed at build time, heads of other tasks);
    ``keep``: when set, only keys matching one of these are taken (a file that holds a larger model);
    ``transform``: a last pass over the whole dict (for example folding weight norm).
    """

    unwrap: tuple[str, ...] = ("state_dict", "model", "weights", "generator")
    rename: tuple[tuple[str, str], ...] = ()
    drop: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    transform: Callable[[StateDict], StateDict] | None = field(default=None, compare=False)


def read_state_dict(
    path: Path | str, what: str, unwrap: Iterable[str] = LoadRules.unwrap, *, mmap: bool = False
) -> StateDict:
    """Read ``path`` on the CPU without pickled code and unwrap it down to a dict of tensors.

    ``mmap`` maps the file instead of reading it: a tensor's bytes are read only when used, so
    taking part of a file (one tower of CLIP) never holds the rest, and tensors taken with
    ``assign`` are the file's pages, not a second copy. Files of the old (pre-zip) format
    cannot be mapped and are read whole.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {what} weights not found")
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt or foreign files
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint for {what} ({type(exc).__name__})"
        ) from None
    return unwrap_state_dict(data, path, what, unwrap)


def unwrap_state_dict(data: object, source: Path | str, what: str, unwrap: Iterable[str]) -> StateDict:
    keys = tuple(unwrap)
    while isinstance(data, Mapping):
        inner = next((data[k] for k in keys if isinstance(data.get(k), Mapping)), None)
        if inner is None or all(isinstance(v, torch.Tensor) for v in data.values()):
            break
        data = inner
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(
            f"{source}: expected a state dict of tensors for {what}, found {type(data).__name__}"
        )
    return dict(data)


def apply_rules(state: StateDict, rules: LoadRules) -> StateDict:
    out: StateDict = {}
    for key, value in state.items():
        if rules.keep and not any(re.search(p, key) for p in rules.keep):
            continue
        for pattern, replacement in rules.rename:
            key = re.sub(pattern, replacement, key)
        if any(re.search(p, key) for p in rules.drop):
            continue
        out[key] = value
    return rules.transform(out) if rules.transform is not None else out


def describe_mismatch(
    expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], limit: int = 3
) -> str:
    """One short phrase of missing / unexpected / wrongly shaped tensors; empty when they fit."""
    missing = sorted(expected.keys() - given.keys())
    unexpected = sorted(given.keys() - expected.keys())
    shapes = [
        f"{k} {tuple(given[k].shape)} != {tuple(expected[k].shape)}"
        for k in sorted(expected.keys() & given.keys())
        if tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


def load_state_into(
    module: nn.Module,
    state: StateDict,
    source: Path | str,
    what: str,
    *,
    assign: bool = False,
    expect: Callable[[str], bool] | None = None,
) -> nn.Module:
    """Load ``state`` strictly: every tensor of the module present, none left over, shapes equal.

    ``assign`` takes the file's tensors as the parameters (for a module built on the meta
    device: no memory and no random initialisation spent on weights about to be replaced).
    ``expect`` limits the module's tensors to those whose names it accepts (loading one part of
    a model); the check stays strict for that part.
    """
    expected = module.state_dict()
    if expect is not None:
        expected = {k: v for k, v in expected.items() if expect(k)}
    problem = describe_mismatch(expected, state)
    if problem:
        raise WeightsError(f"{source}: does not fit {what} ({problem})")
    module.load_state_dict(state, strict=expect is None, assign=assign)
    return module


def load_into(
    module: nn.Module,
    path: Path | str,
    what: str,
    rules: LoadRules = LoadRules(),
    *,
    assign: bool = False,
    mmap: bool = False,
    expect: Callable[[str], bool] | None = None,
) -> nn.Module:
    """File → state dict → ``rules`` → strict load into ``module``; returns the module."""
    state = apply_rules(read_state_dict(path, what, rules.unwrap, mmap=mmap), rules)
    return load_state_into(module, state, path, what, assign=assign, expect=expect)


def load_published(
    module: nn.Module,
    name: str,
    what: str,
    rules: LoadRules = LoadRules(),
    *,
    path: Path | str | None = None,
    weights_dir: Path | None = None,
    offline: bool = False,
    device: str = "auto",
) -> nn.Module:
    """The registry file ``name`` (or ``path``: a file or a folder holding it) strictly into ``module``,
    in eval mode on ``device``: resolution, checks and loading in one call for every model."""
    from deepsound.weights.resolve import resolve

    # A path given by the caller is the user's own file (a converted or fine-tuned checkpoint, as
    # with --weights NAME=PATH): its bytes need not be the published ones, the strict load below
    # checks every name and shape. Files found by name are checked against the registry.
    file = resolve(
        name,
        explicit=Path(path) if path is not None else None,
        weights_dir=weights_dir,
        offline=offline,
        verify="none" if path is not None else "checksum",
    )
    return load_into(module, file, what, rules).eval().to(resolve_device(device))
