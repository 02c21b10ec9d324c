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
from deepsound.weights.resolve import default_cache_dir, locate, offline_reason

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


def _where_from(entry: WeightFile) -> str:
    """A short, real origin: the host and repository or release, never a pseudo-URL."""
    if entry.hub_repo is not None:
        return f"huggingface.co/{entry.hub_repo}"
    parts = (entry.url or "?").split("://", 1)[-1].split("/")
    host = {"raw.githubusercontent.com": "github.com"}.get(parts[0], parts[0])
    return "/".join([host, *parts[1:3]])  # host/owner/project: where to look, short enough for one line


def _gb(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / 1e9:.2f} GB" if size >= 10_000_000 else f"{size / 1e3:.0f} KB"


def missing_message(entries: list[WeightFile], weights_dir: Path | None, *, offline: bool | str) -> str:
    """A summary line, one indented line per missing file, and what to do.

    ``offline`` is what switched downloads off: ``"--offline"``, the environment variable's
    name, ``True`` (one of them), or ``False`` when the files could not be downloaded.
    """
    cache = default_cache_dir()
    root = str(weights_dir) if weights_dir is not None else "<weights-dir>"
    if offline is True:
        offline = offline_reason(True) or "--offline"
    total = (
        _gb(download_size(entries))
        if all(e.size for e in entries)
        else f"at least {_gb(download_size(entries))}"
    )
    why = f"downloads are off ({offline})" if offline else "they could not be downloaded"
    count = f"{len(entries)} weight file{'s' if len(entries) != 1 else ''}"
    lines = [f"{count} missing ({total}) and {why}:"]
    width = max(len(e.relpath) for e in entries)
    lines += [f"  {e.relpath:<{width}}  {_gb(e.size):>8}  from {_where_from(e)}" for e in entries]
    command = f"deepsound weights download {' '.join(e.name for e in entries)}"
    if offline == "--offline":
        then = "then run again (or leave out --offline to fetch them on first use)"
    elif offline:
        then = f"then run again (or unset {offline.split('=')[0]} to fetch them on first use)"
    else:
        then = "then run again"
    lines.append(
        f"Put them under {root}/ (pass --weights-dir) or {cache}/, or run `{command}` on a machine online; {then}."
    )
    return "\n".join(lines)
