"""Which files are evaluated (a ``deepsound batch`` folder as it is), caches, and the voice-over rate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from media_factory import make_audio_file, make_video
from stand_ins import tone

from deepsound.audio import Audio
from deepsound.errors import ConfigError
from deepsound.evaluation.builtin_models import SileroExtractor
from deepsound.evaluation.cache import MANIFEST, FeatureCache
from deepsound.evaluation.extractors import Settings, Source
from deepsound.evaluation.sources import discover
from deepsound.evaluation.voice_over import SPEECH_CLASSES, speech_probability, voice_over_summary


def _trace(path: Path, fallback: str | None, audio: str | None, duration: float = 2.0) -> None:
    path.write_text(
        json.dumps({"options": {"duration": duration}, "final": {"fallback": fallback, "audio": audio}})
    )


def test_a_batch_output_folder_is_read_as_it_is(tmp_path):
    make_audio_file(tmp_path / "a.wav", tone(1.0))
    for suffix in (".step1.wav", ".step3.wav", ".step3.vocals.wav", ".neg.wav"):
        make_audio_file(tmp_path / f"a{suffix}", tone(1.0))
    make_video(tmp_path / "a.mp4", duration=1.0, fps=25, size=(64, 48))
    _trace(tmp_path / "a.trace.json", None, str(tmp_path / "a.wav"))
    # b: the rm fallback removed its audio; only a silent video and the trace remain
    make_video(tmp_path / "b.mp4", duration=2.0, fps=25, size=(64, 48))
    _trace(tmp_path / "b.trace.json", "rm", None, duration=2.0)
    (tmp_path / "notes.txt").write_text("not media")
    found = discover(tmp_path)
    assert [s.stem for s in found.sources] == ["a", "b"]
    assert found.sources[0].path.name == "a.wav"
    wav, rate = found.sources[1].raw
    assert wav.shape[-1] == 2 * rate and not wav.any()
    assert sum("intermediate" in i for i in found.ignored) == 4


def test_plain_folders_pair_by_stem_and_prefer_audio(tmp_path):
    make_audio_file(tmp_path / "x.flac", tone(1.0))
    make_video(tmp_path / "x.mp4", duration=1.0, fps=25, size=(64, 48))
    make_audio_file(tmp_path / "y.step1.wav", tone(1.0))  # no trace: not a batch folder, a normal stem
    found = discover(tmp_path)
    assert [(s.stem, s.path.suffix) for s in found.sources] == [("x", ".flac"), ("y.step1", ".wav")]
    assert [s.path.suffix for s in discover(tmp_path, prefer="video").sources] == [".mp4", ".wav"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no audio or video"):
        discover(empty)


def test_cache_manifest_tracks_files_fingerprints_and_removals(tmp_path):
    cache = FeatureCache(tmp_path)
    files = ("pann_features.pth",)
    assert cache.stale("panns_audio", files, {"w": 1}, {"a": "h1", "b": "h2"}) == ["a", "b"]
    cache.put("panns_audio", "b", "h2", {"pann_features.pth": torch.ones(2)})
    cache.put("panns_audio", "a", "h1", {"pann_features.pth": torch.zeros(2)})
    cache.fail("panns_audio", files, "c", "h3", "too short")
    cache.save()
    assert list(torch.load(tmp_path / "pann_features.pth", weights_only=True)) == ["a", "b"]  # sorted
    again = FeatureCache(tmp_path)
    assert again.stale("panns_audio", files, {"w": 1}, {"a": "h1", "b": "h2", "c": "h3"}) == []
    assert again.failures("panns_audio") == {"c": "too short"}
    assert again.stale("panns_audio", files, {"w": 1}, {"a": "h1", "b": "changed"}) == ["b"]
    assert "c" not in again.failures("panns_audio")  # gone from the folder
    assert again.stale("panns_audio", files, {"w": 2}, {"a": "h1"}) == ["a"]  # other weights
    assert list(again.get("pann_features.pth")) == ["a"]
    assert json.loads((tmp_path / MANIFEST).read_text())["format"] == 1


def test_voice_over_counts_only_clips_whose_reference_is_silent_of_speech():
    def entry(speech_logit: float) -> dict:
        logits = torch.full((527,), -5.0)
        logits[SPEECH_CLASSES[2]] = speech_logit
        return {"logits": logits}

    gen = {
        "pann_features.pth": {
            "a": entry(4),
            "b": entry(-4),
            "c": entry(4),
            "000000001_zxpo56cpUBU_000007-0": entry(4),
        }
    }
    ref = {
        "pann_features.pth": {"a": entry(-4), "b": entry(-4), "c": entry(4), "zxpo56cpUBU_000007": entry(-4)}
    }
    out = voice_over_summary(gen, ref)
    assert speech_probability(entry(4)) == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item())
    assert out["clips_without_reference_speech"] == 3  # a, b and the VGGSound-named one
    assert out["voice_over_rate"] == pytest.approx(2 / 3)
    assert out["per_clip"]["c"]["reference_has_speech"] is True
    assert out["voice_over_rate_silero"] is None


def test_silero_second_opinion_hears_no_speech_in_a_tone(tmp_path):
    path = tmp_path / "t.wav"
    make_audio_file(path, Audio(np.tile(tone(3.0, 44100).waveform, (2, 1)), 44100))
    extractor = SileroExtractor(Settings(duration=2.0))
    entry = extractor.extract(Source("t", path))["silero_speech.pth"]
    assert entry.shape == (2,) and entry[1].item() == 0.0
    assert extractor.fingerprint()["duration"] == 2.0


def test_voice_over_rate_hears_with_the_configured_detector(tmp_path):
    """Item 5 of the speech gate: the evaluation's speech second opinion is the run's own detector."""
    from deepsound.config import PipelineConfig, SpeechConfig

    extractor = SileroExtractor(Settings(duration=2.0, pipeline=PipelineConfig(speech=SpeechConfig("ten"))))
    assert extractor.detector.name == "ten-vad" and extractor.fingerprint()["model"]["name"] == "ten"
    assert SileroExtractor(Settings(duration=2.0)).fingerprint()["model"]["name"] == "staged"  # the default


def test_evaluate_names_an_unknown_speech_detector_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from deepsound.cli import app

    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "p"), "--reference", str(tmp_path / "r"), "-o", str(tmp_path / "o"),
              "--speech", "nope"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "unknown speech 'nope'" in result.output and not (tmp_path / "o").exists()
