"""Step 3's resampling and output format: ours by default, the reference's under ``--preset paper``.

BS-RoFormer runs at 44.1 kHz stereo. By default step 3 resamples with soxr "VHQ" and gives its
result back at the input's rate and channels; ``resample_quality = "HQ"`` and ``output_format =
"model"`` (what ``--preset paper`` sets) load the input as librosa does and keep the result at
44.1 kHz stereo, as the reference pipeline keeps its step-3 file. The last test runs the paper
preset through ``deepsound batch`` at tiny size with the real BS-RoFormer loading path (a tiny
checkpoint and YAML given with ``--weights``), the real tiny VideoLLaMA2 and a tiny MMAudio, and
follows the 44.1 kHz step 3 into step 4, the final WAV, the muxed video, the trace, the batch
summary and the page's timeline.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
import yaml
from media_factory import make_video
from typer.testing import CliRunner

from deepsound import cli, media
from deepsound.audio import Audio
from deepsound.errors import ConfigError
from deepsound.interfaces import SpeechReport
from deepsound.models.bs_roformer.config import BsRoformerConfig
from deepsound.models.bs_roformer.network import build_model
from deepsound.models.bs_roformer.separator import BsRoformerSeparator
from deepsound.models.bs_roformer.settings import BsRoformerSettings
from deepsound.registry import register, unregister
from deepsound.settings import dump_toml, load_settings
from deepsound.testing import tiny as toy
from deepsound.testing.equivalence import fill_seeded
from deepsound.testing.videollama2_checkpoint import write_tiny_checkpoint
from deepsound.ui.timeline import render_trace

PAPER = BsRoformerSettings(resample_quality="HQ", output_format="model")


def noise(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio(0.3 * rng.standard_normal((channels, int(seconds * rate))).astype(np.float32), rate)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return fill_seeded(build_model(BsRoformerConfig.tiny()), 4)


# ------------------------------------------------------------------ the settings
def test_defaults_are_ours_and_the_paper_preset_is_the_reference():
    default = load_settings("default").pipeline.separator
    assert (default.resample_quality, default.output_format) == ("VHQ", "input")
    paper = load_settings("paper")
    assert (paper.pipeline.separator.resample_quality, paper.pipeline.separator.output_format) == (
        "HQ",
        "model",
    )
    # the TOML round trip, and a later layer (a file, the options) still overrides the preset
    path_free = load_settings("default", overrides=_toml_layer(dump_toml(paper)))
    assert path_free.pipeline.separator.selected == paper.pipeline.separator.selected
    back = load_settings("paper", overrides={"pipeline": {"separator": {"output_format": "input"}}})
    assert (back.pipeline.separator.output_format, back.pipeline.separator.resample_quality) == (
        "input",
        "HQ",
    )


def _toml_layer(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


def test_bad_values_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown output_format 'file'; choose one of: input, model"):
        load_settings("default", overrides={"pipeline": {"separator": {"output_format": "file"}}})
    with pytest.raises(ConfigError, match="unknown resample_quality 'LQ'"):
        BsRoformerSettings(resample_quality="LQ")
    with pytest.raises(ValueError, match="unknown resampling quality 'best'"):
        noise(0.1, 16000).resample(44100, quality="best")
    result = CliRunner().invoke(cli.app, ["config", "show", "--bs-roformer-resample-quality", "MQ"])
    assert result.exit_code != 0 and "unknown resample_quality 'MQ'" in result.output
    assert "Traceback" not in result.output
    shown = CliRunner().invoke(
        cli.app, ["config", "show", "--preset", "paper", "--bs-roformer-output-format", "input"]
    )
    assert shown.exit_code == 0, shown.output
    table = shown.output.split("[pipeline.separator.bs_roformer]")[1].split("[")[0]
    assert 'resample_quality = "HQ"' in table and 'output_format = "input"' in table


# ------------------------------------------------------------------ the separator
def test_default_output_is_unchanged_at_the_input_rate_and_channels(model):
    mono = noise(0.3, 16000)
    # what the separator did before these settings existed, written out: VHQ there and back
    sep = BsRoformerSeparator.with_settings(model, BsRoformerSettings())
    at_rate = mono.resample(44100, "VHQ")
    vocals = sep._demix(at_rate.to_channels(2).waveform).mean(axis=0, keepdims=True)
    rest = Audio(at_rate.waveform - vocals, 44100).resample(16000, "VHQ").fit_length(mono.num_samples)
    result = sep.separate(mono)
    np.testing.assert_array_equal(result.vocals.waveform, mono.waveform - rest.waveform)
    assert result.instrumental.waveform.shape == (1, mono.num_samples)
    assert result.evidence["output_sample_rate"] == 16000 and result.evidence["output_channels"] == 1


@pytest.mark.parametrize("rate, samples", [(16000, 16384), (48000, 7001), (22050, 3333)])
def test_model_format_is_librosas_load_mono_duplicated(model, rate, samples):
    """At the model's rate as ``librosa.load(sr=44100, mono=False)`` gives it, then mono -> stereo."""
    audio = Audio(noise(1.1, rate).waveform[:, :samples], rate)
    sep = BsRoformerSeparator.with_settings(model, PAPER)
    mix = sep.model_input(audio)
    expected = librosa.resample(audio.waveform[0], orig_sr=rate, target_sr=44100, res_type="soxr_hq")
    assert mix.waveform.shape == (2, math.ceil(samples * 44100 / rate)) == (2, expected.size)
    np.testing.assert_array_equal(mix.waveform, np.stack([expected, expected]))
    result = sep.separate(audio)
    assert result.instrumental.sample_rate == result.vocals.sample_rate == 44100
    # instrumental = the model's input - vocals, at the model's rate, as the reference writes it
    np.testing.assert_allclose(result.instrumental.waveform + result.vocals.waveform, mix.waveform, atol=1e-6)
    assert result.evidence["output_sample_rate"] == 44100 and result.evidence["output_channels"] == 2
    assert result.evidence["resample_quality"] == "HQ" and result.evidence["output_format"] == "model"
    # and it is what the default computes before bringing it back: the same vocals at 44.1 kHz
    vhq = BsRoformerSeparator.with_settings(model, BsRoformerSettings(output_format="model"))
    assert not np.array_equal(vhq.model_input(audio).waveform, mix.waveform)  # VHQ differs from HQ


