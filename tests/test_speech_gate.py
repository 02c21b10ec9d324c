"""The voice-over gate's detectors with their real shipped weights, on real recordings Debian ships.

Speech: Asterisk's English prompts (``asterisk-core-sounds-en-wav``), a voice
talent's recordings. Non-speech: OpenTTD's OpenSFX field recordings (ship and
ferry horns, morse, bubbles: sounds Silero was seen to fire on; a helicopter, a
cow) and Heroes' crowds, horn and explosion (``heroes-sound-effects``). ``.ci/run`` installs these
packages; under CI a missing one fails, elsewhere the test skips.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from ci_tools import need_path
from typer.testing import CliRunner

from deepsound import cli
from deepsound.audio import Audio
from deepsound.config import PipelineConfig, SpeechConfig
from deepsound.interfaces import SpeechDetector
from deepsound.models.silero.detector import SileroSpeechDetector
from deepsound.models.ten_vad.detector import TenSpeechDetector
from deepsound.registry import Components
from deepsound.speech_frames import segments_from_probabilities
from deepsound.steps.speech_bed import without_stationary_bed
from deepsound.steps.speech_gate import (
    FrameSpeechDetector,
    FusedSpeechDetector,
    FusionRule,
    band_pass,
    windows,
)
from deepsound.steps.voice_over import SpeechJudge

ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
OPENSFX = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")
HEROES = Path("/usr/share/games/heroes/sfx")
SPEECH_FILES = ("vm-intro", "queue-thereare", "conf-getpin")  # 2–4 s prompts
# the gate stays quiet on these; a lone horse neigh (38) still trips it (see the benchmark's notes)
OPENSFX_NEGATIVES = {"ship_horn": 6, "ferry_horn": 7, "helicopter": 24, "cow": 37, "morse": 22, "bubbles": 46}


def _read(path: Path) -> Audio:
    wav, rate = sf.read(path, dtype="float32", always_2d=True)
    return Audio(wav.T, rate)


def _opensfx(index: int) -> Audio:
    """One recording of OpenTTD's sound container: (offset, size) pairs, each entry a named RIFF file."""
    data = need_path(OPENSFX, "openttd-opensfx").read_bytes()
    offset, size = struct.unpack_from("<II", data, index * 8)
    offset &= 0x7FFFFFFF
    wav, rate = sf.read(
        io.BytesIO(data[offset + 1 + data[offset] : offset + size]), dtype="float32", always_2d=True
    )
    return Audio(wav.T, rate)


@pytest.fixture(scope="module")
def speech() -> list[Audio]:
    return [_read(need_path(ALLISON / f"{name}.wav", "asterisk-core-sounds-en-wav")) for name in SPEECH_FILES]


@pytest.fixture(scope="module")
def silero() -> SileroSpeechDetector:
    return SileroSpeechDetector()


@pytest.fixture(scope="module")
def ten() -> TenSpeechDetector:
    return TenSpeechDetector()


@pytest.fixture(scope="module")
def fused(silero: SileroSpeechDetector, ten: TenSpeechDetector) -> FusedSpeechDetector:
    return Components(PipelineConfig(speech=SpeechConfig(name="fused"))).speech


