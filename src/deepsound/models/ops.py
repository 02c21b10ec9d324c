"""Fast fp32 projections on x86 CPUs through oneDNN, with the pointwise tail fused.

PyTorch's default CPU ``F.linear`` hands fp32 products to MKL, which on AMD
processors runs at a fraction of the machine's peak for the shapes of our
transformers (about 60-100 GFLOP/s on a 2-core EPYC where oneDNN reaches about
200). ``torch.ops.mkldnn._linear_pointwise`` computes the same products through
oneDNN and can fuse the activation (GELU, tanh, SiLU) or a residual addition
into the matrix product, saving a pass over the activations as well.

The fused op has no backward and exists only in builds with oneDNN, so
:func:`fast_linear` uses it only for CPU inference on fp32/bf16 tensors and
otherwise (or when the op is missing or fails once) computes the same thing
with ``F.linear``. ``DEEPSOUND_ONEDNN=0`` in the environment, or
:func:`set_onednn(False) <set_onednn>`, turns the fast path off, e.g. to compare
both paths.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor

POSTS = ("none", "gelu", "tanh", "silu", "add")

_STATE: dict[str, bool | None] = {"enabled": os.environ.get("DEEPSOUND_ONEDNN", "1") != "0", "works": None}


def set_onednn(enabled: bool) -> None:
    """Route CPU projections through oneDNN (``True``, the default) or plain ``F.linear``."""
    _STATE["enabled"] = bool(enabled)


def onednn_available() -> bool:
    """Whether this PyTorch build has the fused oneDNN linear (and it has not failed before)."""
    if _STATE["works"] is None:
        _STATE["works"] = bool(
            torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        )
    return bool(_STATE["works"])


def onednn_enabled() -> bool:
    """Whether :func:`fast_linear` will use oneDNN for eligible inputs."""
    return bool(_STATE["enabled"]) and onednn_available()


def _eligible(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    if not _STATE["enabled"] or x.device.type != "cpu" or weight.device.type != "cpu":
        return False
    if x.dtype not in (torch.float32, torch.bfloat16) or weight.dtype != x.dtype:
        return False
    if bias is not None and bias.dtype != x.dtype:
        return False
    if x.dim() < 2 or weight.dim() != 2 or x.shape[-1] != weight.shape[1] or x.numel() == 0:
        return False
    if torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return False  # the fused kernels have no backward
    return onednn_available()


def _reference(x: Tensor, weight: Tensor, bias: Tensor | None, post: str, other: Tensor | None) -> Tensor:
    out = F.linear(x, weight, bias)
    if post == "gelu":
        return F.gelu(out)
    if post == "tanh":
        return torch.tanh(out)
    if post == "silu":
        return F.silu(out)
    if post == "add":
        return out + other
    return out


def fast_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    post: str = "none",
    other: Tensor | None = None,
) -> Tensor:
    """``post(x @ weight.T + bias)``, with ``post`` one of :data:`POSTS`.

    ``"gelu"`` is the exact (erf) GELU of ``nn.GELU()``; ``"add"`` returns
    ``x @ weight.T + bias + other`` with ``other`` shaped like the result.
    """
    if post not in POSTS:
        raise ValueError(f"unknown post-op {post!r}; expected one of {POSTS}")
    if (post == "add") != (other is not None):
        raise ValueError('pass `other` exactly when post="add"')
    if _eligible(x, weight, bias):
        out_shape = (*x.shape[:-1], weight.shape[0])
        flat = x.reshape(-1, x.shape[-1])
        try:
            if post == "add":
                if tuple(other.shape) != out_shape or other.dtype != x.dtype:
                    return _reference(x, weight, bias, post, other)
                out = torch.ops.mkldnn._linear_pointwise.binary(
                    flat, other.reshape(flat.shape[0], -1), weight, bias, "add"
                )
            else:
                attr = {"none": "none", "gelu": "gelu", "tanh": "tanh", "silu": "swish"}[post]
                out = torch.ops.mkldnn._linear_pointwise(
                    flat, weight, bias, attr, [], "none" if post == "gelu" else ""
                )
            return out.view(out_shape)
        except RuntimeError:
            _STATE["works"] = False  # an unusual build: fall back for good
    return _reference(x, weight, bias, post, other)


# ---------------------------------------------------------------- FLOP counting


def _linear_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    """``2 * rows * in * out`` for both overloads of the fused linear (shapes come first)."""
    rows = 1
    for size in x_shape[:-1]:
        rows *= size
    return 2 * rows * x_shape[-1] * out_shape[-1]


def _cpu_attention_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """Scores plus weighted sum: ``2 * B * H * Lq * Lk * (E + Ev)``."""
    *batch, lq, e = q_shape
    lk, ev = k_shape[-2], v_shape[-1]
    heads = 1
    for size in batch:
        heads *= size
    return 2 * heads * lq * lk * (e + ev)


def _register_flop_formulas() -> None:
    """Teach ``torch.utils.flop_counter`` the CPU kernels it does not know, so counts stay complete.

    Without this, FLOP counts (and the speed floors derived from them) would
    silently miss every oneDNN projection and every CPU flash attention.
    """
    try:
        from torch.utils.flop_counter import flop_registry, register_flop_formula
    except ImportError:  # pragma: no cover - very old PyTorch
        return
    targets = []
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        targets.append((torch.ops.mkldnn._linear_pointwise, _linear_flops))
    if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        targets.append((torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, _cpu_attention_flops))
    for target, formula in targets:
        if target not in flop_registry:
            register_flop_formula(target)(formula)


_register_flop_formulas()
