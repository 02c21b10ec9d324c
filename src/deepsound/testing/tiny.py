"""Tiny configurations of the real architectures with seeded random weights: tests and examples.

Each builder makes the same classes the published checkpoints load into, at toy widths, with
weights from a seed, in milliseconds and without any file. Production code never imports this
module (a test checks it); tests, benchmarks and notebooks do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from deepsound.models.bs_roformer.config import BsRoformerConfig
from deepsound.models.bs_roformer.network import build_model
from deepsound.models.bs_roformer.separator import BsRoformerSeparator
from deepsound.models.mmaudio.clip import ClipConditioner, tiny_model_config
from deepsound.models.mmaudio.generator import MMAudioGenerator
from deepsound.models.mmaudio.network import MMAudioNetwork
from deepsound.models.mmaudio.synchformer import SynchformerConfig, SynchformerEncoder
from deepsound.models.mmaudio.vae import (
    _VAE_CONFIGS,
    _VOCODER_CONFIGS,
    AudioDecoder,
    BigVGAN,
    BigVGANConfig,
    MelVAE,
    VAEConfig,
    _check_mode,
)
from deepsound.models.mmaudio.variants import Mode, tiny_spec
from deepsound.testing.equivalence import fill_seeded


def clip_conditioner(seed: int = 0) -> ClipConditioner:
    """A small random CLIP built through the same open_clip code path, for tests."""
    torch.manual_seed(seed)
    return ClipConditioner(tiny_model_config())


def synchformer_encoder(seed: int = 0) -> SynchformerEncoder:
    """Small random encoder (width 64, 2 blocks) on the real 224 px / 16-frame grid, for tests."""
    torch.manual_seed(seed)
    model = SynchformerEncoder(SynchformerConfig(embed_dim=64, depth=2, num_heads=4))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return model


def audio_decoder(mode: Mode, *, seed: int = 0, need_encoder: bool = False) -> AudioDecoder:
    """The same code path with small widths and random weights, for tests."""
    _check_mode(mode)
    full_vae, full_voc = _VAE_CONFIGS[mode], _VOCODER_CONFIGS[mode]
    vae_cfg = VAEConfig(data_dim=full_vae.data_dim, embed_dim=full_vae.embed_dim, hidden_dim=8)
    voc_cfg = BigVGANConfig(
        num_mels=full_voc.num_mels,
        upsample_rates=full_voc.upsample_rates,
        upsample_kernel_sizes=full_voc.upsample_kernel_sizes,
        upsample_initial_channel=128,
        resblock_kernel_sizes=full_voc.resblock_kernel_sizes,
        resblock_dilation_sizes=full_voc.resblock_dilation_sizes,
        sampling_rate=full_voc.sampling_rate,
        use_bias_at_final=full_voc.use_bias_at_final,
        use_tanh_at_final=full_voc.use_tanh_at_final,
    )
    gen = torch.Generator().manual_seed(seed)
    vae = MelVAE(vae_cfg, with_encoder=need_encoder)
    vocoder = BigVGAN(voc_cfg)
    with torch.no_grad():
        for module in (vae, vocoder):
            for name, p in module.named_parameters():
                scale = 0.1 if p.ndim <= 1 else 1.0 / max(p[0].numel(), 1) ** 0.5
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
                if name.endswith("learnable_gain"):
                    p.zero_()
    vae.fold()
    return AudioDecoder(mode, vae.eval().requires_grad_(False), vocoder.eval().requires_grad_(False)).eval()


def mmaudio_generator(
    seed: int = 0,
    mode: Mode = "16k",
    *,
    v2: bool = False,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    batched_cfg: bool | None = None,
) -> MMAudioGenerator:
    """Every part with the real structure, small widths and random weights (built in-process)."""
    clip = clip_conditioner(seed=seed)
    synchformer = synchformer_encoder(seed=seed)
    decoder = audio_decoder(mode, seed=seed)
    spec = dataclasses.replace(
        tiny_spec(mode, v2=v2),
        latent_dim=decoder.latent_dim,
        clip_dim=clip.image_dim,
        text_dim=clip.text_dim,
        sync_dim=synchformer.feature_dim,
    )
    network = fill_seeded(MMAudioNetwork(spec), seed=seed)
    with torch.no_grad():  # a usable latent scale: positive standard deviations
        network.latent_std.abs_().add_(0.5)
    return MMAudioGenerator(
        network,
        clip,
        synchformer,
        decoder,
        mode=mode,
        variant=f"tiny_{mode}",
        device=device,
        dtype=dtype,
        batched_cfg=batched_cfg,
    )


def bs_roformer_separator(seed: int = 0, **kwargs: Any) -> BsRoformerSeparator:
    """A toy-sized model with seeded random weights (tests, examples); runs in milliseconds."""
    config = kwargs.pop("config", None) or BsRoformerConfig.tiny()
    model = fill_seeded(build_model(config), seed)
    kwargs.setdefault("source", f"tiny random weights (seed {seed})")
    return BsRoformerSeparator(model, **kwargs)
