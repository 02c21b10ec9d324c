"""LoRA adapter folders as the models load them: identity of the base checked, then merged.

An adapter only means something on the weights it was trained on. Beside peft's
own ``adapter_config.json`` and ``adapter_model.safetensors`` the folder holds
``deepsound_adapter.json`` with the base model's id and a checksum of its
weights; applying an adapter to another model stops with one line naming both.

The checksum is a fingerprint rather than a hash of the weight files: the base
may be a hub id whose files sit in a cache, a local folder, or a model built in
memory, and hashing 15 GB of a 7B model at every load would cost minutes. The
fingerprint hashes every parameter's name and shape and 64 evenly spaced values
of it (as bfloat16, so that a float32 and a bfloat16 load of the same
checkpoint agree); two different trainings of one architecture differ in it.

This is the model side of the MLLM contract's ``apply_adapter`` (each reasoner
calls :func:`merge_adapter` on the network that answers); writing adapters is
:mod:`deepsound.training.adapter`'s. Loading goes through peft (the library that
wrote them) and is merged into the base weights, so answering costs what the base costs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from deepsound.errors import ConfigError, WeightsError

INFO_FILE = "deepsound_adapter.json"
FINGERPRINT_ALGORITHM = "sha256 over parameter names, shapes and 64 evenly spaced values each (bfloat16)"


class AdapterMismatchError(ConfigError):
    """An adapter trained on another base model."""


def weights_fingerprint(model: Any, values: int = 64) -> str:
    """The base model's checksum (see the module docstring); computed before any LoRA layer is added."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if "lora_" in name:
            continue
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
        flat = tensor.detach().reshape(-1)
        if flat.numel() and flat.is_floating_point():
            index = torch.linspace(0, flat.numel() - 1, min(values, flat.numel()), device=flat.device).long()
            sample = flat[index].to(torch.bfloat16).view(torch.int16).cpu().numpy()
            digest.update(sample.tobytes())
    return digest.hexdigest()


def read_adapter_info(folder: Path | str) -> dict[str, Any]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise WeightsError(f"{folder}: no such adapter folder")
    info_path = folder / INFO_FILE
    if not info_path.is_file() or not (folder / "adapter_config.json").is_file():
        raise WeightsError(
            f"{folder}: not a DeepSound adapter folder (needs {INFO_FILE} and adapter_config.json)"
        )
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{info_path}: unreadable adapter description ({exc.msg})") from None
    for key in ("base_model", "base_checksum"):
        if key not in info:
            raise WeightsError(f"{info_path}: lacks {key!r}")
    return info


def check_base(info: dict[str, Any], model: Any, model_id: str, folder: Path | str) -> None:
    """Refuse, in one line, an adapter whose base checksum differs from ``model``'s."""
    have = weights_fingerprint(model)
    if have != info["base_checksum"]:
        raise AdapterMismatchError(
            f"{folder}: adapter was trained on {info['base_model']} (checksum {info['base_checksum'][:12]}), "
            f"not on the loaded MLLM {model_id} (checksum {have[:12]}); load its base with --mllm-model"
        )


def merge_adapter(model: Any, folder: Path | str, model_id: str, *, merge: bool = True) -> tuple[Any, dict]:
    """``model`` with the adapter in ``folder`` loaded (checked against its base; merged by default),
    and the adapter's description."""
    import peft

    folder = Path(folder).expanduser()
    info = read_adapter_info(folder)
    check_base(info, model, model_id, folder)
    try:
        wrapped = peft.PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise WeightsError(f"{folder}: adapter does not load into {model_id} ({exc})") from None
    return (wrapped.merge_and_unload() if merge else wrapped).eval(), info
