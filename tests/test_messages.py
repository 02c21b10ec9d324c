"""Messages a user reads when weights are missing: short, true to how offline was switched on, runnable."""

from __future__ import annotations

import pytest

from deepsound.cli import options as cli_options
from deepsound.config import GeneratorConfig, PipelineConfig
from deepsound.errors import WeightsError
from deepsound.models.qwen_omni.reasoner import _missing_message as omni_missing
from deepsound.registry import Components
from deepsound.settings import load_settings


@pytest.fixture()
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSOUND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("DEEPSOUND_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path


def _missing(offline_flag: bool) -> str:
    settings = load_settings(
        "default",
        overrides={"pipeline": {"generator": {"variant": "small_16k"}, "offline": offline_flag}},
    )
    with pytest.raises(WeightsError) as caught:
        cli_options.build_pipeline(settings)
    return str(caught.value)


def test_missing_weights_is_a_summary_and_one_indented_line_per_file(empty_caches):
    lines = _missing(True).splitlines()
    assert lines[0].startswith("7 weight files missing (") and lines[0].endswith(
        "downloads are off (--offline):"
    )
    files = [line for line in lines if line.startswith("  ")]
    assert len(files) == 7 and all(len(line) <= 120 for line in files)
    assert any("weights/mmaudio_small_16k.pth" in line and "0.63 GB" in line for line in files)
    assert "hf://" not in "\n".join(lines)
    assert "leave out --offline" in lines[-1]


def test_offline_from_the_environment_is_named_as_such(empty_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = _missing(False)
    assert "downloads are off (HF_HUB_OFFLINE=1)" in text
    assert "unset HF_HUB_OFFLINE" in text
    assert "--offline" not in text.replace("(pass --weights-dir)", "")


def test_download_failure_does_not_mention_offline(empty_caches, monkeypatch):
    import importlib

    from deepsound.weights import overrides

    resolve_module = importlib.import_module("deepsound.weights.resolve")

    def unreachable(entry, dest, **_):
        raise WeightsError(f"{entry.name}: cannot reach {entry.url} (no network)")

    monkeypatch.setattr(resolve_module, "download_url", unreachable)
    config = PipelineConfig(generator=GeneratorConfig(variant="small_16k"))
    with pytest.raises(WeightsError) as caught:
        overrides.resolve_for(Components(config).placement, "mmaudio_small_16k")
    text = str(caught.value)
    assert "could not be downloaded" in text and "offline" not in text


def test_omni_advice_names_the_installed_hub_command_and_whole_reason():
    exc = OSError(
        "We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the "
        "cached files. Check your internet connection or see https://huggingface.co/docs/transformers/x."
    )
    text = omni_missing("Qwen/Qwen2.5-Omni-7B", True, exc)
    assert "`hf download Qwen/Qwen2.5-Omni-7B`" in text and "huggingface-cli" not in text
    assert "://" not in text
    assert "couldn't find them in the cached files" in text
