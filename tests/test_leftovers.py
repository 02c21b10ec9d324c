"""A failed run or download leaves nothing behind: no empty output folder, no empty cache folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from media_factory import make_video
from stand_ins import FixedPlanner, ScalingSeparator, ScriptedJudge, ToneGenerator, tone

from deepsound.config import PipelineConfig, RunOptions
from deepsound.errors import MediaError, WeightsError
from deepsound.pipeline import Pipeline
from deepsound.registry import Components
from deepsound.weights import REGISTRY
from deepsound.weights.download import download_hub, download_url


def _pipeline() -> Pipeline:
    cfg = PipelineConfig()
    parts = {
        "generator": ToneGenerator(),
        "judge": ScriptedJudge(False),
        "separator": ScalingSeparator(0.5),
        "planner": FixedPlanner(),
    }
    return Pipeline(cfg, Components(cfg, parts))


@pytest.fixture()
def short_clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "short.mp4", duration=0.2, fps=25, size=(64, 48), audio=tone(0.2, 44100))


def test_a_run_that_fails_early_removes_the_folders_it_made(tmp_path, short_clip):
    out = tmp_path / "new" / "deeper"
    with pytest.raises(MediaError):
        _pipeline().run(short_clip, out, RunOptions(duration=1.0))
    assert not (tmp_path / "new").exists()


def test_a_failed_run_keeps_a_folder_that_was_there(tmp_path, short_clip):
    out = tmp_path / "mine"
    out.mkdir()
    with pytest.raises(MediaError):
        _pipeline().run(short_clip, out, RunOptions(duration=1.0))
    assert out.is_dir() and not any(out.iterdir())


def test_a_failed_download_leaves_no_cache_folder(tmp_path):
    entry = replace(REGISTRY["vae_16k"], url="http://127.0.0.1:9/v1-16.pth")  # nothing listens on port 9
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="cannot reach"):
        download_url(entry, cache / entry.relpath, show_progress=False)
    assert not cache.exists()


def test_a_failed_download_keeps_a_partial_file_to_resume(tmp_path):
    entry = replace(REGISTRY["vae_16k"], url="http://127.0.0.1:9/v1-16.pth")
    dest = tmp_path / "cache" / entry.relpath
    dest.parent.mkdir(parents=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(b"half")
    with pytest.raises(WeightsError):
        download_url(entry, dest, show_progress=False)
    assert part.read_bytes() == b"half"


def test_a_failed_hub_download_leaves_no_folder(tmp_path, monkeypatch):
    import huggingface_hub

    def failing(repo_id, filename, revision=None, local_dir=None):
        lock = Path(local_dir) / ".cache" / "huggingface" / "download" / f"{filename}.lock"
        lock.parent.mkdir(parents=True)
        lock.write_text("")
        raise OSError("connection reset")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing)
    with pytest.raises(WeightsError, match="cannot download"):
        download_hub(REGISTRY["bigvgan_v2_44k"], local_dir=tmp_path / "w" / "ext_weights")
    assert not (tmp_path / "w").exists()
