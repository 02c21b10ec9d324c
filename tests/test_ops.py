"""fast_linear must give F.linear's result (plus the named post-op) on both of its paths.

The references are computed directly with ``F.linear`` and the matching
``torch.nn.functional`` activation on seeded random tensors; the oneDNN path
is only exercised where this PyTorch build provides it.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepsound.models import ops
from deepsound.testing.equivalence import relative_l2

REFERENCE = {
    "none": lambda y, other: y,
    "gelu": lambda y, other: F.gelu(y),
    "tanh": lambda y, other: torch.tanh(y),
    "silu": lambda y, other: F.silu(y),
    "add": lambda y, other: y + other,
}


@pytest.fixture(params=[True, False], ids=["onednn", "fallback"])
def path(request):
    ops.set_onednn(request.param)
    yield request.param
    ops.set_onednn(True)


def _inputs(seed: int, bias: bool = True, shape=(3, 37, 48), out: int = 80):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    w = torch.randn(out, shape[-1], generator=g) / shape[-1] ** 0.5
    b = torch.randn(out, generator=g) if bias else None
    other = torch.randn(*shape[:-1], out, generator=g)
    return x, w, b, other


@pytest.mark.parametrize("post", ops.POSTS)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_f_linear(path, post, bias):
    x, w, b, other = _inputs(1, bias)
    other = other if post == "add" else None
    with torch.inference_mode():
        got = ops.fast_linear(x, w, b, post=post, other=other)
    want = REFERENCE[post](F.linear(x, w, b), other)
    assert got.shape == want.shape
    assert relative_l2(got, want) < 1e-5


def test_onednn_switch_controls_the_path():
    ops.set_onednn(False)
    try:
        assert not ops.onednn_enabled()
    finally:
        ops.set_onednn(True)
    assert ops.onednn_enabled() == ops.onednn_available()


def test_fallback_is_exactly_f_linear():
    x, w, b, other = _inputs(3)
    ops.set_onednn(False)
    try:
        assert torch.equal(ops.fast_linear(x, w, b), F.linear(x, w, b))
        assert torch.equal(ops.fast_linear(x, w, b, "add", other), F.linear(x, w, b) + other)
    finally:
        ops.set_onednn(True)


def test_training_keeps_gradients(path):
    x, w, b, other = _inputs(4)
    w.requires_grad_(True)
    out = ops.fast_linear(x, w, b, post="gelu")
    out.sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_non_contiguous_input_and_broadcast_other(path):
    x, w, b, _ = _inputs(5, shape=(37, 3, 48))
    xt = x.transpose(0, 1)  # (3, 37, 48), not contiguous
    row = torch.randn(80)  # broadcast residual: handled by the plain path
    with torch.inference_mode():
        got = ops.fast_linear(xt, w, b, post="add", other=row)
        plain = ops.fast_linear(xt, w, b)
    assert relative_l2(got, F.linear(xt, w, b) + row) < 1e-5
    assert relative_l2(plain, F.linear(xt, w, b)) < 1e-5


def test_rejects_unknown_post_and_missing_other():
    x, w, b, other = _inputs(6)
    with pytest.raises(ValueError, match="unknown post-op"):
        ops.fast_linear(x, w, b, post="relu6")
    with pytest.raises(ValueError, match="other"):
        ops.fast_linear(x, w, b, post="add")
    with pytest.raises(ValueError, match="other"):
        ops.fast_linear(x, w, b, post="gelu", other=other)


def test_flop_counter_sees_fused_linear_and_cpu_attention():
    from torch.utils.flop_counter import FlopCounterMode

    x, w, b, other = _inputs(7)
    q = torch.randn(2, 3, 40, 16)
    k = torch.randn(2, 3, 24, 16)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            ops.fast_linear(x, w, b, post="gelu")
            ops.fast_linear(x, w, b, post="add", other=other)
            F.scaled_dot_product_attention(q, k, k)
    linear = 2 * (3 * 37) * 48 * 80
    attention = 2 * (2 * 3) * 40 * 24 * (16 + 16)
    assert counter.get_total_flops() == 2 * linear + attention
