"""Opening media files and turning FFmpeg failures into one-line user errors.

FFmpeg reports problems as errno-style exceptions ("Invalid data found when
processing input"), which say nothing about *which* file a batch choked on or
what a user can do about it. Everything in :mod:`deepsound.media` opens files
through here so that every failure names the file and the problem.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import av

from deepsound.errors import MediaError


def check_input_path(path: Path | str) -> Path:
    """Fail early, with a clear line, on the mistakes FFmpeg words worst."""
    path = Path(path)
    try:
        os.stat(path)
    except OSError as exc:
        raise MediaError(f"{path}: {_missing_reason(path, exc)}") from None
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")
    return path


def _missing_reason(path: Path, exc: OSError) -> str:
    """Why ``stat`` failed, in words: a loop or a dangling link is not a missing file."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (the link points back to itself)"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "file not found (a part of the path is a file, not a folder)"
    if os.path.islink(path):
        return "broken symbolic link (its target does not exist)"
    return "file not found"


def explain(exc: BaseException) -> str:
    """A short reason for an FFmpeg error, without errno noise or the repeated file name."""
    if isinstance(exc, av.error.InvalidDataError):
        return "invalid data: not a media file, or a corrupt or truncated one"
    if isinstance(exc, av.error.EOFError):
        return "ends before any media data: empty or truncated"
    if isinstance(exc, av.error.PermissionError):
        return "permission denied"
    message = getattr(exc, "strerror", None) or str(exc)
    return str(message).strip().rstrip(".") or type(exc).__name__


def open_input(path: Path | str) -> av.container.InputContainer:
    """Open ``path`` for reading or raise :class:`MediaError` naming it."""
    path = check_input_path(path)
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: cannot be read as media ({explain(exc)})") from None
    except OSError as exc:
        raise MediaError(f"{path}: cannot be opened ({exc.strerror or exc})") from None


@contextlib.contextmanager
def media_errors(path: Path | str, doing: str) -> Iterator[None]:
    """Re-raise FFmpeg errors met while ``doing`` something with ``path`` as :class:`MediaError`."""
    try:
        yield
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: {doing} failed ({explain(exc)})") from None
