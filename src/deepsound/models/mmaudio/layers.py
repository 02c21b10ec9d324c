"""Building blocks of the MMAudio flow network.

Module and attribute names follow the published checkpoints (``w1``/``w2``/``w3``,
``adaLN_modulation``, ``q_norm`` ...), because the weight files are loaded into
these modules unchanged. The arithmetic follows the published network so that
the same weights give the same velocity.

For fp32 inference on x86 CPUs the projections and the token convolutions run
as oneDNN matrix products (:mod:`deepsound.models.ops`), which on AMD processors are
several times faster than PyTorch's default fp32 kernels for the few tokens
of a flow step; bf16 keeps PyTorch's kernels and thus the published rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepsound.models.ops import fast_linear, onednn_enabled


def swiglu_width(hidden: int, multiple_of: int = 256) -> int:
    """Hidden width of the gated feed-forward: two thirds of ``hidden`` rounded up to ``multiple_of``.

    The checkpoints were trained with this rule, so it fixes the weight shapes.
    """
    width = int(2 * hidden / 3)
    return multiple_of * ((width + multiple_of - 1) // multiple_of)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters) whose inference product runs through oneDNN on x86 CPUs.

    See :mod:`deepsound.models.ops`: PyTorch's default fp32 CPU product is far slower
    on AMD processors; the result is the same to float rounding. Other dtypes
    keep PyTorch's kernel, whose bf16 rounding is the published network's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:
            return super().forward(x)
        return fast_linear(x, self.weight, self.bias)


class TokenConv1d(nn.Conv1d):
    """A 1-D convolution over the token axis of a ``(batch, tokens, channels)`` tensor.

    For fp32 inference on the oneDNN path it is computed as one matrix product:
    the zero-padded tokens are unfolded into windows laid out ``(channel,
    tap)``, which is exactly the memory order of the ``(out, in, kernel)``
    weight, so the weight is used as is. With the few tokens of a flow step
    PyTorch's convolution kernel runs at a quarter of the speed of that product.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._as_product(x):
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        b, n, c = x.shape
        k, pad = self.kernel_size[0], self.padding[0]
        padded = F.pad(x, (0, 0, pad, pad)) if pad else x
        windows = padded.unfold(1, k, 1)  # (B, N_out, C, k), a view
        return fast_linear(
            windows.reshape(b, windows.shape[1], c * k), self.weight.view(self.out_channels, -1), self.bias
        )

    def _as_product(self, x: torch.Tensor) -> bool:
        return (
            x.dtype == torch.float32
            and x.dim() == 3
            and not torch.is_grad_enabled()
            and onednn_enabled()
            and self.weight.is_contiguous()
            and self.stride == (1,)
            and self.dilation == (1,)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
        )


class GatedMLP(nn.Module):
    """SwiGLU feed-forward: ``w2(silu(w1 x) * w3 x)`` without biases."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        width = swiglu_width(hidden)
        self.w1 = Linear(dim, width, bias=False)
        self.w2 = Linear(width, dim, bias=False)
        self.w3 = Linear(dim, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:  # keep the published bf16 rounding (see Linear)
            return self.w2(F.silu(self.w1(x)) * self.w3(x))
        gate = fast_linear(x, self.w1.weight, post="silu")  # SiLU fused into the product
        return self.w2(gate * self.w3(x))


class GatedConvMLP(nn.Module):
    """SwiGLU feed-forward whose projections are convolutions over neighbouring tokens."""

    def __init__(self, dim: int, hidden: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        width = swiglu_width(hidden)
        self.w1 = TokenConv1d(dim, width, kernel_size, padding=padding, bias=False)
        self.w2 = TokenConv1d(width, dim, kernel_size, padding=padding, bias=False)
        self.w3 = TokenConv1d(dim, width, kernel_size, padding=padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TimestepEmbedder(nn.Module):
    """Sinusoidal embedding of the flow time followed by a two-layer MLP.

    ``freqs`` is a non-persistent buffer so that casting the network (to bf16)
    rounds it exactly as the published network's buffer is rounded.
    """

    def __init__(self, dim: int, frequency_embedding_size: int, max_period: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(Linear(frequency_embedding_size, dim), nn.SiLU(), Linear(dim, dim))
        exponent = (
            torch.arange(0, frequency_embedding_size, 2, dtype=torch.float32) / frequency_embedding_size
        )
        freqs = (10000 / max_period) * (1.0 / (10000**exponent))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t[:, None].float() * self.freqs[None]
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(t.dtype)
        return self.mlp(features)


# ---------------------------------------------------------------- rotary positions


def rope_angles(length: int, head_dim: int, *, scaling: float = 1.0, device=None) -> torch.Tensor:
    """Cos/sin table ``(length, head_dim/2, 2)`` in float32 for rotating consecutive channel pairs.

    ``scaling`` stretches the frequencies so that a shorter sequence (CLIP
    frames) lines up in time with the audio latents.
    """
    if head_dim % 2:
        raise ValueError(f"rotary positions need an even head size, got {head_dim}")
    pos = torch.arange(length, dtype=torch.float32, device=device)
    freqs = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    freqs *= scaling
    angles = pos[:, None] * freqs[None, :]
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate each pair ``(x[2i], x[2i+1])`` of ``x (B, H, N, D)`` by the angles in ``table``.

    Computed in float32 (then cast back), as the published network does even under bf16.
    """
    xf = x.float().unflatten(-1, (-1, 2))
    even, odd = xf[..., 0], xf[..., 1]
    cos, sin = table[..., 0], table[..., 1]
    out = torch.stack([cos * even - sin * odd, sin * even + cos * odd], dim=-1)
    return out.flatten(-2).to(x.dtype)


