"""Running a job for the page: check the input, run it off the event loop, stream its progress.

The steps themselves are the CLI's: :meth:`Pipeline.run` for the Generate tab,
:func:`deepsound.usecases.separate.separate_file` for Remove voice and
:func:`deepsound.usecases.judge.judge_file` for Screen. This module only adds what a
web page needs around them: an input check that fails in one line before any
model runs, messages that name the visitor's file rather than server paths,
and a worker thread whose progress events the page's generator function turns
into updates.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deepsound.errors import DeepSoundError, MediaError, WeightsError
from deepsound.media import MediaInfo, probe
from deepsound.progress import Listener, ProgressEvent
from deepsound.ui.timeline import LiveStatus

log = logging.getLogger(__name__)


def check_video(path: Path, max_seconds: float | None) -> MediaInfo:
    """The Generate tab's input: a readable file with pictures, not longer than the page allows."""
    info = probe(path)  # MediaError for missing, not media, corrupt, truncated, zero-length
    if not info.has_video:
        raise MediaError(f"{path}: has no video stream (an audio-only file?); upload a video")
    _check_length(path, info, max_seconds)
    return info


def check_media(path: Path, max_seconds: float | None, *, need_audio: bool = False) -> MediaInfo:
    """Remove voice / Screen inputs: any readable media, within the length limit."""
    info = probe(path)
    if need_audio and not info.has_audio:
        raise MediaError(f"{path}: has no audio stream; there is no voice to remove")
    _check_length(path, info, max_seconds)
    return info


def _check_length(path: Path, info: MediaInfo, max_seconds: float | None) -> None:
    if max_seconds is not None and info.duration > max_seconds:
        raise MediaError(
            f"{path}: is {info.duration:.0f} s long; this page accepts media up to {max_seconds:.0f} s"
        )


def page_message(exc: BaseException, *paths: str | Path | None) -> str:
    """One line for the page: the error's text with server folders cut down to the file's name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, WeightsError) and "missing" in text:
        from deepsound.ui.missing import short_weights_message

        text = short_weights_message(str(exc))
    for path in paths:
        if path:
            text = text.replace(str(path), Path(path).name)
    if not isinstance(exc, DeepSoundError):
        text = f"internal error ({type(exc).__name__}): {text}; the server log has the details"
    return text


class Job:
    """``work(listener)`` in a worker thread; :meth:`follow` yields the live status as events arrive."""

    def __init__(self, work: Callable[[Listener], Any]) -> None:
        self._work = work
        self._events: queue.Queue[ProgressEvent] = queue.Queue()
        self._done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="deepsound-ui-job", daemon=True)

    def _run(self) -> None:
        try:
            self.result = self._work(self._events.put)
        except BaseException as exc:  # noqa: BLE001 - handed to the page's thread by follow()
            self.error = exc
        finally:
            self._done.set()

    def follow(self, status: LiveStatus, every: float = 0.25) -> Iterator[LiveStatus]:
        """Start, yield ``status`` after each batch of events, raise the work's error at the end.

        If the page stops listening (the visitor left), the work is still waited
        for, so the next queued job never shares the models with an orphan.
        """
        self._thread.start()
        try:
            while True:
                finished = self._done.wait(every)
                changed = False
                while True:
                    try:
                        status.update(self._events.get_nowait())
                        changed = True
                    except queue.Empty:
                        break
                if changed:
                    yield status
                if finished and self._events.empty():
                    break
        finally:
            self._thread.join()
        if self.error is not None:
            raise self.error
