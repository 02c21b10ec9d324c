"""Every registered file is checked: by its published checksum, or by the one recorded on first use."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from deepsound.cli.weights import weights_app
from deepsound.errors import WeightsError
from deepsound.weights import REGISTRY, checksum_is_well_formed, resolve, trust, verify_file
from deepsound.weights.registry import UNKNOWN
from deepsound.weights.resolve import stamp_dir_for


def test_every_entry_has_a_checksum_or_says_it_is_unknown() -> None:
    for entry in REGISTRY.values():
        assert entry.checksum is not None, entry.name
        assert checksum_is_well_formed(entry.checksum), entry.name
        assert entry.checksum_origin, entry.name
        if entry.hub_repo is not None and not entry.trust_on_first_use:
            # a published checksum belongs to one commit: pin it (an unpinned entry records the
            # commit and digests of its first copy instead)
            assert entry.hub_revision and len(entry.hub_revision) == 40, entry.name


def test_evaluation_models_carry_sha256() -> None:
    for name in ("panns_cnn14_16k", "vggish", "passt_s_swa"):
        assert REGISTRY[name].checksum_algorithm == "sha256", name
    # torch hub names a file after the first digits of its SHA-256: the pinned value must agree
    assert REGISTRY["vggish"].checksum_hex.startswith("10086976")
    assert REGISTRY["imagebind_huge"].checksum == UNKNOWN


@pytest.fixture()
def entry():
    return replace(REGISTRY["imagebind_huge"], name="imagebind_huge", size=None)


def test_first_use_records_and_later_copies_are_checked(tmp_path, entry, caplog) -> None:
    cache = tmp_path / "cache"
    stamps = stamp_dir_for(cache)
    copy = tmp_path / "imagebind_huge.pth"
    copy.write_bytes(b"first copy")
    with caplog.at_level(logging.WARNING):
        verify_file(entry, copy, stamp_dir=stamps)
    assert "trust on first use" in caplog.text
    record = json.loads((cache / "recorded" / "imagebind_huge.json").read_text())
    assert record["files"]["imagebind_huge.pth"] == {
        "sha256": hashlib.sha256(b"first copy").hexdigest(),
        "size": 10,
    }
    assert trust.used_on_trust()["imagebind_huge"]["checksum"] == "trust on first use"
    verify_file(entry, copy, stamp_dir=stamps)  # the same bytes pass
    other = tmp_path / "elsewhere" / "imagebind_huge.pth"
    other.parent.mkdir()
    other.write_bytes(b"other bytes")
    with pytest.raises(WeightsError, match="differs from the copy of imagebind_huge first used here"):
        verify_file(entry, other, stamp_dir=stamps)


def test_a_bad_cached_copy_is_removed_after_the_record(tmp_path, entry, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setitem(REGISTRY, "imagebind_huge", entry)
    good = cache / entry.relpath
    good.parent.mkdir(parents=True)
    good.write_bytes(b"good")
    assert resolve("imagebind_huge", cache_dir=cache, offline=True) == good
    good.write_bytes(b"evil")
    with pytest.raises(WeightsError, match="removed the bad copy"):
        resolve("imagebind_huge", cache_dir=cache, offline=True)
    assert not good.exists()


def test_folder_checkpoint_records_every_file_and_its_commit(tmp_path) -> None:
    entry = REGISTRY["videollama2-cot"]
    cache = tmp_path / "cache"
    snapshot = tmp_path / "snapshots" / ("ab" * 20)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model-00001.safetensors").write_bytes(b"w" * 100)
    (snapshot / ".cache").mkdir()
    (snapshot / ".cache" / "x.lock").write_text("")
    trust.check_folder(entry, snapshot, cache_dir=cache, stamp_dir=stamp_dir_for(cache))
    record = trust.read_record(cache, entry)
    assert record["revision"] == "ab" * 20
    assert set(record["files"]) == {"config.json", "model-00001.safetensors"}
    assert record["files"]["model-00001.safetensors"]["size"] == 100
    (snapshot / "model-00001.safetensors").write_bytes(b"v" * 100)
    with pytest.raises(WeightsError, match="model-00001.safetensors"):
        trust.check_folder(entry, snapshot, cache_dir=cache, stamp_dir=stamp_dir_for(cache))


def test_weights_list_names_the_files_taken_on_first_use(tmp_path) -> None:
    result = CliRunner().invoke(weights_app, ["list", "--cache-dir", str(tmp_path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "trust on first use" in result.output.replace("\n", " ")
    assert "imagebind_huge" in result.output


def test_verify_calls_a_wrong_size_download_damaged_not_your_own(tmp_path) -> None:
    copy = tmp_path / "w" / "ext_weights" / "v1-16.pth"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"short")
    result = CliRunner().invoke(
        weights_app,
        ["verify", "vae_16k", "--weights-dir", str(tmp_path / "w"), "--cache-dir", str(tmp_path / "c")],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == WeightsError.exit_code
    assert "wrong size" in result.output
    assert "Damaged or incomplete copies of published files: vae_16k" in result.output
    assert "Differ from the published files" not in result.output
    assert "your own" not in result.output


def test_the_trace_names_files_taken_on_first_use(tmp_path, entry) -> None:
    from media_factory import make_video
    from stand_ins import FixedPlanner, ScalingSeparator, ScriptedJudge, ToneGenerator, tone

    from deepsound.config import PipelineConfig, RunOptions
    from deepsound.pipeline import Pipeline
    from deepsound.registry import Components

    copy = tmp_path / "imagebind_huge.pth"
    copy.write_bytes(b"weights")
    cache = tmp_path / "cache"
    trust.check_file(entry, copy, cache_dir=cache, stamp_dir=stamp_dir_for(cache))
    cfg = PipelineConfig()
    parts = {
        "generator": ToneGenerator(),
        "judge": ScriptedJudge(False),
        "separator": ScalingSeparator(0.5),
        "planner": FixedPlanner(),
    }
    clip = make_video(tmp_path / "clip.mp4", duration=1.2, fps=25, size=(64, 48), audio=tone(1.2, 44100))
    result = Pipeline(cfg, Components(cfg, parts)).run(clip, tmp_path / "out", RunOptions(duration=1.0))
    trace = json.loads(result.outputs["trace"].read_text())
    noted = trace["final"]["weights_trust_on_first_use"]["imagebind_huge"]
    assert noted["checksum"] == "trust on first use"
    assert noted["files"]["imagebind_huge.pth"]["sha256"] == hashlib.sha256(b"weights").hexdigest()
