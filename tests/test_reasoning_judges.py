"""Step 0, 2 and 4 components around the MLLM: who is asked, when, and what is made of the answer.

The speech detector is the real Silero VAD and the MLLM the real tiny
Qwen2.5-Omni thinker (random weights, so its answers are gibberish: every
verdict it gives is "undecided", which exercises the fall-backs). Where a test
needs a realistic answer (a chain of thought concluding A or B, a plan, a
yes/no), a scripted reasoner stands in for the MLLM: it only drives the
judges' decision logic, which is what those tests check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from media_factory import make_video, tone

from deepsound.audio import Audio
from deepsound.config import MllmConfig, PipelineConfig
from deepsound.errors import ConfigError, WeightsError
from deepsound.interfaces import CANONICAL_STEPS, Judge, Planner, SilenceDetector, Step
from deepsound.media import read_audio
from deepsound.models.qwen_omni.reasoner import MllmAnswer, OmniReasoner
from deepsound.models.silero.detector import SileroSpeechDetector
from deepsound.registry import Components
from deepsound.steps import prompts
from deepsound.steps.mllm_silence import MllmSilenceDetector
from deepsound.steps.plan import CanonicalPlanner, MllmPlanner, build_planner
from deepsound.steps.voice_over import CascadeJudge, MllmJudge, SpeechJudge, build_judge
from deepsound.testing import tiny as toy

COT_ON_SCREEN = (
    "<SUMMARY>I will check whether the voice belongs to someone in the picture.</SUMMARY>\n"
    "<CAPTION>Two people talk at a table; their lips move with the words heard.</CAPTION>\n"
    "<REASONING>The speech is synchronised with the visible speakers, so it is on-screen dialogue, "
    "not narration added over the pictures.</REASONING>\n"
    "<CONCLUSION>B. No</CONCLUSION>"
)
COT_NARRATION = (
    "<SUMMARY>Listen for narration.</SUMMARY><CAPTION>A mountain landscape; a calm male voice "
    "describes the valley.</CAPTION><REASONING>Nobody on screen speaks, the voice comments on the "
    "pictures: a voice-over.</REASONING><CONCLUSION>A</CONCLUSION>"
)


@dataclass
class ScriptedReasoner:
    """Answers every question with ``answer`` and records calls like :class:`OmniReasoner`."""

    answer: str
    model_id: str = "scripted"
    calls: list[dict[str, Any]] = field(default_factory=list)

    def ask(self, question: str, **kwargs: Any) -> MllmAnswer:
        record = {
            "prompt": question,
            "system": kwargs.get("system"),
            "step": kwargs.get("step"),
            "verdict": None,
        }
        record["video"] = kwargs.get("video")
        self.calls.append(record)
        return MllmAnswer(self.answer, record)


@pytest.fixture(scope="module")
def speech() -> SileroSpeechDetector:
    return SileroSpeechDetector()


@pytest.fixture(scope="module")
def tiny() -> OmniReasoner:
    return toy.omni_reasoner(seed=0, max_new_tokens=4)


@pytest.fixture(scope="module")
def quiet_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Audio]:
    """A clip whose audio is a tone: no speech."""
    audio = tone(2.0, 16000, frequency=220.0)
    path = make_video(tmp_path_factory.mktemp("clips") / "tone.mp4", duration=2.0, fps=10, size=(96, 64))
    return path, audio


@pytest.fixture(scope="module")
def dialogue(media_dir: Path) -> tuple[Path, Audio]:
    """A real film shot with spoken dialogue (2.7 s)."""
    path = media_dir / "00000003.gt.mp4"
    return path, read_audio(path)


def never_load() -> OmniReasoner:
    raise AssertionError("the MLLM was loaded although no question needed it")


def test_all_components_meet_their_protocols(tiny: OmniReasoner, speech: SileroSpeechDetector) -> None:
    for judge in (SpeechJudge(speech), MllmJudge(tiny), CascadeJudge(tiny, speech)):
        assert isinstance(judge, Judge)
    assert isinstance(CanonicalPlanner(), Planner) and isinstance(MllmPlanner(tiny), Planner)
    assert isinstance(MllmSilenceDetector(tiny), SilenceDetector)
    assert MllmSilenceDetector(tiny).name == "mllm"


def test_cascade_never_asks_the_mllm_when_no_speech_is_heard(
    speech: SileroSpeechDetector, quiet_clip: tuple[Path, Audio]
) -> None:
    path, audio = quiet_clip
    judge = CascadeJudge(never_load, speech)
    verdict = judge.judge(path, audio)
    assert verdict.has_voice_over is False and verdict.mllm_calls == [] and verdict.cot_text is None
    assert verdict.evidence["decided_by"] == "speech" and verdict.evidence["speech_segments"] == []
    assert not judge.mllm.loaded


@pytest.mark.media
def test_cascade_asks_the_real_mllm_when_speech_is_heard(
    speech: SileroSpeechDetector, tiny: OmniReasoner, dialogue: tuple[Path, Audio]
) -> None:
    path, audio = dialogue
    before = len(tiny.calls)
    verdict = CascadeJudge(tiny, speech).judge(path, audio)
    assert len(tiny.calls) == before + 1 and verdict.mllm_calls == [tiny.calls[-1]]
    call = verdict.mllm_calls[0]
    assert (
        call["prompt"] == prompts.VOICE_OVER_QUESTION and call["system"] == prompts.VOICE_OVER_SYSTEM_PROMPT
    )
    assert call["inputs"]["audio"] == "soundtrack of the video" and call["inputs"]["frames"] >= 2
    assert verdict.evidence["speech_ratio"] > 0.5 and verdict.cot_text == call["answer"]
    # random weights cannot answer A or B: the speech detector's "voice heard" stands
    assert call["verdict"] is None
    assert verdict.has_voice_over is True and verdict.evidence["decided_by"] == "speech_fallback"


@pytest.mark.media
def test_speech_mode_decides_without_the_mllm(
    speech: SileroSpeechDetector, dialogue: tuple[Path, Audio], quiet_clip: tuple[Path, Audio]
) -> None:
    judge = SpeechJudge(speech)
    heard = judge.judge(*dialogue)
    assert heard.has_voice_over is True and heard.mllm_calls == [] and heard.judge == "speech"
    assert heard.evidence["speech_segments"] and heard.evidence["speech_seconds"] > 1.0
    assert judge.judge(*quiet_clip).has_voice_over is False


@pytest.mark.media
@pytest.mark.parametrize(("answer", "expected"), [(COT_ON_SCREEN, False), (COT_NARRATION, True)])
def test_cascade_follows_a_readable_chain_of_thought(
    speech: SileroSpeechDetector, dialogue: tuple[Path, Audio], answer: str, expected: bool
) -> None:
    mllm = ScriptedReasoner(answer)
    verdict = CascadeJudge(mllm, speech).judge(*dialogue)
    assert verdict.has_voice_over is expected and verdict.evidence["decided_by"] == "mllm"
    assert verdict.evidence["cot_sections"]["conclusion"] in ("B. No", "A")
    assert verdict.evidence["parsed_from"] == "conclusion" and mllm.calls[0]["verdict"] is expected


def test_mllm_mode_always_asks_even_without_speech(quiet_clip: tuple[Path, Audio]) -> None:
    mllm = ScriptedReasoner(COT_ON_SCREEN)
    verdict = MllmJudge(mllm).judge(*quiet_clip)
    assert len(mllm.calls) == 1 and verdict.has_voice_over is False and verdict.judge == "mllm"
    undecided = MllmJudge(ScriptedReasoner("I cannot tell.")).judge(*quiet_clip)
    assert undecided.has_voice_over is None and undecided.evidence["decided_by"] == "undecided"


def test_one_mllm_load_serves_many_clips(
    speech: SileroSpeechDetector, quiet_clip: tuple[Path, Audio]
) -> None:
    loads: list[int] = []
    mllm = ScriptedReasoner(COT_NARRATION)

    def factory() -> ScriptedReasoner:
        loads.append(1)
        return mllm

    judge = MllmJudge(factory)
    for _ in range(3):
        judge.judge(*quiet_clip)
    assert loads == [1] and len(mllm.calls) == 3


def test_build_judge_loads_the_mllm_lazily(
    speech: SileroSpeechDetector, quiet_clip: tuple[Path, Audio], tmp_path: Path
) -> None:
    config = PipelineConfig(
        mllm=MllmConfig(model=str(tmp_path / "no-such-model")), offline=True, device="cpu"
    )
    components = Components(config, overrides={"speech": speech})
    cascade = components.judge
    assert cascade.judge(*quiet_clip).has_voice_over is False  # no speech: the missing model is never needed
    assert not components.is_built("mllm")
    with pytest.raises(WeightsError):
        build_judge("mllm", speech=speech, mllm=lambda: components.mllm).judge(*quiet_clip)
    assert isinstance(build_judge("speech", speech=speech, mllm=None), SpeechJudge)
    with pytest.raises(ConfigError):
        build_judge("oracle", speech=speech, mllm=None)


def test_canonical_planner_asks_nobody() -> None:
    plan = CanonicalPlanner().plan(Path("any.mp4"))
    assert plan.steps == list(CANONICAL_STEPS) and plan.mllm_calls == [] and plan.source == "canonical"
    assert isinstance(build_planner("canonical"), CanonicalPlanner)
    assert isinstance(build_planner("mllm", mllm=never_load), MllmPlanner)


def test_mllm_planner_asks_on_the_video_alone_and_records_the_call(
    tiny: OmniReasoner, quiet_clip: tuple[Path, Audio]
) -> None:
    plan = MllmPlanner(tiny).plan(quiet_clip[0])
    call = plan.mllm_calls[0]
    assert (
        call["prompt"] == prompts.PLAN_QUESTION and call["step"] == "step0" and "audio" not in call["inputs"]
    )
    # gibberish from random weights: the canonical plan runs, and the trace says why
    assert plan.steps == list(CANONICAL_STEPS) and plan.warnings and plan.source == tiny.model_id
    assert call["verdict"] == [s.name.lower() for s in CANONICAL_STEPS]


def test_mllm_planner_follows_a_readable_plan(quiet_clip: tuple[Path, Audio]) -> None:
    answer = "Step1: Generate audio from video.\nStep2: Determine whether the audio contains voice-over."
    plan = MllmPlanner(ScriptedReasoner(answer)).plan(quiet_clip[0])
    assert plan.steps == [Step.GENERATE, Step.DETECT_VOICE_OVER] and plan.text == answer


def test_mllm_silence_detector_asks_and_falls_back_to_the_rule(
    tiny: OmniReasoner, quiet_clip: tuple[Path, Audio]
) -> None:
    path, audio = quiet_clip
    report = MllmSilenceDetector(tiny).detect(audio, path)
    call = report.mllm_calls[0]
    assert call["prompt"] == prompts.SILENCE_QUESTION and call["step"] == "step4"
    assert call["inputs"]["audio"] == "soundtrack of the video"
    assert report.evidence["decided_by"] == "rule_fallback" and report.is_silent is False  # a loud tone
    said_yes = MllmSilenceDetector(ScriptedReasoner("Yes. Only faint hiss.")).detect(audio, path)
    assert said_yes.is_silent is True and said_yes.evidence["decided_by"] == "mllm"
    assert said_yes.evidence["rule_is_silent"] is False and said_yes.silent_frame_ratio < 0.5
    quiet = Audio.silence(2.0, 16000)
    said_no = MllmSilenceDetector(ScriptedReasoner("No, a dog barks.")).detect(quiet, None)
    assert said_no.is_silent is False and said_no.mllm_calls[0]["verdict"] is False
