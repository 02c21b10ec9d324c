"""The published MMAudio variants and the sequence lengths they work with.

Every number here is fixed by the released checkpoints: the network widths by
the weight shapes, the sequence lengths by how audio, CLIP frames (8 fps) and
Synchformer frames (25 fps, 16-frame segments every 8 frames) line up in time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from deepsound.errors import ConfigError

Mode = Literal["16k", "44k"]

CLIP_FPS = 8.0
SYNC_FPS = 25.0
CLIP_SIZE = 384
SYNC_SIZE = 224
SYNC_SEGMENT = 16
SYNC_STEP = 8
SYNC_TOKENS_PER_SEGMENT = 8


MIN_DURATION = 0.64  # seconds: one 16-frame Synchformer window at 25 fps


@dataclass(frozen=True)
class SequenceConfig:
    """Token counts of each stream for a clip of ``duration`` seconds (same formulas as MMAudio)."""

    duration: float
    sampling_rate: int
    spectrogram_frame_rate: int  # hop length of the mel spectrogram
    latent_downsample_rate: int = 2

    @property
    def latent_seq_len(self) -> int:
        return int(
            math.ceil(
                self.duration * self.sampling_rate / self.spectrogram_frame_rate / self.latent_downsample_rate
            )
        )

    @property
    def clip_seq_len(self) -> int:
        return int(self.duration * CLIP_FPS)

    @property
    def sync_seq_len(self) -> int:
        frames = self.duration * SYNC_FPS
        segments = (frames - SYNC_SEGMENT) // SYNC_STEP + 1
        return int(segments * SYNC_SEGMENT / 2)

    @property
    def num_audio_samples(self) -> int:
        """Samples the vocoder produces: a whole number of latents, hence slightly more than asked."""
        return self.latent_seq_len * self.spectrogram_frame_rate * self.latent_downsample_rate

    def with_duration(self, duration: float) -> SequenceConfig:
        return replace(self, duration=float(duration))


SEQUENCE_16K = SequenceConfig(duration=8.0, sampling_rate=16000, spectrogram_frame_rate=256)
SEQUENCE_44K = SequenceConfig(duration=8.0, sampling_rate=44100, spectrogram_frame_rate=512)


def sequence_config(mode: Mode, duration: float = 8.0) -> SequenceConfig:
    base = {"16k": SEQUENCE_16K, "44k": SEQUENCE_44K}.get(mode)
    if base is None:
        raise ConfigError(f"unknown MMAudio mode {mode!r}; choose 16k or 44k")
    return base.with_duration(duration)


@dataclass(frozen=True)
class NetworkSpec:
    """Hyper-parameters of one flow network."""

    latent_dim: int
    hidden_dim: int
    depth: int
    fused_depth: int
    num_heads: int
    clip_dim: int = 1024
    sync_dim: int = 768
    text_dim: int = 1024
    text_seq_len: int = 77
    mlp_ratio: float = 4.0
    v2: bool = False


@dataclass(frozen=True)
class Variant:
    """A released model: its network, its audio mode and the registry names of its weight files."""

    name: str
    mode: Mode
    network: NetworkSpec

    @property
    def sampling_rate(self) -> int:
        return sequence_config(self.mode).sampling_rate

    @property
    def weights_name(self) -> str:
        return f"mmaudio_{self.name}"

    @property
    def vae_name(self) -> str:
        return "vae_16k" if self.mode == "16k" else "vae_44k"

    @property
    def vocoder_name(self) -> str:
        return "bigvgan_16k" if self.mode == "16k" else "bigvgan_v2_44k"


def _spec(latent_dim: int, heads: int, depth: int, fused: int, v2: bool = False) -> NetworkSpec:
    return NetworkSpec(
        latent_dim=latent_dim, hidden_dim=64 * heads, depth=depth, fused_depth=fused, num_heads=heads, v2=v2
    )


VARIANTS: dict[str, Variant] = {
    "small_16k": Variant("small_16k", "16k", _spec(20, 7, 12, 8)),
    "small_44k": Variant("small_44k", "44k", _spec(40, 7, 12, 8)),
    "medium_44k": Variant("medium_44k", "44k", _spec(40, 14, 12, 8)),
    "large_44k": Variant("large_44k", "44k", _spec(40, 14, 21, 14)),
    "large_44k_v2": Variant("large_44k_v2", "44k", _spec(40, 14, 21, 14, v2=True)),
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ConfigError(f"unknown MMAudio variant {name!r}; choose one of: {', '.join(VARIANTS)}") from None


def tiny_spec(mode: Mode = "16k", *, v2: bool = False) -> NetworkSpec:
    """A few-thousand-parameter network with the real structure, for tests."""
    return NetworkSpec(
        latent_dim=20 if mode == "16k" else 40,
        hidden_dim=64,
        depth=3,
        fused_depth=1,
        num_heads=2,
        clip_dim=32,
        sync_dim=24,
        text_dim=32,
        text_seq_len=77,
        v2=v2,
    )
