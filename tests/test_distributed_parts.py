"""The parts of the Ray batch that need no cluster: sizing, the worker object, summary, debris."""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path

import pytest
from media_factory import make_video
from stand_ins import FixedPlanner, ScriptedJudge, ToneGenerator

from deepsound.batch import BatchItem
from deepsound.config import PipelineConfig, RunOptions
from deepsound.distributed import DistributedError, DistributedOutcome, DistributedSummary, RaySettings
from deepsound.distributed.actor import ClipWorker
from deepsound.distributed.cluster import import_ray, plan_workers
from deepsound.distributed.summary import (
    PENDING,
    SummaryWriter,
    WorkerStats,
    outcome_from_trace,
    remove_debris,
)
from deepsound.files import atomic_output
from deepsound.pipeline import Pipeline
from deepsound.registry import Components


def stand_in_pipeline() -> Pipeline:
    config = PipelineConfig()
    overrides = {
        "generator": ToneGenerator(),
        "judge": ScriptedJudge(False),
        "planner": FixedPlanner(),
    }
    return Pipeline(config, Components(config, overrides))


@pytest.mark.parametrize(
    ("settings", "resources", "clips", "expected"),
    [
        ({}, {"CPU": 16, "GPU": 4}, 100, (4, 1.0, 1.0)),  # GPUs present: one per worker
        ({"gpus_per_worker": 0.5}, {"CPU": 16, "GPU": 4}, 100, (8, 0.5, 1.0)),  # two share a GPU
        ({}, {"CPU": 6}, 100, (6, 0.0, 1.0)),  # CPU cluster: one slot each
        ({"cpus_per_worker": 4}, {"CPU": 10}, 100, (2, 0.0, 4.0)),
        ({}, {"CPU": 16, "GPU": 8}, 3, (3, 1.0, 1.0)),  # never more workers than clips
        ({"workers": 5, "gpus_per_worker": 0}, {"CPU": 2}, 100, (5, 0.0, 1.0)),  # asked for: the rest wait
    ],
)
def test_workers_fit_the_cluster(settings, resources, clips, expected):
    shape = plan_workers(RaySettings(**settings), resources, clips)
    assert (shape.count, shape.num_gpus, shape.num_cpus) == expected


def test_impossible_sizes_are_one_clear_error():
    with pytest.raises(DistributedError, match="room for no worker"):
        plan_workers(RaySettings(gpus_per_worker=1), {"CPU": 8}, 10)
    with pytest.raises(DistributedError, match="workers"):
        RaySettings(workers=0)
    with pytest.raises(DistributedError, match="gpus"):
        RaySettings(gpus_per_worker=-1)


def test_missing_ray_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(DistributedError, match=r"deepsound\[dist\]"):
        import_ray()


@pytest.fixture()
def clip(tmp_path) -> Path:
    path = tmp_path / "clips" / "a.mp4"
    path.parent.mkdir()
    make_video(path, duration=1.0, fps=25, size=(96, 64))
    return path


def test_worker_runs_clips_like_a_batch_and_loads_lazily(clip, tmp_path):
    worker = ClipWorker("w1", stand_in_pipeline, threads=1, uses_gpu=False)
    info = worker.info()
    assert info["error"] is None and info["pid"] > 0 and info["name"] == "w1"
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()  # asking starts no Ray
    out = tmp_path / "out"
    reply = worker.run(BatchItem(clip), str(out), RunOptions(duration=1.0), overwrite=False)
    assert reply["outcome"].status == "done"
    assert (out / "a.trace.json").exists() and (out / "a.wav").exists()
    assert not {"separator", "mllm"} & set(reply["built"])  # no voice-over: neither was needed
    again = worker.run(BatchItem(clip), str(out), RunOptions(duration=1.0), overwrite=False)
    assert again["outcome"].status == "skipped"
    bad = worker.run(BatchItem(tmp_path / "missing.mp4"), str(out), RunOptions(duration=1.0), False)
    assert bad["outcome"].status == "failed" and "missing.mp4" in bad["outcome"].reason


def test_worker_reports_a_factory_that_fails(tmp_path):
    def broken() -> Pipeline:
        raise RuntimeError("weights not found")

    info = ClipWorker("w1", broken, threads=1, uses_gpu=False).info()
    assert info["error"] == "RuntimeError: weights not found"


def test_overwrite_drops_the_old_trace_before_running(clip, tmp_path):
    """A worker lost while redoing a clip must leave it unfinished, not 'done' with mixed files."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.trace.json").write_text("{}")

    class Dies(Pipeline):
        def run(self, video, output_dir="outputs", options=None, progress=None):  # noqa: ANN001, ANN201
            assert not (out / "a.trace.json").exists()
            raise KeyboardInterrupt  # stands for the process dying here

    worker = ClipWorker("w1", Dies(PipelineConfig()), threads=1, uses_gpu=False)
    with pytest.raises(KeyboardInterrupt):
        worker.run(BatchItem(clip), str(out), RunOptions(duration=1.0), overwrite=True)
    assert not (out / "a.trace.json").exists()


def test_summary_lists_every_input_once_with_pending_and_workers(tmp_path):
    summary = DistributedSummary(
        items=[
            DistributedOutcome("a.mp4", "done", seconds=1.5, mllm_calls=2, worker="w2", retries=1,
                               attempts=[{"worker": "w1 (host pid 7)", "reason": "ActorDiedError: died"}]),
            DistributedOutcome("b.mp4", "failed", "b.mp4: not a media file", worker="w2"),
            DistributedOutcome("c.mp4", PENDING),
        ],
        workers={"w1": WorkerStats("w1", state="lost"), "w2": WorkerStats("w2", state="ready", clips=1)},
    )  # fmt: skip
    data = summary.to_dict()
    assert [i["video"] for i in data["items"]] == ["a.mp4", "b.mp4", "c.mp4"]
    assert (data["done"], data["failed"], data["pending"], data["complete"]) == (1, 1, 1, False)
    assert data["retried"] == ["a.mp4"] and data["mllm_calls_total"] == 2
    assert data["items"][0]["attempts"][0]["worker"].startswith("w1")
    assert [w["state"] for w in data["workers"]] == ["lost", "ready"]

    writer = SummaryWriter(tmp_path / "batch_summary.json", interval=3600)
    writer.update(summary)
    summary.items[2] = DistributedOutcome("c.mp4", "done", worker="w2")
    writer.update(summary)  # too soon: not rewritten
    assert json.loads((tmp_path / "batch_summary.json").read_text())["pending"] == 1
    writer.update(summary, force=True)
    assert json.loads((tmp_path / "batch_summary.json").read_text())["complete"] is True


def test_outcome_from_a_trace_left_by_a_lost_worker(clip, tmp_path):
    out = tmp_path / "out"
    stand_in_pipeline().run(clip, out, RunOptions(duration=1.0))
    outcome = outcome_from_trace(out, clip)
    assert outcome.status == "done" and outcome.has_voice_over is False and outcome.seconds > 0


def test_debris_of_killed_writes_is_swept_per_clip(tmp_path):
    # an atomic write entered and never left is what a SIGKILL mid-write leaves behind
    for target in ("a.wav", "a.step1.wav", "a.trace.json", "other.wav"):
        atomic_output(tmp_path / target).__enter__().write_bytes(b"half")
    assert len([p for p in tmp_path.iterdir() if ".part" in p.name]) == 4
    (tmp_path / "a.wav").write_bytes(b"whole")  # a finished file is never touched
    removed = remove_debris(tmp_path, {"a"})
    assert len(removed) == 3
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left[-1] == "a.wav" and len(left) == 2 and left[0].startswith(".other.")
