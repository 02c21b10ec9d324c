"""One writer per output name, also across machines that share an output folder.

Two runs writing the same clip into one folder would overwrite each other, and a failing
run's cleanup could delete the other's files. ``<folder>/.<name>.lock`` is held for the whole
run. It is written by hand rather than with ``fcntl`` locks because output folders are often
network file systems shared by Ray workers on several machines, where advisory locks are
unreliable and a lock must say who holds it. The rules:

* **Atomic creation with content.** The holder's record (host, pid, a unique token, its lease)
  is written to a private file first and then hard-linked to the lock name, so a lock is never
  seen half-written; where links are not supported, ``O_EXCL`` creation is used instead.
* **Stale locks.** On the holder's own machine a lock is stale once its process is gone. A
  holder refreshes the lock's modification time every ``lease/4`` seconds (a heartbeat), so a
  lock from another machine is stale once it has not been refreshed for a whole lease — a
  killed Ray worker's clip can be taken over on another node. A lock that is empty or
  unreadable (a crash while it was being written by an older version) is stale after
  ``EMPTY_GRACE_S``. The Ray scheduler also releases a lock at once when Ray reports its
  holder's worker dead (:func:`release_if_held_by`).
* **Takeover is atomic.** Removing a stale lock happens only under a second, short-lived guard
  file (``O_EXCL``), and only if the lock still holds exactly the record that was judged stale;
  so two runs that both saw the same stale lock can never both remove it and both hold it.
* **Release** removes the lock only while it still holds this run's own token.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepsound.errors import OutputError

LEASE_S = 120.0  # a holder on another machine that has not refreshed for this long is gone
EMPTY_GRACE_S = 10.0  # an empty or unreadable lock older than this is a crash's leftover
GUARD_STALE_S = 30.0  # a takeover guard is held for milliseconds; one this old is a crash's


class OutputLock:
    """``with OutputLock(folder, name):`` — see the module docstring for the rules."""

    def __init__(self, folder: Path, name: str, *, lease_s: float | None = None) -> None:
        self.path = Path(folder) / f".{name}.lock"
        self.lease_s = LEASE_S if lease_s is None else lease_s
        self.token = uuid.uuid4().hex
        self.held = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def record(self) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "token": self.token,
            "lease_s": self.lease_s,
        }

    def __enter__(self) -> OutputLock:
        for _ in range(3):
            if _create(self.path, json.dumps(self.record)):
                self.held = True
                self._start_heartbeat()
                return self
            seen = _read(self.path)
            if seen is None:
                continue  # released this instant: try again
            if not is_stale(self.path, seen):
                raise OutputError(
                    f"{self.path.parent}: another run ({describe(seen)}) is writing {self.path.name[1:-5]!r} "
                    f"into this folder; wait for it or choose another output folder"
                )
            take_over(self.path, seen)
        raise OutputError(f"{self.path}: cannot take the output lock (other runs keep taking it)")

    def __exit__(self, *exc: object) -> None:
        if not self.held:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        with _guard(self.path) as got:
            seen = _read(self.path)
            if got and seen is not None and _parse(seen).get("token") == self.token:
                self.path.unlink(missing_ok=True)
        self.held = False

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.lease_s / 4):
                with contextlib.suppress(OSError):
                    os.utime(self.path)

        self._beat = threading.Thread(target=beat, name=f"lock-heartbeat-{self.path.name}", daemon=True)
        self._beat.start()


def _create(path: Path, content: str) -> bool:
    """Create ``path`` holding ``content`` atomically; False when it exists."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.write_text(content, encoding="utf-8")
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system: exclusive creation, then write
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            return True
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _parse(raw: str) -> dict[str, Any]:
    """The holder's record; older versions wrote ``host pid``."""
    raw = raw.strip()
    try:
        data = json.loads(raw)
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    host, _, pid = raw.rpartition(" ")
    return {"host": host, "pid": int(pid)} if host and pid.isdigit() else {}


def describe(raw: str) -> str:
    data = _parse(raw)
    return f"{data['host']} pid {data['pid']}" if "host" in data and "pid" in data else "another process"


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def is_stale(path: Path, raw: str) -> bool:
    """Whether the lock holding ``raw`` belongs to a run that is gone (module docstring)."""
    data = _parse(raw)
    if not data:
        return _age(path) > EMPTY_GRACE_S
    if data.get("host") == socket.gethostname() and isinstance(data.get("pid"), int):
        try:
            os.kill(int(data["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, another user's
        return False
    lease = float(data.get("lease_s") or LEASE_S)
    return _age(path) > lease  # another machine's holder stopped refreshing its lease


@contextlib.contextmanager
def _guard(path: Path) -> Iterator[bool]:
    """The short-lived takeover guard; yields whether it was obtained."""
    guard = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        if _age(guard) > GUARD_STALE_S:
            guard.unlink(missing_ok=True)  # a taker crashed holding it; the next attempt goes ahead
        yield False
        return
    os.close(fd)
    try:
        yield True
    finally:
        guard.unlink(missing_ok=True)


def take_over(path: Path, seen: str) -> bool:
    """Remove the lock if it still holds exactly ``seen`` (judged stale); True when removed."""
    with _guard(path) as got:
        if not got or _read(path) != seen:
            time.sleep(0.05)  # someone else is taking over: let them finish
            return False
        path.unlink(missing_ok=True)
        return True


def release_if_held_by(folder: Path, name: str, host: str, pid: int) -> bool:
    """Remove ``name``'s lock when it is held by ``host``/``pid``: for a scheduler that knows that
    process is dead for good (Ray reported its worker lost), without waiting for the lease."""
    path = Path(folder) / f".{name}.lock"
    seen = _read(path)
    if seen is None:
        return False
    data = _parse(seen)
    if data.get("host") != host or data.get("pid") != pid:
        return False
    return take_over(path, seen)
