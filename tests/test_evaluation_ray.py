"""``reference build --ray`` and ``evaluate --ray`` on a real Ray head (127.0.0.1): a worker killed
mid-item, every item done exactly once, resumable; features on Ray equal features in-process.

The head is the one :mod:`test_distributed` starts (loopback only, its own token). Workers make
their own model set from a factory in :mod:`experiment_support` (the real Silero judge, BS-RoFormer
and the evaluation models at tiny size); nothing model-shaped crosses the wire.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import signal
import threading

import numpy as np
import pytest
from experiment_support import (
    ledger_counts,
    ledger_reference_job,
    reference_pipeline,
    register_components,
    tiny_extractors,
    tone_audio,
    unregister_components,
)
from media_factory import make_audio_file, make_video

from deepsound.audio import Audio

if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed (extra `dist`)", allow_module_level=True)

from test_distributed import ray_address  # noqa: E402,F401 - the module's Ray head

from deepsound.distributed import RaySettings  # noqa: E402
from deepsound.distributed.tasks import TaskPool  # noqa: E402
from deepsound.evaluation.reference_set import (  # noqa: E402
    build_reference_set,
    fingerprint_of,
    method_of,
    reference_clips,
)


def _reset_token_cache() -> None:
    try:
        from ray._private.authentication_test_utils import reset_auth_token_state
    except ImportError:  # a Ray without the token cache
        return
    reset_auth_token_state()


@pytest.fixture(scope="module", autouse=True)
def _token_cache_per_head(ray_address):  # noqa: F811
    """Ray keeps the auth token of the first cluster a process joined, and this module's head has a
    token of its own: the cache is emptied once the head is up, and again before it stops (while
    the environment still says token mode), so that a later module's head brings its own too."""
    _reset_token_cache()
    yield
    _reset_token_cache()


@pytest.fixture()
def components():
    register_components()
    yield
    unregister_components()


def test_reference_build_on_ray_worker_killed_every_clip_once(ray_address, tmp_path, components):  # noqa: F811
    gt, out, ledger = tmp_path / "gt", tmp_path / "vofree", tmp_path / "ledger.txt"
    gt.mkdir()
    for i in range(5):
        make_video(
            gt / f"clip{i}.mp4", duration=1.0, fps=25, size=(48, 32), audio=tone_audio(1.0, 300 + 50 * i)
        )
    clips = reference_clips(gt)
    fingerprint = fingerprint_of(method_of(reference_pipeline().config))
    job = ledger_reference_job(out, fingerprint, str(ledger), pause=1.0)
    ready: dict[str, int] = {}
    finished: dict[str, int] = {}
    killed: list[tuple[str, str]] = []

    def on_event(event) -> None:  # noqa: ANN001
        if event.kind == "worker_ready":
            ready[event.worker] = event.info["pid"]
        elif event.kind == "finished":
            finished[event.worker] = finished.get(event.worker, 0) + 1
        elif event.kind == "started" and not killed and finished.get(event.worker, 0) >= 1:
            killed.append((event.worker, event.clip))  # models loaded, next clip just taken: kill mid-clip
            threading.Timer(0.3, os.kill, (ready[event.worker], signal.SIGKILL)).start()

    settings = RaySettings(address=ray_address, workers=2, gpus_per_worker=0)
    with TaskPool(job, settings) as pool:
        summary = pool.run(clips, on_event=on_event)
    assert killed, "no worker was killed"
    victim, clip = killed[0]
    assert (summary.count("done"), summary.count("failed"), summary.count("pending")) == (5, 0, 0)
    retried = [o for o in summary.outcomes if o.retries]
    assert [o.key for o in retried] == [clip] and retried[0].worker != victim
    assert "died" in retried[0].attempts[0]["reason"] or "Actor" in retried[0].attempts[0]["reason"]
    assert ledger_counts(ledger) == {f"clip{i}": 1 for i in range(5)}  # exactly once
    assert not [p for p in out.rglob("*") if ".part" in p.name]

    # resumable: the same build over Ray finds every clip done, starts no worker, writes the manifest
    manifest = build_reference_set(gt, out, reference_pipeline, ray=settings)
    assert manifest["counts"]["in_set"] == 5 and manifest["counts"]["failed"] == 0
    assert manifest["fingerprint"] == fingerprint and ledger_counts(ledger) == {
        f"clip{i}": 1 for i in range(5)
    }


