"""FoleyCrafter's files resolved by their registry names, each overridable with ``--weights NAME=PATH``.

Single files go through the project's resolver (weights folder, cache, hub cache, download, with
every missing file of the run named at once offline). Auffusion is a diffusers folder; its entry
names the folder's ``model_index.json``, and ``--weights auffusion_full_no_adapter=DIR`` (or that
file) points at a local copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deepsound.errors import WeightsError
from deepsound.models.foleycrafter.layout import AUFFUSION, FILE_NAMES, Files

if TYPE_CHECKING:
    from deepsound.interfaces import Placement


def files_for_placement(config: Placement) -> Files:
    """Every file of :class:`Files` where ``config`` (device, weights folder, overrides) finds it."""
    from deepsound.weights.overrides import resolve_for

    folder = auffusion_folder(config)
    resolved = {field: resolve_for(config, name) for field, name in FILE_NAMES.items()}
    return Files(auffusion=folder, **resolved)


def auffusion_folder(config: Placement) -> Path:
    """The Auffusion folder: the user's, a local copy the resolver finds, or a snapshot download."""
    from deepsound.weights.registry import get
    from deepsound.weights.resolve import download_folder, locate, offline_from_env

    override = config.weights.get(AUFFUSION)
    if override is not None:
        path = Path(override).expanduser()
        folder = path if path.is_dir() else path.parent
        if not (folder / "unet" / "config.json").is_file():
            raise WeightsError(f"{path}: not an Auffusion folder (no unet/config.json; given with --weights)")
        return folder
    entry = get(AUFFUSION)
    found = locate(entry, weights_dir=config.weights_dir)
    if found is not None:
        return found[1].parent
    if config.offline or offline_from_env():
        from deepsound.models.foleycrafter.settings import WEIGHT_FILES
        from deepsound.weights.requirements import missing, missing_message

        names = [n for n in (config.run_files or [f.name for f in WEIGHT_FILES]) if n not in config.weights]
        raise WeightsError(
            missing_message(missing(names, config.weights_dir), config.weights_dir, offline=True)
        )
    return download_folder(entry, config.weights_dir)
