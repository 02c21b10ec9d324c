"""Finding (and if allowed, fetching) the local copy of a weight file.

Order, first hit wins: an explicit path the user gave; a weights folder in
MMAudio's layout (``<dir>/weights/…``, ``<dir>/ext_weights/…``, or the file
directly in ``<dir>``); the DeepSound cache (``$DEEPSOUND_CACHE`` or
``~/.cache/deepsound``) and, for hub files, the Hugging Face cache; a copy
shipped with the package (configuration only); and last a download, unless
offline. A file that is found but fails its check is an error rather than a
reason to look further: silently using another copy would hide the problem.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from deepsound.errors import WeightsError
from deepsound.files import missing_dirs
from deepsound.weights import trust
from deepsound.weights.checksum import Verify, verify_file
from deepsound.weights.download import download_hub, download_url, hub_cached, remove_hub_litter
from deepsound.weights.messages import missing_files_message
from deepsound.weights.registry import WeightFile, get

_TRUE = {"1", "true", "yes", "on"}


def default_cache_dir() -> Path:
    """``$DEEPSOUND_CACHE``, else ``$XDG_CACHE_HOME/deepsound``, else ``~/.cache/deepsound``."""
    if env := os.environ.get("DEEPSOUND_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "deepsound"


def offline_from_env() -> bool:
    """``DEEPSOUND_OFFLINE`` or Hugging Face's ``HF_HUB_OFFLINE`` switch downloads off."""
    return offline_reason(False) is not None


