"""Step 3: BS-RoFormer voice removal.

How the goldens in ``tests/data/bs_roformer`` were made: ``tools/make_goldens.py
bs_roformer --official <DeepSound-V1 checkout> --upstream <MSST checkout>``
(``--full`` adds the viperx-size file), from lym0302/DeepSound-V1 at commit
a775b9e6aac51dc755c5e9c5849d9d870a716dee and, for the zero-DC file,
ZFTurbo/Music-Source-Separation-Training at commit
ccc011abf7f89dd7922bb2888d48493b575c0289 (the viperx YAML is identical at the
registry's pinned d9672dac1160ebe9c39aec3d3f3320190e49a5c0). The official code -- ``BSRoformer`` and ``demix()`` of
the Music-Source-Separation-Training copy bundled with DeepSound-V1 (the code the
paper ran, with rotary-embedding-torch 0.3.5) -- was built and every floating
parameter, the rotary ``freqs`` included, was overwritten with
``deepsound.testing.equivalence.fill_seeded(model, 0)`` (values depend only on the name,
shape and seed, so our model filled the same way holds identical weights). There
are no other floating buffers.

* ``manifest_viperx.json``: names and shapes of the official model's state dict
  at the viperx configuration (built on the meta device from the official YAML).
* ``model_small.pt``: the official model at the viperx band layout and STFT
  (62 bands, n_fft 2048, hop 441, stereo) but dim 64, depth 2, 2 heads of 32,
  run on a (2, 2, 22050) input (seeded noise plus tones, stored as fp16 so it
  is exact in fp32); its output (batch, channels, samples) in fp32.
* ``model_small_zero_dc.pt``: the same, from the current upstream
  Music-Source-Separation-Training ``BSRoformer`` whose new default zeroes the
  DC bin (our ``zero_dc=True``).
* ``demix_*.pt``: the official ``demix(config, model, mix, cpu, "bs_roformer")``
  with that small model over stereo test signals, for four chunkings (chunk
  size, num_overlap, batch size and length stored in each file): border padding
  with several batches, a track shorter than two borders, a 3x overlap, and
  batch size 1; the ``vocals`` entry is the result.
* ``model_viperx.pt`` (slow test only): the full viperx-size model on a
  (1, 2, 13230) input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepsound.audio import Audio
from deepsound.errors import ConfigError, WeightsError
from deepsound.interfaces import Separator, SpeechReport
from deepsound.models.bs_roformer import network as bsr
from deepsound.models.bs_roformer.config import BsRoformerConfig
from deepsound.models.bs_roformer.demix import demix, fade_window, plan_chunks
from deepsound.models.bs_roformer.separator import BsRoformerSeparator, rms_db, speech_gain
from deepsound.testing import tiny as toy
from deepsound.testing.equivalence import (
    fill_seeded,
    load_manifest,
    manifest_diff,
    parameter_manifest,
    relative_l2,
)

DATA = Path(__file__).parent / "data" / "bs_roformer"
PACKAGED_YAML = Path(__file__).parents[1] / "src" / "deepsound" / "data" / "bs_roformer_viperx.yaml"
TOL = 1e-4


def small_config(**changes) -> BsRoformerConfig:
    cfg = torch.load(DATA / "model_small.pt")["config"]
    return BsRoformerConfig(
        dim=cfg["dim"], depth=cfg["depth"], dim_head=cfg["dim_head"], heads=cfg["heads"]
    ).replace(**changes)


@pytest.fixture(scope="module")
def small_model() -> bsr.BSRoformer:
    return fill_seeded(bsr.build_model(small_config()), 0)


@pytest.fixture(params=[True, False], ids=["onednn", "plain"])
def backend(request):
    bsr.set_onednn(request.param)
    yield request.param
    bsr.set_onednn(True)


def sine_mix(seconds: float, rate: int, channels: int = 2, seed: int = 0) -> Audio:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = [
        0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * rng.standard_normal(t.size)
        for c in range(channels)
    ]
    return Audio(np.stack(wave).astype(np.float32), rate)


# --- layout ------------------------------------------------------------------------------------------


def test_parameter_layout_equals_official_viperx_manifest():
    with torch.device("meta"):
        model = bsr.build_model(BsRoformerConfig.viperx())
    official = load_manifest(DATA / "manifest_viperx.json")
    assert manifest_diff(parameter_manifest(model.state_dict()), official) == []
    assert len(official) == 699  # every shared rotary frequency vector is stored under each block


def test_checkpoint_loads_strictly_and_rejects_mismatches(tmp_path):
    config = BsRoformerConfig.tiny()
    source = fill_seeded(bsr.build_model(config), 3)
    path = tmp_path / "tiny.ckpt"
    torch.save(source.state_dict(), path)
    loaded = bsr.load_checkpoint(bsr.build_model(config), path)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    state = source.state_dict()
    cases = {
        "missing": {k: v for k, v in state.items() if k != "final_norm.gamma"},
        "unexpected": {**state, "extra.weight": torch.zeros(1)},
        "wrong shape": {**state, "final_norm.gamma": torch.zeros(7)},
    }
    for word, bad in cases.items():
        torch.save(bad, path)
        with pytest.raises(WeightsError, match=word):
            bsr.load_checkpoint(bsr.build_model(config), path)
    path.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable"):
        bsr.load_checkpoint(bsr.build_model(config), path)


def test_config_from_yaml_equals_builtin_viperx(tmp_path):
    assert BsRoformerConfig.from_yaml(PACKAGED_YAML) == BsRoformerConfig.viperx()
    # the upstream file's python tuple tags are read too
    upstream = tmp_path / "viperx.yaml"
    bands = "".join(f"    - {b}\n" for b in BsRoformerConfig.viperx().freqs_per_bands)
    upstream.write_text(
        "audio:\n  chunk_size: 352800\n  sample_rate: 44100\nmodel:\n  dim: 512\n  depth: 12\n  stereo: true\n"
        "  num_stems: 1\n  time_transformer_depth: 1\n  freq_transformer_depth: 1\n  linear_transformer_depth: 0\n"
        f"  freqs_per_bands: !!python/tuple\n{bands}  dim_head: 64\n  heads: 8\n  stft_n_fft: 2048\n"
        "  stft_hop_length: 441\n  stft_win_length: 2048\n  mask_estimator_depth: 2\n"
        "training:\n  target_instrument: vocals\n  instruments: [vocals, other]\n"
        "inference:\n  batch_size: 4\n  num_overlap: 2\n"
    )
    assert BsRoformerConfig.from_yaml(upstream) == BsRoformerConfig.viperx()
    upstream.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        BsRoformerConfig.from_yaml(upstream)
    with pytest.raises(ConfigError, match="bins"):
        BsRoformerConfig.viperx().replace(freqs_per_bands=(2, 2))


# --- equivalence with the official code -----------------------------------------------------------


def test_model_output_equals_official(small_model, backend):
    golden = torch.load(DATA / "model_small.pt")
    with torch.inference_mode():
        out = small_model(golden["input"].float())
    assert out.shape == (2, 1, 2, 22050)
    assert relative_l2(out[:, 0], golden["output"]) <= TOL


def test_rotary_complex_product_equals_the_pairwise_form():
    """The one-pass complex rotation is bit-identical to rotating each pair with cos and sin."""
    cos, sin = bsr.RotaryEmbedding(16).angles(37, torch.device("cpu"))

    def pairwise(t: torch.Tensor) -> torch.Tensor:
        even, odd = t[..., 0::2], t[..., 1::2]
        c, s = cos.to(t.dtype), sin.to(t.dtype)
        return torch.stack((even * c - odd * s, odd * c + even * s), dim=-1).flatten(-2)

    generator = torch.Generator().manual_seed(3)
    packed = torch.randn(3, 37, 3 * 2 * 16 + 2, generator=generator)  # q, k, v and two gates per token
    qk = packed[..., : 3 * 2 * 16].unflatten(-1, (3, 2, 16)).permute(2, 0, 3, 1, 4)[:2]
    assert bsr._complex_view_ok(qk.unflatten(-1, (-1, 2)))
    assert torch.equal(bsr.rotate_pairs(qk, cos, sin), pairwise(qk))
    odd_rows = torch.randn(2, 37, 17, generator=generator)[..., 1:]  # odd row stride: no complex view
    assert not bsr._complex_view_ok(odd_rows.unflatten(-1, (-1, 2)))
    assert torch.equal(bsr.rotate_pairs(odd_rows, cos, sin), pairwise(odd_rows))
    half = qk.bfloat16()  # no complex bfloat16: the pairwise form
    assert torch.equal(bsr.rotate_pairs(half, cos, sin), pairwise(half))


def test_zero_dc_option_equals_upstream_default():
    golden = torch.load(DATA / "model_small.pt")
    expected = torch.load(DATA / "model_small_zero_dc.pt")["output"]
    model = fill_seeded(bsr.build_model(small_config(zero_dc=True)), 0)
    with torch.inference_mode():
        out = model(golden["input"].float())
    assert relative_l2(out, expected) <= TOL
    assert relative_l2(out[:, 0], golden["output"]) > 1e-6  # the option does change the output


@pytest.mark.parametrize("name", ["overlap2_bs4", "short_bs4", "overlap3_bs3", "overlap2_bs1"])
@pytest.mark.parametrize("run_batch", [1, 3])
def test_demix_equals_official(small_model, name, run_batch):
    golden = torch.load(DATA / f"demix_{name}.pt")
    with torch.inference_mode():
        stems = demix(
            small_model,
            golden["input"].float(),
            chunk_size=golden["chunk_size"],
            num_overlap=golden["num_overlap"],
            window_batch_size=golden["batch_size"],
            run_batch_size=run_batch,
        )
    assert stems.shape == (1, *golden["vocals"].shape)
    assert relative_l2(stems[0], golden["vocals"]) <= TOL


@pytest.mark.slow
def test_viperx_size_model_equals_official():
    path = DATA / "model_viperx.pt"
    if not path.exists():
        pytest.skip("viperx golden not generated")
    golden = torch.load(path)
    model = fill_seeded(bsr.build_model(BsRoformerConfig.viperx()), golden["seed"])
    with torch.inference_mode():
        out = model(golden["input"].float())
    assert relative_l2(out.reshape(golden["output"].shape), golden["output"]) <= TOL


# --- chunk planning ----------------------------------------------------------------------------------


def test_chunk_plan_skips_only_chunks_inside_the_cut_padding():
    cfg = BsRoformerConfig.viperx()
    plan = plan_chunks(441_000, cfg.chunk_size, cfg.num_overlap, cfg.batch_size)  # 10 s
    assert [c.start for c in plan.chunks] == [0, 176_400, 352_800, 529_200, 705_600]
    assert plan.needed == (True, True, True, True, False)
    # the reference's per-batch fades: first batch of four keeps both fades, the last batch has no fade-out
    assert [(c.fade_in, c.fade_out) for c in plan.chunks] == [(True, True)] * 4 + [(True, False)]
    short = plan_chunks(1000, cfg.chunk_size, cfg.num_overlap, cfg.batch_size)
    assert short.border == 0 and len(short.chunks) == 1 and not short.chunks[0].fade_in
    window = fade_window(100, 10)
    assert window[0] == 0 and window[-1] == 0 and torch.all(window[10:90] == 1)


# --- the separator ------------------------------------------------------------------------------------


def test_separator_meets_protocol_and_keeps_mix_minus_vocals():
    sep = toy.bs_roformer_separator(seed=1)
    assert isinstance(sep, Separator) and sep.name == "bs_roformer"
    mix = sine_mix(0.3, 44100)
    result = sep.separate(mix)
    assert result.instrumental.sample_rate == result.vocals.sample_rate == 44100
    assert result.vocals.waveform.shape == mix.waveform.shape
    np.testing.assert_allclose(result.instrumental.waveform + result.vocals.waveform, mix.waveform, atol=1e-6)
    # vocals are the model's demix output, not something else
    cfg = sep.config
    with torch.inference_mode():
        expected = demix(
            sep.model, torch.from_numpy(mix.waveform), chunk_size=cfg.chunk_size,
            num_overlap=cfg.num_overlap, window_batch_size=cfg.batch_size,
        )[0].numpy()  # fmt: skip
    np.testing.assert_allclose(result.vocals.waveform, expected, atol=1e-6)
    ev = result.evidence
    assert ev["vocals_rms_db"] == pytest.approx(rms_db(expected), abs=0.01)
    assert 0.0 < ev["vocals_energy_share"] < 1.0
    assert ev["mix_rms_db"] == pytest.approx(rms_db(mix.waveform), abs=0.01)
    json.dumps(ev)  # goes into the trace as it is


def test_mono_input_is_duplicated_and_returned_mono():
    sep = toy.bs_roformer_separator(seed=2)
    mono = sine_mix(0.2, 44100, channels=1)
    result = sep.separate(mono)
    assert result.vocals.num_channels == 1 and result.instrumental.num_channels == 1
    stereo = sep.vocals(Audio(np.repeat(mono.waveform, 2, axis=0), 44100))
    np.testing.assert_allclose(result.vocals.waveform[0], stereo.mean(axis=0), atol=1e-6)


def test_other_sample_rates_are_resampled_there_and_back():
    sep = toy.bs_roformer_separator(seed=3)
    audio = sine_mix(0.25, 16000)
    result = sep.separate(audio)
    assert result.vocals.sample_rate == 16000 and result.vocals.num_samples == audio.num_samples
    # the rest of the mix is taken at the model's rate and brought back (the reference keeps it there)
    mix = audio.resample(44100)
    rest = mix.waveform - sep.vocals(mix)
    expected = Audio(rest, 44100).resample(16000).fit_length(audio.num_samples).waveform
    np.testing.assert_allclose(result.instrumental.waveform, expected, atol=1e-5)
    np.testing.assert_allclose(
        result.instrumental.waveform + result.vocals.waveform, audio.waveform, atol=1e-6
    )


def test_more_than_two_channels_are_separated_one_by_one():
    sep = toy.bs_roformer_separator(seed=4)
    audio = sine_mix(0.1, 44100, channels=3)
    result = sep.separate(audio)
    assert result.vocals.num_channels == 3
    one = sep.separate(Audio(audio.waveform[1:2], 44100))
    np.testing.assert_allclose(result.vocals.waveform[1], one.vocals.waveform[0], atol=1e-6)


class FixedSpeech:
    """A speech detector that reports given segments (the gating logic is what is tested)."""

    name = "fixed"

    def __init__(self, segments):
        self.segments = segments

    def detect(self, audio: Audio) -> SpeechReport:
        total = sum(b - a for a, b in self.segments)
        return SpeechReport(list(self.segments), total / audio.duration, audio.duration)


def test_only_speech_keeps_the_mix_outside_speech_with_crossfades():
    mix = sine_mix(1.0, 16000)
    tiny = toy.bs_roformer_separator(seed=5)
    full = tiny.separate(mix)
    gated = BsRoformerSeparator(
        tiny.model, speech_detector=FixedSpeech([(0.4, 0.6)]), only_speech=True, crossfade_s=0.05
    ).separate(mix)
    inside = slice(int(0.4 * 16000), int(0.6 * 16000))
    outside = np.r_[0 : int(0.34 * 16000), int(0.66 * 16000) : 16000]
    np.testing.assert_allclose(
        gated.instrumental.waveform[:, inside], full.instrumental.waveform[:, inside], atol=1e-6
    )
    np.testing.assert_array_equal(gated.instrumental.waveform[:, outside], mix.waveform[:, outside])
    ramp = slice(int(0.36 * 16000), int(0.39 * 16000))
    expect = mix.waveform[:, ramp] - gated.vocals.waveform[:, ramp]
    np.testing.assert_allclose(gated.instrumental.waveform[:, ramp], expect, atol=1e-6)
    assert 0 < np.abs(gated.vocals.waveform[:, ramp]).sum() < np.abs(full.vocals.waveform[:, ramp]).sum()
    assert gated.evidence["speech_segments"] == [[0.4, 0.6]]

    none = BsRoformerSeparator(tiny.model, speech_detector=FixedSpeech([]), only_speech=True).separate(mix)
    np.testing.assert_array_equal(none.instrumental.waveform, mix.waveform)
    assert "skipped" in none.evidence and none.evidence["vocals_rms_db"] == -200.0


def test_speech_gain_ramps_and_overlaps():
    gain = speech_gain([(0.010, 0.020), (0.021, 0.030)], 50, 1000, fade_s=0.004)
    assert gain[10:20].min() == 1.0 and gain[21:30].min() == 1.0
    assert gain[20] == pytest.approx(0.8)  # a one-sample gap: the higher of the two ramps
    assert gain[:6].max() == 0.0 and gain[35:].max() == 0.0
    assert 0 < gain[7] < gain[8] < gain[9] < 1
    assert 1 > gain[30] > gain[31] > gain[33] > 0


def test_bfloat16_runs_and_stays_close_to_float32():
    tiny = toy.bs_roformer_separator(seed=6)
    mix = sine_mix(0.2, 44100)
    ref = tiny.separate(mix).vocals.waveform
    bf16 = BsRoformerSeparator(fill_seeded(bsr.build_model(tiny.config), 6), dtype="bfloat16")
    assert bf16.model.final_norm.gamma.dtype == torch.bfloat16
    assert bf16.model.layers[0][0].layers[0][0].rotary_embed.freqs.dtype == torch.float32
    out = bf16.separate(mix)
    assert out.evidence["dtype"] == "bfloat16"
    assert relative_l2(torch.from_numpy(out.vocals.waveform), torch.from_numpy(ref)) < 0.1


# --- end to end ---------------------------------------------------------------------------------------


def test_pipeline_step3_with_tiny_separator(tmp_path):
    from media_factory import make_video
    from stand_ins import FixedPlanner, ScriptedJudge, ToneGenerator

    from deepsound.config import PipelineConfig, RunOptions
    from deepsound.pipeline import Pipeline
    from deepsound.registry import Components

    video = make_video(tmp_path / "clip.mp4", duration=1.0, fps=25, size=(96, 64))
    cfg = PipelineConfig()
    sep = toy.bs_roformer_separator(seed=7)
    components = Components(
        cfg,
        overrides={"generator": ToneGenerator(), "judge": ScriptedJudge(True), "separator": sep,
                   "planner": FixedPlanner()},
    )  # fmt: skip
    out = tmp_path / "out"
    Pipeline(cfg, components).run(video, out, RunOptions(duration=1.0, mode="s3"))
    trace = json.loads((out / "clip.trace.json").read_text())
    step3 = trace["steps"][-1]
    assert step3["step"] == "step3_remove_voice_over"
    assert step3["evidence"]["model"] == "BS-RoFormer" and "vocals_rms_db" in step3["evidence"]
    from deepsound import media

    step1 = media.read_audio(out / "clip.step1.wav")
    inst = media.read_audio(out / "clip.step3.wav")
    vocals = media.read_audio(out / "clip.step3.vocals.wav")
    np.testing.assert_allclose(inst.waveform + vocals.waveform, step1.waveform, atol=1e-5)
    assert rms_db(vocals.waveform) == pytest.approx(step3["evidence"]["vocals_rms_db"], abs=0.01)


@pytest.fixture
def cli(monkeypatch):
    """The real command with the tiny separator in place of the published one (no weights here)."""
    from typer.testing import CliRunner

    from deepsound.cli import app

    built = {}

    def tiny_from_settings(cls, settings, placement, **kwargs):
        built["settings"], built["placement"] = settings, placement
        return toy.bs_roformer_separator(seed=8, run_batch_size=settings.batch_size)

    monkeypatch.setattr(BsRoformerSeparator, "from_settings", classmethod(tiny_from_settings))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["separate", *map(str, args)]), built


def test_cli_separates_audio_file_atomically_and_refuses_overwrite(cli, tmp_path):
    from deepsound import media

    invoke, built = cli
    src = tmp_path / "song.wav"
    mix = sine_mix(0.3, 22050)
    media.write_audio(src, mix)
    out = tmp_path / "out"
    result = invoke(src, "-o", out, "--batch-size", 2, "--offline", "--only-speech", "--quiet")
    assert result.exit_code == 0, result.output
    assert built["placement"].offline and built["settings"].only_speech
    assert built["settings"].batch_size == 2
    inst = media.read_audio(out / "song.instrumental.wav")
    vocals = media.read_audio(out / "song.vocals.wav")
    assert inst.sample_rate == 22050
    np.testing.assert_allclose(inst.waveform + vocals.waveform, mix.waveform, atol=1e-5)
    report = json.loads((out / "song.separation.json").read_text())
    assert "vocals_energy_share" in report["evidence"]
    assert sorted(p.name for p in out.iterdir()) == [
        "song.instrumental.wav",
        "song.separation.json",
        "song.vocals.wav",
    ]

    again = invoke(src, "-o", out)
    assert again.exit_code == 2 and "already exists" in again.output and "Traceback" not in again.output
    assert invoke(src, "-o", out, "--overwrite", "-q").exit_code == 0
    missing = invoke(tmp_path / "nope.wav", "-o", out)
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_cli_video_gets_instrumental_muxed_with_video_copied(cli, tmp_path):
    from media_factory import make_video

    from deepsound import media

    invoke, _ = cli
    video = make_video(tmp_path / "clip.mp4", duration=1.0, fps=25, size=(96, 64), audio=sine_mix(1.0, 44100))
    out = tmp_path / "out"
    result = invoke(video, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    muxed = media.probe(out / "clip.instrumental.mp4")
    source = media.probe(video)
    assert muxed.has_video and muxed.has_audio
    assert muxed.video_codec == source.video_codec and muxed.num_frames == source.num_frames
    assert (out / "clip.vocals.wav").exists()

    silent = make_video(tmp_path / "silent.mp4", duration=0.5, fps=25, size=(96, 64))
    failed = invoke(silent, "-o", out)
    assert failed.exit_code == 2 and "no audio stream" in failed.output


def write_tiny_files(folder: Path, seed: int = 9) -> tuple[Path, Path]:
    """A checkpoint and a YAML in the published formats, for the tiny configuration."""
    tiny = BsRoformerConfig.tiny()
    ckpt = folder / "tiny.ckpt"
    torch.save(fill_seeded(bsr.build_model(tiny), seed).state_dict(), ckpt)
    yaml_path = folder / "tiny.yaml"
    bands = "".join(f"    - {b}\n" for b in tiny.freqs_per_bands)
    yaml_path.write_text(
        f"audio:\n  chunk_size: {tiny.chunk_size}\n  sample_rate: 44100\n"
        f"model:\n  dim: {tiny.dim}\n  depth: {tiny.depth}\n  stereo: true\n  num_stems: 1\n"
        f"  freqs_per_bands: !!python/tuple\n{bands}  dim_head: {tiny.dim_head}\n  heads: {tiny.heads}\n"
        f"  stft_n_fft: {tiny.stft_n_fft}\n  stft_hop_length: {tiny.stft_hop_length}\n"
        f"  stft_win_length: {tiny.stft_win_length}\n"
        "training:\n  target_instrument: vocals\n"
        f"inference:\n  batch_size: {tiny.batch_size}\n  num_overlap: 2\n"
    )
    assert BsRoformerConfig.from_yaml(yaml_path) == tiny
    return ckpt, yaml_path


def test_from_files_loads_checkpoint_and_yaml(tmp_path):
    ckpt, yaml_path = write_tiny_files(tmp_path)
    loaded = BsRoformerSeparator.from_files(ckpt, yaml_path)
    mix = sine_mix(0.2, 44100)
    np.testing.assert_array_equal(
        loaded.separate(mix).vocals.waveform, toy.bs_roformer_separator(seed=9).separate(mix).vocals.waveform
    )
    assert loaded.source == str(ckpt)


def test_from_config_resolves_registry_names(tmp_path, monkeypatch):
    from deepsound.config import PipelineConfig, SeparatorConfig
    from deepsound.registry import Components
    from deepsound.steps.speech_staged import StagedSpeechDetector
    from deepsound.weights import overrides

    ckpt, yaml_path = write_tiny_files(tmp_path)
    asked = []

    def fake_resolve(name, *, explicit=None, weights_dir=None, offline=False, **_):
        asked.append((name, weights_dir, offline))
        return {"bs_roformer_viperx": ckpt, "bs_roformer_viperx_config": yaml_path}[name]

    monkeypatch.setattr(overrides, "resolve", fake_resolve)
    cfg = PipelineConfig(
        device="cpu", weights_dir=tmp_path, offline=True, separator=SeparatorConfig(only_speech=True)
    )
    components = Components(cfg)
    sep = components.separator  # the registry hands in its one speech detector (the default: staged)
    assert [a[0] for a in asked] == ["bs_roformer_viperx", "bs_roformer_viperx_config"]
    assert all(a[1] == tmp_path and a[2] is True for a in asked)
    assert sep.only_speech and sep.speech_detector is components.speech
    assert isinstance(sep.speech_detector, StagedSpeechDetector)
    assert sep.config == BsRoformerConfig.tiny() and sep.dtype == torch.float32


@pytest.mark.media
def test_real_clip_with_silero_gating_and_muxing(media_dir, tmp_path):
    """aa.mp4 holds a short burst of speech: only around it may anything be removed."""
    from deepsound import media
    from deepsound.cli.separate import separate_file
    from deepsound.models.silero.detector import SileroSpeechDetector

    clip = media_dir / "aa.mp4"
    tiny = toy.bs_roformer_separator(seed=10)
    gated = BsRoformerSeparator(tiny.model, speech_detector=SileroSpeechDetector(), only_speech=True)
    paths = separate_file(gated, clip, tmp_path)
    report = json.loads(paths["evidence"].read_text())["evidence"]
    segments = report["speech_segments"]
    assert segments and report["speech_ratio"] < 0.9
    mix = media.read_audio(clip)
    inst = media.read_audio(paths["instrumental"])
    rate = mix.sample_rate
    untouched = np.ones(mix.num_samples, dtype=bool)
    for a, b in segments:
        untouched[max(int((a - 0.11) * rate), 0) : int((b + 0.11) * rate)] = False
    np.testing.assert_array_equal(inst.waveform[:, untouched], mix.waveform[:, untouched])
    assert not np.array_equal(inst.waveform, mix.waveform)
    muxed, source = media.probe(paths["video"]), media.probe(clip)
    assert muxed.has_audio and abs(muxed.duration - source.duration) < 0.1