def test_features_on_ray_equal_features_in_process(ray_address, tmp_path):  # noqa: F811
    from deepsound.evaluation.distributed_features import extract_on_ray, plan_items, sides_for_evaluation
    from deepsound.evaluation.extractors import Settings
    from deepsound.evaluation.runner import evaluate

    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        make_audio_file(gen / f"c{i}.wav", tone_audio(1.5, 200 + 90 * i))
        noise = tone_audio(1.5, 250 + 70 * i).waveform + 0.05 * rng.standard_normal((1, 24000)).astype("f4")
        make_audio_file(ref / f"c{i}.wav", Audio(noise, 16000))
    metrics = ["fd_passt", "kl_passt"]  # PaSST at tiny size: what each worker builds stays small
    settings = Settings(duration=1.5)
    factory = functools.partial(tiny_extractors, only=("passt",))
    ray = RaySettings(address=ray_address, workers=2, gpus_per_worker=0)
    sides = sides_for_evaluation(gen, ref, None, tmp_path / "ray", metrics)
    stand_ins = extract_on_ray(sides, settings, ray, factory=factory)
    on_ray = evaluate(
        gen, ref, out_dir=tmp_path / "ray", settings=settings, metrics=metrics, extractors=stand_ins
    )
    here = evaluate(gen, ref, out_dir=tmp_path / "here", settings=settings, metrics=metrics,
                    extractors=tiny_extractors(settings, ("passt",)))  # fmt: skip
    assert not on_ray.failures and on_ray.extracted and not any(on_ray.extracted.values())  # all from Ray
    for key in metrics:
        assert on_ray.metrics.scores[key] == pytest.approx(here.metrics.scores[key], rel=1e-5, nan_ok=True), (
            key
        )

    # resumable: every file has its shard, so a second pass has nothing to hand out
    shards = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("shards/*.pt")}
    assert len(shards) == 6 and all(i.shard.exists() for i in plan_items(sides))
    extract_on_ray(sides, settings, ray, factory=factory)
    assert {p: p.stat().st_mtime_ns for p in shards} == shards


def test_ray_options_need_ray(tmp_path):
    from typer.testing import CliRunner

    from deepsound import cli

    result = CliRunner().invoke(
        cli.app,
        [
            "evaluate",
            str(tmp_path),
            "--reference",
            str(tmp_path),
            "-o",
            str(tmp_path / "o"),
            "--workers",
            "2",
        ],
    )
    assert result.exit_code != 0 and "need --ray" in result.output


@pytest.mark.slow
def test_experiment_on_ray_equals_the_experiment_in_process(ray_address, tmp_path):  # noqa: F811
    """Generation (RayBatch), the VO-Free set and the features (task pool) on Ray: the same table."""
    from stand_ins import ScalingSeparator, ScriptedJudge, ToneGenerator

    from deepsound.config import PipelineConfig, RunOptions
    from deepsound.evaluation.experiment import Backend
    from deepsound.evaluation.experiment_run import run_experiment
    from deepsound.evaluation.extractors import Settings
    from deepsound.pipeline import Pipeline
    from deepsound.registry import Components

    videos, ref = tmp_path / "videos", tmp_path / "ref"
    videos.mkdir()
    ref.mkdir()
    for i in range(3):
        make_video(videos / f"c{i}.mp4", duration=1.5, fps=25, size=(48, 32))
        make_video(
            ref / f"c{i}.mp4", duration=1.5, fps=25, size=(48, 32), audio=tone_audio(1.5, 300 + 60 * i)
        )
    config = PipelineConfig(device="cpu")
    overrides = {
        "generator": ToneGenerator(),
        "judge": ScriptedJudge(True),
        "separator": ScalingSeparator(0.5),
    }
    pipelines = {Backend("tone"): Pipeline(config, Components(config, overrides))}
    settings, metrics = Settings(duration=1.5), ("fd_passt", "kl_passt")
    common = dict(settings=("direct", "s3"), eval_settings=settings, metrics=metrics, videos_dir=videos)
    ray = RaySettings(address=ray_address, workers=2, gpus_per_worker=0)
    on_ray = run_experiment(sorted(videos.glob("*.mp4")), ref, tmp_path / "ray", pipelines, RunOptions(duration=1.5),
                            ray=ray, ray_extractors=functools.partial(tiny_extractors, only=("passt",)), **common)  # fmt: skip
    here = run_experiment(sorted(videos.glob("*.mp4")), ref, tmp_path / "here", pipelines, RunOptions(duration=1.5),
                          extractors=tiny_extractors(settings, ("passt",)), **common)  # fmt: skip
    assert on_ray.common == here.common == ["c0", "c1", "c2"]
    for label, row in here.blocks["tone"].items():
        for key in metrics:
            assert on_ray.blocks["tone"][label].scores[key] == pytest.approx(row.scores[key], rel=1e-5), (
                label,
                key,
            )
    assert (tmp_path / "ray" / "runs" / "batch_summary.json").exists()
