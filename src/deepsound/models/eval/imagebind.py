"""ImageBind (huge) vision and audio towers, for av-benchmark's IB-score.

IB-score is the cosine similarity between ImageBind's embedding of a video
(the reference clip) and of the generated audio, averaged over clips. Only the
vision and audio towers of ``imagebind_huge`` take part, so only they are
built, and only their entries of ``imagebind_huge.pth`` (preprocessor, trunk,
head, postprocessor of each) are loaded, strictly, through
:func:`deepsound.weights.loading.load_into` with ``LoadRules(keep=...)``.

Public API::

    model = load_imagebind(path, device)               # imagebind_huge.pth (registry: imagebind_huge)
    imagebind_features(model, video, audio)
        video: (N_clips*3, 3, 2, 224, 224) from deepsound.evaluation.video (or a path)
        audio: (C, T) float32 at 16 kHz (deepsound.evaluation.audio.load_for_imagebind)
        -> {"video": Tensor[1024], "audio": Tensor[1024]}   (either may be None)
    caches: imagebind_video.pth {stem: [1024]}, imagebind_audio.pth {stem: [1024]}

The video embedding is the mean of the L2-normalised embeddings of every
(2-frame clip, spatial crop) pair; the audio embedding is the mean over three
2 s clips of 20 x the normalised embedding (ImageBind's fixed audio logit
scale), exactly what av-benchmark stores. Batch several files by calling the
towers yourself (:meth:`ImageBindAV.embed_vision` / :meth:`embed_audio` take
``(B, S, ...)``).

Why written here: the official package (``imagebind``) is not on PyPI in a
usable form, downloads the checkpoint on construction and imports the whole
six-modality model; the two towers are plain pre-norm ViTs
(:class:`torch.nn.MultiheadAttention`, with learned key/value bias tokens for
audio) and are written with the checkpoint's own names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepsound.weights.loading import LoadRules, load_into, resolve_device

KEEP = (r"^modality_(preprocessors|trunks|heads|postprocessors)\.(vision|audio)\.",)


@dataclass(frozen=True)
class TowerConfig:
    dim: int
    depth: int
    heads: int


@dataclass(frozen=True)
class ImageBindConfig:
    """``imagebind_huge``: ViT-H/14 vision (1280 x 32), ViT-B audio (768 x 12), 1024-d output."""

    vision: TowerConfig = TowerConfig(1280, 32, 16)
    audio: TowerConfig = TowerConfig(768, 12, 12)
    out_dim: int = 1024
    audio_logit_scale: float = 20.0

    @staticmethod
    def tiny() -> ImageBindConfig:
        """A narrow, shallow model on the real input grid, for tests."""
        return ImageBindConfig(TowerConfig(64, 2, 4), TowerConfig(48, 2, 4), 32)


class _Block(nn.Module):
    """Pre-norm block: ``x + attn(norm_1(x))``, ``x + mlp(norm_2(x))`` (eps 1e-6, exact GELU)."""

    def __init__(self, dim: int, heads: int, bias_kv: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=bias_kv, batch_first=True)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 4 * dim)
        self.mlp.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm_2(x))))


class _Trunk(nn.Module):
    def __init__(self, cfg: TowerConfig, *, pre_norm: bool, bias_kv: bool) -> None:
        super().__init__()
        if pre_norm:  # "pre_transformer_layer.0": a LayerNorm, then a (b l d -> l b d) rearrange
            self.pre_transformer_layer = nn.ModuleList([nn.LayerNorm(cfg.dim, eps=1e-6)])
        self.blocks = nn.Sequential(*(_Block(cfg.dim, cfg.heads, bias_kv) for _ in range(cfg.depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "pre_transformer_layer"):
            x = self.pre_transformer_layer[0](x)
        return self.blocks(x)


class _Stem(nn.Module):
    """Patch projection (+ LayerNorm for audio); keys ``rgbt_stem.proj[.1].weight``, ``rgbt_stem.norm_layer``."""

    def __init__(self, proj: nn.Module, norm: nn.Module | None, video: bool) -> None:
        super().__init__()
        # the vision stem is Sequential(PadIm2Video, Conv3d): the conv is entry 1
        self.proj = nn.Sequential(nn.Identity(), proj) if video else proj
        if norm is not None:
            self.norm_layer = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        return self.norm_layer(x) if hasattr(self, "norm_layer") else x


class _Preprocessor(nn.Module):
    def __init__(self, stem: _Stem, dim: int, patches: int) -> None:
        super().__init__()
        self.rgbt_stem = stem
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding_helper = nn.Module()
        self.pos_embedding_helper.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class _Head(nn.Sequential):
    """LayerNorm (eps 1e-6) -> CLS token -> bias-free projection; entries 0 and 2 as in the file."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__(nn.LayerNorm(dim, eps=1e-6), nn.Identity(), nn.Linear(dim, out, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[2](self[0](x)[:, 0])


