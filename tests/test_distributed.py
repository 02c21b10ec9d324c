"""Batches on a real Ray cluster: a worker killed mid-run, every clip done exactly once.

The module starts one Ray head on 127.0.0.1 (no dashboard, no usage stats; its
worker processes import this checkout's ``src`` and ``tests``), runs batches of
tiny real components through it, and stops the head afterwards. The workers
build their components themselves, in their own processes, from the factory
below; nothing model-shaped crosses the wire.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from media_factory import make_video
from typer.testing import CliRunner

from deepsound import cli
from deepsound.batch import BatchItem, read_inputs
from deepsound.cli import options as cli_options
from deepsound.config import PipelineConfig, RunOptions
from deepsound.distributed import RayBatch, run_batch_ray
from deepsound.pipeline import Pipeline
from deepsound.registry import Components
from deepsound.testing import tiny as toy

if importlib.util.find_spec("ray") is None:  # found without importing: see the fixture
    pytest.skip("Ray is not installed (extra `dist`)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
OPTIONS = RunOptions(duration=1.0, num_steps=3)


# --------------------------------------------------------------------------- what the workers build
class TinyComponents(Components):
    """The real architectures at toy size, each built on first use in the worker's own process."""

    def get(self, kind: str):  # noqa: ANN201
        if kind in self._built or kind == "silence":
            return super().get(kind)
        start = time.perf_counter()
        self._built[kind] = self._make(kind)
        self.load_seconds[kind] = round(time.perf_counter() - start, 3)
        return self._built[kind]

    def _make(self, kind: str):  # noqa: ANN202
        if kind == "generator":
            return toy.mmaudio_generator(seed=0, mode="16k")
        if kind == "separator":
            return toy.bs_roformer_separator(seed=0)
        if kind == "speech":
            from deepsound.models.silero.detector import SileroSpeechDetector

            return SileroSpeechDetector()
        if kind == "mllm":
            return toy.omni_reasoner(seed=0, max_new_tokens=8)
        if kind == "judge":
            from deepsound.steps.voice_over import build_judge

            return build_judge(self.config.judge, speech=self.speech, mllm=lambda: self.mllm)
        if kind == "planner":
            from deepsound.steps.plan import build_planner

            return build_planner(self.config.planner, mllm=lambda: self.mllm)
        raise KeyError(kind)


class LedgerPipeline(Pipeline):
    """The real pipeline; each finished run also appends ``<clip> <pid>`` to a shared ledger,
    so the test can count how many times each clip was really completed."""

    def __init__(self, config: PipelineConfig, components: Components, ledger: str) -> None:
        super().__init__(config, components)
        self.ledger = ledger

    def run(self, video, output_dir="outputs", options=None, progress=None):  # noqa: ANN001, ANN201
        result = super().run(video, output_dir, options, progress)
        with open(self.ledger, "a", encoding="utf-8") as ledger:
            ledger.write(f"{Path(video).stem} {os.getpid()}\n")
        return result


def tiny_pipeline(ledger: str) -> Pipeline:
    """The factory each worker calls in its own process."""
    config = PipelineConfig(device="cpu")
    return LedgerPipeline(config, TinyComponents(config), ledger)


def ledger_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            counts[line.split()[0]] = counts.get(line.split()[0], 0) + 1
    return counts


