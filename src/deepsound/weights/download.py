"""Fetching weight files: plain HTTP with resume, or the Hugging Face hub.

Weight files are hundreds of megabytes to several gigabytes, fetched over
connections that drop. A plain-URL download therefore writes to ``<file>.part``
beside its destination, continues an existing ``.part`` with an HTTP ``Range``
request, checks size and checksum, and only then renames the file into place,
so a half-written file never passes for a finished one. A lock file keeps two
processes from writing the same ``.part``.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from deepsound.errors import WeightsError
from deepsound.files import missing_dirs, remove_empty_dirs
from deepsound.weights.checksum import cached_digest, remember_digest
from deepsound.weights.registry import WeightFile

_CHUNK = 1024 * 1024
_TIMEOUT_S = 60.0
_USER_AGENT = "deepsound-weights/1"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an advisory lock on ``lock_path`` (created if needed) while inside.

    The lock file is removed when the work leaves nothing to resume, so a failed download
    leaves no litter. Removing it is safe because a waiter that wakes up holding the lock of
    a file no longer at ``lock_path`` (another inode) lets go and takes the new one instead.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock_path, "a")  # noqa: SIM115 - closed below, after the lock is released
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
    try:
        yield
    finally:
        part = lock_path.with_name(lock_path.name[: -len(".lock")] + ".part")
        if not part.exists():
            lock_path.unlink(missing_ok=True)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _open(url: str, offset: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": _USER_AGENT}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S)


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
        transient=True,
    )


def _fetch_into(entry: WeightFile, url: str, part: Path, *, show_progress: bool) -> None:
    """Append the rest of ``url`` to ``part``; restart from zero if the server ignores Range."""
    offset = part.stat().st_size if part.exists() else 0
    if entry.size is not None and offset > entry.size:
        part.unlink()
        offset = 0
    if entry.size is not None and offset == entry.size:
        return
    try:
        response = _open(url, offset)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset > 0:
            return  # nothing left to send: the .part is already complete
        raise WeightsError(f"{entry.name}: download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsError(f"{entry.name}: cannot reach {url} ({reason})") from None
    with response:
        resumed = offset > 0 and response.status == 206
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else entry.size
        with _progress(show_progress) as progress, open(part, "ab" if resumed else "wb") as out:
            task = progress.add_task(entry.filename, total=total, completed=offset)
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    progress.advance(task, len(chunk))
            except OSError as exc:
                raise WeightsError(
                    f"{entry.name}: download of {url} interrupted ({exc}); run the same command again "
                    f"to resume from {part}"
                ) from None
    if total is not None and part.stat().st_size != total:
        raise WeightsError(
            f"{entry.name}: download of {url} ended early ({part.stat().st_size} of {total} bytes); "
            f"run the same command again to resume from {part}"
        )


def download_url(
    entry: WeightFile,
    dest: Path,
    *,
    stamp_dir: Path | None = None,
    show_progress: bool = True,
) -> Path:
    """Download ``entry.url`` to ``dest`` with resume, verification and an atomic rename."""
    if entry.url is None:
        raise ValueError(f"{entry.name} has no URL")
    dest = Path(dest)
    created = missing_dirs(dest.parent)
    try:
        return _download_url(entry, dest, stamp_dir=stamp_dir, show_progress=show_progress)
    except BaseException:
        remove_empty_dirs(created)  # a failed first download leaves no empty cache folders
        raise


def _download_url(entry: WeightFile, dest: Path, *, stamp_dir: Path | None, show_progress: bool) -> Path:
    assert entry.url is not None
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _exclusive(dest.with_name(dest.name + ".lock")):
        _fetch_into(entry, entry.url, part, show_progress=show_progress)
        size = part.stat().st_size
        if entry.size is not None and size != entry.size:
            part.unlink()
            raise WeightsError(
                f"{entry.name}: {entry.url} sent {size} bytes, expected {entry.size}; removed the download"
            )
        algorithm, expected = entry.checksum_algorithm, entry.checksum_hex
        if algorithm is not None:
            actual = cached_digest(part, algorithm, None)
            if actual != expected:
                part.unlink()
                raise WeightsError(
                    f"{entry.name}: checksum mismatch for {entry.filename} from {entry.url}: "
                    f"expected {algorithm}:{expected}, got {algorithm}:{actual}; removed the download"
                )
        os.replace(part, dest)
        if algorithm is not None and stamp_dir is not None:
            remember_digest(dest, algorithm, actual, stamp_dir)  # rename keeps size and mtime
    return dest


def download_hub(entry: WeightFile, *, local_dir: Path | None = None) -> Path:
    """Fetch a hub file through huggingface_hub (its cache, or ``local_dir`` when given)."""
    import huggingface_hub

    assert entry.hub_repo is not None and entry.hub_filename is not None
    created = missing_dirs(local_dir) if local_dir is not None else []
    try:
        path = huggingface_hub.hf_hub_download(
            repo_id=entry.hub_repo,
            filename=entry.hub_filename,
            revision=entry.hub_revision,
            local_dir=str(local_dir) if local_dir is not None else None,
        )
    except Exception as exc:  # the hub raises many types (HTTP, offline, not found)
        remove_hub_litter(created)
        raise WeightsError(
            f"{entry.name}: cannot download {entry.source} ({type(exc).__name__}: {exc})"
        ) from None
    return Path(path)


def remove_hub_litter(created: list[Path]) -> None:
    """After a failed hub download into folders we created: the hub's own bookkeeping
    (``.cache/huggingface``) goes, and the folders too if nothing else is in them."""
    import shutil

    if not created:
        return
    top = created[-1]
    if top.is_dir() and not any(p.is_file() for p in top.rglob("*") if ".cache" not in p.parts):
        shutil.rmtree(top, ignore_errors=True)


def hub_cached(entry: WeightFile) -> Path | None:
    """The file in the Hugging Face cache, at the pinned revision or the cached ``main``."""
    import huggingface_hub

    assert entry.hub_repo is not None and entry.hub_filename is not None
    for revision in dict.fromkeys([entry.hub_revision, None]):
        found = huggingface_hub.try_to_load_from_cache(entry.hub_repo, entry.hub_filename, revision=revision)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None
