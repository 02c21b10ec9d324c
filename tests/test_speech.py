"""Silero VAD with the weights shipped in the ``silero-vad`` wheel: speech where people talk, none elsewhere.

Speech comes from the real clips (film dialogue; a short shout in a VGGSound
clip) and from espeak-ng, a formant synthesiser (skipped where it is not
installed). Non-speech is a pure tone, white and brown noise, silence, and a
VGGSound clip without voice.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ci_tools import require_tool

from deepsound.audio import Audio
from deepsound.config import PipelineConfig, SpeechConfig
from deepsound.errors import MediaError
from deepsound.interfaces import SpeechDetector
from deepsound.media import read_audio
from deepsound.models.silero.detector import SileroSpeechDetector, _load_silero, speech_report_for_file
from deepsound.registry import Components


@pytest.fixture(scope="module")
def detector() -> SileroSpeechDetector:
    return SileroSpeechDetector()


def _non_speech(kind: str, rate: int = 44100, seconds: float = 4.0) -> Audio:
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * seconds)) / rate
    if kind == "tone":
        wav = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    elif kind == "white_noise":
        wav = 0.3 * rng.standard_normal(t.size)
    elif kind == "brown_noise":
        wav = np.cumsum(rng.standard_normal(t.size))
        wav = 0.5 * (wav - wav.mean()) / np.abs(wav - wav.mean()).max()
    elif kind == "silence":
        wav = np.zeros(t.size)
    else:
        raise ValueError(kind)
    return Audio(wav.astype(np.float32), rate)


@pytest.mark.parametrize("kind", ["tone", "white_noise", "brown_noise", "silence"])
def test_no_speech_in_tones_noise_or_silence(detector: SileroSpeechDetector, kind: str):
    report = detector.detect(_non_speech(kind))
    assert report.segments == []
    assert report.speech_ratio == 0.0
    assert not report.has_speech
    assert report.duration == pytest.approx(4.0)


@pytest.mark.parametrize("n", [0, 1, 300])
def test_tiny_inputs(detector: SileroSpeechDetector, n: int):
    report = detector.detect(Audio(np.zeros((2, n), np.float32), 48000))
    assert report.segments == [] and report.speech_ratio == 0.0
    assert report.duration == pytest.approx(n / 48000)


def test_is_a_speech_detector_and_validates_options():
    assert isinstance(SileroSpeechDetector(), SpeechDetector)
    assert SileroSpeechDetector().name == "silero-vad"
    with pytest.raises(ValueError):
        SileroSpeechDetector(threshold=1.5)
    with pytest.raises(ValueError):
        SileroSpeechDetector(min_speech_s=-1)
    tuned = Components(PipelineConfig(speech=SpeechConfig(name="silero", threshold=0.7, pad_s=0.0))).speech
    assert (tuned.threshold, tuned.pad_s, tuned.min_speech_s) == (0.7, 0.0, 0.25)


def _forget_silero(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "silero_vad" or m.startswith("silero_vad.")]:
        monkeypatch.delitem(sys.modules, name)


def test_loading_and_detecting_keep_torch_thread_count(monkeypatch: pytest.MonkeyPatch):
    """Importing silero_vad sets torch to one thread; loading and running through us put the count back."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _forget_silero(monkeypatch)
        import silero_vad  # noqa: F401  (the side effect this guards against)

        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        _forget_silero(monkeypatch)
        _load_silero()
        assert torch.get_num_threads() == 2
        SileroSpeechDetector().detect(_non_speech("white_noise", seconds=0.5))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------- synthesised speech


@pytest.fixture(scope="module")
def espeak_speech(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    require_tool("espeak-ng", shutil.which("espeak-ng") is not None, "apt-get install espeak-ng")
    import soundfile as sf

    path = tmp_path_factory.mktemp("espeak") / "speech.wav"
    text = "The quick brown fox jumps over the lazy dog. Speech detection should hear every word of this."
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=60)
    wav, rate = sf.read(path, dtype="float32", always_2d=True)
    return Audio(wav.T, rate)


def test_finds_synthesised_speech(detector: SileroSpeechDetector, espeak_speech: Audio):
    report = detector.detect(espeak_speech)
    assert report.has_speech
    assert report.speech_ratio > 0.6
    assert all(0.0 <= start < end <= report.duration for start, end in report.segments)


def test_segments_are_in_seconds_of_the_original_track(detector: SileroSpeechDetector, espeak_speech: Audio):
    """Speech placed 2 s into a 48 kHz stereo track is found at 2 s, whatever the VAD's own rate."""
    speech = espeak_speech.resample(48000).waveform[0]
    lead = np.zeros(2 * 48000, np.float32)
    tail = np.zeros(48000, np.float32)
    mono = np.concatenate([lead, speech, tail])
    report = detector.detect(Audio(np.stack([mono, mono]), 48000))
    speech_end = 2.0 + speech.size / 48000
    assert report.segments, "no speech found"
    assert report.segments[0][0] == pytest.approx(2.0, abs=0.25)
    assert report.segments[-1][1] == pytest.approx(speech_end, abs=0.5)
    assert report.segments[-1][1] < report.duration


def test_min_speech_duration_drops_short_runs(espeak_speech: Audio):
    assert not SileroSpeechDetector(min_speech_s=30.0).detect(espeak_speech).has_speech


# ----------------------------------------------------------------------------------------- real clips


@pytest.mark.media
def test_film_dialogue_is_speech(detector: SileroSpeechDetector, media_dir: Path):
    report = detector.detect(read_audio(media_dir / "00000003.gt.mp4"))
    assert report.has_speech
    assert report.speech_ratio > 0.5
    assert report.duration == pytest.approx(2.69, abs=0.05)


@pytest.mark.media
def test_vggsound_clip_without_voice_has_no_speech(detector: SileroSpeechDetector, media_dir: Path):
    report = detector.detect(read_audio(media_dir / "1QBsc_IXg8U_000750.mp4"))
    assert report.segments == []


@pytest.mark.media
def test_short_voice_burst_is_found_and_short(detector: SileroSpeechDetector, media_dir: Path):
    audio = read_audio(media_dir / "aa.mp4")
    report = detector.detect(audio)
    assert len(report.segments) == 1
    start, end = report.segments[0]
    assert 0.2 <= start < end <= 1.2  # the voice is heard around 0.4-0.9 s
    assert report.speech_ratio < 0.15
    # a burst of about half a second disappears when runs must last a second
    assert not SileroSpeechDetector(min_speech_s=1.0).detect(audio).has_speech


@pytest.mark.media
def test_report_for_a_file(detector: SileroSpeechDetector, media_dir: Path):
    report = speech_report_for_file(media_dir / "00000003.gt.mp4", detector)
    assert report == detector.detect(read_audio(media_dir / "00000003.gt.mp4"))
    assert report.has_speech
    with pytest.raises(MediaError, match="silent_street"):
        speech_report_for_file(media_dir / "silent_street_600x316.mp4", detector)
