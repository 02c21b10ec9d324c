"""``deepsound evaluate`` end to end with small stand-in feature models (no weights, no network).

What is checked: every output file is written (metrics.json with the paper's
keys, the Markdown table, the figure, caches in av-benchmark's file names
and format), a bad file is skipped with its reason and appears in no cache,
a second run re-uses the caches (no model is called again), a changed file is
the only one extracted again, a released-style cache (no manifest) works as
the reference as it is, and the numbers in metrics.json are the metrics of
the caches (whose arithmetic ``test_evaluation_metrics.py`` checks against
the official code's goldens). The stand-ins are in ``evaluation_doubles.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluation_doubles import CALLS, install
from media_factory import make_audio_file
from typer.testing import CliRunner

from deepsound.audio import Audio
from deepsound.cli import app
from deepsound.evaluation.cache import KNOWN_FILES, MANIFEST
from deepsound.evaluation.metrics import compute_metrics

DURATION = 2.0
KEYS = ("fd_passt", "fd_panns", "fd_vgg", "kl_panns", "kl_passt", "is_panns", "ib_score", "desync",
        "voice_over_rate")  # fmt: skip


def _clip(seed: int, rate: int = 16000, channels: int = 1, speech: bool = False, seconds: float = DURATION):
    rng = np.random.RandomState(seed)
    t = np.arange(int(rate * seconds)) / rate
    wav = 0.3 * np.sin(2 * np.pi * (200 + 40 * seed) * t) + 0.05 * rng.randn(len(t))
    if speech:
        wav = wav * (0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t)) ** 2  # syllable-rate envelope
    return Audio(np.tile(wav, (channels, 1)).astype(np.float32), rate)


@pytest.fixture()
def folders(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    install(monkeypatch)
    ref, gen, vid = tmp_path / "ref", tmp_path / "gen", tmp_path / "videos"
    for folder in (ref, gen, vid):
        folder.mkdir()
    stems = [f"clip{i}" for i in range(10)]
    for i, stem in enumerate(stems):
        make_audio_file(ref / f"{stem}.wav", _clip(i, speech=(i == 5)))
        (vid / f"{stem}.mp4").write_bytes(bytes([i]) * 64 + b"video")
        # generated: stereo 44.1 kHz for some, one with voice-over (clip2), one with speech where
        # the reference speaks too (clip5: not counted)
        make_audio_file(
            gen / f"{stem}.wav", _clip(10 + i, 44100 if i % 2 else 16000, 1 + i % 2, speech=i in (2, 5))
        )
    make_audio_file(gen / "short.wav", _clip(30, seconds=0.5))
    make_audio_file(ref / "short.wav", _clip(31))
    (vid / "short.mp4").write_bytes(b"short video")
    (gen / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 3)
    return {"ref": ref, "gen": gen, "videos": vid, "out": tmp_path / "out"}


def _run(f: dict[str, Path], *extra: str, reference: Path | None = None, out: Path | None = None):
    args = ["evaluate", str(f["gen"]), "--reference", str(reference or f["ref"]), "--videos", str(f["videos"]),
            "--duration", str(DURATION), "-o", str(out or f["out"]), "--quiet", *extra]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(((out or f["out"]) / "metrics.json").read_text()), result.output


def _load(folder: Path, name: str) -> dict:
    return torch.load(folder / name, weights_only=True)


def test_evaluate_writes_everything_and_skips_bad_files(folders):
    data, output = _run(folders)
    out = folders["out"]
    for name in ("metrics.json", "metrics.md", "metrics.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for key in KEYS:
        assert isinstance(data[key], float), (key, data[key])
    table = (out / "metrics.md").read_text()
    header = table.splitlines()[2]
    assert [c.strip() for c in header.split("|")[2:-1]][:8] == [
        "FD_PaSST↓", "FD_PANNs↓", "FD_VGG↓", "KL_PANNs↓", "KL_PaSST↓", "IS↑", "IB-score↑", "DeSync↓"
    ]  # fmt: skip

    # caches: av-benchmark's names and format (a dict stem -> features), sorted stems
    gen_cache, ref_cache = out / "cache" / "generated", out / "cache" / "reference"
    good = [f"clip{i}" for i in range(10)]
    for name in KNOWN_FILES:
        if name.endswith("_video.pth"):
            assert (ref_cache / name).exists() and not (gen_cache / name).exists()
            continue
        stored = _load(gen_cache, name)
        expected = good if name == "synchformer_audio.pth" else sorted([*good, "short"])
        assert list(stored) == expected, name
    assert set(_load(gen_cache, "pann_features.pth")["clip0"]) == {"2048", "logits", "clipwise_output"}
    assert (gen_cache / MANIFEST).exists()

    # the broken file: reported for each model with its reason, in no cache; the short one
    # only by the DeSync model
    skipped = data["skipped"]
    assert {s["stem"] for s in skipped} == {"broken", "short"}
    assert all("broken.wav" in s["path"] and s["reason"] for s in skipped if s["stem"] == "broken")
    assert {s["model"] for s in skipped if s["stem"] == "short"} == {"synchformer_audio"}
    assert "broken" in output and "short" in output
    assert "desync" not in data["per_clip"]["short"] and "kl_panns" in data["per_clip"]["short"]

    # numbers are the metrics of those caches, and av-benchmark's names carry the same values
    caches = {n: _load(gen_cache, n) for n in KNOWN_FILES if (gen_cache / n).exists()}
    refs = {n: _load(ref_cache, n) for n in KNOWN_FILES if (ref_cache / n).exists()}
    from evaluation_doubles import fake_head

    again = compute_metrics(caches, refs, fake_head)
    for key in KEYS[:-1]:
        assert data[key] == again.scores[key]
    assert data["av_benchmark"]["FD-PASST"] == data["fd_passt"]
    # voice-over: clip2 speaks where its reference does not; clip5's reference speaks
    assert data["per_clip"]["clip2"]["voice_over"] and not data["per_clip"]["clip0"]["voice_over"]
    assert data["per_clip"]["clip5"]["reference_has_speech"]
    assert data["voice_over"]["clips_without_reference_speech"] == 10  # all but clip5
    assert data["voice_over_rate"] == pytest.approx(1 / 10)
    assert data["voice_over"]["voice_over_rate_silero"] == pytest.approx(1 / 10)
    assert data["reference"]["desync"] is not None


def test_second_run_reuses_caches_and_a_changed_file_is_the_only_one_extracted(folders):
    first, _ = _run(folders)
    calls = CALLS.copy()
    second, _ = _run(folders)
    assert CALLS == calls  # nothing extracted again, not even the files that failed
    assert all(v == 0 for v in second["extracted_this_run"].values())
    assert sorted(map(json.dumps, second["skipped"])) == sorted(map(json.dumps, first["skipped"]))
    for key in KEYS:
        assert second[key] == first[key]

    make_audio_file(folders["gen"] / "clip3.wav", _clip(99, speech=True))
    calls = CALLS.copy()
    third, _ = _run(folders)
    assert {stem for (_, _, stem) in CALLS - calls} == {"clip3"}
    assert {side for (_, side, _) in CALLS - calls} == {"audio"}
    assert third["extracted_this_run"]["generated/panns"] == 1
    assert third["extracted_this_run"]["reference/panns"] == 0
    assert third["fd_panns"] != first["fd_panns"]
    assert third["voice_over_rate"] == pytest.approx(2 / 10)

    # other settings (duration) make every entry stale
    calls = CALLS.copy()
    _run(folders, "--duration", "1.5")
    assert {stem for (_, _, stem) in CALLS - calls} >= {f"clip{i}" for i in range(10)}


def test_a_released_cache_is_used_as_reference_as_it_is(folders, tmp_path):
    first, _ = _run(folders)
    released = tmp_path / "released"
    shutil.copytree(folders["out"] / "cache" / "reference", released)
    (released / MANIFEST).unlink()
    (released / "imagebind_video.pth").unlink()  # a released audio cache without ImageBind's videos
    before = {p.name: p.stat().st_mtime_ns for p in released.iterdir()}
    calls = CALLS.copy()
    data, _ = _run(folders, reference=released)  # same OUT: the generated side is cached too
    # only ImageBind's video branch ran, into a cache of its own beside the released one
    assert {(m, side) for (m, side, _) in CALLS - calls} == {("imagebind", "video")}
    assert (folders["out"] / "cache" / "videos" / "imagebind_video.pth").exists()
    assert {p.name: p.stat().st_mtime_ns for p in released.iterdir()} == before
    assert data["settings"]["reference_cache_released"] is True
    for key in KEYS:
        assert data[key] == pytest.approx(first[key], rel=1e-12)


def test_metric_subset_and_bad_options(folders):
    data, _ = _run(folders, "--metrics", "fd_vgg,kl_panns")
    assert data["fd_vgg"] is not None and data["kl_panns"] is not None
    assert data["fd_passt"] is None and data["desync"] is None
    assert not (folders["out"] / "cache" / "generated" / "passt_logits.pth").exists()
    result = CliRunner().invoke(app, ["evaluate", str(folders["gen"]), "--reference", str(folders["ref"]),
                                      "-o", str(folders["out"]), "--metrics", "fd_clap"])  # fmt: skip
    assert result.exit_code != 0 and "unknown metric" in result.output
    result = CliRunner().invoke(app, ["evaluate", str(folders["gen"] / "nope"), "--reference", str(folders["ref"]),
                                      "-o", str(folders["out"])])  # fmt: skip
    assert result.exit_code != 0 and "not a folder" in result.output


def test_missing_weights_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSOUND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    make_audio_file(gen / "a.wav", _clip(1))
    make_audio_file(ref / "a.wav", _clip(2))
    result = CliRunner().invoke(app, ["evaluate", str(gen), "--reference", str(ref), "-o", str(tmp_path / "out"),
                                      "--offline", "--weights-dir", str(tmp_path / "w"), "--metrics", "fd_vgg"])  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "vggish-10086976.pth" in result.output and "offline" in result.output
    assert "Traceback" not in result.output
