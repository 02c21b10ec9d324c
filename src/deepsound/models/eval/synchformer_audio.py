"""Synchformer for DeSync: audio branch, offset head and the visual branch, as av-benchmark uses them.

DeSync (Iashin et al.'s Synchformer, as av-benchmark scores it) asks the
published audio-visual offset classifier which of 21 offsets in [-2, 2] s
separates a video from its audio, once on the first and once on the last
4.8 s (14 windows of 0.64 s, hop 0.32 s), and averages the absolute offsets.

Public API (what av-benchmark caches per file, and what it computes from it)::

    model = load_synchformer_av(path, device)          # synchformer_state_dict.pth, strict
    a = synchformer_audio_features(model, wav16)       # (T,) 16 kHz mono -> (S, 6, 768)
                                                       #   cache synchformer_audio.pth: {stem: a}
    v = synchformer_video_features(model, frames)      # (T, 3, 224, 224) in [-1, 1] at 25 fps
                                                       #   -> (S, 8, 768); synchformer_video.pth
    logits = model.compare_v_a(v[None, :14], a[None, :14])   # (1, 21)  (av-benchmark's name)
    desync_offsets(model, v, a)                        # tensor([first, last]) signed seconds

``S = (T - 10240) // 5120 + 1`` audio windows and ``(T - 16) // 8 + 1`` video
windows (30 of each for 10 s). The audio is expected as
:func:`deepsound.evaluation.audio.load_for_synchformer` gives it (channel mean,
torchaudio's float64-kernel resampler, exactly ``duration`` seconds). av-benchmark
silently takes the *next* file's audio when one is too short; here
:func:`synchformer_audio_features` raises :class:`MediaError` for audio shorter
than the 14 windows DeSync needs, and the caller (not this module) decides
the expected length.

Why written here: the audio trunk is the Audio Spectrogram Transformer of
Hugging Face ``transformers``, but its parameter names changed between
releases (``encoder.layer.N.attention.attention.query`` in the file, ``layers.N.
attention.q_proj`` in transformers 5), so depending on it would tie the strict
load to one library version; the 12 ViT layers are written out below with the
checkpoint's own names. The mel front end is torchaudio's ``MelSpectrogram``
(HTK mel, no filter normalisation, power 2, centred reflect padding), rebuilt
on ``torch.stft`` because torchaudio is not a dependency of the project.
The visual branch is the project's :class:`~deepsound.models.mmaudio.synchformer.
MotionFormerVisual` (the same network MMAudio conditions on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepsound.errors import MediaError
from deepsound.models.mmaudio.synchformer import MotionFormerVisual, SynchformerConfig
from deepsound.models.mmaudio.synchformer_layers import SpatialAggregator
from deepsound.weights.loading import LoadRules, load_into, resolve_device

SAMPLE_RATE = 16000
AUDIO_WINDOW = 10240  # 0.64 s
AUDIO_HOP = 5120  # 0.32 s
SPEC_FRAMES = 66  # mel frames per window after padding (65 computed + 1 zero)
MEL_BINS = 128
N_FFT = 1024
WIN_LENGTH = 400
HOP_LENGTH = 160
LOG_OFFSET = 1e-6
SPEC_MEAN = -4.2677393
SPEC_STD = 4.5689974
DESYNC_SEGMENTS = 14  # windows per DeSync question: 4.8 s
OFFSET_GRID = (-2.0, 2.0, 21)


@dataclass(frozen=True)
class SynchformerAVConfig:
    """Widths of the published model; tests shrink them (the file fixes the full size)."""

    dim: int = 768
    audio_depth: int = 12
    audio_heads: int = 12
    audio_mlp: int = 3072
    head_depth: int = 3
    head_heads: int = 8
    classes: int = 21
    visual: SynchformerConfig = SynchformerConfig()

    @property
    def audio_grid(self) -> tuple[int, int]:
        """(frequency, time) patches of one window: (128-16)//10+1, (66-16)//10+1 = (12, 6)."""
        return (MEL_BINS - 16) // 10 + 1, (SPEC_FRAMES - 16) // 10 + 1

    @property
    def head_tokens(self) -> int:
        """OFF + 14 x 8 video tokens + MOD + 14 x 6 audio tokens = 198."""
        return 2 + DESYNC_SEGMENTS * (self.visual.time_steps + self.audio_grid[1])