def _in_bed(voice: Audio, bed: Audio, snr_db: float, offset_s: float = 1.0, seconds: float = 6.0) -> Audio:
    """``voice`` at ``offset_s`` in a looped 16 kHz bed, at ``snr_db`` over the voice's own span."""
    v = voice.to_mono().resample(16000).waveform[0]
    b = bed.to_mono().resample(16000).waveform[0]
    n = int(seconds * 16000)
    b = np.tile(b, n // b.size + 1)[:n].copy()
    start = int(offset_s * 16000)
    span = b[start : start + v.size]
    gain = np.sqrt(np.mean(span**2) / np.mean(v[: span.size] ** 2) * 10 ** (snr_db / 10))
    b[start : start + span.size] += gain * v[: span.size]
    return Audio(0.5 * b / np.abs(b).max(), 16000)


# ---------------------------------------------------------------------------------- the detectors


def test_ten_hears_real_speech_where_it_is(ten: TenSpeechDetector, speech: list[Audio]):
    assert isinstance(ten, SpeechDetector) and isinstance(ten, FrameSpeechDetector)
    for voice in speech:
        report = ten.detect(voice)
        assert report.has_speech and report.speech_ratio > 0.4, report
    # 1.5 s of silence, the prompt (8 kHz, mono) → found after 1.5 s, in seconds of the original track
    voice = speech[0]
    lead = np.zeros((1, int(1.5 * voice.sample_rate)), np.float32)
    report = ten.detect(Audio(np.concatenate([lead, voice.waveform], axis=1), voice.sample_rate))
    assert report.segments[0][0] == pytest.approx(1.5, abs=0.3)
    assert report.segments[-1][1] <= report.duration


def test_ten_probabilities_follow_the_hop(ten: TenSpeechDetector, speech: list[Audio]):
    mono = speech[0].resample(16000).waveform[0]
    probs = ten.frame_probabilities(mono)
    assert probs.shape == (int(np.ceil(mono.size / 256)),)
    assert 0.0 <= probs.min() and probs.max() <= 1.0
    assert probs.max() > 0.9  # a clean voice
    assert ten.frame_probabilities(np.zeros(16000, np.float32)).max() < 0.5  # silence
    # a fresh state per track: the same track twice gives the same numbers
    np.testing.assert_array_equal(probs, ten.frame_probabilities(mono))
    assert not ten.detect(Audio(np.zeros((2, 0), np.float32), 48000)).has_speech


def test_silero_frame_probabilities_are_its_segmenters_numbers(
    silero: SileroSpeechDetector, speech: list[Audio]
):
    """The batched frame probabilities give the wheel's own segments, so the fused gate reads what Silero hears."""
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    voice = speech[1]
    mono = voice.resample(16000).waveform[0]
    probs = silero.frame_probabilities(mono)
    stamps = get_speech_timestamps_from_probs(
        probs.tolist(), sampling_rate=16000, threshold=0.5, min_speech_duration_ms=250,
        min_silence_duration_ms=100, speech_pad_ms=30, audio_length_samples=mono.size,
    )  # fmt: skip
    expected = [
        (round(s["start"] / 16000, 4), round(min(s["end"] / 16000, voice.duration), 4)) for s in stamps
    ]
    assert silero.detect(voice).segments == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("kind", sorted(OPENSFX_NEGATIVES))
def test_fused_gate_stays_quiet_on_real_field_recordings(fused: FusedSpeechDetector, kind: str):
    report = fused.detect(_opensfx(OPENSFX_NEGATIVES[kind]))
    assert not report.has_speech, report


@pytest.mark.parametrize("name", ["foule1", "foule2", "claxon", "explo01"])
def test_fused_gate_stays_quiet_on_crowds_and_effects(fused: FusedSpeechDetector, name: str):
    report = fused.detect(_read(need_path(HEROES / f"{name}.wav", "heroes-sound-effects")))
    assert not report.has_speech, report.evidence["fused"]


def test_fused_gate_hears_speech_in_loud_real_beds(fused: FusedSpeechDetector, speech: list[Audio]):
    bed = _opensfx(OPENSFX_NEGATIVES["helicopter"])
    for voice in speech:
        for snr in (0.0, 10.0):
            report = fused.detect(_in_bed(voice, bed, snr))
            assert report.has_speech, (snr, report.evidence)
            assert report.segments[0][0] > 0.5  # the voice starts 1 s in; the bed alone was quiet


def test_fused_evidence_names_each_detector(fused: FusedSpeechDetector, speech: list[Audio]):
    report = fused.detect(speech[0])
    readings = report.evidence
    assert readings["primary"]["detector"] == "silero-vad" and readings["secondary"]["detector"] == "ten-vad"
    assert readings["primary"]["speech_seconds"] > 0.5 and readings["secondary"]["speech_seconds"] > 0.5
    assert (
        readings["primary"]["input"] == "full band, bed subtracted"
        and readings["secondary"]["input"] == "full band"
    )
    assert [w["speech"] for w in readings["fused"]["windows"]] == [True]  # a short prompt: one window
    assert readings["fused"]["windows"][0]["score"] >= readings["fused"]["threshold"]
    # the judge puts them in the trace
    verdict = SpeechJudge(fused).judge(None, speech[0])
    assert verdict.has_voice_over is True
    assert verdict.evidence["speech_detectors"]["secondary"]["detector"] == "ten-vad"
    assert verdict.evidence["speech_detector"] == "fused-vad"


# --------------------------------------------------------------------------------- the fusion rule


def test_fusion_rule_arithmetic():
    rule = FusionRule(w_top=1.0, w_seconds=0.5, w_contrast=-1.0, w_secondary=0.25, bias=0.0, top_s=0.064)
    primary = np.array([0.1, 0.9, 0.9, 0.1], np.float32)  # two 32 ms frames of speech
    flat = np.full(8, 0.8, np.float32)  # a secondary that stays high throughout: no rise above its level
    rise = np.array([0.2] * 4 + [0.95] * 4, np.float32)
    f_flat = rule.features(primary, 0.032, flat, 0.016, 0.128)
    f_rise = rule.features(primary, 0.032, rise, 0.016, 0.128)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(f_flat, [logit(0.9), 0.064, 0.0, logit(0.8)], rtol=1e-4, atol=1e-6)
    assert f_rise[2] == pytest.approx(logit(0.95) - np.median(logit(rise)), rel=1e-4)
    assert rule.score(f_flat) == pytest.approx(logit(0.9) + 0.5 * 0.064 + 0.25 * logit(0.8), rel=1e-5)
    # with a negative contrast weight, a sudden rise of the secondary alone (a horn, a neigh) counts against speech
    assert rule.score(f_rise) < rule.score(f_flat) + 0.25 * (logit(0.95) - logit(0.8))
    assert windows(7.0, 6.0) == [(0.0, 7.0)]
    assert windows(12.0, 6.0) == [(0.0, 6.0), (3.0, 9.0), (6.0, 12.0)]


def test_band_pass_keeps_the_speech_band():
    t = np.arange(16000) / 16000
    low, mid, high = (np.sin(2 * np.pi * f * t).astype(np.float32) for f in (60.0, 1000.0, 7000.0))
    rms = lambda x: float(np.sqrt(np.mean(x[4000:] ** 2)))  # noqa: E731
    assert rms(band_pass(mid, (300.0, 3400.0))) > 0.6
    assert rms(band_pass(low, (300.0, 3400.0))) < 0.02 and rms(band_pass(high, (300.0, 3400.0))) < 0.02


def test_stationary_bed_is_subtracted_and_a_voice_kept(speech: list[Audio]):
    """A steady tone and hiss lose ~11 dB; a real voice laid over them keeps most of its power (SNR +10 dB)."""
    rng = np.random.default_rng(0)
    n = 6 * 16000
    t = np.arange(n) / 16000
    bed = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    voice = np.zeros(n, np.float32)
    v = speech[0].resample(16000).waveform[0][: 3 * 16000]
    voice[16000 : 16000 + v.size] = 0.3 * v / np.abs(v).max()
    power = lambda x: float(np.mean(np.square(x[2048:-2048], dtype=np.float64)))  # noqa: E731
    assert power(without_stationary_bed(bed)) < 0.12 * power(bed)
    cleaned = without_stationary_bed(bed + voice)
    kept = power(cleaned - without_stationary_bed(bed))  # what the voice added after subtraction
    assert kept > 0.5 * power(voice)
    assert without_stationary_bed(bed + voice).shape == (n,)
    # a long track gets one floor per block: a bed that stops halfway is followed, not averaged
    two = np.concatenate([bed, np.zeros(n, np.float32)])
    followed = without_stationary_bed(two)
    assert power(followed[: n // 2]) < 0.12 * power(bed[: n // 2])  # up to the first block's centre
    assert power(followed[:n]) < 0.25 * power(bed)  # then the floor slides towards the silent block's
    assert without_stationary_bed(np.zeros(100, np.float32)).shape == (100,)


def test_segments_from_probabilities_rules():
    probs = np.array([0, 0.9, 0.9, 0.4, 0.9, 0, 0, 0, 0, 0.9, 0], np.float32)  # 0.1 s hops
    segs = segments_from_probabilities(
        probs, 0.1, threshold=0.5, min_speech_s=0.0, min_silence_s=0.0, pad_s=0.0, duration=1.1
    )
    assert segs == [(0.1, 0.5), (0.9, 1.0)]  # 0.4 stays above the hysteresis floor (0.35)
    bridged = segments_from_probabilities(
        probs, 0.1, threshold=0.5, min_speech_s=0.2, min_silence_s=0.5, pad_s=0.05, duration=1.1
    )
    assert bridged == [(0.05, 1.05)]
    assert segments_from_probabilities(probs, 0.1, threshold=0.5, min_speech_s=0.5, min_silence_s=0.0,
                                       pad_s=0.0, duration=1.1) == []  # fmt: skip


# ------------------------------------------------------------------------------ registry and commands


def test_registry_builds_each_detector():
    for name, cls in (
        ("silero", SileroSpeechDetector),
        ("ten", TenSpeechDetector),
        ("fused", FusedSpeechDetector),
    ):
        built = Components(PipelineConfig(speech=SpeechConfig(name=name))).speech
        assert isinstance(built, cls) and isinstance(built, SpeechDetector)
    gate = Components(PipelineConfig(speech=SpeechConfig(name="fused", pad_s=0.0))).speech
    assert gate.pad_s == 0.0 and gate.primary.name == "silero-vad" and gate.secondary.name == "ten-vad"


def test_commands_take_the_detector(tmp_path: Path, speech: list[Audio]):
    voice = tmp_path / "voice.wav"
    sf.write(voice, speech[0].waveform[0], speech[0].sample_rate)
    lowing = tmp_path / "cow.wav"
    cow = _opensfx(OPENSFX_NEGATIVES["cow"])
    sf.write(lowing, cow.waveform.T, cow.sample_rate)
    for name in ("ten", "fused"):
        result = CliRunner().invoke(cli.app, ["vo-rate", str(voice), str(lowing), "--json", "--speech", name])
        assert result.exit_code == 0, result.output
        rates = {Path(f["path"]).name: f["segments"] for f in json.loads(result.output)["files"]}
        assert rates["voice.wav"] > 0
        if name == "fused":
            assert rates["cow.wav"] == 0
    result = CliRunner().invoke(cli.app, ["judge", str(voice), "--judge", "speech", "--speech", "fused"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert row["has_voice_over"] is True
    assert row["evidence"]["speech_detectors"]["primary"]["detector"] == "silero-vad"
    bad = CliRunner().invoke(cli.app, ["vo-rate", str(voice), "--speech", "nope"])
    assert bad.exit_code != 0 and "nope" in bad.output and "Traceback" not in bad.output


def test_the_fused_rule_keys_the_evaluation_cache():
    """The evaluation's voice-over rate runs the configured detector; a refitted rule never reuses cached numbers."""
    from deepsound.evaluation.builtin_models import SileroExtractor
    from deepsound.evaluation.features import Settings

    gate = Components(PipelineConfig(speech=SpeechConfig(name="fused"))).speech
    fitted = SileroExtractor(Settings(duration=2.0), detector=gate).fingerprint()["model"]
    assert fitted["name"] == "fused-vad" and fitted["rule"]["w_top"] == FusionRule().w_top
    refitted = FusedSpeechDetector(SileroSpeechDetector(), TenSpeechDetector(), FusionRule(bias=1.0))
    other = SileroExtractor(Settings(duration=2.0), detector=refitted).fingerprint()["model"]
    assert other["rule"]["bias"] == 1.0 and other != fitted
    plain = SileroExtractor(Settings(duration=2.0), detector=SileroSpeechDetector()).fingerprint()["model"]
    assert "rule" not in plain


def test_fused_gate_on_real_vggsound_clips(fused: FusedSpeechDetector, media_dir: Path):
    """A short burst of voice in a real soundtrack (which the speech-band-only first rule missed), and none."""
    from deepsound.media import read_audio

    burst = fused.detect(read_audio(media_dir / "aa.mp4"))
    assert burst.has_speech and burst.segments[0][0] < 1.5, burst.evidence["fused"]
    assert not fused.detect(read_audio(media_dir / "1QBsc_IXg8U_000750.mp4")).has_speech