# --------------------------------------------------------------------------- one head for the module
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_group(head: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(head.pid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def ray_address():
    """``ray start --head`` on loopback only, in its own process group, stopped by that group's id."""
    # Ray resolves 127.0.0.1 to the machine's outward address unless told to stay local;
    # it reads that from the environment at import (patched below where ray came in earlier).
    local = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # a token of this test's own, so that nothing else on the machine can join or be joined
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
    }
    saved = {k: os.environ.get(k) for k in local}
    os.environ.update(local)
    import ray
    from ray._private import ray_constants

    stay_local = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False

    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="dsray", dir="/tmp")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
        "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
        "--include-dashboard", "false", "--disable-usage-stats", "--object-store-memory", "80000000",
        "--dashboard-agent-listen-port", str(_free_port()),
        "--temp-dir", temp_dir,
    ]  # fmt: skip
    head = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:  # the head is up when its GCS port answers
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            break
        except OSError:
            if time.monotonic() > deadline or head.poll() is not None:
                _stop_group(head, signal.SIGKILL)
                pytest.fail("the local Ray head did not start")
            time.sleep(0.5)
    yield address
    if ray.is_initialized():
        ray.shutdown()
    # SIGTERM would drain for 30 s; nothing of this throw-away cluster needs saving
    _stop_group(head, signal.SIGKILL)
    head.wait(timeout=30)
    shutil.rmtree(temp_dir, ignore_errors=True)
    ray_constants.ENABLE_RAY_CLUSTER = stay_local
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for i in range(8):
        make_video(folder / f"clip{i}.mp4", duration=1.0, fps=25, size=(96 + 8 * i, 64))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    return folder


# --------------------------------------------------------------------------- the checks
def test_worker_killed_mid_run_every_clip_done_exactly_once(ray_address, clips, tmp_path):
    out, ledger = tmp_path / "out", tmp_path / "ledger.txt"
    items = read_inputs(clips)
    assert len(items) == 9
    ready: dict[str, int] = {}
    done: dict[str, int] = {}
    killed: list[tuple[str, int, str]] = []

    def on_event(event) -> None:  # noqa: ANN001
        if event.kind == "worker_ready":
            ready[event.worker] = event.info["pid"]
        elif event.kind == "finished" and event.outcome.status == "done":
            done[event.worker] = done.get(event.worker, 0) + 1
        elif event.kind == "started" and not killed and done.get(event.worker, 0) >= 1:
            # the worker has its models loaded and has just taken its next clip: kill it mid-clip
            pid = ready[event.worker]
            killed.append((event.worker, pid, Path(event.clip).name))
            threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()

    factory = functools.partial(tiny_pipeline, str(ledger))
    with RayBatch(factory, address=ray_address, workers=2, gpus_per_worker=0) as pool:
        summary = pool.run(items, out, OPTIONS, on_event=on_event)
        assert killed, "no worker was killed"
        victim, victim_pid, _ = killed[0]

        assert (summary.count("done"), summary.count("failed"), summary.count("pending")) == (8, 1, 0)
        by_name = {Path(i.video).name: i for i in summary.items}
        assert len(by_name) == len(items) == len(summary.items)
        retried = [i for i in summary.items if i.retries]
        # the clip the victim held when the kill landed: the one it had just taken, or, when that tiny
        # clip finished within the kill's delay, the next one it took
        assert len(retried) == 1, [Path(i.video).name for i in retried]
        lost_clip = Path(retried[0].video).name  # its first attempt was the victim's (checked below)
        assert retried[0].status == "done" and retried[0].worker != victim
        assert str(victim_pid) in retried[0].attempts[0]["worker"]
        assert "Actor" in retried[0].attempts[0]["reason"] or "died" in retried[0].attempts[0]["reason"]
        bad = by_name["broken.mp4"]
        assert bad.status == "failed" and "broken.mp4" in bad.reason and bad.retries == 0
        assert summary.workers[victim].state == "lost"

        # exactly once: each good clip completed by one run only, all outputs whole, no debris
        assert ledger_counts(ledger) == {f"clip{i}": 1 for i in range(8)}
        for i in range(8):
            assert {f"clip{i}.wav", f"clip{i}.mp4", f"clip{i}.trace.json"} <= {p.name for p in out.iterdir()}
        assert not [p.name for p in out.iterdir() if ".part" in p.name]
        assert not list(out.glob("broken*"))

        # laziness: no clip holds speech, so no worker ever built the MLLM or the separator
        for stats in summary.workers.values():
            if stats.clips:
                assert {"generator", "speech", "judge"} <= set(stats.built)
                assert not {"mllm", "separator"} & set(stats.built)

        saved = json.loads((out / "batch_summary.json").read_text())
        assert sorted(Path(i["video"]).name for i in saved["items"]) == sorted(p.video.name for p in items)
        assert (saved["done"], saved["failed"], saved["pending"], saved["complete"]) == (8, 1, 0, True)
        assert [Path(v).name for v in saved["retried"]] == [lost_clip]

        # the same pool again: finished clips skipped, the bad clip tried (and failed) once more
        again = pool.run(items, out, OPTIONS)
        assert (again.count("skipped"), again.count("failed")) == (8, 1)
    assert ledger_counts(ledger) == {f"clip{i}": 1 for i in range(8)}

    # a fresh run over the good clips needs no worker at all
    good = [i for i in items if i.video.name != "broken.mp4"]
    fresh = run_batch_ray(factory, good, out, OPTIONS, address=ray_address, workers=2, gpus_per_worker=0)
    assert fresh.count("skipped") == 8 and not fresh.workers


