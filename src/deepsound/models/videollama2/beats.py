"""BEATs, the audio encoder of VideoLLaMA2's audio-visual models (Chen et al. 2022).

No library carries BEATs (it lives in Microsoft's research repository and in
copies of it), so it is written here, with the parameter names of the copy
VideoLLaMA2 ships, because the audio tower's weights come from the
VideoLLaMA2 checkpoint (the tower was fine-tuned with the LLM). Only what
inference uses is kept: the post-norm ("deep norm") transformer with the gated
relative position bias, the convolutional position embedding, and the
classification head's parameters (present in the checkpoint, unused).

Two details that change numbers are kept on purpose:

* the position convolution's weight norm has an epsilon inside the square
  root (``g * v / sqrt(|v|^2 + 1e-6)``, computed in float32), unlike
  ``torch.nn.utils.weight_norm``;
* attention logits are scaled down by 32 before the max subtraction and up
  again after it, as the original does for fp16 range.

The relative-position table is one module shared by every layer in the
original; it is held once here (layer 0), which is where the original's named
parameters list it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582


@dataclass(frozen=True)
class BeatsConfig:
    """The dimensions of the tower; the defaults are the published model's (VideoLLaMA2 builds it with them)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    conv_pos: int = 128
    conv_pos_groups: int = 16
    num_buckets: int = 320
    max_distance: int = 800
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> BeatsConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in names})


