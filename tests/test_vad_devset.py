"""The speech gate's development set (``tools/build_vad_devset.py``), built small from what ``.ci/run`` installs.

Real recordings only: Asterisk's English prompts (telephone band), KTuberling's
spoken words (full band, eleven languages), OpenTTD's field recordings and
Heroes' effects. Checked: labels (a voice alone sits exactly where the manifest
says; the SNR is the one asked for), halves that share no voice, utterance or
background, at least as many clips without words as with, the same bytes for
the same seed, and a missing package named in one line without changing the
telephone part's clips.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from ci_tools import require_tool

REPO = Path(__file__).resolve().parents[1]
CI_PACKAGES = {  # what .ci/run installs, and a file each ships
    "asterisk-core-sounds-en-wav": Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
    "openttd-opensfx": Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat"),
    "heroes-sound-effects": Path("/usr/share/games/heroes/sfx/foule1.wav"),
    "ktuberling-data": Path("/usr/share/ktuberling/sounds/uk"),
}
for _package, _path in CI_PACKAGES.items():
    require_tool(_package, _path.exists(), f"apt-get install {_package}")


def _builder():
    spec = importlib.util.spec_from_file_location("build_vad_devset", REPO / "tools" / "build_vad_devset.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


builder = _builder()
SCALE = 0.1


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.wav"))
    }


def _rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def devset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("devset")
    builder.build(out, seed=3, only=CI_PACKAGES, scale=SCALE)
    return out


def test_labels_and_audio(devset):
    rows = _rows(devset)
    positives = [r for r in rows if r["label"] == 1]
    negatives = [r for r in rows if r["label"] == 0]
    assert {r["band"] for r in positives} == {"telephone", "full"}
    assert {r["snr_db"] for r in positives} == {*map(float, builder.SNRS_DB), None}
    for r in positives:
        assert r["kind"] == "speech" and r["speaker"] and r["language"] and r["source_package"]
    for r in negatives:
        assert r["kind"] in builder.NEGATIVES and r["speaker"] is None and r["band"] is None
        assert r["source_package"] in {"openttd-opensfx", "heroes-sound-effects"}
    for r in rows:
        audio, rate = sf.read(devset / r["path"], dtype="float32")
        assert rate == builder.RATE and audio.ndim == 1 and audio.size == builder.CLIP_S * rate
        assert np.abs(audio).max() > 0.05
    for r in (
        r for r in positives if r["snr_db"] is None
    ):  # the voice alone: exactly where the manifest says
        audio, rate = sf.read(devset / r["path"], dtype="float32")
        # the manifest keeps milliseconds: allow one either side
        start, stop = round(r["offset_s"] * rate) - 16, round((r["offset_s"] + r["speech_s"]) * rate) + 16
        assert not audio[:start].any() and not audio[stop:].any()
        assert np.sqrt(np.mean(audio[start:stop] ** 2)) > 1e-3


def test_snr_is_the_one_asked_for():
    rng = np.random.default_rng(0)
    bed = rng.standard_normal(builder.RATE * 6).astype(np.float32) * 0.3
    voice = np.sin(np.arange(builder.RATE * 2) * 0.2).astype(np.float32)
    for snr in builder.SNRS_DB:
        gain = builder.snr_gain(voice, bed, 8000, snr, sparse=False)
        span = bed[8000 : 8000 + voice.size]
        measured = 10 * np.log10(np.mean((gain * voice) ** 2) / np.mean(span.astype(np.float64) ** 2))
        assert measured == pytest.approx(snr, abs=1e-6)


def test_long_digital_silences_leave_a_recording_and_short_sounds_keep_theirs():
    """Two Colobot tracks end on a minute of zeros: a window drawn there was a silent "music" negative."""
    rate = builder.RATE
    music = np.sin(np.arange(rate * 20) * 0.05).astype(np.float32) * 0.5
    track = np.concatenate([music[: rate * 8], np.zeros(rate * 60, np.float32), music[rate * 8 :],
                            np.zeros(rate * 1, np.float32)])  # fmt: skip
    kept = builder.without_silences(track)
    assert kept.size == music.size + int(builder.GAP_KEEP_S * rate) + rate  # the 1 s pause stays
    frames = np.abs(kept[: kept.size // 1600 * 1600]).reshape(-1, 1600).max(axis=1)
    assert (frames < 1e-4).sum() <= 10 + builder.GAP_KEEP_S * 10  # no 6 s window can be silent now
    for clip in (builder.without_silences(kept), builder.without_silences(track[: rate * 5])):
        assert clip.size in (kept.size, rate * 5)  # nothing more to cut; a short sound keeps its silence


def test_halves_share_no_voice_or_sound_and_keep_the_balance(devset):
    rows = _rows(devset)
    by_half = {h: [r for r in rows if r["half"] == h] for h in ("tune", "test")}

    def used(half: str, field: str, band: str | None = None) -> set:
        return {r[field] for r in by_half[half] if r[field] and band in (None, r["band"])}

    for field, band in (("speaker", None), ("background", None), ("language", "full")):
        # full-band voices go by language; Asterisk's are named talents (Allison tunes, June tests)
        assert used("tune", field, band) and used("test", field, band), field
        assert not used("tune", field, band) & used("test", field, band), field
    words = {h: {w for r in by_half[h] if r["utterance"] for w in r["utterance"].split("+")} for h in by_half}
    assert not words["tune"] & words["test"]
    for half, part in by_half.items():
        positives = sum(r["label"] for r in part)
        assert positives and len(part) - positives >= positives, half
        assert {r["band"] for r in part if r["label"]} >= (
            {"telephone", "full"} if half == "tune" else {"full"}
        )


def test_same_seed_same_bytes_and_a_missing_package_leaves_the_first_part_as_it_was(
    devset, tmp_path, monkeypatch, capsys
):
    again = tmp_path / "again"
    builder.build(again, seed=3, only=CI_PACKAGES, scale=SCALE)
    assert _digest(again) == _digest(devset)
    assert (again / "manifest.jsonl").read_bytes() == (devset / "manifest.jsonl").read_bytes()

    capsys.readouterr()
    catalog = sys.modules["vad_devset_catalog"]
    monkeypatch.setattr(catalog, "KTUBERLING", tmp_path / "not-installed")
    without = tmp_path / "without"
    builder.build(without, seed=3, only=CI_PACKAGES, scale=SCALE)
    said = [line for line in capsys.readouterr().err.splitlines() if "ktuberling-data" in line]
    assert said and all("apt-get install ktuberling-data" in line or "built without" in line for line in said)
    rows = _rows(without)
    assert rows and not any(r["source_package"] == "ktuberling-data" for r in rows)
    first = {r["path"] for r in _rows(devset) if r["added"] == 1}
    assert first == {r["path"] for r in rows if r["added"] == 1}
    old, new = _digest(devset), _digest(without)
    assert all(old[p] == new[p] for p in first)
    builder.build(tmp_path / "seed4", seed=4, only=CI_PACKAGES, scale=SCALE)
    assert _digest(tmp_path / "seed4") != old
