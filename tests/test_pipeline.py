"""The step loop through every branch of the paper's method, with stand-in models.

The components here are stand-ins (allowed for orchestration only); the
silence detector is the real signal rule, and media I/O is real: clips are
synthesized with PyAV, outputs are decoded back and checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from media_factory import make_video
from stand_ins import FixedPlanner, ScalingSeparator, ScriptedJudge, ToneGenerator

from deepsound import media
from deepsound.config import PipelineConfig, RunOptions
from deepsound.errors import MediaError
from deepsound.interfaces import Step
from deepsound.pipeline import Pipeline
from deepsound.registry import Components


def build(judge_answer: bool | None, keep: float = 0.0, planner=None, **config) -> Pipeline:  # noqa: ANN001
    cfg = PipelineConfig(**config)
    components = Components(
        cfg,
        overrides={
            "generator": ToneGenerator(),
            "judge": ScriptedJudge(judge_answer),
            "separator": ScalingSeparator(keep),
            "planner": planner or FixedPlanner(),
        },
    )
    return Pipeline(cfg, components)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    make_video(path, duration=2.0, fps=25, size=(160, 120))
    return path


def read_trace(out: Path, name: str = "clip") -> dict:
    return json.loads((out / f"{name}.trace.json").read_text())


def test_no_voice_over_keeps_step1_audio_and_never_separates(video, tmp_path):
    pipe = build(judge_answer=False)
    result = pipe.run(video, tmp_path, RunOptions(duration=2.0))
    assert result.has_voice_over is False
    assert pipe.components.get("separator").calls == 0
    final = media.read_audio(tmp_path / "clip.wav")
    step1 = media.read_audio(tmp_path / "clip.step1.wav")
    assert final.sample_rate == 16000
    np.testing.assert_allclose(final.waveform, step1.waveform, atol=1e-4)
    trace = read_trace(tmp_path)
    assert [s["step"] for s in trace["steps"]] == ["step0_plan", "step1_generate", "step2_judge_voice_over"]
    assert trace["final"]["has_voice_over"] is False
    assert trace["options"]["seed"] == 42


def test_muxed_video_has_new_audio_of_video_length(video, tmp_path):
    build(judge_answer=False).run(video, tmp_path, RunOptions(duration=2.0))
    info = media.probe(tmp_path / "clip.mp4")
    assert info.has_video and info.has_audio
    assert abs(info.duration - 2.0) < 0.1


def test_voice_over_mode_s3_returns_instrumental(video, tmp_path):
    pipe = build(judge_answer=True, keep=0.5)
    result = pipe.run(video, tmp_path, RunOptions(duration=2.0, mode="s3"))
    assert result.has_voice_over is True
    trace = read_trace(tmp_path)
    assert [s["step"] for s in trace["steps"]][-1] == "step3_remove_voice_over"
    assert (tmp_path / "clip.step3.vocals.wav").exists()
    step1 = media.read_audio(tmp_path / "clip.step1.wav").waveform
    final = media.read_audio(tmp_path / "clip.wav").waveform
    np.testing.assert_allclose(final, 0.5 * step1, atol=2e-4)


def test_s4_not_silent_keeps_instrumental(video, tmp_path):
    pipe = build(judge_answer=True, keep=0.5)
    result = pipe.run(video, tmp_path, RunOptions(duration=2.0, mode="s4", postprocess="rm"))
    assert result.fallback is None
    trace = read_trace(tmp_path)
    silence = [s for s in trace["steps"] if s["step"] == "step4_check_silence"][0]
    assert silence["decision"] == {"is_silent": False}
    assert silence["evidence"]["silent_frame_ratio"] < 0.9
    assert (tmp_path / "clip.wav").exists()


def test_silent_after_removal_rm_drops_audio(video, tmp_path):
    pipe = build(judge_answer=True, keep=0.0)
    result = pipe.run(video, tmp_path, RunOptions(duration=2.0, postprocess="rm"))
    assert result.audio is None and result.fallback == "rm"
    assert not (tmp_path / "clip.wav").exists()
    info = media.probe(tmp_path / "clip.mp4")
    assert info.has_video and not info.has_audio


def test_silent_after_removal_rep_restores_step1(video, tmp_path):
    pipe = build(judge_answer=True, keep=0.0)
    result = pipe.run(video, tmp_path, RunOptions(duration=2.0, postprocess="rep"))
    assert result.fallback == "rep"
    step1 = media.read_audio(tmp_path / "clip.step1.wav").waveform
    final = media.read_audio(tmp_path / "clip.wav").waveform
    np.testing.assert_allclose(final, step1, atol=1e-4)


def test_silent_after_removal_neg_regenerates_with_same_seed(video, tmp_path):
    pipe = build(judge_answer=True, keep=0.0)
    pipe.run(video, tmp_path, RunOptions(duration=2.0, postprocess="neg", seed=7, negative_prompt="wind"))
    requests = pipe.components.get("generator").requests
    assert len(requests) == 2
    assert requests[0].negative_prompt == "wind"
    assert requests[1].negative_prompt == "wind, human voice"
    assert requests[0].seed == requests[1].seed == 7
    assert (tmp_path / "clip.neg.wav").exists()
    final = media.read_audio(tmp_path / "clip.wav")
    spectrum = np.abs(np.fft.rfft(final.waveform[0]))
    assert np.argmax(spectrum) * final.sample_rate / final.num_samples == pytest.approx(880, abs=5)


def test_undecided_judge_uses_configured_default(video, tmp_path):
    pipe = build(judge_answer=None, keep=0.5, undecided_is_voice_over=True)
    result = pipe.run(video, tmp_path, RunOptions(duration=2.0, mode="s3"))
    assert result.has_voice_over is True
    trace = read_trace(tmp_path)
    assert any("undecided" in w for w in trace["warnings"])


def test_plan_order_is_followed(video, tmp_path):
    pipe = build(judge_answer=True, planner=FixedPlanner((Step.GENERATE,)))
    result = pipe.run(video, tmp_path, RunOptions(duration=2.0))
    assert result.has_voice_over is None
    assert pipe.components.get("judge").calls == 0
    assert [s["step"] for s in read_trace(tmp_path)["steps"]] == ["step0_plan", "step1_generate"]


def test_no_video_and_no_intermediates(video, tmp_path):
    build(judge_answer=False).run(
        video, tmp_path, RunOptions(duration=2.0, write_video=False, keep_intermediates=False)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.trace.json", "clip.wav"]


def test_failure_leaves_no_outputs(video, tmp_path):
    pipe = build(judge_answer=True)

    class Broken:
        name = "broken"

        def separate(self, audio):  # noqa: ANN001, ANN201
            raise RuntimeError("separator exploded")

    pipe.components._built["separator"] = Broken()
    with pytest.raises(RuntimeError, match="exploded"):
        pipe.run(video, tmp_path, RunOptions(duration=2.0))
    assert list(tmp_path.iterdir()) == []


def test_audio_only_input_is_a_media_error(tmp_path):
    from media_factory import make_audio_file
    from stand_ins import tone

    audio_file = tmp_path / "only_audio.wav"
    make_audio_file(audio_file, tone(1.0))
    with pytest.raises(MediaError, match="only_audio.wav"):
        build(judge_answer=False).run(audio_file, tmp_path / "out", RunOptions(duration=1.0))
    assert not (tmp_path / "out" / "only_audio.trace.json").exists()


def test_missing_video_is_a_media_error(tmp_path):
    with pytest.raises(MediaError, match="nope.mp4"):
        build(judge_answer=False).run(tmp_path / "nope.mp4", tmp_path, RunOptions())


def test_components_are_built_lazily():
    components = Components(PipelineConfig())
    assert not components.is_built("separator")
    assert not components.is_built("mllm")


def test_whole_video_duration(video, tmp_path):
    pipe = build(judge_answer=False)
    pipe.run(video, tmp_path, RunOptions(duration=None))
    assert pipe.components.get("generator").requests[0].duration == pytest.approx(2.0, abs=0.05)
    assert read_trace(tmp_path)["options"]["duration"] == pytest.approx(2.0, abs=0.05)


def test_whole_video_in_windows(video, tmp_path):
    pipe = build(judge_answer=False)
    pipe.run(video, tmp_path, RunOptions(duration=None, window=1.0, window_overlap=0.25))
    requests = pipe.components.get("generator").requests
    assert [r.start for r in requests] == pytest.approx([0.0, 0.75, 1.0], abs=0.05)
    assert media.read_audio(tmp_path / "clip.wav").duration == pytest.approx(2.0, abs=0.05)


def test_progress_listener_hears_every_step_start_and_end(video, tmp_path):
    events = []
    build(judge_answer=True, keep=0.5).run(video, tmp_path, RunOptions(duration=1.0), progress=events.append)
    starts = [e.step for e in events if e.status == "start"]
    ends = [e.step for e in events if e.status == "end"]
    assert (
        starts
        == ends
        == [
            "step0_plan",
            "step1_generate",
            "step2_judge_voice_over",
            "step3_remove_voice_over",
            "step4_check_silence",
        ]
    )
    assert all(e.clip == video.name for e in events)
    judged = next(e for e in events if e.status == "end" and e.step == "step2_judge_voice_over")
    assert judged.record["decision"]["has_voice_over"] is True


def test_one_speech_detector_per_process_across_pipelines():
    first, second = Components(PipelineConfig()), Components(PipelineConfig())
    assert first.speech is second.speech  # built once, shared by every pipeline of the process
    from deepsound.config import SpeechConfig

    other = Components(PipelineConfig(speech=SpeechConfig(name="silero", threshold=0.7)))
    assert other.speech is not first.speech and other.speech.threshold == 0.7
