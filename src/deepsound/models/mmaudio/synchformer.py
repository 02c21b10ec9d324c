"""Synchformer visual encoder: 25 fps frames -> 24 synchronisation features per second.

MMAudio conditions its audio on features of Synchformer's video branch
(Iashin et al., 2024), a MotionFormer-style video ViT trained for audio-visual
synchrony. The video is cut into windows of 16 frames every 8 frames (0.64 s
windows, 0.32 s hop at 25 fps); each window yields 8 feature vectors (one per
tubelet of 2 frames), and the windows' vectors are concatenated in order.

Only the visual branch is built. The published ``synchformer_state_dict.pth``
also holds the audio branch and the synchrony head; like the reference
implementation, loading keeps the ``vfeat_extractor.*`` entries and requires
them to fit exactly.

Dtype policy: the encoder computes in the dtype of its parameters (float32 by
default, or bfloat16 after ``.to(torch.bfloat16)``, as MMAudio runs it on
GPUs). Inputs are moved to the parameters' device and dtype, and features come
back in that dtype.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from deepsound.errors import MediaError
from deepsound.models.mmaudio.synchformer_layers import (
    DividedSpaceTimeBlock,
    PatchEmbed2D,
    PatchEmbed3D,
    SpatialAggregator,
)
from deepsound.weights.loading import LoadRules, load_into

if TYPE_CHECKING:
    from deepsound.interfaces import Placement

SEGMENT_FRAMES = 16
SEGMENT_STRIDE = 8
IMAGE_SIZE = 224
CHECKPOINT_PREFIX = "vfeat_extractor."


@dataclass(frozen=True)
class SynchformerConfig:
    """Architecture of the visual branch; the defaults are the published model."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    tubelet: int = 2
    frames: int = SEGMENT_FRAMES
    image_size: int = IMAGE_SIZE

    @property
    def time_steps(self) -> int:
        return self.frames // self.tubelet

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class MotionFormerVisual(nn.Module):
    """The video ViT with divided space-time attention and per-frame spatial pooling."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed2D(dim, config.patch_size)
        self.patch_embed_3d = PatchEmbed3D(dim, config.patch_size, config.tubelet)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.patches + 1, dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, config.time_steps, dim))
        self.blocks = nn.ModuleList(
            DividedSpaceTimeBlock(dim, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.spatial_attn_agg = SpatialAggregator(dim, config.num_heads, config.mlp_ratio)

    def positional_embedding(self) -> torch.Tensor:
        """(1, 1 + T*N, D): spatial embedding of the patch plus temporal embedding of its frame."""
        space = self.pos_embed[:, 1:].unsqueeze(1)  # (1, 1, N, D)
        time = self.temp_embed.unsqueeze(2)  # (1, T, 1, D)
        grid = (space + time).flatten(1, 2)
        return torch.cat((self.pos_embed[:, :1], grid), dim=1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(N, C, 16, 224, 224) -> (N, 8, D) features, one per tubelet."""
        n = video.shape[0]
        cfg = self.config
        tokens = self.patch_embed_3d(video)
        tokens = torch.cat((self.cls_token.expand(n, -1, -1), tokens), dim=1)
        x = tokens + self.positional_embedding()
        for block in self.blocks:
            x = block(x, frames=cfg.time_steps, patches=cfg.patches)
        x = self.norm(x[:, 1:])
        x = x.reshape(n * cfg.time_steps, cfg.patches, cfg.embed_dim)
        return self.spatial_attn_agg(x).view(n, cfg.time_steps, cfg.embed_dim)


class SynchformerEncoder(nn.Module):
    """Synchformer's visual branch with MMAudio's windowing of the video."""

    def __init__(self, config: SynchformerConfig | None = None) -> None:
        super().__init__()
        self.config = config or SynchformerConfig()
        self.vfeat_extractor = MotionFormerVisual(self.config)
        self.eval()

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        config: SynchformerConfig | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> SynchformerEncoder:
        """Build the published architecture and load ``synchformer_state_dict.pth`` strictly.

        Entries outside ``vfeat_extractor.`` (audio branch, synchrony head) are
        ignored; every visual-branch tensor must be present with its shape.
        ``config`` defaults to the published architecture.
        """
        with torch.device("meta"):
            model = cls(config)
        rules = LoadRules(keep=(f"^{re.escape(CHECKPOINT_PREFIX)}",))
        # mapped: the audio branch and head in the file are never read
        load_into(model, path, "the Synchformer visual encoder", rules, assign=True, mmap=True)
        return model.to(device=device, dtype=dtype).eval()

    @classmethod
    def from_placement(cls, placement: Placement) -> SynchformerEncoder:
        """Resolve the published weights and place the encoder as the pipeline asks."""
        from deepsound.weights.loading import torch_dtype
        from deepsound.weights.overrides import resolve_for

        path = resolve_for(placement, "synchformer")
        return cls.load(
            path, device=placement.resolved_device(), dtype=torch_dtype(placement.resolved_dtype())
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.vfeat_extractor.pos_embed.dtype

    @property
    def device(self) -> torch.device:
        return self.vfeat_extractor.pos_embed.device

    @property
    def feature_dim(self) -> int:
        return self.config.embed_dim

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        """(N, 16, 3, 224, 224) windows in [-1, 1] -> (N, 8, D)."""
        # the tubelet convolution wants channels before time; a strided view, no copy
        return self.vfeat_extractor(segments.transpose(1, 2))

    @torch.inference_mode()
    def encode(self, frames: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """(B, T, 3, 224, 224) frames in [-1, 1] at 25 fps -> (B, S*8, D), S = (T - 16) // 8 + 1.

        Windows are strided views of ``frames`` (not copies); ``batch_size``
        windows are encoded per forward pass (default: B, as MMAudio does).
        """
        if frames.ndim != 5 or tuple(frames.shape[2:]) != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"expected frames (B, T, 3, 224, 224), got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        if t < SEGMENT_FRAMES:
            raise MediaError(f"video too short for Synchformer: {t} frames at 25 fps, need {SEGMENT_FRAMES}")
        frames = frames.to(device=self.device, dtype=self.dtype)
        windows = frames.unfold(1, SEGMENT_FRAMES, SEGMENT_STRIDE)  # (B, S, 3, H, W, 16)
        s = windows.shape[1]
        windows = windows.permute(0, 1, 5, 2, 3, 4).flatten(0, 1)  # (B*S, 16, 3, H, W)
        step = b if batch_size is None or batch_size <= 0 else batch_size
        out = torch.cat([self(windows[i : i + step]) for i in range(0, b * s, step)], dim=0)
        return out.reshape(b, s * self.config.time_steps, self.config.embed_dim)
