"""Tests for deepsound.media: probing, MMAudio frame sampling, audio I/O and muxing.

How the goldens in ``tests/data/media/`` were made
-------------------------------------------------
``tools/make_goldens.py media --official <MMAudio checkout> --clips <real clips>``, from
hkchengrex/MMAudio at commit 974010a026c731054592d8f777218bd9d85a6c24.
Five small clips were synthesized once with :func:`media_factory.make_video`
and committed next to their goldens, so that an encoder update cannot change
the inputs: 25 fps 320x240 (2 s, 1.5 s requested), 29.97 fps 176x144 (1.2 s,
8 s requested: the duration gets shortened), 23.976 fps 200x112 (1.5 s, 1 s
requested), a variable-frame-rate Matroska clip (gaps of 0.5/1/1.5 frame
periods, 30 fps on average, 1.2 s requested) and a 120x160 portrait clip. The
official MMAudio ``mmaudio.eval_utils.load_video(path, duration,
load_all_frames=False)`` was run on each of them, and on three of the real
clips (the VGGSound clip and the 1080p film shot with 8 s requested, the silent
street clip with 10 s). For every output frame of both streams the SHA-256 of
its float32 bytes was stored, along with the output shapes, the effective
duration and a strided subsample of the frames quantized back to uint8
(every 8th pixel for synthetic clips, every 16th for real ones) so that a
mismatch can be located. The test requires identical shapes and duration,
identical subsamples, and identical hashes: bit-exact agreement.
"""

from __future__ import annotations

import hashlib
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from media_factory import (
    make_audio_file,
    make_video,
    make_zero_length_video,
    read_frame_index,
    tone,
    truncate_file,
)

from deepsound.audio import Audio
from deepsound.errors import MediaError, OutputError
from deepsound.media import DecodedVideo, MediaInfo, decode_video, mux_audio, probe, read_audio, write_audio

DATA = Path(__file__).parent / "data" / "media"

SYNTHETIC_GOLDENS = [
    "cfr25_320x240.mp4",
    "ntsc2997_176x144.mp4",
    "film23976_200x112.mp4",
    "vfr30_160x120.mkv",
    "portrait30_120x160.mp4",
]
REAL_GOLDENS = ["1QBsc_IXg8U_000750.mp4", "00000003.gt.mp4", "silent_street_600x316.mp4"]


# --------------------------------------------------------------------------- helpers


def dominant_frequency(wave: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1 / sample_rate)[int(np.argmax(spectrum))])


def video_packets(path: Path) -> list[tuple[bytes, float, bool]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            (bytes(p), float(p.pts * p.time_base), p.is_keyframe)
            for p in container.demux(stream)
            if p.size and p.pts is not None
        ]


def assert_matches_golden(decoded: DecodedVideo, golden_path: Path) -> None:
    golden = np.load(golden_path)
    stride = int(golden["stride"])
    assert decoded.duration == pytest.approx(float(golden["duration"]), abs=0)
    assert tuple(decoded.clip_frames.shape) == tuple(golden["clip_shape"])
    assert tuple(decoded.sync_frames.shape) == tuple(golden["sync_shape"])
    clip_u8 = torch.round(decoded.clip_frames * 255).to(torch.uint8)[:, :, ::stride, ::stride].numpy()
    sync_u8 = torch.round((decoded.sync_frames * 0.5 + 0.5) * 255).to(torch.uint8)[:, :, ::stride, ::stride]
    for name, ours, theirs in (
        ("clip", clip_u8, golden["clip_u8"]),
        ("sync", sync_u8.numpy(), golden["sync_u8"]),
    ):
        bad = [i for i in range(len(theirs)) if not np.array_equal(ours[i], theirs[i])]
        assert not bad, f"{name} frames {bad[:10]} differ from the official loader"
    for name, frames in (("clip", decoded.clip_frames), ("sync", decoded.sync_frames)):
        hashes = [hashlib.sha256(f.contiguous().numpy().tobytes()).hexdigest() for f in frames]
        bad = [i for i, (a, b) in enumerate(zip(hashes, golden[f"{name}_sha256"], strict=True)) if a != b]
        assert not bad, f"{name} frames {bad[:10]} are not bit-identical to the official loader"


