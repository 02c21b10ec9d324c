"""The staged speech gate with the real shipped weights (Silero's and RNNoise's) on real recordings.

Voices: Asterisk's English prompts; beds and negatives: OpenTTD's field
recordings, Heroes' crowds and effects, two real VGGSound clips (the same
Debian packages and clips as ``test_speech_gate.py``; ``.ci/run`` installs them,
under CI a missing one fails). RNNoise's network ships compiled in the
``pyrnnoise`` wheel, a dependency of the package.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_speech_gate import HEROES, OPENSFX_NEGATIVES, _in_bed, _opensfx, _read, speech  # noqa: F401
from typer.testing import CliRunner

from deepsound import cli
from deepsound.audio import Audio
from deepsound.config import DEFAULT_COMPONENTS, PipelineConfig, SpeechConfig
from deepsound.interfaces import SpeechDetector
from deepsound.models.rnnoise.denoiser import RnnoiseDenoiser
from deepsound.models.silero.detector import SileroSpeechDetector
from deepsound.registry import Components
from deepsound.steps.speech_staged import StagedRule, StagedSpeechDetector
from deepsound.steps.voice_over import SpeechJudge

HORSE = 38  # a lone neigh: the fused gate's known false alarm


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x)) + 1e-20))


class CountingDenoiser:
    """The real RNNoise, counting the windows it is asked to denoise (an orchestration check)."""

    def __init__(self) -> None:
        self.real = RnnoiseDenoiser()
        self.hop_s = self.real.hop_s
        self.calls = 0

    def __call__(self, mono: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        return self.real(mono)


@pytest.fixture(scope="module")
def denoiser() -> RnnoiseDenoiser:
    return RnnoiseDenoiser()


@pytest.fixture(scope="module")
def staged() -> StagedSpeechDetector:
    return Components(PipelineConfig(speech=SpeechConfig(name="staged"))).speech


# ------------------------------------------------------------------------------------- RNNoise


def test_rnnoise_removes_a_real_bed_and_keeps_a_real_voice(denoiser: RnnoiseDenoiser, speech: list[Audio]):  # noqa: F811
    voice = speech[0].to_mono().resample(16000).waveform[0]
    mix = _in_bed(speech[0], _opensfx(OPENSFX_NEGATIVES["helicopter"]), 0.0).waveform[0]  # voice from 1 s
    clean, probs = denoiser(mix)
    assert clean.shape == mix.shape and clean.dtype == np.float32 and np.isfinite(clean).all()
    assert probs.shape == (600,)  # 6 s in 10 ms frames
    bed_before, bed_after = _db(mix[2000:14000]), _db(clean[2000:14000])
    span = slice(16000, 16000 + voice.size)
    assert bed_after < bed_before - 30, (bed_before, bed_after)  # the helicopter alone: gone
    assert _db(clean[span]) > _db(mix[span]) - 6  # the voice over it: kept
    assert probs[20:95].max() < 0.5 < np.median(probs[100 : 100 + voice.size // 160])
    # and a clean voice is a voice throughout its loudest part
    assert denoiser(voice)[1].max() > 0.99


def test_rnnoise_frames_and_edges(denoiser: RnnoiseDenoiser):
    assert [a.size for a in denoiser(np.zeros(0, np.float32))] == [0, 0]
    short_clean, short_probs = denoiser(np.zeros(100, np.float32))  # under one 10 ms frame
    assert short_clean.shape == (100,) and short_probs.shape == (1,)
    clean, probs = denoiser(np.zeros(16000 + 50, np.float32), 16000)  # a partial last frame
    assert clean.shape == (16050,) and probs.shape == (100,)
    # tracks are independent: a fresh state per call gives the same numbers twice
    noise = np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32)
    first, again = denoiser(noise), denoiser(noise)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


# ----------------------------------------------------------------------------------- the gate


@pytest.mark.parametrize("kind", sorted(OPENSFX_NEGATIVES) + ["horse"])
def test_staged_gate_stays_quiet_on_real_field_recordings(staged: StagedSpeechDetector, kind: str):
    report = staged.detect(_opensfx(OPENSFX_NEGATIVES.get(kind, HORSE)))
    assert not report.has_speech, report.evidence["staged"]


@pytest.mark.parametrize("name", ["foule1", "foule2", "claxon", "explo01"])
def test_staged_gate_stays_quiet_on_crowds_and_effects(staged: StagedSpeechDetector, name: str):
    from ci_tools import need_path

    report = staged.detect(_read(need_path(HEROES / f"{name}.wav", "heroes-sound-effects")))
    assert not report.has_speech, report.evidence["staged"]


def test_rnnoise_alone_rejects_what_it_is_asked_about():
    """Every window sent to RNNoise (a band wide open): the second stage on its own stays quiet on the negatives."""
    gate = StagedSpeechDetector(
        SileroSpeechDetector(), RnnoiseDenoiser(), StagedRule(unsure_low=-100.0, unsure_high=100.0)
    )
    for index in (*OPENSFX_NEGATIVES.values(), HORSE):
        report = gate.detect(_opensfx(index))
        assert report.evidence["staged"]["asked_rnnoise"] == 1 and not report.has_speech, index


def test_rnnoise_is_asked_only_where_silero_is_unsure(speech: list[Audio]):  # noqa: F811
    counting = CountingDenoiser()
    gate = StagedSpeechDetector(SileroSpeechDetector(), counting)
    clear = gate.detect(_in_bed(speech[1], _read(HEROES / "foule1.wav"), 10.0))
    assert (
        clear.has_speech
        and counting.calls == 0
        and not clear.evidence["staged"]["windows"][0]["asked_rnnoise"]
    )
    quiet = gate.detect(_opensfx(OPENSFX_NEGATIVES["cow"]))
    assert not quiet.has_speech and counting.calls == 0
    # a voice 10 dB under a real crowd: Silero is unsure, RNNoise hears it, and the segment is where the voice is
    deep = gate.detect(_in_bed(speech[1], _read(HEROES / "foule1.wav"), -10.0))
    window = deep.evidence["staged"]["windows"][0]
    assert counting.calls == 1 and window["asked_rnnoise"]
    assert gate.rule.unsure_low < window["first"] < gate.rule.threshold <= window["score"]
    assert deep.has_speech and 0.9 <= deep.segments[0][0] <= 1.5, deep.segments  # the voice starts 1 s in


def test_staged_gate_on_real_vggsound_clips(staged: StagedSpeechDetector, media_dir: Path):
    """A short burst of voice in a real soundtrack is heard where it is; a soundtrack without one is not."""
    from deepsound.media import read_audio

    burst = staged.detect(read_audio(media_dir / "aa.mp4"))
    assert burst.has_speech and burst.segments[0][0] < 1.5, burst.evidence["staged"]
    assert len(burst.evidence["staged"]["windows"]) == 3  # 10 s: half-overlapping 6 s windows
    assert not staged.detect(read_audio(media_dir / "1QBsc_IXg8U_000750.mp4")).has_speech


def test_staged_rule_arithmetic():
    rule = StagedRule(w_first=2.0, bias_first=-1.0, unsure_low=-2.0, unsure_high=1.0, w_denoised=0.5,
                      w_rnnoise=0.25, bias_second=-1.0)  # fmt: skip
    assert rule.first(1.5) == pytest.approx(2.0)
    assert [rule.unsure(z) for z in (-2.0, -1.999, 0.999, 1.0)] == [False, True, True, False]
    assert rule.second(4.0, 2.0) == pytest.approx(1.5)


def test_staged_is_the_default_detector_and_reaches_every_command(tmp_path: Path, speech: list[Audio]):  # noqa: F811
    assert DEFAULT_COMPONENTS["speech"] == "staged"
    built = Components(PipelineConfig()).speech
    assert isinstance(built, StagedSpeechDetector) and isinstance(built, SpeechDetector)
    padded = Components(PipelineConfig(speech=SpeechConfig(name="staged", pad_s=0.0))).speech
    assert padded.pad_s == 0.0 and padded.primary.name == "silero-vad"
    voice = tmp_path / "voice.wav"
    sf.write(voice, speech[0].waveform[0], speech[0].sample_rate)
    cow = tmp_path / "cow.wav"
    lowing = _opensfx(OPENSFX_NEGATIVES["cow"])
    sf.write(cow, lowing.waveform.T, lowing.sample_rate)
    result = CliRunner().invoke(cli.app, ["vo-rate", str(voice), str(cow), "--json"])
    assert result.exit_code == 0, result.output
    rates = {Path(f["path"]).name: f["segments"] for f in json.loads(result.output)["files"]}
    assert rates["voice.wav"] > 0 and rates["cow.wav"] == 0
    verdict = SpeechJudge(built).judge(None, speech[0])
    assert verdict.has_voice_over is True and verdict.evidence["speech_detector"] == "staged-vad"
    assert verdict.evidence["speech_detectors"]["primary"]["detector"] == "silero-vad"
    assert verdict.evidence["speech_detectors"]["staged"]["rule"]["unsure_high"] == StagedRule().unsure_high


def test_the_staged_rule_keys_the_evaluation_cache():
    from deepsound.evaluation.builtin_models import SileroExtractor
    from deepsound.evaluation.features import Settings

    shipped = SileroExtractor(
        Settings(duration=2.0), detector=StagedSpeechDetector(SileroSpeechDetector(), RnnoiseDenoiser())
    )
    moved = SileroExtractor(
        Settings(duration=2.0),
        detector=StagedSpeechDetector(SileroSpeechDetector(), RnnoiseDenoiser(), StagedRule(unsure_high=2.0)),
    )
    fitted, refitted = shipped.fingerprint()["model"], moved.fingerprint()["model"]
    assert fitted["name"] == "staged-vad" and fitted["rule"]["unsure_high"] == StagedRule().unsure_high
    assert refitted["rule"]["unsure_high"] == 2.0 and refitted != fitted