class _LogitScale(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.register_buffer("log_logit_scale", torch.ones([]) * math.log(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(self.log_logit_scale.exp(), max=100) * x


class ImageBindAV(nn.Module):
    """The vision and audio towers of ImageBind under the checkpoint's module paths."""

    def __init__(self, cfg: ImageBindConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = cfg or ImageBindConfig()
        v, a = cfg.vision, cfg.audio
        vision_stem = _Stem(nn.Conv3d(3, v.dim, (2, 14, 14), stride=(2, 14, 14), bias=False), None, True)
        audio_stem = _Stem(nn.Conv2d(1, a.dim, 16, stride=10, bias=False), nn.LayerNorm(a.dim), False)
        self.modality_preprocessors = nn.ModuleDict(
            {
                "vision": _Preprocessor(vision_stem, v.dim, 16 * 16),
                "audio": _Preprocessor(audio_stem, a.dim, 12 * 19),
            }
        )
        self.modality_trunks = nn.ModuleDict(
            {
                "vision": _Trunk(v, pre_norm=True, bias_kv=False),
                "audio": _Trunk(a, pre_norm=False, bias_kv=True),
            }
        )
        self.modality_heads = nn.ModuleDict(
            {"vision": _Head(v.dim, cfg.out_dim), "audio": _Head(a.dim, cfg.out_dim)}
        )
        # vision: Normalize only (no parameters); audio: Sequential(Normalize, fixed logit scale)
        self.modality_postprocessors = nn.ModuleDict(
            {"audio": nn.Sequential(nn.Identity(), _LogitScale(cfg.audio_logit_scale))}
        )
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.modality_heads["audio"][2].weight.device

    def _embed(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        """(B, S, ...) -> (B, out): every item through the tower, normalised, averaged over S."""
        b, s = x.shape[:2]
        x = x.reshape(b * s, *x.shape[2:]).to(device=self.device, dtype=torch.float32)
        tokens = self.modality_trunks[kind](self.modality_preprocessors[kind](x))
        emb = F.normalize(self.modality_heads[kind](tokens), dim=-1, p=2)
        if kind == "audio":
            emb = self.modality_postprocessors["audio"][1](emb)
        return emb.reshape(b, s, -1).mean(dim=1)

    def embed_vision(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, S, 3, 2, 224, 224) normalised 2-frame clips -> (B, 1024)."""
        return self._embed("vision", clips)

    def embed_audio(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 1, 128, 204) normalised Kaldi fbanks -> (B, 1024)."""
        return self._embed("audio", mels)


def load_imagebind(
    path: Path | str | None = None,
    device: str = "auto",
    *,
    weights_dir: Path | None = None,
    offline: bool = False,
    config: ImageBindConfig | None = None,
) -> ImageBindAV:
    """Build the two towers and load their entries of ``imagebind_huge.pth`` strictly.

    ``path=None`` resolves the registry entry ``imagebind_huge``. Text, depth,
    thermal and IMU entries of the file are skipped (``LoadRules(keep=...)``);
    every vision/audio tensor must be present with its shape. ``config``
    defaults to ``imagebind_huge`` (the published file).
    """
    if path is None:
        from deepsound.weights import resolve

        path = resolve("imagebind_huge", weights_dir=weights_dir, offline=offline)
    with torch.device("meta"):
        model = ImageBindAV(config)
    model.to_empty(device="cpu")
    model.modality_postprocessors["audio"][1].log_logit_scale.fill_(math.log(model.config.audio_logit_scale))
    load_into(model, path, "ImageBind huge (vision and audio)", LoadRules(keep=KEEP))
    return model.to(resolve_device(device)).eval()


@torch.inference_mode()
def imagebind_features(
    model: ImageBindAV,
    video: torch.Tensor | Path | str | None,
    audio: torch.Tensor | None,
    *,
    duration: float = 10.0,
) -> dict[str, torch.Tensor | None]:
    """One file's IB embeddings: ``{"video": [1024] | None, "audio": [1024] | None}``.

    ``video`` is a path (decoded at 0.5 fps for ``duration`` seconds) or the
    ``(S, 3, 2, 224, 224)`` clips of :func:`deepsound.evaluation.video.imagebind_clips`;
    ``audio`` is ``(C, T)`` float32 at 16 kHz (all channels; ImageBind uses the first).
    """
    from deepsound.models.eval.imagebind_preprocess import audio_clips

    out: dict[str, torch.Tensor | None] = {"video": None, "audio": None}
    if video is not None:
        if isinstance(video, (str, Path)):
            from deepsound.models.eval.video_frames import decode_eval_video, imagebind_clips

            video = imagebind_clips(decode_eval_video(video, duration, sync=False).imagebind)
        out["video"] = model.embed_vision(video[None])[0].cpu()
    if audio is not None:
        out["audio"] = model.embed_audio(audio_clips(audio)[None])[0].cpu()
    return out
