"""An adapter merged into its base, written as a checkpoint folder that ``--mllm-model`` loads.

Merging removes the LoRA indirection (and the peft dependency) at inference
time: the folder has the published layout of the base family, so anything that
reads the original checkpoint reads the fine-tuned one.
"""

from __future__ import annotations

from pathlib import Path

from deepsound.errors import ConfigError
from deepsound.training.adapter import apply_adapter, read_adapter_info


def merge_adapter(
    adapter: Path,
    output: Path,
    *,
    base_model: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    offline: bool = False,
) -> Path:
    """Load the adapter's base (or ``base_model``), merge the adapter in, export to ``output``."""
    from deepsound.models.qwen_omni.reasoner import OmniReasoner

    info = read_adapter_info(adapter)
    source = base_model or info["base_model"]
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise ConfigError(f"{output}: exists and is not empty; choose a new folder for the merged model")
    reasoner = OmniReasoner.load(source, device=device, dtype=dtype, offline=offline)
    apply_adapter(reasoner, adapter)
    return reasoner.export_checkpoint(output)