class _PositionConv(nn.Module):
    """Grouped 1-D convolution with the original's epsilon weight norm (``weight_g``, ``weight_v``)."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.kernel, self.groups = kernel, groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.zeros(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.weight_v.to(torch.float32)
        v = v * torch.rsqrt(v.pow(2).sum(dim=(0, 1), keepdim=True) + 1e-6)
        weight = self.weight_g * v.to(self.weight_v.dtype)
        out = F.conv1d(x, weight, self.bias, padding=self.kernel // 2, groups=self.groups)
        if self.kernel % 2 == 0:  # "same" padding of an even kernel leaves one frame too many
            out = out[:, :, :-1]
        return F.gelu(out)


class _Attention(nn.Module):
    def __init__(self, config: BeatsConfig, *, has_bias_table: bool) -> None:
        super().__init__()
        dim, heads = config.encoder_embed_dim, config.encoder_attention_heads
        self.heads, self.head_dim = heads, dim // heads
        self.scaling = self.head_dim**-0.5
        self.num_buckets, self.max_distance = config.num_buckets, config.max_distance
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(config.num_buckets, heads)
        self._bucket_cache: torch.Tensor | None = None  # not state: derived from the length alone
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def _buckets(self, relative: torch.Tensor) -> torch.Tensor:
        half = self.num_buckets // 2
        buckets = (relative > 0).to(torch.long) * half
        relative = relative.abs()
        exact = half // 2
        large = exact + (
            torch.log(relative.float() / exact) / math.log(self.max_distance / exact) * (half - exact)
        ).to(torch.long)
        large = torch.min(large, torch.full_like(large, half - 1))
        return buckets + torch.where(relative < exact, relative, large)

    def position_bias(self, length: int, batch: int) -> torch.Tensor:
        device = self.relative_attention_bias.weight.device
        cached = self._bucket_cache
        if cached is None or cached.shape[0] != length or cached.device != device:
            # VideoLLaMA2 pads every clip's audio to 30 s, so the length (and these buckets) repeat
            positions = torch.arange(length, dtype=torch.long)
            cached = self._buckets(positions[None, :] - positions[:, None]).to(device)
            self._bucket_cache = cached
        values = self.relative_attention_bias(cached).permute(2, 0, 1)
        return values.unsqueeze(0).expand(batch, -1, -1, -1).reshape(batch * self.heads, length, length)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        length, batch, dim = x.shape
        alpha = 32
        q = self.q_proj(x) * self.scaling
        q = q * (1 / alpha)
        k, v = self.k_proj(x), self.v_proj(x)
        q = q.contiguous().view(length, batch * self.heads, self.head_dim).transpose(0, 1)
        k = k.contiguous().view(-1, batch * self.heads, self.head_dim).transpose(0, 1)
        v = v.contiguous().view(-1, batch * self.heads, self.head_dim).transpose(0, 1)
        weights = torch.bmm(q, k.transpose(1, 2))
        # in place: the (heads, length, length) scores are the largest tensors here (30 s of audio)
        weights.sub_(weights.max(dim=-1, keepdim=True)[0]).mul_(alpha)
        query = q.view(batch, self.heads, length, self.head_dim) * alpha / self.scaling
        gate_a, gate_b = torch.sigmoid(
            self.grep_linear(query).view(batch, self.heads, length, 2, 4).sum(-1)
        ).chunk(2, dim=-1)
        gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
        weights.addcmul_(gate.view(batch * self.heads, length, 1), bias.view(weights.size()))
        probs = F.softmax(weights, dim=-1).type_as(weights)
        out = torch.bmm(probs, v).transpose(0, 1).contiguous().view(length, batch, dim)
        return self.out_proj(out)


class _Layer(nn.Module):
    def __init__(self, config: BeatsConfig, *, has_bias_table: bool) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        self.self_attn = _Attention(config, has_bias_table=has_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.alpha = math.pow(2 * config.encoder_layers, 1 / 4)  # deep-norm residual gain

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, bias))
        hidden = F.gelu(self.fc1(x).float()).type_as(x)
        return self.final_layer_norm(x * self.alpha + self.fc2(hidden))


class _Encoder(nn.Module):
    def __init__(self, config: BeatsConfig) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        self.pos_conv = nn.Sequential(_PositionConv(dim, config.conv_pos, config.conv_pos_groups))
        self.layers = nn.ModuleList(
            [_Layer(config, has_bias_table=i == 0) for i in range(config.encoder_layers)]
        )
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        x = self.layer_norm(x).transpose(0, 1)
        bias = self.layers[0].self_attn.position_bias(x.shape[0], x.shape[1])
        for layer in self.layers:
            x = layer(x, bias)
        return x.transpose(0, 1)


class Beats(nn.Module):
    """``(B, frames, 128)`` Kaldi filter banks → ``(B, patches, encoder_embed_dim)`` features."""

    def __init__(self, config: BeatsConfig = BeatsConfig()) -> None:
        super().__init__()
        self.config = config
        self.post_extract_proj = (
            nn.Linear(config.embed_dim, config.encoder_embed_dim)
            if config.embed_dim != config.encoder_embed_dim
            else None
        )
        size = config.input_patch_size
        self.patch_embedding = nn.Conv2d(1, config.embed_dim, size, stride=size, bias=config.conv_bias)
        self.encoder = _Encoder(config)
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        self.predictor = nn.Linear(config.encoder_embed_dim, config.predictor_class)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = ((fbank - FBANK_MEAN) / (2 * FBANK_STD)).unsqueeze(1)
        x = self.patch_embedding(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)
        x = self.layer_norm(x)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x)


def beats_config_from_state(
    state: dict[str, torch.Tensor], prefix: str, heads: int | None = None
) -> BeatsConfig:
    """The tower's dimensions read off its weights (the checkpoint's config.json does not carry them).

    The head count is not visible in any shape except ``grep_a``, which has one
    entry per head.
    """
    p = prefix
    embed = state[f"{p}patch_embedding.weight"]
    layers = 1 + max(
        int(k[len(f"{p}encoder.layers.") :].split(".")[0])
        for k in state
        if k.startswith(f"{p}encoder.layers.")
    )
    grep_a = state[f"{p}encoder.layers.0.self_attn.grep_a"]
    conv = state[f"{p}encoder.pos_conv.0.weight_v"]
    return BeatsConfig(
        input_patch_size=int(embed.shape[-1]),
        embed_dim=int(embed.shape[0]),
        conv_bias=f"{p}patch_embedding.bias" in state,
        encoder_layers=layers,
        encoder_embed_dim=int(conv.shape[0]),
        encoder_ffn_embed_dim=int(state[f"{p}encoder.layers.0.fc1.weight"].shape[0]),
        encoder_attention_heads=heads or int(grep_a.shape[1]),
        conv_pos=int(conv.shape[-1]),
        conv_pos_groups=int(conv.shape[0] // conv.shape[1]),
        num_buckets=int(state[f"{p}encoder.layers.0.self_attn.relative_attention_bias.weight"].shape[0]),
        predictor_class=int(state[f"{p}predictor.weight"].shape[0]),
    )