def test_model_format_keeps_stereo_and_wide_inputs_and_gates_at_the_model_rate(model):
    stereo = noise(0.25, 44100, channels=2, seed=1)
    sep = BsRoformerSeparator.with_settings(model, PAPER)
    same = sep.separate(stereo)
    assert same.instrumental.waveform.shape == stereo.waveform.shape  # already the model's format
    default = BsRoformerSeparator(model).separate(stereo).vocals.waveform
    np.testing.assert_allclose(same.vocals.waveform, default, atol=1e-6)
    wide = sep.separate(noise(0.2, 32000, channels=3, seed=2))
    assert wide.instrumental.num_channels == 3 and wide.instrumental.sample_rate == 44100

    class Speech:
        name = "fixed"

        def detect(self, audio: Audio) -> SpeechReport:
            return SpeechReport([(0.1, 0.2)], 0.1 / audio.duration, audio.duration)

    gated = BsRoformerSeparator.with_settings(
        model,
        BsRoformerSettings(only_speech=True, crossfade_s=0.0, output_format="model"),
        speech_detector=Speech(),
    )
    mono = noise(0.3, 16000, seed=3)
    out = gated.separate(mono)
    kept = np.abs(out.vocals.waveform).max(axis=0) == 0
    assert out.vocals.sample_rate == 44100
    assert kept[: 4410 - 1].all() and kept[8820 + 1 :].all() and not kept[4410:8820].all()


# ------------------------------------------------------------------ the CLI, end to end
def tiny_separator_files(folder: Path) -> tuple[Path, Path]:
    """A seeded tiny checkpoint and its YAML, in the published formats (a state dict; MSST YAML)."""
    tiny = BsRoformerConfig.tiny()
    checkpoint, config = folder / "tiny_roformer.ckpt", folder / "tiny_roformer.yaml"
    torch.save(fill_seeded(build_model(tiny), 3).state_dict(), checkpoint)
    config.write_text(
        yaml.safe_dump(
            {
                "audio": {"chunk_size": tiny.chunk_size, "sample_rate": 44100},
                "model": {
                    "dim": tiny.dim, "depth": tiny.depth, "stereo": True, "num_stems": 1,
                    "freqs_per_bands": list(tiny.freqs_per_bands), "dim_head": tiny.dim_head,
                    "heads": tiny.heads, "stft_n_fft": tiny.stft_n_fft,
                    "stft_hop_length": tiny.stft_hop_length, "stft_win_length": tiny.stft_win_length,
                },
                "training": {"target_instrument": "vocals"},
                "inference": {"batch_size": tiny.batch_size, "num_overlap": 2},
            }
        )
    )  # fmt: skip
    assert BsRoformerConfig.from_yaml(config) == tiny
    return checkpoint, config


@pytest.fixture()
def tiny_generator():
    """MMAudio's architecture at toy size, registered by name as a user registers a component."""
    register(
        "generator", "tiny-mmaudio", lambda settings, components: toy.mmaudio_generator(seed=0, mode="16k")
    )
    yield "tiny-mmaudio"
    unregister("generator", "tiny-mmaudio")


