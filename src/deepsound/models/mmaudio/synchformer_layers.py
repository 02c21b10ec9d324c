"""Building blocks of the Synchformer visual encoder (a MotionFormer-style video ViT).

The encoder tokenises 16 frames into 8 x 14 x 14 space-time patches plus one
CLS token and runs "divided" attention: every block first attends across time
(each spatial position sees its 8 temporal neighbours) and then across space
(each frame sees its 196 patches); the CLS token always attends to everything.
A final encoder layer with its own CLS token pools each frame's patches into
one vector.

Attribute names follow the published checkpoint (``blocks.N.timeattn.qkv``,
``spatial_attn_agg.self_attn.in_proj_weight`` ...) so that it loads without
any renaming. All attention runs through ``scaled_dot_product_attention``,
which never materialises the (tokens x tokens) score matrix and uses the fused
CPU/CUDA kernels; the math is the plain softmax attention of the original.
Projections go through :func:`deepsound.models.ops.fast_linear` (oneDNN on x86 CPUs),
with the GELU and the residual additions fused into the matrix products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepsound.models.ops import fast_linear

LAYER_NORM_EPS = 1e-6


class DividedAttention(nn.Module):
    """Multi-head self-attention restricted to one axis (time or space) of the patch grid.

    Patch token ``i = f * patches + n`` (frame ``f``, spatial position ``n``)
    attends to the CLS token and to the tokens sharing its position (time
    axis) or its frame (space axis). The CLS token attends to all tokens.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        *,
        frames: int,
        patches: int,
        across_time: bool,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention output projected back to ``dim``, plus ``residual`` when given (fused)."""
        batch, length, dim = x.shape
        heads = self.num_heads
        head_dim = dim // heads
        # (B, L, 3, H, hd) -> three (B, H, L, hd) views, no copies yet
        qkv = fast_linear(x, self.qkv.weight, self.qkv.bias)
        q, k, v = qkv.view(batch, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)

        # the CLS token sees every token of the clip
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (B, H, 1, hd)

        groups = patches if across_time else frames

        def grouped(t: torch.Tensor) -> torch.Tensor:
            # (B, H, F*N, hd) -> (B, G, H, S, hd): G independent sequences of length S
            grid = t[:, :, 1:].unflatten(2, (frames, patches))  # (B, H, F, N, hd)
            if across_time:
                return grid.permute(0, 3, 1, 2, 4)  # (B, N, H, F, hd)
            return grid.permute(0, 2, 1, 3, 4)  # (B, F, H, N, hd)

        def with_cls(t: torch.Tensor) -> torch.Tensor:
            # prepend the CLS key/value to each group's sequence
            cls = t[:, :, :1].unsqueeze(1).expand(batch, groups, heads, 1, head_dim)
            return torch.cat((cls, grouped(t)), dim=3).flatten(0, 1)

        q_groups = grouped(q).flatten(0, 1)  # (B*G, H, S, hd)
        out = F.scaled_dot_product_attention(q_groups, with_cls(k), with_cls(v))
        out = out.unflatten(0, (batch, groups))  # (B, G, H, S, hd)
        if across_time:
            out = out.permute(0, 3, 1, 2, 4)  # (B, F, N, H, hd)
        else:
            out = out.permute(0, 1, 3, 2, 4)  # (B, F, N, H, hd)
        out = out.reshape(batch, frames * patches, dim)
        out = torch.cat((cls_out.transpose(1, 2).reshape(batch, 1, dim), out), dim=1)
        if residual is None:
            return fast_linear(out, self.proj.weight, self.proj.bias)
        return fast_linear(out, self.proj.weight, self.proj.bias, post="add", other=residual)


class Mlp(nn.Module):
    """Two-layer feed-forward network with exact (erf) GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``fc2(gelu(fc1(x)))``, plus ``residual`` when given (fused into ``fc2``)."""
        hidden = fast_linear(x, self.fc1.weight, self.fc1.bias, post="gelu")
        if residual is None:
            return fast_linear(hidden, self.fc2.weight, self.fc2.bias)
        return fast_linear(hidden, self.fc2.weight, self.fc2.bias, post="add", other=residual)


class DividedSpaceTimeBlock(nn.Module):
    """Pre-norm block: time attention (``norm3``), space attention (``norm1``), MLP (``norm2``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = DividedAttention(dim, num_heads)
        self.timeattn = DividedAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm3 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, *, frames: int, patches: int) -> torch.Tensor:
        x = self.timeattn(self.norm3(x), frames=frames, patches=patches, across_time=True, residual=x)
        x = self.attn(self.norm1(x), frames=frames, patches=patches, across_time=False, residual=x)
        return self.mlp(self.norm2(x), residual=x)


class PatchEmbed2D(nn.Module):
    """Image patch projection kept only because the checkpoint stores it.

    The video encoder tokenises with :class:`PatchEmbed3D`; this layer's
    weights are loaded (strict loading needs them) but never used.
    """

    def __init__(self, dim: int, patch_size: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)


class PatchEmbed3D(nn.Module):
    """Tubelet projection: (N, C, T, H, W) -> (N, T/tubelet * H/p * W/p, D), time-major order."""

    def __init__(self, dim: int, patch_size: int, tubelet: int, in_chans: int = 3) -> None:
        super().__init__()
        kernel = (tubelet, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class PackedSelfAttention(nn.Module):
    """Multi-head attention with packed q/k/v weights, named like ``nn.MultiheadAttention``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)

    def first_token(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output of token 0 only (queries of other tokens are never computed)."""
        batch, length, dim = x.shape
        heads = self.num_heads
        w_q, w_kv = self.in_proj_weight.split((dim, 2 * dim))
        b_q, b_kv = self.in_proj_bias.split((dim, 2 * dim))
        q = fast_linear(x[:, :1], w_q, b_q).view(batch, 1, heads, -1).transpose(1, 2)
        k, v = fast_linear(x, w_kv, b_kv).view(batch, length, 2, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, 1, hd)
        out = out.transpose(1, 2).reshape(batch, 1, dim)
        return fast_linear(out, self.out_proj.weight, self.out_proj.bias)


class SpatialAggregator(nn.Module):
    """Pools each frame's patch tokens into one vector with a learned CLS token.

    It is one pre-norm transformer encoder layer (GELU, eps 1e-6) over
    ``[CLS, patches]`` whose CLS output is the frame feature. Since nothing
    downstream reads the patch outputs, only the CLS row is computed after
    the key/value projection, which is exact and saves most of the layer.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.self_attn = PackedSelfAttention(dim, num_heads)
        hidden = int(dim * mlp_ratio)
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(M, P, D) patch tokens -> (M, D) pooled features."""
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1)
        y = cls + self.self_attn.first_token(self.norm1(x))
        hidden = fast_linear(self.norm2(y), self.linear1.weight, self.linear1.bias, post="gelu")
        y = fast_linear(hidden, self.linear2.weight, self.linear2.bias, post="add", other=y)
        return y[:, 0]
