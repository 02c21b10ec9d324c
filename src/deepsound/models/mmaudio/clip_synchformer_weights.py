"""Reading the conditioning encoders' weight files and saying clearly why one does not fit.

A checkpoint that fails to load is a user problem (wrong file, truncated
download, other model size), so it becomes a one-line ``WeightsError`` that
names the file and summarises the mismatch, instead of PyTorch's list of
hundreds of keys.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepsound.errors import WeightsError
from deepsound.testing.equivalence import parameter_manifest


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """Load a (possibly ``{"state_dict": ...}``-wrapped) state dict on the CPU, without pickled code."""
    if not path.is_file():
        raise WeightsError(f"{path}: {what} weights not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, found {type(state).__name__}")
    return state


def check_fits(path: Path, state: dict[str, torch.Tensor], model: torch.nn.Module, what: str) -> None:
    """Raise ``WeightsError`` unless ``state`` has exactly the model's tensor names and shapes."""
    have = parameter_manifest(state)
    need = parameter_manifest(model.state_dict())
    reshaped = [k for k in sorted(need.keys() & have.keys()) if have[k] != need[k]]
    missing = sorted(need.keys() - have.keys())
    unexpected = sorted(have.keys() - need.keys())
    parts = []
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} of other shape (e.g. {k}: file {have[k]}, model {need[k]})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if parts:
        raise WeightsError(f"{path}: does not fit {what}: " + "; ".join(parts))
