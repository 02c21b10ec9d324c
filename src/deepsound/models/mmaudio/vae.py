"""From MMAudio latents to a waveform: mel VAE decoder + BigVGAN vocoder.

:class:`AudioDecoder` is what the generator calls after sampling:

    mel = decoder.decode(latents)      # (B, L, C) -> (B, n_mels, 2L)
    wav = decoder.vocode(mel)          # -> (B, samples) at decoder.sample_rate

``latents`` are the flow network's output *after* its own un-normalisation,
laid out ``(batch, time, channels)``; the VAE works channel-first, so
:meth:`AudioDecoder.decode` transposes. Both published modes are supported:
``"16k"`` (80-bin mels, hop 256, BigVGAN) and ``"44k"`` (128-bin mels, hop 512,
BigVGAN-v2). The encoder is optional and only loaded on request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from deepsound.errors import ConfigError, WeightsError
from deepsound.models.mmaudio.mel_features import MelSpectrogram, mel_spectrogram_for
from deepsound.models.mmaudio.vae_network import VAE_16K, VAE_44K, MelVAE, VAEConfig
from deepsound.models.mmaudio.vocoder import (
    BIGVGAN_16K,
    BIGVGAN_V2_44K,
    BigVGAN,
    BigVGANConfig,
    load_bigvgan,
)
from deepsound.weights.loading import load_state_into, read_state_dict

if TYPE_CHECKING:
    from deepsound.interfaces import Placement

Mode = Literal["16k", "44k"]
_VAE_CONFIGS: dict[str, VAEConfig] = {"16k": VAE_16K, "44k": VAE_44K}
_VOCODER_CONFIGS: dict[str, BigVGANConfig] = {"16k": BIGVGAN_16K, "44k": BIGVGAN_V2_44K}
_WEIGHT_NAMES = {
    "16k": ("vae_16k", "bigvgan_16k", None),
    "44k": ("vae_44k", "bigvgan_v2_44k", "bigvgan_v2_44k_config"),
}


def _check_mode(mode: str) -> None:
    if mode not in _VAE_CONFIGS:
        raise ConfigError(f"unknown MMAudio audio mode {mode!r} (expected '16k' or '44k')")


@dataclass
class LatentDistribution:
    """Diagonal Gaussian over latents, ``(B, L, C)`` like the flow network's inputs."""

    mean: torch.Tensor
    std: torch.Tensor

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.empty_like(self.mean).normal_(generator=generator)
        return self.mean + self.std * noise


def vae_from_state(
    state: dict[str, torch.Tensor], cfg: VAEConfig, source: str, *, need_encoder: bool = False
) -> MelVAE:
    """Build the VAE from a ``v1-*.pth`` state dict, strictly; encoder tensors are skipped unless needed."""
    model = MelVAE(cfg, with_encoder=need_encoder)
    if not need_encoder:
        state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    load_state_into(model, state, source, f"the {cfg.data_dim}-mel MMAudio VAE")
    model.fold()
    return model.eval().requires_grad_(False)


def load_vae(path: Path, cfg: VAEConfig, *, need_encoder: bool = False) -> MelVAE:
    """Load ``v1-16.pth`` / ``v1-44.pth`` (a bare state dict)."""
    return vae_from_state(read_state_dict(path, "VAE"), cfg, str(path), need_encoder=need_encoder)


