"""``deepsound reference build``: the VO-Free set of real VGGSound clips, and real-clip decoding
checked against an independent decoder (the ffmpeg command line, not our PyAV code).

The judge is the real speech judge (Silero) and the separator BS-RoFormer at toy size; the
clips are the shared real ones (``aa.mp4`` holds a short burst of voice, ``1QBsc…`` none).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ci_tools import require_tool
from experiment_support import register_components, unregister_components
from typer.testing import CliRunner

from deepsound import cli
from deepsound.evaluation.sources import load_raw

CLIPS = ("aa.mp4", "1QBsc_IXg8U_000750.mp4")


def ffmpeg_decode(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream as float32 (channels, samples) at its own rate, by the ffmpeg binary,
    cut to the stream's declared duration (ffprobe): the command line keeps the MP3 decoder's
    end padding (4 samples on ``aa.mp4``) where the container says the stream ends earlier."""
    tool = shutil.which("ffmpeg")
    require_tool("ffmpeg", tool is not None, "apt-get install ffmpeg")
    probe = subprocess.run(
        [shutil.which("ffprobe") or "ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=sample_rate,channels,duration", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    stream = json.loads(probe.stdout)["streams"][0]
    rate, channels = int(stream["sample_rate"]), int(stream["channels"])
    raw = subprocess.run(
        [tool, "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "-"],
        check=True,
        capture_output=True,
    ).stdout
    wav = np.frombuffer(raw, dtype="<f4").reshape(-1, channels).T.copy()
    if "duration" in stream:
        declared = round(float(stream["duration"]) * rate)
        assert wav.shape[1] - declared < 1152, (wav.shape, declared)  # at most one MP3 frame more
        wav = wav[:, : min(wav.shape[1], declared)]
    return wav, rate


@pytest.mark.parametrize("name", CLIPS)
def test_real_clip_decoding_equals_ffmpeg(media_dir, name):
    expected, rate = ffmpeg_decode(media_dir / name)
    wav, ours_rate = load_raw(media_dir / name)  # what the evaluation reads of an Ori-Set clip
    assert ours_rate == rate and wav.shape[0] == expected.shape[0]
    assert abs(wav.shape[1] - expected.shape[1]) == 0, (wav.shape, expected.shape)
    np.testing.assert_allclose(wav.numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("codec", ["aac", "libmp3lame"])
def test_written_clip_decoding_equals_ffmpeg(tmp_path, codec):
    """The same check without the shared clips: a video with a stereo 44.1 kHz track, AAC or MP3."""
    from media_factory import make_video

    from deepsound.audio import Audio

    t = np.arange(44100 * 2) / 44100
    sound = Audio(
        np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)]).astype("f4"), 44100
    )
    path = make_video(
        tmp_path / "clip.mp4", duration=2.0, fps=25, size=(32, 32), audio=sound, audio_codec=codec
    )
    expected, rate = ffmpeg_decode(path)
    wav, ours_rate = load_raw(path)
    assert ours_rate == rate == 44100 and wav.shape == expected.shape
    np.testing.assert_allclose(wav.numpy(), expected, rtol=0, atol=1e-6)


@pytest.fixture()
def components():
    register_components()
    yield
    unregister_components()


def test_reference_build_judges_removes_records_and_reuses(media_dir, tmp_path, components):
    gt, out = tmp_path / "gt", tmp_path / "vofree"
    gt.mkdir()
    for name in CLIPS:
        (gt / name).symlink_to(media_dir / name)
    argv = ["reference", "build", str(gt), "-o", str(out), "--judge", "speech", "--separator", "tiny-roformer",
            "--device", "cpu", "-q"]  # fmt: skip
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    assert "voice removed from 1" in result.output

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"clips": 2, "in_set": 2, "voice_over": 1, "failed": 0, "mllm_calls": 0}
    assert manifest["voice_over_rate"] == 0.5 and manifest["method"]["judge"] == "speech"
    voiced, clean = manifest["clips"]["aa"], manifest["clips"]["1QBsc_IXg8U_000750"]
    assert voiced["has_voice_over"] and voiced["judge"] == "speech"
    assert voiced["evidence"]["decided_by"] == "speech" and voiced["evidence"]["speech_ratio"] > 0
    assert voiced["removed"] == "removed/aa.vocals.wav" and (out / voiced["removed"]).exists()
    assert not clean["has_voice_over"] and clean["removed"] is None
    assert sorted(p.name for p in out.glob("*.wav")) == ["1QBsc_IXg8U_000750.wav", "aa.wav"]

    # a clean clip is its own audio: the very samples the independent decoder reads
    expected, rate = ffmpeg_decode(media_dir / CLIPS[1])
    wav, ours_rate = load_raw(out / "1QBsc_IXg8U_000750.wav")
    assert ours_rate == rate
    np.testing.assert_allclose(wav.numpy(), expected, rtol=0, atol=1e-6)
    # the voiced one is what separation kept: mix = kept + removed
    kept, _ = load_raw(out / "aa.wav")
    removed, _ = load_raw(out / "removed" / "aa.vocals.wav")
    mix, _ = ffmpeg_decode(media_dir / CLIPS[0])
    np.testing.assert_allclose((kept + removed).numpy(), mix, atol=1e-3)

    # reused: a second run redoes nothing; another method redoes every clip
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    again = CliRunner().invoke(cli.app, argv)
    assert again.exit_code == 0, again.output
    assert {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()} == stamps
    other = CliRunner().invoke(cli.app, [*argv, "--silero-threshold", "0.6"])  # the judge's detector
    assert other.exit_code == 0, other.output
    redone = json.loads((out / "manifest.json").read_text())
    assert (
        redone["method"]["speech"]["silero"]["threshold"] == 0.6
        and redone["fingerprint"] != manifest["fingerprint"]
    )
    assert all(p.stat().st_mtime_ns != stamps[p.name] for p in (out / "clips").iterdir())


def test_reference_build_bad_input_is_one_line(tmp_path):
    result = CliRunner().invoke(
        cli.app, ["reference", "build", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code != 0 and "not a folder" in result.output