def test_paper_preset_batch_keeps_step3_at_44k_stereo_through_every_output(tiny_generator, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("street", "park"):
        make_video(clips / f"{name}.mp4", duration=1.5, fps=25, size=(96, 72))
    checkpoint, config = tiny_separator_files(tmp_path)
    mllm = write_tiny_checkpoint(tmp_path / "vl2", seed=0)
    settings = tmp_path / "settings.toml"  # a random MLLM's verdict is undecided: count it as voice-over
    settings.write_text("[pipeline]\nundecided_is_voice_over = true\n")
    out = tmp_path / "out"
    argv = ["batch", str(clips), "-o", str(out), "--preset", "paper", "--config", str(settings),
            "--generator", tiny_generator, "--mllm-model", str(mllm), "--max-new-tokens", "4",
            "--weights", f"bs_roformer_viperx={checkpoint}", "--weights", f"bs_roformer_viperx_config={config}",
            "--offline", "--device", "cpu", "--duration", "1", "--steps", "2", "-q"]  # fmt: skip
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["complete"] and [i["status"] for i in summary["items"]] == ["done", "done"]
    for name in ("park", "street"):
        trace = json.loads((out / f"{name}.trace.json").read_text())
        steps = {s["step"]: s for s in trace["steps"]}
        assert list(steps)[-1] == "step4_check_silence" and trace["final"]["fallback"] is None
        step1 = media.read_audio(out / f"{name}.step1.wav")
        step3 = media.read_audio(out / f"{name}.step3.wav")
        vocals = media.read_audio(out / f"{name}.step3.vocals.wav")
        assert (step1.sample_rate, step1.num_channels) == (16000, 1)
        length = math.ceil(step1.num_samples * 44100 / 16000)  # librosa's
        assert step3.waveform.shape == vocals.waveform.shape == (2, length) and step3.sample_rate == 44100
        separated = steps["step3_remove_voice_over"]["evidence"]
        assert (separated["resample_quality"], separated["output_format"]) == ("HQ", "model")
        assert (separated["input_sample_rate"], separated["output_sample_rate"]) == (16000, 44100)
        # step 4 counted the frames of the 44.1 kHz file, as the reference's librosa check does
        heard = steps["step4_check_silence"]["evidence"]
        assert heard["sample_rate"] == 44100 and heard["num_frames"] == 1 + length // 512
        # not silent, so the final soundtrack is step 3's file as it is
        final = media.read_audio(out / f"{name}.wav")
        np.testing.assert_array_equal(final.waveform, step3.waveform)
        assert (trace["final"]["sample_rate"], trace["final"]["duration"]) == (
            44100,
            round(length / 44100, 3),
        )
        video = media.probe(out / f"{name}.mp4")
        assert video.has_video and video.has_audio
        assert (video.sample_rate, video.channels) == (44100, 2)
        assert video.duration == pytest.approx(1.5, abs=0.1)
        assert "at 44100 Hz" in render_trace(trace)  # the page's timeline states what its players play


def test_separate_command_keeps_the_models_format_when_asked(model, tmp_path, monkeypatch):
    """``deepsound separate --output-format model --resample-quality HQ``: the reference's step-3 file
    for a user's own clip, muxed back onto its pictures; the real command around a tiny model."""
    built = {}

    def tiny(cls, settings, placement, **kwargs):  # noqa: ANN001, ANN202 - no published weights here
        built["settings"] = settings
        return BsRoformerSeparator.with_settings(model, settings)

    monkeypatch.setattr(BsRoformerSeparator, "from_settings", classmethod(tiny))
    clip = make_video(tmp_path / "clip.mp4", duration=1.0, fps=25, size=(96, 64), audio=noise(1.0, 16000))
    source = media.read_audio(clip)
    out = tmp_path / "out"
    argv = [
        "separate",
        str(clip),
        "-o",
        str(out),
        "--output-format",
        "model",
        "--resample-quality",
        "HQ",
        "-q",
    ]
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    assert (built["settings"].output_format, built["settings"].resample_quality) == ("model", "HQ")
    instrumental = media.read_audio(out / "clip.instrumental.wav")
    assert instrumental.sample_rate == 44100 and instrumental.num_channels == 2
    assert instrumental.num_samples == math.ceil(source.num_samples * 44100 / source.sample_rate)
    report = json.loads((out / "clip.separation.json").read_text())
    assert (report["sample_rate"], report["channels"]) == (source.sample_rate, source.num_channels)
    assert (report["output_sample_rate"], report["output_channels"]) == (44100, 2)
    muxed = media.probe(out / "clip.instrumental.mp4")
    assert muxed.has_video and (muxed.sample_rate, muxed.channels) == (44100, 2)
    bad = CliRunner().invoke(
        cli.app, ["separate", str(clip), "-o", str(tmp_path / "x"), "--output-format", "file"]
    )
    assert (
        bad.exit_code != 0 and "unknown output_format 'file'" in bad.output and "Traceback" not in bad.output
    )