class AudioDecoder(nn.Module):
    """Latents -> mel -> waveform for one MMAudio mode (inference only)."""

    def __init__(self, mode: Mode, vae: MelVAE, vocoder: BigVGAN) -> None:
        super().__init__()
        _check_mode(mode)
        self.mode = mode
        self.vae = vae
        self.vocoder = vocoder
        self.mel = mel_spectrogram_for(mode) if vae.encoder is not None else None

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(
        cls,
        mode: Mode,
        vae_path: Path,
        vocoder_path: Path,
        vocoder_config: Path | None = None,
        need_encoder: bool = False,
    ) -> AudioDecoder:
        """Load the published weights; ``vocoder_config`` (a BigVGAN ``config.json``) overrides the built-in one."""
        _check_mode(mode)
        vocoder_cfg = (
            BigVGANConfig.from_json(Path(vocoder_config)) if vocoder_config else _VOCODER_CONFIGS[mode]
        )
        vae = load_vae(Path(vae_path), _VAE_CONFIGS[mode], need_encoder=need_encoder)
        if vocoder_cfg.num_mels != vae.cfg.data_dim:
            raise WeightsError(
                f"{vocoder_config}: vocoder expects {vocoder_cfg.num_mels} mel bins, "
                f"the {mode} VAE makes {vae.cfg.data_dim}"
            )
        vocoder = load_bigvgan(Path(vocoder_path), vocoder_cfg)
        return cls(mode, vae, vocoder).eval()

    @classmethod
    def from_placement(cls, placement: Placement, mode: Mode, *, need_encoder: bool = False) -> AudioDecoder:
        """Resolve the published weights of ``mode`` (``16k`` / ``44k``) and build."""
        return cls.build(mode, *cls.resolve_files(placement, mode), need_encoder=need_encoder)

    @staticmethod
    def resolve_files(placement: Placement, mode: Mode) -> tuple[Path, Path, Path | None]:
        """The VAE, vocoder and (44.1 kHz) vocoder config files of ``mode``, as placed."""
        from deepsound.weights.overrides import resolve_for

        vae_name, vocoder_name, config_name = _WEIGHT_NAMES[mode]
        config = resolve_for(placement, config_name) if config_name else None
        return resolve_for(placement, vae_name), resolve_for(placement, vocoder_name), config

    # ---------------------------------------------------------------- properties
    @property
    def sample_rate(self) -> int:
        return self.vocoder.cfg.sampling_rate

    @property
    def latent_dim(self) -> int:
        return self.vae.cfg.embed_dim

    @property
    def num_mels(self) -> int:
        return self.vae.cfg.data_dim

    @property
    def hop_length(self) -> int:
        """Waveform samples per mel frame."""
        return self.vocoder.cfg.hop_length

    @property
    def samples_per_latent(self) -> int:
        """Waveform samples per latent frame (the VAE doubles the frame rate)."""
        return 2 * self.hop_length

    def train(self, mode: bool = True) -> AudioDecoder:
        # weights are folded for inference: this module never trains
        return super().train(False)

    # ---------------------------------------------------------------- inference
    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``(B, L, latent_dim)`` -> log-mel ``(B, num_mels, 2L)``."""
        if latents.ndim != 3 or latents.shape[-1] != self.latent_dim:
            raise ValueError(f"latents must be (B, L, {self.latent_dim}), got {tuple(latents.shape)}")
        p = self.vae.data_mean
        return self.vae.decode(latents.transpose(1, 2).to(device=p.device, dtype=p.dtype))

    @torch.inference_mode()
    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, num_mels, T)`` -> float32 waveform ``(B, T * hop_length)``."""
        if mel.ndim != 3 or mel.shape[1] != self.num_mels:
            raise ValueError(f"mel must be (B, {self.num_mels}, T), got {tuple(mel.shape)}")
        w = self.vocoder.conv_pre.weight
        return self.vocoder(mel.to(device=w.device, dtype=w.dtype)).squeeze(1).float()

    @torch.inference_mode()
    def encode(self, waveform: torch.Tensor) -> LatentDistribution:
        """Mono waveform ``(B, samples)`` at :attr:`sample_rate` -> latent distribution ``(B, L, C)``."""
        if self.mel is None or self.vae.encoder is None:
            raise RuntimeError("AudioDecoder was built without the VAE encoder (need_encoder=False)")
        p = self.vae.data_mean
        mel = self.mel(waveform.to(device=p.device, dtype=torch.float32)).to(p.dtype)
        mean, logvar = self.vae.encode_moments(mel).chunk(2, dim=1)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        return LatentDistribution(mean.transpose(1, 2), std.transpose(1, 2))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, sample_rate={self.sample_rate}"


__all__ = ["AudioDecoder", "LatentDistribution", "MelSpectrogram", "load_vae", "vae_from_state"]
