"""One temporary folder per browser session, one sub-folder per run, removed when done.

A page that runs models for strangers must not fill the disk nor let one
visitor read another's files. Each session (gradio's ``session_hash``) gets a
folder under the app's private root; each run gets a fresh folder inside it
and replaces the session's previous run. A session's folder goes when the
visitor closes the page (gradio's ``unload``), or when it has been idle longer
than the time limit (a background sweep), and the whole root goes when the app
closes.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


class SessionStore:
    """Folders of the page's sessions under ``root`` (created here, private to this app)."""

    def __init__(self, root: Path | None = None, ttl_seconds: float = 3600.0) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="deepsound-ui-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.sessions_dir = self.root / "sessions"
        self.sessions_dir.mkdir(exist_ok=True)
        self.ttl_seconds = float(ttl_seconds)
        self._last_seen: dict[str, float] = {}
        self._counter = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def _folder(self, session: str) -> Path:
        name = _SAFE.sub("", session or "") or "anonymous"
        return self.sessions_dir / name[:64]

    def new_run(self, session: str, label: str = "run") -> Path:
        """A fresh, empty folder for one run; the session's earlier runs are removed."""
        folder = self._folder(session)
        with self._lock:
            self._counter += 1
            number = self._counter
            self._last_seen[folder.name] = time.monotonic()
        if folder.is_dir():
            for old in folder.iterdir():
                shutil.rmtree(old, ignore_errors=True)
        run = folder / f"{_SAFE.sub('_', label)[:40] or 'run'}-{number}"
        run.mkdir(parents=True)
        return run

    def discard(self, run: Path) -> None:
        """Remove a run that failed: nothing half-written stays behind."""
        shutil.rmtree(run, ignore_errors=True)

    def end(self, session: str) -> None:
        """The visitor left: their files go."""
        folder = self._folder(session)
        with self._lock:
            self._last_seen.pop(folder.name, None)
        shutil.rmtree(folder, ignore_errors=True)

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove the folders of sessions idle longer than the time limit; returns their names."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stale = [name for name, seen in self._last_seen.items() if now - seen > self.ttl_seconds]
            for name in stale:
                self._last_seen.pop(name, None)
        for name in stale:
            shutil.rmtree(self.sessions_dir / name, ignore_errors=True)
        if stale:
            log.info("removed %d idle session folder(s)", len(stale))
        return stale

    def start_sweeper(self, every: float | None = None) -> None:
        if self._sweeper is not None:
            return
        every = every if every is not None else max(1.0, min(60.0, self.ttl_seconds / 4))

        def loop() -> None:
            while not self._stop.wait(every):
                self.sweep()

        self._sweeper = threading.Thread(target=loop, name="deepsound-ui-sweeper", daemon=True)
        self._sweeper.start()

    def close(self) -> None:
        """Stop sweeping and remove everything this store ever held."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
            self._sweeper = None
        shutil.rmtree(self.root, ignore_errors=True)

    def active(self) -> list[str]:
        return (
            sorted(p.name for p in self.sessions_dir.iterdir() if p.is_dir())
            if self.sessions_dir.is_dir()
            else []
        )