def offline_reason(flag: bool) -> str | None:
    """What switched downloads off, for messages: ``--offline``, ``HF_HUB_OFFLINE=1``…, or None."""
    if flag:
        return "--offline"
    for var in ("DEEPSOUND_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var].strip()}"
    return None


def stamp_dir_for(cache_dir: Path) -> Path:
    return cache_dir / "verified"


def _entry(name: str | WeightFile) -> WeightFile:
    return name if isinstance(name, WeightFile) else get(name)


def _in_folder(entry: WeightFile, root: Path) -> list[Path]:
    """Places below ``root`` where the MMAudio layout (or a flat folder) keeps ``entry``.

    A folder checkpoint is only ever looked for in its own folder (``ext_weights/<repo name>``):
    a bare ``config.json`` belongs to another model. The last place is the flat one.
    """
    paths = [] if entry.folder else [root / entry.subdir / entry.filename]
    if entry.hub_repo is not None:
        last = entry.hub_repo.split("/")[-1]
        paths.append(root / entry.subdir / last / entry.filename)
        paths.append(root / entry.subdir / entry.hub_repo / entry.filename)
        if entry.folder:
            paths.append(root / last / entry.filename)
            return paths
    paths.append(root / entry.filename)
    return paths


def packaged_copy(entry: WeightFile) -> Path | None:
    """The copy of a configuration file shipped in ``deepsound/data``, if any."""
    if entry.packaged is None:
        return None
    candidate = resources.files("deepsound") / "data" / entry.packaged
    path = Path(str(candidate))
    return path if path.is_file() else None


def locate(
    name: str | WeightFile,
    *,
    weights_dir: Path | None = None,
    cache_dir: Path | None = None,
    include_packaged: bool = True,
) -> tuple[str, Path] | None:
    """First existing local copy as ``(where, path)``, unchecked; ``None`` when there is none.

    ``where`` is one of ``"weights_dir"``, ``"cache"``, ``"hf_cache"``, ``"packaged"``.
    """
    entry = _entry(name)
    if weights_dir is not None:
        for path in _in_folder(entry, Path(weights_dir).expanduser()):
            if path.is_file():
                return "weights_dir", path
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    for path in _in_folder(entry, cache)[:-1]:  # never a bare file at the top of the cache
        if path.is_file():
            return "cache", path
    if entry.is_hub and (found := hub_cached(entry)) is not None:
        return "hf_cache", found
    if include_packaged and (packaged := packaged_copy(entry)) is not None:
        return "packaged", packaged
    return None


def _missing_message(entry: WeightFile, weights_dir: Path | None, offline: bool) -> str:
    reason = offline_reason(offline) or offline_reason(True) or "--offline"
    return missing_files_message([entry], weights_dir, offline=reason, cache_dir=default_cache_dir())


def resolve(
    name: str | WeightFile,
    *,
    explicit: Path | None = None,
    weights_dir: Path | None = None,
    offline: bool = False,
    cache_dir: Path | None = None,
    verify: Verify = "checksum",
) -> Path:
    """Path of a usable local copy of ``name``, downloading it when needed and allowed.

    ``verify`` decides how hard a found file is checked (see
    :func:`deepsound.weights.verify_file`); checksum results are cached, so
    ``"checksum"`` (the default: a file is checked before it is first used) costs one
    full read per file, not one per run. Fresh downloads are always checksum-checked,
    and a download or cached copy that fails is removed, never used.
    """
    entry = _entry(name)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    stamps = stamp_dir_for(cache)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_dir():
            found = next((p for p in _in_folder(entry, path) if p.is_file()), None)
            if found is None:
                raise WeightsError(f"{path}: no {entry.filename} in this folder (given for {entry.name})")
            path = found
        elif not path.is_file():
            raise WeightsError(f"{path}: file not found (given for {entry.name}, {entry.filename})")
        return verify_file(entry, path, verify=verify, stamp_dir=stamps)

    located = locate(entry, weights_dir=weights_dir, cache_dir=cache)
    if located is not None:
        where, path = located
        if where == "packaged":
            return path  # our own copy of the numbers; not the published bytes, nothing to compare
        if where == "weights_dir":  # the user's folder: say what is wrong, never delete their file
            return verify_file(entry, path, verify=verify, stamp_dir=stamps)
        return verified_or_removed(entry, path, verify=verify, stamp_dir=stamps)

    if offline or offline_from_env():
        raise WeightsError(_missing_message(entry, weights_dir, offline))
    if entry.is_hub:
        return verified_or_removed(entry, download_hub(entry), verify="checksum", stamp_dir=stamps)
    return _recorded(entry, download_url(entry, cache / entry.relpath, stamp_dir=stamps), stamps)


def _recorded(entry: WeightFile, path: Path, stamps: Path) -> Path:
    """A fresh download of a file without a published checksum: record it (trust on first use)."""
    if entry.trust_on_first_use:
        verified_or_removed(entry, path, verify="checksum", stamp_dir=stamps)
    return path


def download_folder(entry: WeightFile, root: Path | None) -> Path:
    """A whole hub checkpoint (weights, config, tokenizer) into ``root/<subdir>/<repo name>`` or the
    Hugging Face cache; returns the folder. The publishers state no checksums for these files; the
    hub client checks each against its LFS hash while downloading."""
    import huggingface_hub

    if entry.hub_repo is None:
        raise WeightsError(f"{entry.name}: no hub repository to download from")
    local = root / entry.subdir / entry.hub_repo.split("/")[-1] if root is not None else None
    created = missing_dirs(local) if local is not None else []
    try:
        path = huggingface_hub.snapshot_download(
            repo_id=entry.hub_repo, revision=entry.hub_revision, local_dir=str(local) if local else None
        )
    except Exception as exc:  # the hub raises many types (HTTP, offline, not found)
        remove_hub_litter(created)
        raise WeightsError(
            f"{entry.name}: cannot download {entry.hub_repo} ({type(exc).__name__}: {exc})"
        ) from None
    return Path(path)


def verified_or_removed(entry: WeightFile, path: Path, *, verify: Verify, stamp_dir: Path | None) -> Path:
    """Check a downloaded or cached copy; one that fails is deleted (with its hub blob) so that
    no later run can pick it up, and the error says so."""
    try:
        return verify_file(entry, path, verify=verify, stamp_dir=stamp_dir)
    except WeightsError as exc:
        target = Path(path).resolve()
        Path(path).unlink(missing_ok=True)
        if target != Path(path):
            target.unlink(missing_ok=True)
        raise WeightsError(
            f"{exc}; removed the bad copy, run `deepsound weights download {entry.name}`"
        ) from None


def download(
    name: str | WeightFile,
    *,
    dest_root: Path | None = None,
    cache_dir: Path | None = None,
    show_progress: bool = True,
) -> Path:
    """Make sure the published file itself is present (never the packaged copy), checked by checksum.

    Plain-URL files go to ``dest_root`` (a weights folder) or the cache, in
    the MMAudio layout; hub files go to ``dest_root/<subdir>`` or the Hugging
    Face cache. A present copy that passes its checksum is kept as is.
    """
    entry = _entry(name)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    stamps = stamp_dir_for(cache)
    root = Path(dest_root).expanduser() if dest_root is not None else None
    if entry.folder:
        folder = download_folder(entry, root)
        trust.check_folder(entry, folder, cache_dir=cache, stamp_dir=stamps)
        return folder
    if entry.is_hub:
        existing = (
            next((p for p in _in_folder(entry, root) if p.is_file()), None) if root else hub_cached(entry)
        )
        if existing is not None:
            try:
                return verify_file(entry, existing, verify="checksum", stamp_dir=stamps)
            except WeightsError:
                pass  # re-fetch below
        local_dir = root / entry.subdir if root is not None else None
        return verified_or_removed(
            entry, download_hub(entry, local_dir=local_dir), verify="checksum", stamp_dir=stamps
        )
    dest = (root if root is not None else cache) / entry.relpath
    if dest.is_file():
        try:
            return verify_file(entry, dest, verify="checksum", stamp_dir=stamps)
        except WeightsError:
            pass  # replaced by a fresh download; the rename is atomic
    return _recorded(entry, download_url(entry, dest, stamp_dir=stamps, show_progress=show_progress), stamps)
