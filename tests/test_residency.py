"""``--residency one``: at most one large model loaded at any time, and a batch does not reload per clip.

Real tiny models (MMAudio, BS-RoFormer made to take everything as voice so that step 4 finds silence
and ``neg`` regenerates, a Qwen-Omni thinker) are registered under test names with factories that
count their builds; the MLLM plans and judges (its random answers fall back to the canonical plan
and an undecided verdict counted as voice-over), so every large model is needed, the generator twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from media_factory import make_video

from deepsound.batch import BatchItem, run_batch
from deepsound.config import GeneratorConfig, MllmConfig, PipelineConfig, RunOptions, SeparatorConfig
from deepsound.errors import ConfigError
from deepsound.pipeline import Pipeline
from deepsound.registry import Components, register, unregister
from deepsound.residency import LARGE_KINDS, Residency, _modules
from deepsound.testing import tiny as toy

BUILDS: Counter[str] = Counter()


def all_voice(separator):  # noqa: ANN001, ANN201
    """Mask 1 + 0j in every band: the whole mix counts as voice, what is left is silent."""
    with torch.no_grad():
        for band in separator.model.mask_estimators[0].to_freqs:
            last = [m for m in band.modules() if isinstance(m, torch.nn.Linear)][-1]
            half = last.out_features // 2
            last.weight.zero_()
            last.bias[:half] = torch.tensor([1.0, 0.0]).repeat(half // 2)
            last.bias[half:] = 30.0
    return separator


FACTORIES = {
    "generator": lambda: toy.mmaudio_generator(seed=0, mode="16k"),
    "separator": lambda: all_voice(toy.bs_roformer_separator(seed=0)),
    "mllm": lambda: toy.omni_reasoner(seed=0, max_new_tokens=4),
}


@pytest.fixture(autouse=True, scope="module")
def counted_components():
    for kind, make in FACTORIES.items():

        def build(config, components, kind=kind, make=make):  # noqa: ANN001, ANN202
            BUILDS[kind] += 1
            return make()

        register(kind, "counted", build)
    yield
    for kind in FACTORIES:
        unregister(kind, "counted")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    paths = [folder / f"clip{i}.mp4" for i in range(3)]
    for path in paths:
        make_video(path, duration=1.2, fps=25, size=(96, 64))
    return paths


def pipeline(residency: str) -> Pipeline:
    config = PipelineConfig(
        device="cpu",
        residency=residency,
        planner="mllm",
        judge="mllm",
        undecided_is_voice_over=True,
        generator=GeneratorConfig(name="counted"),
        separator=SeparatorConfig(name="counted"),
        mllm=MllmConfig(name="counted"),
    )
    pipe = Pipeline(config)
    watch(pipe.residency)
    return pipe


def watch(residency: Residency) -> None:
    """Check the invariant at every point the policy acts: before each stage and each build."""
    residency.peak = 0
    prepare, before_build = residency.prepare, residency.components.before_build

    def checked_prepare(stage: str) -> None:
        prepare(stage)
        residency.peak = max(residency.peak, len(residency.resident()))

    def checked_build(kind: str) -> None:
        if before_build is not None:
            before_build(kind)
        if kind in LARGE_KINDS:  # what is resident, plus the one being built
            residency.peak = max(residency.peak, len(residency.resident()) + 1)

    residency.prepare = checked_prepare
    residency.components.before_build = checked_build


OPTIONS = RunOptions(duration=1.0, num_steps=2, mode="s4", postprocess="neg", write_video=False)


def test_batch_with_one_resident_model_loads_each_once_per_stage_not_per_clip(clips, tmp_path):
    BUILDS.clear()
    pipe = pipeline("one")
    summary = run_batch(pipe, [BatchItem(c) for c in clips], tmp_path, OPTIONS)
    assert [i.status for i in summary.items] == ["done"] * 3, [i.reason for i in summary.items]
    assert [i.fallback for i in summary.items] == ["neg"] * 3
    assert pipe.residency.peak == 1
    # plan + judge, generate + neg, separate: for the whole batch of three
    assert BUILDS == {"mllm": 2, "generator": 2, "separator": 1}
    releases = [kind for action, kind in pipe.residency.events if action == "release"]
    assert releases == ["mllm", "generator", "mllm", "separator"]
    assert all((tmp_path / f"clip{i}.neg.wav").is_file() for i in range(3))


def test_single_clip_with_one_resident_model(clips, tmp_path):
    BUILDS.clear()
    pipe = pipeline("one")
    result = pipe.run(clips[0], tmp_path, OPTIONS)
    assert result.fallback == "neg" and pipe.residency.peak == 1
    assert len(pipe.residency.resident()) == 1  # the generator, after the regeneration
    assert BUILDS == {"mllm": 2, "generator": 2, "separator": 1}


def test_all_keeps_every_model_and_runs_clip_by_clip(clips, tmp_path):
    BUILDS.clear()
    pipe = pipeline("all")
    summary = run_batch(pipe, [BatchItem(c) for c in clips[:2]], tmp_path, OPTIONS)
    assert summary.count("done") == 2
    assert sorted(pipe.residency.resident()) == sorted(LARGE_KINDS)
    assert BUILDS == {"mllm": 1, "generator": 1, "separator": 1}
    assert pipe.residency.events == []
    pipe.components.drop(*LARGE_KINDS)  # the MLLM is shared process-wide: later tests build their own


def test_on_an_accelerator_the_others_are_moved_out_not_rebuilt(clips, tmp_path, monkeypatch):
    """The offload path (CUDA) exercised on the CPU: modules move out and back, nothing is rebuilt."""
    BUILDS.clear()
    pipe = pipeline("one")
    monkeypatch.setattr(Residency, "_accelerated", lambda self: True)
    result = pipe.run(clips[1], tmp_path, OPTIONS)
    assert result.fallback == "neg" and pipe.residency.peak == 1
    assert BUILDS == {"mllm": 1, "generator": 1, "separator": 1}
    actions = [a for a, _ in pipe.residency.events]
    assert "offload" in actions and "restore" in actions and "release" not in actions
    moved = list(_modules(pipe.components.get("generator")))
    assert moved and all(isinstance(m, torch.nn.Module) for m in moved)
    pipe.components.drop(*LARGE_KINDS)  # the MLLM is shared process-wide: later tests build their own


def test_a_ready_made_model_cannot_be_released_on_the_cpu_and_stays(clips, tmp_path):
    BUILDS.clear()
    config = pipeline("one").config
    given = FACTORIES["separator"]()
    pipe = Pipeline(config, Components(config, overrides={"separator": given}))
    result = pipe.run(clips[2], tmp_path, OPTIONS)
    assert result.fallback == "neg" and pipe.components.separator is given
    assert ("kept", "separator") in pipe.residency.events
    assert BUILDS == {"mllm": 2, "generator": 2}  # the others are still released and rebuilt


def test_unknown_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="residency"):
        PipelineConfig(residency="some")
