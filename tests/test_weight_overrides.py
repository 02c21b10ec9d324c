"""A user's own checkpoint: refused where the published file is expected, loaded with --weights NAME=PATH."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
from media_factory import make_video
from stand_ins import FixedPlanner, ScriptedJudge, ToneGenerator
from typer.testing import CliRunner

from deepsound import cli
from deepsound.config import GeneratorConfig, PipelineConfig, RunOptions
from deepsound.errors import ConfigError, WeightsError
from deepsound.pipeline import Pipeline
from deepsound.registry import Components, register, unregister
from deepsound.weights import overrides, resolve
from deepsound.weights.loading import load_into

NAME = "mmaudio_small_16k"  # a published file with a known size


@pytest.fixture(autouse=True)
def fresh_record(monkeypatch):
    monkeypatch.setattr(overrides, "_used", {})


@pytest.fixture()
def own_checkpoint(tmp_path) -> Path:
    """A 'fine-tuned' file: the published format (a state dict), other bytes."""
    folder = tmp_path / "weights"
    folder.mkdir()
    path = folder / "mmaudio_small_16k.pth"
    torch.save({"weight": torch.full((3, 2), 0.5), "bias": torch.ones(3)}, path)
    return path


def test_own_file_in_weights_dir_is_refused_with_the_way_out(own_checkpoint):
    with pytest.raises(WeightsError, match=r"wrong size .*delete it and run `deepsound weights download"):
        resolve(NAME, weights_dir=own_checkpoint.parent.parent, offline=True)


def test_override_loads_strictly_and_is_recorded(own_checkpoint, caplog):
    config = PipelineConfig(weights={NAME: own_checkpoint}, offline=True)
    with caplog.at_level(logging.WARNING):
        path = overrides.resolve_for(config, NAME)
    assert path == own_checkpoint
    assert "not the published one" in caplog.text
    digest = hashlib.sha256(own_checkpoint.read_bytes()).hexdigest()
    assert overrides.used_overrides() == {NAME: {"path": str(own_checkpoint), "sha256": digest}}
    module = load_into(torch.nn.Linear(2, 3), path, "a linear layer")
    assert torch.equal(module.weight, torch.full((3, 2), 0.5))
    # strictness stays: a file that does not fit the module is still refused, naming the keys
    with pytest.raises(WeightsError, match="does not fit a wider layer.*wrong shape"):
        load_into(torch.nn.Linear(2, 4), path, "a wider layer")


def test_override_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="unknown weight file 'mmaudio_tiny'"):
        overrides.parse_override("mmaudio_tiny=/x.pth")
    with pytest.raises(ConfigError, match="NAME=PATH"):
        overrides.parse_override("mmaudio_small_16k")
    config = PipelineConfig(weights={NAME: tmp_path / "nope.pth"})
    with pytest.raises(WeightsError, match="nope.pth: file not found"):
        overrides.resolve_for(config, NAME)


def test_trace_names_the_own_file_and_its_sha256(own_checkpoint, tmp_path):
    """A registered generator that loads its weights through the resolver, as the built-in ones do."""

    def build(settings, components):
        path = overrides.resolve_for(components.placement, NAME)
        generator = ToneGenerator()
        generator.net = load_into(torch.nn.Linear(2, 3), path, "the tone generator")
        return generator

    register("generator", "tone-from-file", build)
    try:
        config = PipelineConfig(
            generator=GeneratorConfig(name="tone-from-file"), weights={NAME: own_checkpoint}
        )
        components = Components(config, {"judge": ScriptedJudge(False), "planner": FixedPlanner()})
        video = make_video(tmp_path / "clip.mp4", duration=1.0, fps=25, size=(64, 48))
        result = Pipeline(config, components).run(video, tmp_path / "out", RunOptions(duration=1.0))
    finally:
        unregister("generator", "tone-from-file")
    trace = json.loads(result.outputs["trace"].read_text())
    record = trace["final"]["weights_overrides"][NAME]
    assert record["sha256"] == hashlib.sha256(own_checkpoint.read_bytes()).hexdigest()
    assert trace["config"]["weights"] == {NAME: str(own_checkpoint)}


def test_weights_verify_lists_own_files_as_differing(own_checkpoint, tmp_path):
    result = CliRunner().invoke(
        cli.app,
        [
            "weights",
            "verify",
            NAME,
            "--weights",
            f"{NAME}={own_checkpoint}",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert "differs from the published one" in result.output
    assert f"Differ from the published files: {NAME}" in result.output


def test_offline_run_names_every_missing_file_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSOUND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    video = make_video(tmp_path / "clip.mp4", duration=1.0, fps=25, size=(64, 48))
    result = CliRunner().invoke(
        cli.app,
        [
            "generate",
            str(video),
            "-o",
            str(tmp_path / "o"),
            "--offline",
            "--variant",
            "small_16k",
            "--weights-dir",
            str(tmp_path / "wd"),
        ],  # fmt: skip
        env={"COLUMNS": "400"},
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    text = " ".join(result.output.split())
    for name in (
        "mmaudio_small_16k.pth",
        "v1-16.pth",
        "synchformer_state_dict.pth",
        "--weights-dir",
        "--offline",
    ):
        assert name in text, name
    assert "7 weight files missing" in text  # network, VAE, vocoder, CLIP + config, Synchformer, separator…
    assert "deepsound weights download mmaudio_small_16k vae_16k" in text


def test_online_download_failure_lists_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSOUND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    resolve_module = __import__("importlib").import_module("deepsound.weights.resolve")

    def unreachable(entry, dest, **_):
        raise WeightsError(f"{entry.name}: cannot reach {entry.url} (no network)")

    monkeypatch.setattr(resolve_module, "download_url", unreachable)
    config = PipelineConfig(generator=GeneratorConfig(variant="small_16k"), weights_dir=tmp_path / "wd")
    with pytest.raises(WeightsError) as caught:
        overrides.resolve_for(Components(config).placement, "mmaudio_small_16k")
    text = str(caught.value)
    assert "cannot reach" in text and "weight files missing" in text and "bs_roformer_viperx" in text
    assert "--weights-dir" in text
