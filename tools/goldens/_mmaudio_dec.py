"""MMAudio's decoders (VAE, BigVGAN 16 kHz, BigVGAN-v2 44.1 kHz, mel converter): ``tests/data/mmaudio_dec``.

Recipe (see ``tests/test_mmaudio_decoding.py``): official modules built at tiny widths (VAE
``hidden_dim=8``, vocoders ``upsample_initial_channel=128``; seed 7) and, with ``--full``, at the
published widths (seed 1234); parameters from ``fill_seeded``, buffers as the official code computes
them; weight norm removed as the official loaders do; run in float32 under inference mode. All inputs
come from one ``torch.Generator`` seeded 99, drawn in a fixed order (tiny 16k, tiny 44k, full 16k,
full 44k; per mode the latent, for tiny sizes a waveform, then the vocoder's mel).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from goldens._common import save

SEED_TINY, SEED_FULL, INPUT_SEED = 7, 1234, 99
TINY_VAE_WIDTH, TINY_VOCODER_CHANNELS = 8, 128
LATENT_DIM = {"16k": 20, "44k": 40}
MELS = {"16k": 80, "44k": 128}
# The published BigVGAN-v2 44.1 kHz config.json (nvidia/bigvgan_v2_44khz_128band_512x) lives beside
# the goldens: the official code reads it from the hub, which the golden runs must not need.
V2_CONFIG = "mmaudio_dec/bigvgan_v2_44k_config.json"


def _vae(mode: str, full: bool):
    from mmaudio.ext.autoencoder.vae import VAE, get_my_vae

    if full:
        return get_my_vae(mode)
    return VAE(data_dim=MELS[mode], embed_dim=LATENT_DIM[mode], hidden_dim=TINY_VAE_WIDTH)


def _vocoder(mode: str, full: bool, v2_config: dict):
    if mode == "16k":
        from mmaudio.ext.bigvgan.bigvgan import _bigvgan_vocoder_path
        from mmaudio.ext.bigvgan.models import BigVGANVocoder
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(_bigvgan_vocoder_path)
        if not full:
            cfg.upsample_initial_channel = TINY_VOCODER_CHANNELS
        return BigVGANVocoder(cfg)
    from mmaudio.ext.bigvgan_v2.bigvgan import BigVGAN
    from mmaudio.ext.bigvgan_v2.env import AttrDict

    cfg = dict(v2_config)
    if not full:
        cfg["upsample_initial_channel"] = TINY_VOCODER_CHANNELS
    return BigVGAN(AttrDict(cfg), use_cuda_kernel=False)


def manifests(out: Path, v2_config: dict) -> list[Path]:
    from deepsound.testing.equivalence import parameter_manifest

    written = []
    for name, module in (
        ("vae_16k", lambda: _vae("16k", True)),
        ("vae_44k", lambda: _vae("44k", True)),
        ("bigvgan_16k", lambda: _vocoder("16k", True, v2_config)),
        ("bigvgan_v2_44k", lambda: _vocoder("44k", True, v2_config)),
    ):
        with torch.device("meta"):
            state = module().state_dict()
        rel = f"mmaudio_dec/manifest_{name}.json"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(json.dumps(parameter_manifest(state), indent=0) + "\n", encoding="utf-8")
        written.append(Path(rel))
    return written


def _run_vocoder(vocoder, mel: torch.Tensor) -> dict[str, torch.Tensor]:
    captured = {}
    hook = vocoder.conv_post.register_forward_hook(lambda m, i, o: captured.setdefault("pre", o.clone()))
    with torch.inference_mode():
        wave = vocoder(mel)
    hook.remove()
    return {"wave": wave.squeeze(1), "pre_final": captured["pre"].squeeze(1)}


def goldens(out: Path, *, full: bool, data: Path | None = None) -> list[Path]:
    from mmaudio.ext.mel_converter import get_mel_converter

    from deepsound.testing.equivalence import fill_seeded

    data = data or Path(__file__).resolve().parents[2] / "tests" / "data"
    v2_config = json.loads((data / V2_CONFIG).read_text(encoding="utf-8"))
    written = manifests(out, v2_config)
    gen = torch.Generator().manual_seed(INPUT_SEED)
    for size in ("tiny", "full"):
        for mode in ("16k", "44k"):
            big = size == "full"
            seed = SEED_FULL if big else SEED_TINY
            vae = _vae(mode, big).eval()
            mean, std = vae.data_mean.reshape(1, -1, 1).clone(), vae.data_std.reshape(1, -1, 1).clone()
            latent = torch.randn(1, LATENT_DIM[mode], 8, generator=gen)
            wave = None if big else (0.3 * torch.randn(1, 4096, generator=gen)).clamp(-1, 1)
            mel_in = mean + 0.5 * std * torch.randn(1, MELS[mode], 8, generator=gen)
            if big and not full:
                continue  # the draws above keep later inputs where they were
            fill_seeded(vae, seed).remove_weight_norm()
            with torch.inference_mode():
                golden = {"latent": latent.transpose(1, 2).clone(), "mel": vae.decode(latent)}
                golden |= {"data_mean": mean.flatten(), "data_std": std.flatten()}
                if wave is not None:
                    mel = get_mel_converter(mode)(wave)
                    dist = vae.encode(mel)
                    golden |= {"wave": wave, "wave_mel": mel}
                    golden |= {"enc_mean": dist.mean.transpose(1, 2), "enc_std": dist.std.transpose(1, 2)}
            written.append(save(golden, out, f"mmaudio_dec/vae_{mode}_{size}.pt"))
            del vae
            vocoder = fill_seeded(_vocoder(mode, big, v2_config).eval(), seed)
            vocoder.remove_weight_norm()
            golden = {"mel": mel_in, **_run_vocoder(vocoder, mel_in)}
            golden["filter"] = vocoder.resblocks[0].activations[0].upsample.filter.clone()
            written.append(save(golden, out, f"mmaudio_dec/vocoder_{mode}_{size}.pt"))
            del vocoder
    return written
