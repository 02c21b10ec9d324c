"""MMAudio latent -> mel -> waveform decoders, checked against the official implementation.

How the reference data in ``tests/data/mmaudio_dec/`` was made: ``tools/make_goldens.py mmaudio
--official <MMAudio checkout> --only dec`` (``--full`` adds the published widths), from
hkchengrex/MMAudio at commit 974010a026c731054592d8f777218bd9d85a6c24. The official MMAudio code (``mmaudio.ext.autoencoder.vae`` ``VAE``/``get_my_vae``,
``mmaudio.ext.bigvgan.models.BigVGANVocoder`` with its ``bigvgan_vocoder.yml``,
``mmaudio.ext.bigvgan_v2.bigvgan.BigVGAN`` with the ``bigvgan_v2_44khz_128band_512x`` config.json
numbers, ``use_cuda_kernel=False``, and ``mmaudio.ext.mel_converter.get_mel_converter``) was run
on CPU in float32.

* Manifests: ``parameter_manifest(module.state_dict())`` of the freshly built official modules, i.e.
  the layout the checkpoints must fit (weight-norm pairs appear as
  ``parametrizations.weight.original0/1``; the VAE includes its encoder and the ``data_mean`` /
  ``data_std`` buffers; BigVGAN includes its computed anti-alias ``filter`` buffers).
* Goldens: every *parameter* of the official module was filled with
  ``deepsound.testing.equivalence.fill_seeded(module, seed)`` (seed 7 for the "tiny" widths, 1234 for the
  published widths); buffers were left as the official code computes them (anti-alias filters)
  or defines them (VAE mel statistics, saved in the golden file as ``data_mean``/``data_std``).
  Then the official inference preparation ran (``VAE.remove_weight_norm()``,
  ``remove_weight_norm()`` of both vocoders) and, under ``torch.inference_mode``:
  ``VAE.decode`` on a random ``(1, C, 8)`` latent (stored transposed as ``(1, 8, C)``, the layout
  ``FeaturesUtils.decode`` receives), the vocoders on an 8-frame mel ``mean + 0.5 * std * N(0, 1)``
  (a forward hook also saved the ``conv_post`` output, because random weights saturate the
  published-width vocoders' final tanh / clamp), and for the tiny VAEs the mel converter plus
  ``encoder(normalize(mel))`` on a random 4096-sample waveform, summarised as the
  ``DiagonalGaussianDistribution`` mean and std. Tiny widths: VAE ``hidden_dim=8``, vocoder
  ``upsample_initial_channel=128``; everything else is the published configuration.

Our side rebuilds the same weights from the same names (``seeded_tensor``) in the *checkpoint*
layout, writes them to a file and loads it through the real loaders, so the name mapping,
weight-norm folding and strictness are exercised too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from deepsound.errors import WeightsError
from deepsound.models.mmaudio.bigvgan_layers import SnakeBeta
from deepsound.models.mmaudio.mel_features import MEL_16K, MEL_44K, MelSpectrogram, slaney_mel_filterbank
from deepsound.models.mmaudio.vae import AudioDecoder, load_vae, vae_from_state
from deepsound.models.mmaudio.vae_network import VAE_16K, VAE_44K, MelVAE, VAEConfig
from deepsound.models.mmaudio.vocoder import (
    BIGVGAN_16K,
    BIGVGAN_V2_44K,
    BigVGAN,
    BigVGANConfig,
    bigvgan_from_state,
    fold_weight_norm,
    load_bigvgan,
)
from deepsound.testing import tiny as toy
from deepsound.testing.equivalence import load_manifest, manifest_diff, relative_l2, seeded_tensor

DATA = Path(__file__).parent / "data" / "mmaudio_dec"
TOL = 1e-4
SEED_TINY, SEED_FULL = 7, 1234
MODES = ("16k", "44k")
VAE_CFG = {"16k": VAE_16K, "44k": VAE_44K}
VOC_CFG = {"16k": BIGVGAN_16K, "44k": BIGVGAN_V2_44K}
WN_NAMES = {
    "param": ("parametrizations.weight.original0", "parametrizations.weight.original1"),
    "legacy": ("weight_g", "weight_v"),
}


# ------------------------------------------------------------------ checkpoint-layout helpers
def vocoder_checkpoint(model: BigVGAN, seed: int | None, form: str = "param") -> dict[str, torch.Tensor]:
    """Our vocoder's tensors in the published checkpoint layout (weight norm as g/v pairs).

    With a seed, parameters get ``seeded_tensor`` values under their checkpoint names (what
    ``fill_seeded`` gives the official module); buffers keep our computed values. Without one,
    tensors are empty placeholders with the right shapes (for manifests).
    """
    convs = {name for name, m in model.named_modules() if isinstance(m, nn.Conv1d | nn.ConvTranspose1d)}
    buffers = dict(model.named_buffers())
    out: dict[str, torch.Tensor] = {}

    def make(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.empty(shape, device="meta") if seed is None else seeded_tensor(name, shape, seed)

    for key, value in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "weight" and prefix in convs:
            g_name, v_name = WN_NAMES[form]
            g_shape = (value.shape[0],) + (1,) * (value.ndim - 1)
            # seeds come from the official (parametrisation) names whatever the stored form
            out[f"{prefix}.{g_name}"] = make(f"{prefix}.{WN_NAMES['param'][0]}", g_shape)
            out[f"{prefix}.{v_name}"] = make(f"{prefix}.{WN_NAMES['param'][1]}", tuple(value.shape))
        elif key in buffers:
            out[key] = value.clone()
        else:
            out[key] = make(key, tuple(value.shape))
    return out


def vae_checkpoint(cfg: VAEConfig, seed: int | None, golden: dict | None = None) -> dict[str, torch.Tensor]:
    """A full ``v1-*.pth``-style state dict (encoder included), seeded like ``fill_seeded``."""
    with torch.device("meta"):
        layout = MelVAE(cfg, with_encoder=True).state_dict()
    out = {}
    for key, value in layout.items():
        if seed is None:
            out[key] = value
        elif key in ("data_mean", "data_std"):
            out[key] = golden[key].reshape(1, -1, 1)
        else:
            out[key] = seeded_tensor(key, tuple(value.shape), seed)
    return out


def manifest(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def tiny_cfgs(mode: str) -> tuple[VAEConfig, BigVGANConfig]:
    small = toy.audio_decoder(mode)
    return small.vae.cfg, small.vocoder.cfg


def golden(name: str) -> dict:
    return torch.load(DATA / name, weights_only=True)


def run_with_pre_final(vocoder: BigVGAN, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    captured = {}
    handle = vocoder.conv_post.register_forward_hook(lambda m, i, o: captured.setdefault("pre", o.clone()))
    try:
        with torch.inference_mode():
            wave = vocoder(mel)
    finally:
        handle.remove()
    return wave.squeeze(1), captured["pre"].squeeze(1)


# ------------------------------------------------------------------ layouts
@pytest.mark.parametrize("mode", MODES)
def test_vae_layout_matches_official_checkpoint(mode):
    ours = manifest(vae_checkpoint(VAE_CFG[mode], None))
    assert manifest_diff(ours, load_manifest(DATA / f"manifest_vae_{mode}.json")) == []


@pytest.mark.parametrize(("mode", "file"), [("16k", "bigvgan_16k"), ("44k", "bigvgan_v2_44k")])
def test_vocoder_layout_matches_official_checkpoint(mode, file):
    with torch.device("meta"):
        model = BigVGAN(VOC_CFG[mode])
    ours = manifest(vocoder_checkpoint(model, None))
    assert manifest_diff(ours, load_manifest(DATA / f"manifest_{file}.json")) == []


def test_published_44k_config_json_gives_builtin_config():
    assert BigVGANConfig.from_json(DATA / "bigvgan_v2_44k_config.json") == BIGVGAN_V2_44K


@pytest.mark.parametrize("mode", MODES)
def test_antialias_filters_match_official_values(mode):
    """The 12-tap filters are computed, not learned: ours must equal the official computation."""
    model = BigVGAN(tiny_cfgs(mode)[1])
    act = model.resblocks[0].activations[0]
    expected = golden(f"vocoder_{mode}_tiny.pt")["filter"]
    assert torch.allclose(act.upsample.filter, expected, rtol=0, atol=1e-7)
    assert torch.allclose(act.downsample.lowpass.filter, expected, rtol=0, atol=1e-7)


# ------------------------------------------------------------------ tiny goldens (default)
@pytest.mark.parametrize("mode", MODES)
def test_tiny_vae_decode_matches_official(mode, tmp_path):
    ref = golden(f"vae_{mode}_tiny.pt")
    vae_cfg, _ = tiny_cfgs(mode)
    path = tmp_path / "vae.pth"
    torch.save(vae_checkpoint(vae_cfg, SEED_TINY, ref), path)
    vae = load_vae(path, vae_cfg)
    decoder = AudioDecoder(mode, vae, BigVGAN(tiny_cfgs(mode)[1]))
    mel = decoder.decode(ref["latent"])
    assert relative_l2(mel, ref["mel"]) <= TOL


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("form", ["param", "legacy"])
def test_tiny_vocoder_matches_official(mode, form, tmp_path):
    ref = golden(f"vocoder_{mode}_tiny.pt")
    _, voc_cfg = tiny_cfgs(mode)
    path = tmp_path / "generator.pt"
    torch.save({"generator": vocoder_checkpoint(BigVGAN(voc_cfg), SEED_TINY, form)}, path)
    vocoder = load_bigvgan(path, voc_cfg)
    wave, pre = run_with_pre_final(vocoder, ref["mel"])
    assert relative_l2(pre, ref["pre_final"]) <= TOL
    assert relative_l2(wave, ref["wave"]) <= TOL
    # the full decoder returns the same waveform, without the channel axis
    decoder = AudioDecoder(mode, MelVAE(tiny_cfgs(mode)[0]), vocoder)
    out = decoder.vocode(ref["mel"])
    assert out.shape == (1, 8 * voc_cfg.hop_length) and out.dtype == torch.float32
    assert relative_l2(out, ref["wave"]) <= TOL


def test_folded_checkpoint_loads_like_weight_normed_one():
    """A checkpoint saved after weight-norm removal (plain ``weight``) gives the same vocoder."""
    _, voc_cfg = tiny_cfgs("44k")
    state = vocoder_checkpoint(BigVGAN(voc_cfg), SEED_TINY)
    a = bigvgan_from_state(state, voc_cfg, "a")
    b = bigvgan_from_state(fold_weight_norm(state), voc_cfg, "b")
    mel = torch.randn(1, voc_cfg.num_mels, 3)
    with torch.inference_mode():
        assert torch.equal(a(mel), b(mel))


@pytest.mark.parametrize("mode", MODES)
def test_tiny_encoder_and_mel_match_official(mode):
    ref = golden(f"vae_{mode}_tiny.pt")
    vae_cfg, voc_cfg = tiny_cfgs(mode)
    vae = vae_from_state(vae_checkpoint(vae_cfg, SEED_TINY, ref), vae_cfg, "seeded", need_encoder=True)
    decoder = AudioDecoder(mode, vae, BigVGAN(voc_cfg))
    assert relative_l2(decoder.mel(ref["wave"]), ref["wave_mel"]) <= TOL
    dist = decoder.encode(ref["wave"])
    assert relative_l2(dist.mean, ref["enc_mean"]) <= TOL
    assert relative_l2(dist.std, ref["enc_std"]) <= TOL
    assert dist.sample(torch.Generator().manual_seed(0)).shape == dist.mean.shape


def test_snake_inference_path_equals_autograd_path():
    act = SnakeBeta(4)
    with torch.no_grad():
        act.alpha.normal_(0, 0.5)
        act.beta.normal_(0, 0.5)
    x = torch.randn(2, 4, 33) * 4
    with torch.inference_mode():
        fast = act(x)
    slow = act(x)  # parameters require grad: the out-of-place path
    assert slow.requires_grad and torch.equal(fast, slow.detach())


def test_bfloat16_decoder_runs():
    dec = toy.audio_decoder("44k", need_encoder=True).to(torch.bfloat16)
    wave = dec.vocode(dec.decode(torch.randn(1, 3, dec.latent_dim)))
    assert wave.dtype == torch.float32 and torch.isfinite(wave).all()
    assert dec.encode(wave).mean.shape == (1, 3, dec.latent_dim)


@pytest.mark.parametrize("params", [MEL_16K, MEL_44K])
def test_slaney_filterbank_matches_librosa(params):
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(
        sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax
    )
    ours = slaney_mel_filterbank(params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax)
    assert relative_l2(torch.from_numpy(ours), torch.from_numpy(expected)) <= 1e-6
    assert MelSpectrogram(params).mel_basis.shape == (params.n_mels, params.n_fft // 2 + 1)


# ------------------------------------------------------------------ API and errors
@pytest.mark.parametrize("mode", MODES)
def test_tiny_decoder_shapes_and_rates(mode):
    dec = toy.audio_decoder(mode)
    assert dec.sample_rate == {"16k": 16_000, "44k": 44_100}[mode]
    latents = torch.randn(2, 5, dec.latent_dim)
    mel = dec.decode(latents)
    assert mel.shape == (2, dec.num_mels, 10)
    wave = dec.vocode(mel)
    assert wave.shape == (2, 5 * dec.samples_per_latent)
    assert torch.isfinite(wave).all() and wave.abs().max() <= 1.0
    with pytest.raises(ValueError):
        dec.decode(latents.transpose(1, 2))
    with pytest.raises(RuntimeError):
        dec.encode(wave)


def test_build_loads_both_files(tmp_path, monkeypatch):
    """``build`` wires the two loaders; checked with tiny configurations patched in."""
    import deepsound.models.mmaudio.vae as vae_module

    vae_cfg, voc_cfg = tiny_cfgs("16k")
    monkeypatch.setitem(vae_module._VAE_CONFIGS, "16k", vae_cfg)
    ref = golden("vae_16k_tiny.pt")
    torch.save(vae_checkpoint(vae_cfg, SEED_TINY, ref), tmp_path / "v1-16.pth")
    torch.save({"generator": vocoder_checkpoint(BigVGAN(voc_cfg), SEED_TINY, "legacy")}, tmp_path / "g.pt")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**voc_cfg.__dict__, "batch_size": 4}))
    dec = AudioDecoder.build("16k", tmp_path / "v1-16.pth", tmp_path / "g.pt", config)
    assert relative_l2(dec.decode(ref["latent"]), ref["mel"]) <= TOL
    assert dec.vae.encoder is None


def test_wrong_vocoder_checkpoint_names_the_file(tmp_path):
    _, voc16 = tiny_cfgs("16k")
    _, voc44 = tiny_cfgs("44k")
    path = tmp_path / "best_netG.pt"
    torch.save({"generator": vocoder_checkpoint(BigVGAN(voc16), 0)}, path)
    with pytest.raises(WeightsError, match="best_netG.pt.*does not fit"):
        load_bigvgan(path, voc44)


def test_wrong_vae_checkpoint_names_the_file(tmp_path):
    cfg16, _ = tiny_cfgs("16k")
    cfg44, _ = tiny_cfgs("44k")
    path = tmp_path / "v1-16.pth"
    torch.save(vae_checkpoint(cfg16, 0, {"data_mean": torch.zeros(80), "data_std": torch.ones(80)}), path)
    with pytest.raises(WeightsError, match="v1-16.pth.*does not fit"):
        load_vae(path, cfg44)


def test_missing_and_corrupt_files_raise_weights_error(tmp_path):
    cfg, voc = tiny_cfgs("16k")
    with pytest.raises(WeightsError, match="absent.pth"):
        load_vae(tmp_path / "absent.pth", cfg)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pt"):
        load_bigvgan(junk, voc)
    broken = tmp_path / "broken.pt"
    state = vocoder_checkpoint(BigVGAN(voc), 0, "legacy")
    del state["conv_pre.weight_v"]
    torch.save({"generator": state}, broken)
    with pytest.raises(WeightsError, match="broken.pt.*weight-norm"):
        load_bigvgan(broken, voc)


# ------------------------------------------------------------------ published widths (slow)
@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_full_vae_decode_matches_official(mode):
    ref = golden(f"vae_{mode}_full.pt")
    cfg = VAE_CFG[mode]
    state = {k: v for k, v in vae_checkpoint(cfg, SEED_FULL, ref).items() if not k.startswith("encoder.")}
    vae = vae_from_state(state, cfg, "seeded")
    mel = AudioDecoder(mode, vae, BigVGAN(tiny_cfgs(mode)[1])).decode(ref["latent"])
    assert relative_l2(mel, ref["mel"]) <= TOL


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_full_vocoder_matches_official(mode):
    ref = golden(f"vocoder_{mode}_full.pt")
    cfg = VOC_CFG[mode]
    with torch.device("meta"):
        layout = vocoder_checkpoint(BigVGAN(cfg), None)
    # filters are computed buffers, identical in every activation: take them from a small instance
    computed = golden(f"vocoder_{mode}_tiny.pt")["filter"]
    state = {
        k: computed.clone() if k.endswith("filter") else seeded_tensor(k, tuple(v.shape), SEED_FULL)
        for k, v in layout.items()
    }
    vocoder = bigvgan_from_state(state, cfg, "seeded")
    wave, pre = run_with_pre_final(vocoder, ref["mel"])
    assert relative_l2(pre, ref["pre_final"]) <= TOL
    assert relative_l2(wave, ref["wave"]) <= TOL
