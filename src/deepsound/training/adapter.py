"""LoRA adapters as files: saved with the identity of their base; applied through the MLLM contract.

Beside peft's own files the folder holds ``deepsound_adapter.json`` with the base
model's id and a fingerprint of its weights (:mod:`deepsound.models.lora` says how
it is made and checks it when a model loads the adapter). The frame sampling the
adapter was trained with (frames per second, frame count and pixel budgets) is kept
too and restored when it is applied: a model tuned on 8 small frames judges best
when it is shown 8 small frames.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deepsound.files import write_json
from deepsound.interfaces import Mllm
from deepsound.models.lora import (
    FINGERPRINT_ALGORITHM,
    INFO_FILE,
    AdapterMismatchError,
    check_base,
    read_adapter_info,
    weights_fingerprint,
)

__all__ = [
    "INFO_FILE",
    "AdapterMismatchError",
    "apply_adapter",
    "check_base",
    "read_adapter_info",
    "save_adapter",
    "weights_fingerprint",
]


def save_adapter(peft_model: Any, folder: Path, info: dict[str, Any]) -> Path:
    """peft's files plus ``deepsound_adapter.json`` (written last: a folder without it is incomplete)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(folder))
    write_json(
        folder / INFO_FILE, {**info, "fingerprint_algorithm": FINGERPRINT_ALGORITHM, "saved": time.time()}
    )
    return folder


def apply_adapter(reasoner: Mllm, folder: Path | str) -> Mllm:
    """The adapter in ``folder`` merged into ``reasoner`` (checked against its base); the reasoner back."""
    reasoner.apply_adapter(Path(folder).expanduser())
    return reasoner