def picked_indices(frames: torch.Tensor, normalized: bool) -> list[int]:
    pics = frames.permute(0, 2, 3, 1).numpy()
    if normalized:
        pics = pics * 0.5 + 0.5
    return [read_frame_index(p) for p in pics]


def expected_picks(frame_times: list[float], fps: float, count: int) -> list[int]:
    """The sampling rule, stated plainly: target k is the running float sum of 1/fps;
    it takes the first frame whose time is at or after it."""
    picks, target, step = [], 0.0, 1 / fps
    for i, t in enumerate(frame_times):
        while t >= target and len(picks) < count:
            picks.append(i)
            target += step
    return picks


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    made = {
        "av": make_video(folder / "av.mp4", duration=2.0, fps=25, audio=tone(2.0, 44100, 440.0, channels=2)),
        "ntsc": make_video(folder / "ntsc.mp4", duration=1.0, fps=29.97, size=(160, 120)),
        "vfr_mp4": make_video(folder / "vfr.mp4", duration=1.0, fps=30, size=(160, 120), vfr=True),
        "vfr_mkv": make_video(folder / "vfr.mkv", duration=1.0, fps=30, size=(128, 128), vfr=True),
        "square": make_video(folder / "square.mp4", duration=2.5, fps=30, size=(128, 128)),
        "upright": make_video(folder / "upright.mp4", duration=0.6, fps=25, size=(160, 96), crf=4),
        "audio_only": make_audio_file(folder / "tone.m4a", tone(1.0, 16000, 300.0)),
    }
    made["faststart"] = mux_audio(made["av"], tone(2.0, 16000), folder / "faststart.mp4")
    for degrees in (90, 180, -90):
        made[f"rot{degrees}"] = make_video(
            folder / f"rot{degrees}.mp4", duration=0.6, fps=25, size=(160, 96), rotation=degrees, crf=4
        )
    return made


# --------------------------------------------------------------------------- factory


