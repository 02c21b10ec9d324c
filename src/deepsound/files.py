"""Atomic file output.

A crash, a Ctrl-C or a bad clip halfway through a batch must never leave a
half-written ``.wav`` or ``.mp4`` behind that a re-run would then take for a
finished result. Everything the project writes goes through
:func:`atomic_output`: write to a temporary name in the same folder, then
rename, which is atomic on one file system.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepsound.errors import OutputError


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) or fail with one clear line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{path}: is a file, not a folder; give an output folder") from None
    except NotADirectoryError:
        raise OutputError(f"{path}: cannot create output folder (a part of the path is a file)") from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot create output folder ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise OutputError(f"{path}: output folder is not writable")
    return path


def missing_dirs(path: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``path``, deepest first."""
    path = Path(path)
    missing: list[Path] = []
    for part in (path, *path.parents):
        if part.exists() or part.is_symlink():
            break
        missing.append(part)
    return missing


def remove_empty_dirs(folders: list[Path]) -> None:
    """Remove folders this run created, deepest first, as long as they are empty (never anything else)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (another run's files, or ours kept on purpose) or already gone


@contextlib.contextmanager
def output_dir(path: Path) -> Iterator[Path]:
    """``ensure_dir(path)`` for one piece of work: if the work fails, folders it created and left
    empty are removed again, so a failed run leaves no empty output folder behind."""
    created = missing_dirs(path)
    ensure_dir(Path(path))
    try:
        yield Path(path)
    except BaseException:
        remove_empty_dirs(created)
        raise


def check_output_dir(path: Path) -> Path:
    """Fail early when ``path`` cannot become an output folder, without creating anything."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "is a file" if part == path else f"lies under the file {part}"
                raise OutputError(f"{path}: {where}, not a folder; give an output folder")
            break
    return path


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary name keeps the suffix, so libraries that pick a format from
    the extension (soundfile, PyAV) still do.
    """
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes 0600 files; a result is the user's file and gets their umask like any other
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it.

    ``os.umask`` can only be read by setting it, which for an instant changes the umask of every
    thread (the web page writes files from several). Linux reports it in ``/proc/self/status``;
    elsewhere the set-and-restore fallback runs under a lock, which at least keeps our own
    threads from racing each other.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are one file (also through links or other spellings of the path)."""
    try:
        return Path(a).exists() and Path(b).exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (traces and batch summaries are read by other tools).

    JSON has no NaN or infinity: Python would write the bare words ``NaN`` / ``Infinity``, which
    other tools refuse. A measurement that is not a number is written as ``null``, and
    ``allow_nan=False`` makes any other way of producing one an error here, not in the reader.
    """
    text = json.dumps(_finite(data), indent=2, ensure_ascii=False, default=str, allow_nan=False)
    with atomic_output(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


from deepsound.output_lock import OutputLock  # noqa: E402, F401  (its home moved; still importable here)