# ---------------------------------------------------------------- transformer blocks


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Full attention over ``(B, H, N, D)`` returning ``(B, N, H*D)``."""
    out = F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous())
    return out.transpose(1, 2).flatten(2)


class QKVProjection(nn.Module):
    """Fused q/k/v projection with per-head RMS normalisation of q and k.

    The checkpoint's ``qkv`` output is laid out as (head, channel, q|k|v), i.e.
    the three projections are interleaved at the innermost position.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = Linear(dim, dim * 3, bias=True)
        self.q_norm = nn.RMSNorm(dim // num_heads)
        self.k_norm = nn.RMSNorm(dim // num_heads)

    def project(
        self, x: torch.Tensor, rope: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, self.num_heads, -1, 3).permute(4, 0, 2, 1, 3)
        q, k, v = qkv.unbind(0)  # each (B, H, N, D)
        q = self.q_norm(q)
        k = self.k_norm(k)
        if rope is not None:
            q = apply_rope(q, rope)
            k = apply_rope(k, rope)
        return q, k, v


class ModulatedBlock(nn.Module):
    """One stream of an MM-DiT block: adaLN-modulated attention input and (unless ``pre_only``) output.

    ``pre_only`` streams only feed keys/values to the joint attention of the
    last joint block and are never updated, so they carry no output layers.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        pre_only: bool = False,
        kernel_size: int = 3,
        padding: int = 1,
    ) -> None:
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = QKVProjection(dim, num_heads)
        if pre_only:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(dim, 2 * dim, bias=True))
            return
        hidden = int(dim * mlp_ratio)
        if kernel_size == 1:
            self.linear1 = Linear(dim, dim)
            self.ffn = GatedMLP(dim, hidden)
        else:
            self.linear1 = TokenConv1d(dim, dim, kernel_size, padding=padding)
            self.ffn = GatedConvMLP(dim, hidden, kernel_size=kernel_size, padding=padding)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(dim, 6 * dim, bias=True))

    def pre_attention(
        self, x: torch.Tensor, c: torch.Tensor, rope: torch.Tensor | None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
        mods = self.adaLN_modulation(c).chunk(2 if self.pre_only else 6, dim=-1)
        h = modulate(self.norm1(x), mods[0], mods[1])
        return self.attn.project(h, rope), mods[2:]

    def post_attention(self, x: torch.Tensor, attn_out: torch.Tensor, mods: tuple[torch.Tensor, ...]):
        if self.pre_only:
            return x
        gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        x = x + self.linear1(attn_out) * gate_msa
        return x + self.ffn(modulate(self.norm2(x), shift_mlp, scale_mlp)) * gate_mlp

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope: torch.Tensor | None) -> torch.Tensor:
        qkv, mods = self.pre_attention(x, c, rope)
        return self.post_attention(x, attention(*qkv), mods)


class JointBlock(nn.Module):
    """Audio latents, CLIP frames and text tokens attend jointly, each with its own weights."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, *, pre_only: bool = False) -> None:
        super().__init__()
        self.pre_only = pre_only
        self.latent_block = ModulatedBlock(dim, num_heads, mlp_ratio, kernel_size=3, padding=1)
        self.clip_block = ModulatedBlock(
            dim, num_heads, mlp_ratio, pre_only=pre_only, kernel_size=3, padding=1
        )
        self.text_block = ModulatedBlock(
            dim, num_heads, mlp_ratio, pre_only=pre_only, kernel_size=1, padding=0
        )

    def forward(
        self,
        latent: torch.Tensor,
        clip_f: torch.Tensor,
        text_f: torch.Tensor,
        global_c: torch.Tensor,
        extended_c: torch.Tensor,
        latent_rope: torch.Tensor,
        clip_rope: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_qkv, x_mod = self.latent_block.pre_attention(latent, extended_c, latent_rope)
        c_qkv, c_mod = self.clip_block.pre_attention(clip_f, global_c, clip_rope)
        t_qkv, t_mod = self.text_block.pre_attention(text_f, global_c, None)
        n_lat, n_clip = latent.shape[1], clip_f.shape[1]
        joint = attention(*(torch.cat([x_qkv[i], c_qkv[i], t_qkv[i]], dim=2) for i in range(3)))
        latent = self.latent_block.post_attention(latent, joint[:, :n_lat], x_mod)
        if not self.pre_only:
            clip_f = self.clip_block.post_attention(clip_f, joint[:, n_lat : n_lat + n_clip], c_mod)
            text_f = self.text_block.post_attention(text_f, joint[:, n_lat + n_clip :], t_mod)
        return latent, clip_f, text_f


class FinalBlock(nn.Module):
    """adaLN-modulated norm and a 7-tap convolution back to the latent channels."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(dim, 2 * dim, bias=True))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.conv = TokenConv1d(dim, out_dim, kernel_size=7, padding=3)

    def forward(self, latent: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.conv(modulate(self.norm(latent), shift, scale))
