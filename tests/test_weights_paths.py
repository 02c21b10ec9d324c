"""Every registered file has a place of its own: no model's file is ever taken for another's."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from deepsound.models.videollama2.reasoner import checkpoint_folder
from deepsound.weights import REGISTRY, locate
from deepsound.weights.resolve import _in_folder


def test_every_entry_has_a_unique_local_path() -> None:
    relpaths = [entry.relpath for entry in REGISTRY.values()]
    assert len(set(relpaths)) == len(relpaths), sorted(relpaths)


def test_no_two_entries_share_a_place_they_are_looked_for(tmp_path: Path) -> None:
    places = {name: set(_in_folder(entry, tmp_path)) for name, entry in REGISTRY.items()}
    for (a, pa), (b, pb) in itertools.combinations(places.items(), 2):
        assert not pa & pb, f"{a} and {b} are both looked for at {sorted(pa & pb)}"


@pytest.fixture()
def mmaudio_folder(tmp_path: Path) -> Path:
    """An MMAudio weights folder: BigVGAN's config.json at ext_weights/config.json."""
    ext = tmp_path / "mmaudio" / "ext_weights"
    ext.mkdir(parents=True)
    (ext / "config.json").write_text(json.dumps({"resblock": "1", "num_mels": 128}))
    return tmp_path / "mmaudio"


@pytest.mark.parametrize("name", ["videollama2-cot", "videollama2-qa", "siglip-so400m-patch14-384"])
def test_bigvgans_config_is_not_an_mllm(mmaudio_folder: Path, tmp_path: Path, name: str) -> None:
    found = locate(name, weights_dir=mmaudio_folder, cache_dir=tmp_path / "cache")
    assert found is None, found
    assert locate("bigvgan_v2_44k_config", weights_dir=mmaudio_folder, cache_dir=tmp_path / "cache")


def test_folder_checkpoint_found_in_its_own_folder(mmaudio_folder: Path, tmp_path: Path) -> None:
    own = mmaudio_folder / "ext_weights" / "VideoLLaMA2.1-7B-AV-CoT"
    own.mkdir()
    (own / "config.json").write_text(json.dumps({"model_type": "videollama2_qwen2"}))
    found = locate("videollama2-cot", weights_dir=mmaudio_folder, cache_dir=tmp_path / "cache")
    assert found is not None and found[1] == own / "config.json"
    folder = checkpoint_folder(
        "lym0302/VideoLLaMA2.1-7B-AV-CoT", weights_dir=mmaudio_folder, offline=True, what="VideoLLaMA2"
    )
    assert folder == own


def test_offline_videollama2_advice_names_what_to_download(mmaudio_folder: Path, monkeypatch) -> None:
    import huggingface_hub

    from deepsound.errors import WeightsError

    def not_cached(*args, **kwargs):
        raise FileNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_cached)
    with pytest.raises(WeightsError, match=r"`deepsound weights download videollama2-qa`"):
        checkpoint_folder(
            "lym0302/VideoLLaMA2.1-7B-AV-QA", weights_dir=mmaudio_folder, offline=True, what="VideoLLaMA2"
        )
    with pytest.raises(WeightsError, match=r"`hf download someone/own-model`"):
        checkpoint_folder("someone/own-model", weights_dir=None, offline=True, what="VideoLLaMA2")
