"""MMAudio's own settings: what ``[pipeline.generator]`` holds when the generator is ``mmaudio``.

Light on purpose (no torch): the registry reads it to derive the TOML table, the CLI
options and the web page's controls before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsound.errors import ConfigError
from deepsound.models.mmaudio.variants import MIN_DURATION, VARIANTS, sequence_config

VARIANT_NAMES: tuple[str, ...] = tuple(VARIANTS)
DURATION_RANGE = (MIN_DURATION, None)  # one Synchformer window at least; no upper bound (windows help)

_DECODERS = {"16k": ("vae_16k", "bigvgan_16k"), "44k": ("vae_44k", "bigvgan_v2_44k", "bigvgan_v2_44k_config")}
_CONDITIONERS = ("clip_dfn5b", "clip_dfn5b_config", "synchformer")


@dataclass
class MMAudioSettings:
    """Which released network, and how to run it."""

    variant: str = field(
        default="large_44k_v2",
        metadata={"help": "variant", "choices": VARIANT_NAMES, "flag": "--variant"},
    )
    # conditional and unconditional passes in one batch: None = on CUDA only (it costs memory)
    batched_cfg: bool | None = field(
        default=None, metadata={"help": "both guidance passes in one batch (default: on CUDA only)"}
    )
    compile: bool = field(
        default=False, metadata={"help": "torch.compile the flow network (CUDA; pays off over many clips)"}
    )

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; choose one of: {', '.join(VARIANTS)}")

    @property
    def mode(self) -> str:
        return "16k" if self.variant.endswith("16k") else "44k"


def weight_files(settings: MMAudioSettings) -> list[str]:
    """The files ``settings.variant`` loads: its network, decoder, vocoder and the two encoders."""
    return [f"mmaudio_{settings.variant}", *_DECODERS[settings.mode], *_CONDITIONERS]


def sample_rate(settings: MMAudioSettings) -> int:
    return sequence_config(settings.mode).sampling_rate  # type: ignore[arg-type]
