"""Videos → ``deepsound experiment`` → the paper's table, on tiny real models, both reference sets.

Two backends in one run (``--generator tiny-mmaudio:small_16k,recording``): the real MMAudio
architecture at toy size, and a registered test generator that plays a known soundtrack (speech
for ``voice`` clips), so that step 2 really hears voice-over. Judge (Silero), separator
(BS-RoFormer), silence check and every feature model of the metrics are the real code at
tiny size (no feature doubles). The reference folder holds the clips with their own sound,
one of them with speech: the VO-Free set is built from it by the same judge and separator.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from experiment_support import install_extractors, register_components, speech_audio, tone_audio
from media_factory import make_video
from typer.testing import CliRunner

from deepsound import cli, media
from deepsound.evaluation.paper_table import BASELINE, PAPER_METRICS, ROWS

SECONDS = 5.0  # DeSync reads 4.8 s
# FD-PANNs is the one metric left to the slow run: the Fréchet distance of Cnn14's 2048-d
# embeddings takes a 2048×2048 matrix square root (about a minute per row on two busy cores).
METRICS = ("fd_passt", "fd_vgg", "kl_panns", "kl_passt", "is_panns", "ib_score", "desync", "voice_over_rate")


@pytest.fixture()
def components():
    from experiment_support import unregister_components

    register_components()
    yield
    unregister_components()


def _clips(tmp_path: Path) -> tuple[Path, Path]:
    videos, reference = tmp_path / "videos", tmp_path / "reference"
    videos.mkdir()
    reference.mkdir()
    sounds = {"rain": tone_audio(SECONDS + 0.2, 300.0), "voice": speech_audio(SECONDS + 0.2)}
    for stem, sound in sounds.items():
        make_video(videos / f"{stem}.mp4", duration=SECONDS + 0.2, fps=25, size=(64, 48))
        make_video(reference / f"{stem}.mp4", duration=SECONDS + 0.2, fps=25, size=(64, 48), audio=sound)
    return videos, reference


def test_videos_to_the_papers_table_with_both_reference_sets(tmp_path, monkeypatch, components):
    install_extractors(monkeypatch)
    videos, reference = _clips(tmp_path)
    out = tmp_path / "exp"
    argv = ["experiment", str(videos), "--reference", str(reference), "-o", str(out),
            "--generator", "tiny-mmaudio:small_16k,recording", "--judge", "speech",
            "--separator", "tiny-roformer", "--device", "cpu", "--duration", str(SECONDS), "--steps", "2", "-q",
            "--metrics", ",".join(METRICS)]  # fmt: skip
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output

    data = json.loads((out / "metrics.json").read_text())
    assert data["metrics"] == list(PAPER_METRICS) == [
        "fd_passt", "fd_panns", "fd_vgg", "kl_panns", "kl_passt", "is_panns", "ib_score", "desync"]  # fmt: skip
    assert data["rows"] == [label for _, _, label in ROWS]
    assert list(data["blocks"]) == ["tiny-mmaudio:small_16k", "recording"]
    assert data["common_clips"] == ["rain", "voice"] and data["excluded"] == {}
    for backend, rows in data["blocks"].items():
        assert list(rows) == data["rows"]
        base = rows[BASELINE]["scores"]
        for label, row in rows.items():
            assert row["clips"] == 2 and row["seconds"] > 0, (backend, label)
            assert row["reference"] == ("ori" if "Ori-Set" in label else "vo-free")
            for key in ("fd_passt", "fd_vgg", "kl_panns", "kl_passt", "ib_score", "desync"):
                assert isinstance(row["scores"][key], float), (backend, label, key)
            assert row["scores"]["fd_panns"] is None  # not asked for
            assert (
                "voice_over_rate" in row
            )  # None where no reference is speech-free to PANNs (random weights)
            if label != BASELINE:  # the paper's convention: positive is better
                fd, base_fd = row["scores"]["fd_vgg"], base["fd_vgg"]
                assert row["improvement_pct"]["fd_vgg"] == pytest.approx(100 * (base_fd - fd) / base_fd)
                ib, base_ib = row["scores"]["ib_score"], base["ib_score"]
                assert row["improvement_pct"]["ib_score"] == pytest.approx(
                    100 * (ib - base_ib) / abs(base_ib)
                )

    # the two reference sets differ where, and only where, the judge heard voice-over
    vo_free = out / "reference" / "vo-free"
    manifest = json.loads((vo_free / "manifest.json").read_text())
    assert (
        manifest["method"]["judge"] == "speech" and manifest["method"]["separator"]["name"] == "tiny-roformer"
    )
    voice, rain = manifest["clips"]["voice"], manifest["clips"]["rain"]
    assert (
        voice["has_voice_over"] is True and voice["evidence"]["speech_ratio"] > 0.2 and voice["voice_removed"]
    )
    assert rain["has_voice_over"] is False and not rain["voice_removed"]
    original = media.read_audio(reference / "rain.mp4").waveform
    np.testing.assert_array_equal(media.read_audio(vo_free / "rain.wav").waveform, original)
    cleaned = media.read_audio(vo_free / "voice.wav").waveform
    assert not np.allclose(cleaned, media.read_audio(reference / "voice.mp4").waveform[:, : cleaned.shape[1]])
    ori = data["blocks"]["recording"]["Direct & Ori-Set"]["scores"]
    vof = data["blocks"]["recording"][BASELINE]["scores"]
    assert ori["fd_vgg"] != vof["fd_vgg"]  # same generated audio, other reference

    # the recording backend speaks on `voice`: step 2 heard it, s3 took the separated audio
    s3 = media.read_audio(out / "backends" / "recording" / "settings" / "s3" / "voice.wav").waveform
    direct = media.read_audio(out / "backends" / "recording" / "settings" / "direct" / "voice.wav").waveform
    assert s3.shape == direct.shape and not np.allclose(s3, direct)

    # the video features are extracted once, for both reference sets
    assert {p.name for p in (out / "cache" / "videos").glob("*.pth")} == {
        "imagebind_video.pth",
        "synchformer_video.pth",
    }
    for refset in ("ori", "vo-free"):
        assert not list((out / "cache" / f"reference-{refset}").glob("*_video.pth"))

    with open(out / "experiment.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 2 * len(ROWS) and table[0]["row"] == "Direct & Ori-Set"
    assert (out / "experiment.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "experiment.md").read_text()
    assert (
        "**tiny-mmaudio:small_16k**" in text and "**recording**" in text and "Ours (s4-neg) & VO-Free" in text
    )