def test_factory_import_line_and_index_code(clips: dict[str, Path]) -> None:
    assert "media_factory" in sys.modules
    with av.open(str(clips["square"])) as container:
        indices = [read_frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert indices == list(range(75))


# --------------------------------------------------------------------------- probe


def test_probe_video_with_audio(clips: dict[str, Path]) -> None:
    info = probe(clips["av"])
    assert isinstance(info, MediaInfo)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (320, 240)
    assert info.duration == pytest.approx(2.0, abs=1e-6)
    assert info.fps == pytest.approx(25.0)
    assert info.num_frames == 50
    assert info.rotation == 0 and not info.variable_frame_rate
    assert info.codecs == ("h264", "aac")
    assert (info.sample_rate, info.channels) == (44100, 2)


def test_probe_ntsc_rate_is_exact_and_constant(clips: dict[str, Path]) -> None:
    info = probe(clips["ntsc"])
    assert info.frame_rate == Fraction(30000, 1001)
    assert not info.variable_frame_rate
    assert not info.has_audio and info.sample_rate is None


@pytest.mark.parametrize("name", ["vfr_mp4", "vfr_mkv"])
def test_probe_detects_variable_frame_rate(clips: dict[str, Path], name: str) -> None:
    info = probe(clips[name])
    assert info.variable_frame_rate
    assert 27 < info.fps < 33


@pytest.mark.parametrize(("degrees", "expected"), [(90, 90), (180, 180), (-90, 270)])
def test_probe_reports_rotation_and_display_size(clips: dict[str, Path], degrees: int, expected: int) -> None:
    info = probe(clips[f"rot{degrees}"])
    assert info.rotation == expected
    assert (info.width, info.height) == (160, 96)


def test_probe_audio_only(clips: dict[str, Path]) -> None:
    info = probe(clips["audio_only"])
    assert not info.has_video and info.has_audio
    assert info.codecs == ("aac",)
    assert info.duration == pytest.approx(1.0, abs=1e-3)


def _bad_inputs(folder: Path, clips: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is a text file, not a video\n")
    (folder / "noise.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    folder.joinpath("a_folder.mp4").mkdir(exist_ok=True)
    return {
        "missing": (folder / "missing.mp4", "not found"),
        "folder": (folder / "a_folder.mp4", "folder"),
        "empty": (folder / "empty.mp4", "empty"),
        "text": (folder / "notes.mp4", "not a media file"),
        "noise": (folder / "noise.bin", "not a media file"),
        "truncated": (truncate_file(clips["av"], folder / "cut.mp4", 0.5), "truncated"),
        # Index up front (as mux_audio writes): FFmpeg alone would decode up to the cut.
        "truncated_index_first": (truncate_file(clips["faststart"], folder / "cut_fs.mp4", 0.8), "truncated"),
        "zero_length": (make_zero_length_video(folder / "zero.mp4"), "zero-length"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "folder", "empty", "text", "noise", "truncated", "truncated_index_first", "zero_length"],
)
@pytest.mark.parametrize("reader", ["probe", "decode_video", "read_audio"])
def test_bad_inputs_raise_one_line_media_errors(
    tmp_path: Path, clips: dict[str, Path], case: str, reader: str
) -> None:
    path, words = _bad_inputs(tmp_path, clips)[case]
    call = {"probe": probe, "decode_video": lambda p: decode_video(p, 1.0), "read_audio": read_audio}[reader]
    with pytest.raises(MediaError) as caught:
        call(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    if reader != "read_audio" or case != "zero_length":
        assert words in message


def test_audio_only_file_is_rejected_by_decode_video(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="has no video stream"):
        decode_video(clips["audio_only"], 1.0)


# --------------------------------------------------------------------------- decode_video


@pytest.mark.parametrize("name", SYNTHETIC_GOLDENS)
def test_decode_matches_official_loader(name: str) -> None:
    golden = np.load(DATA / f"{name}.golden.npz")
    decoded = decode_video(DATA / name, float(golden["requested"]))
    assert_matches_golden(decoded, DATA / f"{name}.golden.npz")


def test_decode_shapes_ranges_and_dtype(clips: dict[str, Path]) -> None:
    decoded = decode_video(clips["av"], 1.0)
    assert decoded.clip_frames.shape == (8, 3, 384, 384)
    assert decoded.sync_frames.shape == (25, 3, 224, 224)
    assert decoded.clip_frames.dtype == decoded.sync_frames.dtype == torch.float32
    assert 0.0 <= decoded.clip_frames.min() and decoded.clip_frames.max() <= 1.0
    assert -1.0 <= decoded.sync_frames.min() < -0.5 and 0.5 < decoded.sync_frames.max() <= 1.0
    assert decoded.duration == 1.0 and decoded.info.width == 320


def test_decode_picks_first_frame_at_or_after_each_target(clips: dict[str, Path]) -> None:
    """30 fps source: 25 fps targets skip every sixth frame, 8 fps targets take ceil(30k/8)."""
    decoded = decode_video(clips["square"], 2.0)
    times = [i / 30 for i in range(75)]
    assert picked_indices(decoded.clip_frames, False) == expected_picks(times, 8.0, 16)
    assert picked_indices(decoded.sync_frames, True) == expected_picks(times, 25.0, 50)
    assert picked_indices(decoded.sync_frames, True)[:7] == [0, 2, 3, 4, 5, 6, 8]


def test_decode_shortens_duration_to_the_video(clips: dict[str, Path]) -> None:
    decoded = decode_video(clips["square"], 8.0)  # a 2.5 s clip
    n_clip = 20  # targets 0, 1/8, ..., 2.375 s; the last frame is at 74/30 s
    assert decoded.duration == pytest.approx(min(n_clip / 8, 62 / 25))
    assert decoded.clip_frames.shape[0] == int(8 * decoded.duration)
    assert decoded.sync_frames.shape[0] == int(25 * decoded.duration)


def test_decode_from_a_start_time(clips: dict[str, Path]) -> None:
    decoded = decode_video(clips["square"], 1.0, start=1.0)
    times = [i / 30 - 1.0 for i in range(30, 75)]
    expected_clip = [30 + i for i in expected_picks(times, 8.0, 8)]
    expected_sync = [30 + i for i in expected_picks(times, 25.0, 25)]
    assert picked_indices(decoded.clip_frames, False) == expected_clip
    assert picked_indices(decoded.sync_frames, True) == expected_sync
    assert decoded.start == 1.0 and decoded.duration == 1.0


def test_decode_window_past_the_end_is_a_media_error(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="no video frames"):
        decode_video(clips["square"], 1.0, start=10.0)


@pytest.mark.parametrize("duration", [0.0, -1.0])
def test_decode_rejects_non_positive_duration(clips: dict[str, Path], duration: float) -> None:
    with pytest.raises(ValueError):
        decode_video(clips["square"], duration)


@pytest.mark.parametrize("degrees", [90, 180, -90])
def test_rotated_video_is_decoded_upright(clips: dict[str, Path], degrees: int) -> None:
    """A tagged clip decodes to what an untagged clip of the same upright pictures gives.

    The encoder sees the pictures turned, so its (near-lossless) rounding differs
    a little; the wrong orientation differs a lot.
    """
    upright = decode_video(clips["upright"], 0.5)
    turned = decode_video(clips[f"rot{degrees}"], 0.5)
    assert turned.clip_frames.shape == upright.clip_frames.shape
    close = (turned.clip_frames - upright.clip_frames).abs().mean()
    sync_close = (turned.sync_frames - upright.sync_frames).abs().mean()
    wrong = (torch.rot90(turned.clip_frames, 2, dims=(2, 3)) - upright.clip_frames).abs().mean()
    assert close < 0.01 and sync_close < 0.02
    assert wrong > 10 * close


def test_decode_handles_variable_frame_rate(clips: dict[str, Path]) -> None:
    decoded = decode_video(clips["vfr_mkv"], 0.9)
    with av.open(str(clips["vfr_mkv"])) as container:
        times = [float(f.time) for f in container.decode(video=0)]
    assert picked_indices(decoded.clip_frames, False) == expected_picks(times, 8.0, 7)
    assert picked_indices(decoded.sync_frames, True) == expected_picks(times, 25.0, 22)


# --------------------------------------------------------------------------- audio I/O


def test_wav_round_trip_is_exact(tmp_path: Path) -> None:
    audio = tone(0.5, 22050, 700.0, channels=2)
    write_audio(tmp_path / "x.wav", audio)
    back = read_audio(tmp_path / "x.wav")
    assert back.sample_rate == 22050
    np.testing.assert_array_equal(back.waveform, audio.waveform)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]  # no temporary left behind


def test_flac_is_24_bit_and_clipped(tmp_path: Path) -> None:
    loud = Audio(np.array([[0.0, 0.5, 1.7, -2.0]], np.float32), 16000)
    write_audio(tmp_path / "x.flac", loud)
    assert sf.info(str(tmp_path / "x.flac")).subtype == "PCM_24"
    back = read_audio(tmp_path / "x.flac")
    np.testing.assert_allclose(back.waveform, [[0.0, 0.5, 1.0, -1.0]], atol=2e-7)


def test_write_audio_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"\.mp3"):
        write_audio(tmp_path / "x.mp3", tone(0.1))
    assert list(tmp_path.iterdir()) == []


def test_read_audio_resamples_and_mixes_down(tmp_path: Path) -> None:
    path = make_audio_file(tmp_path / "x.wav", tone(1.0, 44100, 1000.0, channels=2))
    audio = read_audio(path, sample_rate=16000, mono=True)
    assert audio.sample_rate == 16000 and audio.num_channels == 1
    assert audio.num_samples == 16000
    t = np.arange(16000) / 16000
    mix = 0.25 * np.sin(2 * np.pi * 1000 * t) + 0.25 * np.sin(2 * np.pi * 1250 * t)  # mean of the channels
    np.testing.assert_allclose(audio.waveform[0, 200:-200], mix[200:-200], atol=2e-3)


@pytest.mark.parametrize(
    ("suffix", "codec", "rate"), [(".m4a", None, 16000), (".mp3", "mp3", 16000), (".ogg", "libopus", 48000)]
)
def test_read_audio_from_compressed_files(tmp_path: Path, suffix: str, codec: str | None, rate: int) -> None:
    path = make_audio_file(tmp_path / f"x{suffix}", tone(1.0, 16000, 500.0), codec=codec)
    audio = read_audio(path)
    assert audio.sample_rate == rate  # Opus always decodes at 48 kHz
    assert audio.duration == pytest.approx(1.0, abs=0.07)
    assert dominant_frequency(audio.waveform[0], rate) == pytest.approx(500.0, abs=2)


def test_read_audio_track_of_a_video(clips: dict[str, Path]) -> None:
    audio = read_audio(clips["av"])
    assert (audio.sample_rate, audio.num_channels) == (44100, 2)
    assert audio.duration == pytest.approx(2.0, abs=1e-3)
    assert dominant_frequency(audio.waveform[0], 44100) == pytest.approx(440.0, abs=1)
    assert dominant_frequency(audio.waveform[1], 44100) == pytest.approx(550.0, abs=1)


def test_read_audio_of_a_silent_video_is_a_media_error(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="has no audio stream"):
        read_audio(clips["square"])


# --------------------------------------------------------------------------- mux_audio


def _check_mux(source: Path, output: Path, new: Audio) -> Audio:
    """The contract of mux_audio, checked on any input."""
    before, after = video_packets(source), video_packets(output)
    assert [p[0] for p in after] == [p[0] for p in before], "video packets were altered"
    assert [p[1] for p in after] == pytest.approx([p[1] for p in before], abs=1e-4)
    with av.open(str(output)) as container:
        assert len(container.streams.audio) == 1 and len(container.streams.video) == 1
        video, audio_stream = container.streams.video[0], container.streams.audio[0]
        assert audio_stream.codec_context.name == "aac"
        video_seconds = float(video.duration * video.time_base)
        declared = float(audio_stream.duration * audio_stream.time_base)
    assert declared == pytest.approx(video_seconds, abs=1.5 / new.sample_rate)
    back = read_audio(output)
    assert back.sample_rate == new.sample_rate and back.num_channels == new.num_channels
    assert back.duration == pytest.approx(video_seconds, abs=1.5 / new.sample_rate)
    assert probe(output).rotation == probe(source).rotation
    return back


def test_mux_copies_video_and_replaces_audio(tmp_path: Path, clips: dict[str, Path]) -> None:
    new = tone(3.0, 16000, 1000.0)  # longer than the 2 s video: trimmed
    out = mux_audio(clips["av"], new, tmp_path / "out.mp4")
    back = _check_mux(clips["av"], out, new)
    assert back.duration == pytest.approx(2.0, abs=1e-4)
    # The original 440 Hz stereo track is gone; the new mono tone is there.
    assert dominant_frequency(back.waveform[0, 2000:30000], 16000) == pytest.approx(1000.0, abs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_mux_pads_short_audio_with_silence(tmp_path: Path, clips: dict[str, Path]) -> None:
    new = tone(1.0, 44100, 800.0, channels=2)
    out = mux_audio(clips["av"], new, tmp_path / "out.mov")
    back = _check_mux(clips["av"], out, new)
    assert np.sqrt(np.mean(back.waveform[:, 5000:40000] ** 2)) > 0.2
    assert np.abs(back.waveform[:, 48000:]).max() < 0.01


@pytest.mark.parametrize("name", ["rot90", "vfr_mkv", "ntsc"])
def test_mux_keeps_rotation_and_odd_timing(tmp_path: Path, clips: dict[str, Path], name: str) -> None:
    _check_mux(clips[name], mux_audio(clips[name], tone(2.0, 44100), tmp_path / "out.mp4"), tone(0.1, 44100))


def test_mux_resamples_rates_aac_cannot_carry(tmp_path: Path, clips: dict[str, Path]) -> None:
    out = mux_audio(clips["av"], tone(2.0, 12345, 600.0), tmp_path / "out.mp4")
    assert read_audio(out).sample_rate == 48000


def test_mux_without_audio_drops_the_track(tmp_path: Path, clips: dict[str, Path]) -> None:
    out = mux_audio(clips["av"], None, tmp_path / "silent.mp4")
    assert [p[0] for p in video_packets(out)] == [p[0] for p in video_packets(clips["av"])]
    info = probe(out)
    assert info.has_video and not info.has_audio


def test_mux_may_overwrite_its_input(tmp_path: Path, clips: dict[str, Path]) -> None:
    target = tmp_path / "same.mp4"
    target.write_bytes(clips["av"].read_bytes())
    mux_audio(target, tone(2.0, 16000, 1000.0), target)
    assert [p[0] for p in video_packets(target)] == [p[0] for p in video_packets(clips["av"])]
    assert read_audio(target).sample_rate == 16000


def test_mux_errors(tmp_path: Path, clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="has no video stream"):
        mux_audio(clips["audio_only"], tone(1.0), tmp_path / "out.mp4")
    with pytest.raises(OutputError, match=r"\.avi"):
        mux_audio(clips["av"], tone(1.0), tmp_path / "out.avi")
    with pytest.raises(MediaError, match="not found"):
        mux_audio(tmp_path / "nope.mp4", tone(1.0), tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- real clips


@pytest.mark.media
def test_probe_real_clips(media_dir: Path) -> None:
    vgg = probe(media_dir / "1QBsc_IXg8U_000750.mp4")
    assert (vgg.width, vgg.height, vgg.fps, vgg.duration) == (480, 360, 30.0, 10.0)
    assert vgg.num_frames == 300 and vgg.codecs == ("h264", "aac") and vgg.sample_rate == 44100
    film = probe(media_dir / "00000003.gt.mp4")
    assert (film.width, film.height) == (1920, 1080)
    assert film.frame_rate == Fraction(1199, 50) and film.duration == pytest.approx(2.71, abs=0.01)
    street = probe(media_dir / "silent_street_600x316.mp4")
    assert not street.has_audio and street.frame_rate == Fraction(30000, 1001)
    assert street.duration == pytest.approx(14.81, abs=0.01) and not street.variable_frame_rate
    assert probe(media_dir / "aa.mp4").audio_codec == "mp3"


@pytest.mark.media
@pytest.mark.parametrize("name", REAL_GOLDENS)
def test_decode_real_clips_matches_official_loader(media_dir: Path, name: str) -> None:
    golden = np.load(DATA / f"{name}.golden.npz")
    decoded = decode_video(media_dir / name, float(golden["requested"]))
    assert_matches_golden(decoded, DATA / f"{name}.golden.npz")


@pytest.mark.media
def test_mux_real_clip_without_audio(media_dir: Path, tmp_path: Path) -> None:
    source = media_dir / "silent_street_600x316.mp4"
    new = tone(8.0, 44100, 300.0, channels=2)
    back = _check_mux(source, mux_audio(source, new, tmp_path / "street.mp4"), new)
    assert np.abs(back.waveform[:, 9 * 44100 :]).max() < 0.01  # padded from 8 s to 14.8 s


@pytest.mark.media
def test_read_real_audio_tracks(media_dir: Path) -> None:
    mp3_in_mp4 = read_audio(media_dir / "aa.mp4", sample_rate=16000, mono=True)
    assert mp3_in_mp4.sample_rate == 16000 and mp3_in_mp4.duration == pytest.approx(10.0, abs=0.05)
    with pytest.raises(MediaError, match="has no audio stream"):
        read_audio(media_dir / "silent_street_600x316.mp4")


# --------------------------------------------------------------------------- official code, directly


@pytest.mark.slow
@pytest.mark.parametrize("name", SYNTHETIC_GOLDENS)
def test_decode_equals_official_load_video_directly(name: str) -> None:
    """Needs an MMAudio checkout named by DEEPSOUND_MMAUDIO_REF (and its imports installed)."""
    ref = os.environ.get("DEEPSOUND_MMAUDIO_REF")
    if not ref or not Path(ref).is_dir():
        pytest.skip("set DEEPSOUND_MMAUDIO_REF to an MMAudio checkout to compare directly")
    sys.path.insert(0, ref)
    eval_utils = pytest.importorskip("mmaudio.eval_utils")
    golden = np.load(DATA / f"{name}.golden.npz")
    duration = float(golden["requested"])
    official = eval_utils.load_video(DATA / name, duration, load_all_frames=False)
    ours = decode_video(DATA / name, duration)
    assert ours.duration == official.duration_sec
    assert torch.equal(ours.clip_frames, official.clip_frames)
    assert torch.equal(ours.sync_frames, official.sync_frames)


def test_the_test_clips_encode_alike_every_time(tmp_path):
    """Clips the tests train and measure on must not change between encodes (x264's mbtree did)."""
    voice = Audio(np.random.default_rng(0).normal(0, 0.1, (1, 32000)).astype(np.float32), 16000)
    pictures = []
    for n in range(4):
        path = make_video(tmp_path / f"{n}.mp4", duration=2.0, fps=10, size=(96, 64), audio=voice)
        with av.open(str(path)) as container:
            pictures.append(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))
    for other in pictures[1:]:
        np.testing.assert_array_equal(other, pictures[0])
