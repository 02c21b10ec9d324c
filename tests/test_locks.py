"""Output locks: one holder at a time, stale locks taken over safely, results get the user's umask."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from deepsound import output_lock
from deepsound.distributed.summary import WorkerStats, release_lock_of_lost
from deepsound.errors import OutputError
from deepsound.files import atomic_output, current_umask
from deepsound.output_lock import OutputLock, release_if_held_by, take_over


def _dead_pid() -> int:
    proc = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    proc.start()
    proc.join()
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_lock_names_its_host_and_pid(tmp_path):
    with OutputLock(tmp_path, "clip") as lock:
        record = json.loads(lock.path.read_text())
        assert record["host"] == socket.gethostname() and record["pid"] == os.getpid()
        with pytest.raises(OutputError, match=f"another run \\({socket.gethostname()} pid {os.getpid()}\\)"):
            OutputLock(tmp_path, "clip").__enter__()
    assert not lock.path.exists()


def _contend(folder: str, start: float, results) -> None:  # noqa: ANN001
    while time.time() < start:
        time.sleep(0.001)
    try:
        with OutputLock(Path(folder), "clip"):
            results.put("held")
            time.sleep(0.5)
    except OutputError:
        results.put("refused")


def test_many_takers_of_one_stale_lock_never_both_hold_it(tmp_path):
    lock = tmp_path / ".clip.lock"
    lock.write_text(f"{socket.gethostname()} {_dead_pid()}")  # a killed run's lock (older format)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    start = time.time() + 0.5
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), start, results)) for _ in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(20)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes.count("held") == 1, outcomes


def test_a_takeover_that_lost_the_race_leaves_the_winner_alone(tmp_path):
    stale = f"{socket.gethostname()} {_dead_pid()}"
    lock = tmp_path / ".clip.lock"
    lock.write_text(stale)
    with OutputLock(tmp_path, "clip") as winner:  # took the stale lock over
        assert not take_over(lock, stale)  # a second taker still holding the old view
        assert json.loads(lock.read_text())["token"] == winner.token


def test_an_empty_lock_from_a_crash_is_stale_after_a_while(tmp_path):
    lock = tmp_path / ".clip.lock"
    lock.write_text("")
    with pytest.raises(OutputError, match="another run"):
        OutputLock(tmp_path, "clip").__enter__()  # could be being written this instant
    _age(lock, output_lock.EMPTY_GRACE_S + 5)
    with OutputLock(tmp_path, "clip"):
        assert lock.read_text()


def test_another_machines_lock_is_stale_once_its_lease_ran_out(tmp_path):
    lock = tmp_path / ".clip.lock"
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "t", "lease_s": 60}))
    with pytest.raises(OutputError, match=r"another run \(elsewhere pid 1\)"):
        OutputLock(tmp_path, "clip").__enter__()
    _age(lock, 61)
    with OutputLock(tmp_path, "clip"):
        assert json.loads(lock.read_text())["host"] == socket.gethostname()


def test_a_holder_keeps_its_lease_fresh(tmp_path):
    with OutputLock(tmp_path, "clip", lease_s=0.4) as lock:
        _age(lock.path, 100)
        time.sleep(0.35)
        assert time.time() - lock.path.stat().st_mtime < 1.0


def test_a_lost_ray_workers_lock_is_released_by_the_scheduler(tmp_path):
    lock = tmp_path / ".clip.lock"
    record = {"host": "node-7", "pid": 4242, "token": "t", "lease_s": 120}
    lock.write_text(json.dumps(record))
    assert not release_if_held_by(tmp_path, "clip", "node-8", 4242)  # someone else's: kept
    release_lock_of_lost(tmp_path, tmp_path / "in" / "clip.mp4", WorkerStats("w1", host="node-7", pid=4242))
    assert not lock.exists()
    with OutputLock(tmp_path, "clip"):
        pass


def test_umask_is_read_without_changing_it(monkeypatch):
    if not Path("/proc/self/status").is_file():
        pytest.skip("reading the umask without setting it needs /proc (Linux)")
    old = os.umask(0o027)
    try:

        def forbidden(mask):  # noqa: ANN001
            raise AssertionError("the umask was changed to read it")

        monkeypatch.setattr(os, "umask", forbidden)
        assert current_umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_results_get_the_umask_in_force(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        with atomic_output(tmp_path / f"out{mask:o}.wav") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / f"out{mask:o}.wav").stat().st_mode) == mode


def test_two_runs_that_both_judged_a_lock_stale_never_both_hold_it(tmp_path, monkeypatch):
    """The exact race: B finds the lock stale, A takes it over meanwhile, then B acts on its view."""
    lock = tmp_path / ".clip.lock"
    lock.write_text(f"{socket.gethostname()} {_dead_pid()}")
    judge = output_lock.is_stale
    first = OutputLock(tmp_path, "clip")
    calls = []

    def slow_judge(path, raw):  # noqa: ANN001
        verdict = judge(path, raw)
        if not calls:
            calls.append(raw)
            monkeypatch.setattr(output_lock, "is_stale", judge)
            first.__enter__()  # A wins the race while B is between its judgement and its takeover
        return verdict

    monkeypatch.setattr(output_lock, "is_stale", slow_judge)
    try:
        with pytest.raises(OutputError, match="another run"):
            OutputLock(tmp_path, "clip").__enter__()
        assert json.loads(lock.read_text())["token"] == first.token
    finally:
        first.__exit__(None, None, None)