# ------------------------------------------------------------------------------- mel front end
@lru_cache(maxsize=4)
def _mel_filters(device: str) -> torch.Tensor:
    """(513, 128) HTK triangles from 0 to 8 kHz, float32 as torchaudio builds them."""
    freqs = torch.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    m_max = 2595.0 * math.log10(1.0 + (SAMPLE_RATE / 2) / 700.0)
    mels = torch.linspace(0.0, m_max, MEL_BINS + 2)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    diff = hz[1:] - hz[:-1]
    slopes = hz.unsqueeze(0) - freqs.unsqueeze(1)
    down = (-1.0 * slopes[:, :-2]) / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    return torch.max(torch.zeros(1), torch.min(down, up)).to(device)


def window_spectrograms(wav: torch.Tensor) -> torch.Tensor:
    """(T,) 16 kHz -> (S, 128, 66) normalised log-mel windows, as av-benchmark feeds Synchformer."""
    windows = wav.unfold(-1, AUDIO_WINDOW, AUDIO_HOP)  # (S, 10240)
    window = torch.hann_window(WIN_LENGTH, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(
        windows, N_FFT, HOP_LENGTH, WIN_LENGTH, window, center=True, pad_mode="reflect",
        normalized=False, onesided=True, return_complex=True,
    ).abs().pow(2.0)  # fmt: skip
    mel = torch.matmul(spec.transpose(-1, -2), _mel_filters(str(wav.device))).transpose(-1, -2)
    mel = torch.log(mel + LOG_OFFSET)
    mel = F.pad(mel, (0, SPEC_FRAMES - mel.shape[-1])) if mel.shape[-1] < SPEC_FRAMES else mel
    return (mel[..., :SPEC_FRAMES] - SPEC_MEAN) / (2 * SPEC_STD)


# ------------------------------------------------------------------------------- audio trunk
class _Named(nn.Module):
    """A container whose only job is to reproduce one level of the checkpoint's key path."""

    def __init__(self, **children: nn.Module) -> None:
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)


class ASTLayer(nn.Module):
    """One pre-norm ViT layer (LayerNorm eps 1e-12, exact GELU), named as in the checkpoint."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        qkv = {n: nn.Linear(dim, dim) for n in ("query", "key", "value")}
        self.attention = _Named(attention=_Named(**qkv), output=_Named(dense=nn.Linear(dim, dim)))
        self.intermediate = _Named(dense=nn.Linear(dim, mlp))
        self.output = _Named(dense=nn.Linear(mlp, dim))
        self.layernorm_before = nn.LayerNorm(dim, eps=1e-12)
        self.layernorm_after = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.layernorm_before(x)
        att = self.attention.attention

        def split(lin: nn.Module) -> torch.Tensor:
            return lin(h).view(b, n, self.heads, d // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(att.query), split(att.key), split(att.value))
        x = self.attention.output.dense(y.transpose(1, 2).reshape(b, n, d)) + x
        y = F.gelu(self.intermediate.dense(self.layernorm_after(x)))
        return self.output.dense(y) + x


class ASTTrunk(nn.Module):
    """Audio Spectrogram Transformer on one (66 x 128) window: CLS, distillation and 72 patch tokens."""

    def __init__(self, cfg: SynchformerAVConfig) -> None:
        super().__init__()
        f, t = cfg.audio_grid
        self.embeddings = _Named(
            patch_embeddings=_Named(projection=nn.Conv2d(1, cfg.dim, 16, stride=(10, 10)))
        )
        self.embeddings.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.embeddings.distillation_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.embeddings.position_embeddings = nn.Parameter(torch.zeros(1, f * t + 2, cfg.dim))
        self.encoder = _Named(
            layer=nn.ModuleList(
                ASTLayer(cfg.dim, cfg.audio_heads, cfg.audio_mlp) for _ in range(cfg.audio_depth)
            )
        )
        self.layernorm = nn.LayerNorm(cfg.dim, eps=1e-12)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(N, 128, 66) -> (N, 74, D): last hidden state."""
        emb = self.embeddings
        x = emb.patch_embeddings.projection(spec.unsqueeze(1)).flatten(2).transpose(1, 2)
        n = x.shape[0]
        x = torch.cat((emb.cls_token.expand(n, -1, -1), emb.distillation_token.expand(n, -1, -1), x), 1)
        x = x + emb.position_embeddings
        for layer in self.encoder.layer:
            x = layer(x)
        return self.layernorm(x)


