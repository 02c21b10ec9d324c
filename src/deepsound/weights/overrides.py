"""A user's own checkpoint in place of a published file: ``--weights NAME=PATH``.

People fine-tune MMAudio and convert checkpoints; such a file has the published format but
other bytes, so the size and checksum checks that protect downloads and the cache would
refuse it. An explicit per-file override is the one way past them: the file is loaded
strictly (every tensor name and shape must still fit the model), its sha256 goes into the
trace, and one log line says it is not the published file. Nothing else lets a
different file through.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from deepsound.errors import ConfigError, WeightsError
from deepsound.interfaces import Placement
from deepsound.weights.checksum import file_digest
from deepsound.weights.registry import REGISTRY
from deepsound.weights.requirements import missing, missing_message
from deepsound.weights.resolve import resolve

log = logging.getLogger(__name__)

_used: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def parse_override(text: str) -> tuple[str, Path]:
    """``"mmaudio_small_16k=/ckpt/mine.pth"`` → ``("mmaudio_small_16k", Path(...))``."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigError(f"--weights takes NAME=PATH, got {text!r}")
    check_name(name.strip())
    return name.strip(), Path(path.strip()).expanduser()


def check_name(name: str) -> None:
    if name not in REGISTRY:
        raise ConfigError(f"unknown weight file {name!r}; see `deepsound weights list` for the names")


def resolve_for(config: Placement, name: str) -> Path:
    """The file to load for ``name`` placed by ``config``: the user's override, else the published one."""
    override = config.weights.get(name)
    if override is None:
        try:
            return resolve(name, weights_dir=config.weights_dir, offline=config.offline)
        except WeightsError as exc:
            raise _with_all_missing(exc, config, name) from None
    check_name(name)
    path = Path(override).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: file not found (given with --weights {name}=…)")
    with _lock:
        known = _used.get(name)
        if known is None or known["path"] != str(path):
            digest = file_digest(path, "sha256")
            _used[name] = {"path": str(path), "sha256": digest}
            log.warning(
                "%s: loading %s (sha256 %s…) — your own file, not the published one", name, path, digest[:12]
            )
    return path


def used_overrides() -> dict[str, dict[str, Any]]:
    """Every override loaded in this process: name → path and sha256 (for the trace)."""
    with _lock:
        return {k: dict(v) for k, v in _used.items()}


def _with_all_missing(exc: WeightsError, config: Placement, name: str) -> WeightsError:
    """A failed download names every file of the run still missing, not just the first.

    A file that is present but fails its check is not missing, so its own message stands alone.
    """
    absent = missing([n for n in config.run_files if n not in config.weights], config.weights_dir)
    if name not in {e.name for e in absent}:
        return exc
    from deepsound.weights.resolve import offline_reason

    why = offline_reason(config.offline) or False
    return WeightsError(f"{exc}\n{missing_message(absent, config.weights_dir, offline=why)}")