def test_cli_batch_on_ray(ray_address, clips, tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.txt"
    # the CLI builds a lazy pipeline and sends it to the workers; here it is the tiny one
    monkeypatch.setattr(cli_options, "build_pipeline", lambda settings: tiny_pipeline(str(ledger)))
    # relative paths: the workers run in another folder, the summary keeps the names as given
    monkeypatch.chdir(clips.parent)
    Path("cli_list.txt").write_text(f"{clips.name}/clip0.mp4\n{clips.name}/clip1.mp4\n")
    out = tmp_path / "out"
    argv = ["batch", "cli_list.txt", "-o", str(out), "--ray", ray_address, "--workers", "1"]
    argv += ["--gpus-per-worker", "0", "--duration", "1", "--steps", "2", "--no-video", "-q"]
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    assert "2 done" in result.output
    saved = json.loads((out / "batch_summary.json").read_text())
    assert saved["done"] == 2 and [w["name"] for w in saved["workers"]] == ["w1"]
    assert {i["worker"] for i in saved["items"]} == {"w1"}
    assert [i["video"] for i in saved["items"]] == [f"{clips.name}/clip0.mp4", f"{clips.name}/clip1.mp4"]
    assert ledger_counts(ledger) == {"clip0": 1, "clip1": 1}
    assert (out / "clip0.wav").exists() and not (out / "clip0.mp4").exists()


class PoisonPipeline(LedgerPipeline):
    """Kills its own process on the clip named ``poison``: a clip that takes down any worker."""

    def run(self, video, output_dir="outputs", options=None, progress=None):  # noqa: ANN001, ANN201
        if Path(video).stem == "poison":
            os.kill(os.getpid(), signal.SIGKILL)
        return super().run(video, output_dir, options, progress)


def poison_pipeline(ledger: str) -> Pipeline:
    config = PipelineConfig(device="cpu")
    return PoisonPipeline(config, TinyComponents(config), ledger)


@pytest.mark.slow
def test_a_clip_that_kills_every_worker_is_failed_after_bounded_retries(ray_address, clips, tmp_path):
    poison = tmp_path / "poison.mp4"
    poison.write_bytes((clips / "clip0.mp4").read_bytes())
    items = [BatchItem(poison), BatchItem(clips / "clip1.mp4")]
    factory = functools.partial(poison_pipeline, str(tmp_path / "ledger.txt"))
    summary = run_batch_ray(
        factory, items, tmp_path / "out", OPTIONS, address=ray_address, workers=1, gpus_per_worker=0,
        max_retries=1, max_replacements=2,
    )  # fmt: skip
    first, second = summary.items
    assert first.status == "failed" and first.retries == 1 and len(first.attempts) == 2
    assert "lost 2 times" in first.reason
    assert second.status == "done"
    assert ledger_counts(tmp_path / "ledger.txt") == {"clip1": 1}
    assert [w.state for w in summary.workers.values()] == ["lost", "lost", "stopped"]
