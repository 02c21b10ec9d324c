"""The step-4 RMS silence rule against librosa, which defines it.

The paper's check is ``librosa.load(path, sr=None)`` (mono by averaging the
channels), ``librosa.feature.rms`` (2048/512, centred, zero padding),
``librosa.amplitude_to_db`` (ref 1.0, amin 1e-5, top_db 80) and "more than 90 %
of frames below -50 dB". ``_librosa_rule`` below runs exactly those librosa
calls; our numpy version must give the same frame levels bit for bit and the
same decision, on random signals, edge cases, and the real clips' audio.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepsound.audio import Audio
from deepsound.config import PipelineConfig, SilenceConfig
from deepsound.interfaces import SilenceDetector
from deepsound.media import read_audio
from deepsound.registry import Components
from deepsound.steps import silence
from deepsound.steps.silence import RmsSilenceDetector, amplitude_to_db, frame_rms

librosa = pytest.importorskip("librosa")


def _librosa_rule(
    waveform: np.ndarray,
    *,
    top_db: float | None = 80.0,
    threshold_db: float = -50.0,
    ratio: float = 0.9,
    frame_length: int = 2048,
    hop_length: int = 512,
) -> tuple[np.ndarray, bool]:
    y = librosa.to_mono(waveform) if waveform.shape[0] > 1 else waveform[0]
    rms = librosa.feature.rms(y=y, frame_length=frame_length, hop_length=hop_length)[0]
    db = librosa.amplitude_to_db(rms, top_db=top_db)
    return db, bool(np.sum(db < threshold_db) / len(db) > ratio)


def _bursty(
    rng: np.random.Generator, channels: int, n: int, quiet_level: float, loud_share: float
) -> np.ndarray:
    """Noise at ``quiet_level`` with a few loud stretches covering about ``loud_share`` of the track."""
    wav = rng.standard_normal((channels, n)).astype(np.float32) * quiet_level
    loud = int(n * loud_share)
    if loud:
        start = int(rng.integers(0, max(1, n - loud)))
        wav[:, start : start + loud] += rng.standard_normal((channels, loud)).astype(np.float32) * 0.3
    return wav


CASES = [
    # seed, channels, samples, quiet level, loud share
    (0, 1, 44100 * 3, 1e-4, 0.0),
    (1, 2, 44100 * 3, 1e-4, 0.02),
    (2, 1, 16000 * 5 + 123, 1e-4, 0.2),
    (3, 2, 48000 * 2 + 7, 2e-3, 0.0),  # about -54 dB: below the threshold, close to it
    (4, 1, 22050 * 4, 5e-3, 0.0),  # about -46 dB: above it
    (5, 2, 44100 * 2, 3e-4, 0.06),
    (6, 1, 1000, 0.1, 0.0),
]


@pytest.mark.parametrize(("seed", "channels", "n", "quiet", "loud"), CASES)
def test_matches_librosa_on_random_signals(seed, channels, n, quiet, loud):
    rng = np.random.default_rng(seed)
    wav = _bursty(rng, channels, n, quiet, loud)
    detector = RmsSilenceDetector()
    ours = detector.frame_db(Audio(wav, 44100))
    ref_db, ref_silent = _librosa_rule(wav)
    np.testing.assert_array_equal(ours, ref_db)
    report = detector.detect(Audio(wav, 44100))
    assert report.is_silent == ref_silent
    assert report.silent_frame_ratio == pytest.approx(float(np.mean(ref_db < -50)), abs=0)


def test_random_cases_cover_both_answers():
    """The parametrised cases above mean something only if some are silent and some are not."""
    answers = set()
    for seed, channels, n, quiet, loud in CASES:
        wav = _bursty(np.random.default_rng(seed), channels, n, quiet, loud)
        answers.add(RmsSilenceDetector().detect(Audio(wav, 44100)).is_silent)
    assert answers == {True, False}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # audioread, imported by librosa.load
def test_matches_the_file_based_reference(tmp_path: Path):
    """Step 3 writes float WAV and step 4 reads it back with ``librosa.load(sr=None)``: same answer in memory."""
    import soundfile as sf

    rng = np.random.default_rng(11)
    wav = _bursty(rng, 2, 44100 * 2, 1e-3, 0.08)
    path = tmp_path / "instrumental.wav"
    sf.write(path, wav.T, 44100, subtype="FLOAT")
    y, sr = librosa.load(path, sr=None)
    assert sr == 44100
    ref_db = librosa.amplitude_to_db(librosa.feature.rms(y=y)[0])
    detector = RmsSilenceDetector()
    np.testing.assert_array_equal(detector.frame_db(Audio(wav, 44100)), ref_db)
    assert detector.detect(Audio(wav, 44100)).is_silent == bool(np.mean(ref_db < -50) > 0.9)


def test_all_zeros_is_silent_at_the_floor():
    wav = np.zeros((2, 44100), np.float32)
    report = RmsSilenceDetector().detect(Audio(wav, 44100))
    ref_db, ref_silent = _librosa_rule(wav)
    assert report.is_silent and ref_silent
    assert report.silent_frame_ratio == 1.0
    assert report.evidence["max_db"] == pytest.approx(-100.0)  # amin 1e-5 in amplitude
    np.testing.assert_array_equal(RmsSilenceDetector().frame_db(Audio(wav, 44100)), ref_db)


@pytest.mark.parametrize("n", [0, 1, 100, 511, 512, 2047])
def test_shorter_than_a_frame(n):
    rng = np.random.default_rng(n)
    wav = (rng.standard_normal((1, n)) * 0.5).astype(np.float32)
    ours = RmsSilenceDetector().frame_db(Audio(wav, 16000))
    assert ours.shape == (1 + n // 512,)
    if n:  # librosa refuses an empty signal; ours reads it as one frame of padding
        ref_db, _ = _librosa_rule(wav)
        np.testing.assert_array_equal(ours, ref_db)
    else:
        assert RmsSilenceDetector().detect(Audio(wav, 16000)).is_silent


def test_loud_burst_lifts_the_floor_through_top_db():
    """A burst 40 dB above full scale lifts the 80 dB floor to -40 dB: no frame counts as silent any more."""
    rng = np.random.default_rng(5)
    wav = (rng.standard_normal((1, 44100 * 2)) * 1e-3).astype(np.float32)  # about -60 dB everywhere
    wav[0, 1000:3000] = 100.0
    clamped = RmsSilenceDetector().detect(Audio(wav, 44100))
    unclamped = RmsSilenceDetector(top_db=None).detect(Audio(wav, 44100))
    ref_db, ref_silent = _librosa_rule(wav)
    ref_db_none, ref_silent_none = _librosa_rule(wav, top_db=None)
    assert (clamped.is_silent, unclamped.is_silent) == (ref_silent, ref_silent_none) == (False, True)
    np.testing.assert_array_equal(RmsSilenceDetector().frame_db(Audio(wav, 44100)), ref_db)
    np.testing.assert_array_equal(RmsSilenceDetector(top_db=None).frame_db(Audio(wav, 44100)), ref_db_none)


def test_stereo_is_mixed_down_by_averaging():
    """Opposite channels cancel in the mix (as in librosa.load): loud on each side, silent in the mono sum."""
    rng = np.random.default_rng(3)
    left = (rng.standard_normal(44100) * 0.3).astype(np.float32)
    wav = np.stack([left, -left])
    assert RmsSilenceDetector().detect(Audio(wav, 44100)).is_silent
    assert not RmsSilenceDetector().detect(Audio(wav[:1], 44100)).is_silent
    _, ref_silent = _librosa_rule(wav)
    assert ref_silent


def test_ratio_must_be_exceeded_not_reached():
    """Exactly 90 % silent frames is not silent (strict "more than"); non-overlapping frames make it exact."""
    wav = np.zeros((1, 36), np.float32)  # frame 4, hop 4: 10 frames
    wav[0, :2] = 0.5  # only frame 0 (samples -2..1 after centring) is loud
    kwargs = {"frame_length": 4, "hop_length": 4}
    report = RmsSilenceDetector(**kwargs).detect(Audio(wav, 8000))
    ref_db, ref_silent = _librosa_rule(wav, **kwargs)
    np.testing.assert_array_equal(RmsSilenceDetector(**kwargs).frame_db(Audio(wav, 8000)), ref_db)
    assert report.silent_frame_ratio == pytest.approx(0.9)
    assert report.is_silent is ref_silent is False
    assert RmsSilenceDetector(silent_ratio=0.89, **kwargs).detect(Audio(wav, 8000)).is_silent


def test_blocked_framing_is_identical(monkeypatch):
    """Long tracks are framed block by block to bound memory; the block size must not change a bit."""
    rng = np.random.default_rng(8)
    y = (rng.standard_normal(512 * 40 + 99) * 0.1).astype(np.float32)
    whole = frame_rms(y)
    monkeypatch.setattr(silence, "_BLOCK_FRAMES", 7)
    np.testing.assert_array_equal(frame_rms(y), whole)
    np.testing.assert_array_equal(frame_rms(y), librosa.feature.rms(y=y)[0])


def test_amplitude_to_db_matches_librosa_with_options():
    amp = np.array([0.0, 1e-7, 1e-5, 0.01, 1.0, 3.0], np.float32)
    for top_db in (80.0, 20.0, None):
        np.testing.assert_array_equal(
            amplitude_to_db(amp, top_db=top_db), librosa.amplitude_to_db(amp, top_db=top_db)
        )
    np.testing.assert_array_equal(amplitude_to_db(amp, amin=1e-3), librosa.amplitude_to_db(amp, amin=1e-3))


def test_thresholds_come_from_the_config():
    rng = np.random.default_rng(2)
    wav = (rng.standard_normal((1, 44100)) * 0.01).astype(np.float32)  # about -40 dB
    audio = Audio(wav, 44100)
    assert not Components(PipelineConfig()).silence.detect(audio).is_silent
    strict = Components(PipelineConfig(silence=SilenceConfig(threshold_db=-30.0, ratio=0.5))).silence
    assert (strict.threshold_db, strict.silent_ratio) == (-30.0, 0.5)
    assert strict.detect(audio).is_silent
    _, ref_silent = _librosa_rule(wav, threshold_db=-30.0, ratio=0.5)
    assert ref_silent


def test_report_is_a_silence_detector_with_json_evidence():
    detector = RmsSilenceDetector()
    assert isinstance(detector, SilenceDetector)
    assert detector.name == "rms"
    report = detector.detect(Audio(np.zeros((1, 5000), np.float32), 16000), video=Path("ignored.mp4"))
    evidence = json.loads(json.dumps(report.evidence))
    assert evidence["num_frames"] == 1 + 5000 // 512
    assert evidence["silent_frames"] == evidence["num_frames"]
    assert evidence["threshold_db"] == -50.0 and evidence["ratio_threshold"] == 0.9


@pytest.mark.media
@pytest.mark.parametrize("name", ["00000003.gt.mp4", "1QBsc_IXg8U_000750.mp4", "aa.mp4"])
def test_matches_librosa_on_real_clips(media_dir: Path, name: str):
    clip = read_audio(media_dir / name)
    wav, rate = clip.waveform, clip.sample_rate
    detector = RmsSilenceDetector()
    ref_db, ref_silent = _librosa_rule(wav)
    np.testing.assert_array_equal(detector.frame_db(Audio(wav, rate)), ref_db)
    report = detector.detect(Audio(wav, rate))
    assert report.is_silent == ref_silent
    assert not report.is_silent  # all three clips carry sound
    # the same clip turned down by 60 dB is silent for both
    quiet = wav * np.float32(1e-3)
    _, ref_quiet = _librosa_rule(quiet)
    assert detector.detect(Audio(quiet, rate)).is_silent == ref_quiet