class AudioFeatureExtractor(nn.Module):
    """AST + per-time-step pooling over frequency: (N, 128, 66) windows -> (N, 6, D)."""

    def __init__(self, cfg: SynchformerAVConfig) -> None:
        super().__init__()
        self.grid = cfg.audio_grid
        self.ast = ASTTrunk(cfg)
        self.freq_attn_agg = SpatialAggregator(cfg.dim, cfg.audio_heads, cfg.audio_mlp / cfg.dim)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        f, t = self.grid
        x = self.ast(spec)[:, 2:]  # (N, f*t, D), frequency-major
        n, _, d = x.shape
        x = x.view(n, f, t, d).transpose(1, 2).reshape(n * t, f, d)
        return self.freq_attn_agg(x).view(n, t, d)


# ------------------------------------------------------------------------------- offset head
class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.key, self.query, self.value, self.proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(lin: nn.Module) -> torch.Tensor:
            return lin(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.query), split(self.key), split(self.value))
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class OffsetTransformer(nn.Module):
    """Sequence ``[OFF, video..., MOD, audio...]`` through 3 GPT-style blocks; OFF's logits."""

    def __init__(self, cfg: SynchformerAVConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.vis_in_lnorm, self.aud_in_lnorm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_emb_cfg = _Named()
        self.pos_emb_cfg.pos_emb = nn.Parameter(torch.zeros(1, cfg.head_tokens, d))
        self.blocks = nn.Sequential(*(_Block(d, cfg.head_heads) for _ in range(cfg.head_depth)))
        self.ln_f = nn.LayerNorm(d)
        self.off_head = nn.Linear(d, cfg.classes)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        b = v.shape[0]
        x = torch.cat(
            (self.OFF_tok.expand(b, -1, -1), self.vis_in_lnorm(v), self.MOD_tok.expand(b, -1, -1),
             self.aud_in_lnorm(a)), dim=1,
        )  # fmt: skip
        x = self.blocks(x + self.pos_emb_cfg.pos_emb)
        return self.off_head(self.ln_f(x)[:, 0])


class SynchformerAV(nn.Module):
    """The whole published Synchformer: both feature branches, projections and the offset head."""

    def __init__(self, cfg: SynchformerAVConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = cfg or SynchformerAVConfig()
        self.vfeat_extractor = MotionFormerVisual(cfg.visual)
        self.afeat_extractor = AudioFeatureExtractor(cfg)
        self.vproj = nn.Linear(cfg.dim, cfg.dim)
        self.aproj = nn.Linear(cfg.dim, cfg.dim)
        self.transformer = OffsetTransformer(cfg)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.vproj.weight.device

    def compare_v_a(self, vis: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """(B, 14, 8, D) video and (B, 14, 6, D) audio features -> (B, 21) offset logits."""
        vis, aud = self.vproj(vis), self.aproj(aud)
        return self.transformer(vis.flatten(1, 2), aud.flatten(1, 2))


def offset_grid() -> torch.Tensor:
    """The 21 offsets in seconds the head classifies (float32, from NumPy's linspace as Synchformer)."""
    lo, hi, n = OFFSET_GRID
    return torch.from_numpy(np.linspace(lo, hi, n)).float()


def load_synchformer_av(
    path: Path | str | None = None,
    device: str = "auto",
    *,
    weights_dir: Path | None = None,
    offline: bool = False,
    config: SynchformerAVConfig | None = None,
) -> SynchformerAV:
    """Build the published Synchformer and load ``synchformer_state_dict.pth`` strictly (all 513 tensors).

    ``path=None`` resolves the registry entry ``synchformer`` (the file MMAudio also uses);
    ``config`` defaults to the published architecture.
    """
    if path is None:
        from deepsound.weights import resolve

        path = resolve("synchformer", weights_dir=weights_dir, offline=offline)
    with torch.device("meta"):
        model = SynchformerAV(config)
    model.to_empty(device="cpu")
    load_into(model, path, "Synchformer (DeSync)", LoadRules())
    return model.to(resolve_device(device)).eval()


@torch.inference_mode()
def synchformer_audio_features(model: SynchformerAV, wav: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(T,) float32 at 16 kHz -> (S, 6, D) per-window audio features (av-benchmark's cache entry)."""
    if wav.ndim != 1:
        raise ValueError(f"expected mono audio (T,), got {tuple(wav.shape)}")
    need = AUDIO_WINDOW + (DESYNC_SEGMENTS - 1) * AUDIO_HOP
    if wav.shape[0] < need:
        raise MediaError(
            f"audio too short for Synchformer: {wav.shape[0] / SAMPLE_RATE:.2f} s, DeSync needs 4.8 s"
        )
    spec = window_spectrograms(wav.to(device=model.device, dtype=torch.float32))
    out = [model.afeat_extractor(spec[i : i + batch]) for i in range(0, spec.shape[0], batch)]
    return torch.cat(out).cpu()


@torch.inference_mode()
def synchformer_video_features(
    model: SynchformerAV, frames: torch.Tensor | Path | str, batch: int = 16, *, duration: float = 10.0
) -> torch.Tensor:
    """(T, 3, 224, 224) frames in [-1, 1] at 25 fps -> (S, 8, D): windows of 16 frames, hop 8.

    ``frames`` may be a video path: its first ``duration`` seconds are decoded
    as av-benchmark does (:func:`deepsound.models.eval.video_frames.decode_eval_video`).
    """
    if isinstance(frames, (str, Path)):
        from deepsound.models.eval.video_frames import decode_eval_video

        frames = decode_eval_video(frames, duration, imagebind=False).sync
    if frames.ndim != 4 or frames.shape[0] < 16:
        raise MediaError(f"video too short or malformed for Synchformer: {tuple(frames.shape)}")
    windows = frames.unfold(0, 16, 8).permute(0, 4, 1, 2, 3)  # (S, 16, 3, H, W)
    out = []
    for i in range(0, windows.shape[0], batch):
        chunk = windows[i : i + batch].to(device=model.device, dtype=torch.float32)
        out.append(model.vfeat_extractor(chunk.transpose(1, 2)))  # wants (N, C, T, H, W)
    return torch.cat(out).cpu()


@torch.inference_mode()
def desync_offsets(model: SynchformerAV, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """Signed predicted offsets (s) for the first and the last 4.8 s: tensor([first, last]).

    ``video`` (S_v, 8, D) and ``audio`` (S_a, 6, D) are one file's features; the
    clip's DeSync is the mean of their absolute values, as in av-benchmark.
    """
    n = DESYNC_SEGMENTS
    if video.shape[0] < n or audio.shape[0] < n:
        raise MediaError(
            f"DeSync needs {n} windows (4.8 s); got video {video.shape[0]}, audio {audio.shape[0]}"
        )
    dev = model.device
    v = torch.stack((video[:n], video[-n:])).to(dev)
    a = torch.stack((audio[:n], audio[-n:])).to(dev)
    top = torch.argmax(model.compare_v_a(v, a), dim=-1).cpu()
    return offset_grid()[top]
