"""Which published files a configuration needs, and one message for all that are missing.

A user who runs the default pipeline offline (or whose download breaks) should learn every
missing file at once — where it comes from, how large it is and where to put it — not one
per attempt. ``files_for`` lists the files of the built-in components a configuration
names; user-registered components bring their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deepsound.weights.registry import REGISTRY, WeightFile
from deepsound.weights.resolve import default_cache_dir, locate

if TYPE_CHECKING:
    from deepsound.config import PipelineConfig

_DECODERS = {"16k": ("vae_16k", "bigvgan_16k"), "44k": ("vae_44k", "bigvgan_v2_44k", "bigvgan_v2_44k_config")}
_CONDITIONERS = ("clip_dfn5b", "clip_dfn5b_config", "synchformer")
_SEPARATOR = ("bs_roformer_viperx", "bs_roformer_viperx_config")


def variant_files(variant: str) -> list[str]:
    """The files MMAudio ``variant`` loads: its network, decoder, vocoder and the two encoders."""
    mode = "16k" if variant.endswith("16k") else "44k"
    return [f"mmaudio_{variant}", *_DECODERS[mode], *_CONDITIONERS]


def files_for(config: PipelineConfig) -> list[str]:
    """Registry names the configured built-in generator and separator load (the MLLM is a hub folder)."""
    names: list[str] = []
    if config.generator.name == "mmaudio":
        names += variant_files(config.generator.variant)
    elif config.generator.name == "foleycrafter":
        from deepsound.models.foleycrafter.settings import WEIGHT_FILES  # light: no torch, no models

        names += list(WEIGHT_FILES)
    if config.separator.name == "bs_roformer":
        names += list(_SEPARATOR)
    return [n for n in names if n not in config.weights]  # a user's own file stands in


def missing_for(config: PipelineConfig, cache_dir: Path | None = None) -> list[WeightFile]:
    found = []
    for name in files_for(config):
        entry = REGISTRY[name]
        if locate(entry, weights_dir=config.weights_dir, cache_dir=cache_dir) is None:
            found.append(entry)
    return found


def download_size(entries: list[WeightFile]) -> int:
    return sum(e.size or 0 for e in entries)


def missing_message(entries: list[WeightFile], weights_dir: Path | None, *, offline: bool) -> str:
    """One line naming every missing file, its size, and the three ways to provide it."""
    cache = default_cache_dir()
    root = str(weights_dir) if weights_dir is not None else "<weights-dir>"
    listed = ", ".join(f"{e.relpath} ({(e.size or 0) / 1e9:.2f} GB, from {e.source})" for e in entries)
    why = "downloads are off (--offline)" if offline else "they could not be downloaded"
    return (
        f"{len(entries)} weight file(s) missing and {why}: {listed}; put them under {root}/ "
        f"(pass --weights-dir) or {cache}/, or run `deepsound weights download "
        f"{' '.join(e.name for e in entries)}` while online (drop --offline to fetch them on first use)"
    )
