"""The one configuration: typed sections, unknown keys refused, presets, TOML round trip, CLI layering."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deepsound import cli
from deepsound.config import PipelineConfig, RunOptions
from deepsound.errors import ConfigError
from deepsound.settings import PRESETS, dump_toml, load_settings

runner = CliRunner()


def test_defaults_follow_the_paper():
    run, pipe = RunOptions(), PipelineConfig()
    assert run.duration == 10.0  # the paper generates and evaluates 10 s clips
    assert pipe.mllm.max_new_tokens == 2048  # a chain of thought must reach <CONCLUSION>
    assert (run.seed, run.num_steps, run.cfg_strength) == (42, 25, 4.5)


def test_unknown_keys_are_refused_with_where_they_were():
    with pytest.raises(ConfigError, match=r"unknown setting 'varient' in \[pipeline.generator\]"):
        load_settings(overrides={"pipeline": {"generator": {"varient": "small_16k"}}})
    with pytest.raises(ConfigError, match=r"\[run\]"):
        load_settings(overrides={"run": {"steps": 3}})
    with pytest.raises(ConfigError, match="must be int"):
        load_settings(overrides={"run": {"seed": "forty-two"}})
    with pytest.raises(ConfigError, match="unknown preset"):
        load_settings("fast")


def test_paper_preset_is_the_reference_demo():
    paper = load_settings("paper")
    assert paper.pipeline.generator.variant == "large_44k"
    assert (paper.pipeline.planner, paper.pipeline.judge) == ("mllm", "mllm")
    assert paper.pipeline.mllm.name == "videollama2-cot"
    assert (paper.run.duration, paper.run.mode, paper.run.postprocess) == (10.0, "s4", "neg")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_toml_round_trip(tmp_path, preset):
    settings = load_settings(
        preset,
        overrides={
            "pipeline": {"weights": {"mmaudio_small_16k": "/ckpt/mine.pth"}, "mllm": {"model": "/m"}},
            "run": {"duration": "none", "window": 8.0, "prompt": "rain"},
        },
    )
    path = tmp_path / "s.toml"
    path.write_text(dump_toml(settings))
    again = load_settings(config_file=path)
    assert again == settings
    assert again.run.duration is None and again.pipeline.mllm.model == "/m"


def test_layers_preset_then_file_then_options(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[pipeline.generator]\nvariant = "small_16k"\n[run]\nnum_steps = 10\nseed = 7\n')
    settings = load_settings("paper", path, {"run": {"seed": 1}})
    assert settings.pipeline.generator.variant == "small_16k"  # the file beats the preset
    assert settings.pipeline.judge == "mllm"  # the preset stays where the file is silent
    assert (settings.run.num_steps, settings.run.seed) == (10, 1)  # options beat the file


def test_bad_toml_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[pipeline\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=path)


def test_generate_help_lists_preset_and_config():
    result = runner.invoke(cli.app, ["generate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--preset", "--config", "--weights", "--mllm", "--generator", "--judge", "--steps"):
        assert flag in result.output, flag


def test_config_show_prints_toml_that_config_reads_back(tmp_path):
    result = runner.invoke(cli.app, ["config", "show", "--preset", "paper", "--steps", "50", "--whole"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "shown.toml"
    path.write_text(result.output)
    again = load_settings(config_file=path)
    assert again.run.num_steps == 50 and again.run.duration is None
    assert again.pipeline.mllm.name == "videollama2-cot"
    # and `generate --config` accepts it: the same settings come out of `config show --config`
    shown = runner.invoke(cli.app, ["config", "show", "--config", str(path)])
    assert shown.exit_code == 0 and shown.output == result.output


def test_config_presets_prints_both():
    result = runner.invoke(cli.app, ["config", "presets"])
    assert result.exit_code == 0
    assert "# preset default" in result.output and "# preset paper" in result.output
    assert 'variant = "large_44k"' in result.output and 'variant = "large_44k_v2"' in result.output


def test_bad_option_values_are_one_line():
    result = runner.invoke(cli.app, ["config", "show", "--weights", "nonsense"])
    assert result.exit_code != 0 and "NAME=PATH" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli.app, ["config", "show", "--variant", "huge"])
    assert result.exit_code != 0 and "unknown variant 'huge'" in result.output


def test_pipeline_from_a_preset_and_nested_settings():
    from deepsound.pipeline import Pipeline

    pipe = Pipeline.from_config(generator={"variant": "small_16k"}, judge="speech")
    assert pipe.config.generator.variant == "small_16k" and pipe.config.judge == "speech"
    with pytest.raises(ConfigError, match="unknown setting 'variant' in \\[pipeline\\]"):
        Pipeline.from_config(variant="small_16k")


def test_options_beat_the_file_however_a_component_setting_is_written(tmp_path):
    from deepsound.cli.options import settings_from_values

    path = tmp_path / "s.toml"
    path.write_text(
        '[pipeline.generator]\nvariant = "small_16k"\n[pipeline.mllm.omni]\nmodel = "/from-file"\n'
    )
    settings = settings_from_values({"config_file": path, "variant": "medium_44k", "mllm_model": "/from-cli"})
    assert settings.pipeline.generator.variant == "medium_44k" and settings.pipeline.mllm.model == "/from-cli"
    # a section's own key belongs to the component chosen in that layer, so switching family keeps both
    paper = settings_from_values({"config_file": path, "preset": "paper"})
    assert paper.pipeline.mllm.name == "videollama2-cot" and paper.pipeline.mllm.model is None
    assert paper.pipeline.mllm.settings["omni"].model == "/from-file"
