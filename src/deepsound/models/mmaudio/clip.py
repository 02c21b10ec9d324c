"""CLIP conditioning of MMAudio: per-frame image embeddings and per-token text states.

MMAudio uses Apple's DFN5B CLIP ViT-H/14 (open_clip layout
``ViT-H-14-378-quickgelu``, run on 384 px frames, which give the same 27 x 27
patch grid as 378 px). Two things differ from plain CLIP use, and both are
what the published MMAudio weights were trained with:

* frames are normalised with the original OpenAI CLIP mean/std (not read from
  the checkpoint's preprocessing config) and the pooled image embedding is
  L2-normalised;
* text is encoded to the *last hidden state of every token* (B, 77, D), after
  the final layer norm and L2-normalised per token, instead of the pooled
  end-of-text embedding.

The network itself is open_clip's ``CLIP`` class, built from a model config
dict (the published ``open_clip_config.json`` or the built-in config) so its
parameter names are those of ``open_clip_pytorch_model.bin``. Weights only ever
come from a local file; nothing is downloaded here.

Dtype policy: the conditioner computes in the dtype of its parameters
(float32 by default, bfloat16 after ``.to(torch.bfloat16)``, as MMAudio runs
on GPUs); inputs are moved to the parameters' device and dtype and features
come back in that dtype.

Speed: for inference every transformer block of the image and text towers
runs our own forward (:class:`_InferenceBlock`) on the same parameters, so
names, shapes and ``state_dict`` stay open_clip's. It projects through
:func:`deepsound.models.ops.fast_linear` (oneDNN on x86 CPUs, with both residual
additions fused into the output projections), attends with
``scaled_dot_product_attention`` and, in fp32, fuses the quick GELU into the
first MLP product (:func:`_quick_gelu_mlp`). The arithmetic is that of
``nn.MultiheadAttention`` and the open_clip MLP up to float rounding.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.transformer import LayerNorm, QuickGELU, ResidualAttentionBlock
from torch import nn

from deepsound.errors import WeightsError
from deepsound.models.ops import fast_linear
from deepsound.weights.loading import LoadRules, load_into

if TYPE_CHECKING:
    from deepsound.interfaces import Placement

ARCHITECTURE = "ViT-H-14-378-quickgelu"
IMAGE_SIZE = 384  # the DFN5B checkpoint's input size; 384 // 14 == 378 // 14 == 27 patches
# MMAudio normalises with the OpenAI CLIP statistics
PIXEL_MEAN = (0.48145466, 0.4578275, 0.40821073)
PIXEL_STD = (0.26862954, 0.26130258, 0.27577711)
TOWERS = (None, "image", "text")


def default_model_config() -> dict[str, Any]:
    """open_clip's built-in ``ViT-H-14-378-quickgelu`` config at the checkpoint's 384 px."""
    cfg = open_clip.get_model_config(ARCHITECTURE)
    if cfg is None:  # pragma: no cover - depends on the installed open_clip
        raise WeightsError(f"open_clip does not know the architecture {ARCHITECTURE}")
    cfg = copy.deepcopy(cfg)
    cfg["vision_cfg"]["image_size"] = IMAGE_SIZE
    return cfg


def tiny_model_config() -> dict[str, Any]:
    """A small CLIP of the same family (quick GELU, ViT/14 on 384 px, 77-token text) for tests."""
    return {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {
            "image_size": IMAGE_SIZE,
            "layers": 2,
            "width": 64,
            "head_width": 16,
            "patch_size": 14,
        },
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    # A plain open_clip name resolves to the byte-pair tokenizer whose vocabulary ships inside the
    # open_clip package, so this works offline.
    return open_clip.get_tokenizer(ARCHITECTURE)


def read_model_config(path: Path) -> dict[str, Any]:
    """The ``model_cfg`` of an open_clip config JSON (or the file itself when it is a bare model config)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise WeightsError(f"{path}: CLIP config not found") from exc
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable JSON CLIP config ({exc})") from exc
    cfg = data.get("model_cfg", data) if isinstance(data, dict) else None
    if not isinstance(cfg, dict) or "vision_cfg" not in cfg or "text_cfg" not in cfg:
        raise WeightsError(f"{path}: no open_clip model config (vision_cfg/text_cfg) in it")
    return cfg


def _describe(cfg: dict[str, Any]) -> str:
    vision = cfg["vision_cfg"]
    return f"ViT ({vision.get('layers')} layers, width {vision.get('width')})"


class _InferenceBlock(ResidualAttentionBlock):
    """open_clip's pre-norm self-attention block with a leaner inference forward.

    Installed by swapping the class of existing blocks (see :func:`_speed_up`),
    so the parameters are untouched. Cross attention and autograd take
    open_clip's own forward.
    """

    def forward(
        self,
        q_x: torch.Tensor,
        k_x: torch.Tensor | None = None,
        v_x: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if k_x is not None or v_x is not None or torch.is_grad_enabled() or q_x.dim() != 3:
            return super().forward(q_x, k_x, v_x, attn_mask=attn_mask)
        x = q_x
        b, n, d = x.shape
        attn = self.attn
        heads = attn.num_heads
        qkv = fast_linear(self.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
        mask = attn_mask.to(x.dtype) if attn_mask is not None else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, hd)
        out = out.transpose(1, 2).reshape(b, n, d)
        x = fast_linear(out, attn.out_proj.weight, attn.out_proj.bias, post="add", other=x)
        mlp = self.mlp
        act = mlp.gelu
        if (
            isinstance(act, QuickGELU)
            and x.dtype == torch.float32  # in bf16 the extra scaling of the residual would round
            and _affine(self.ln_2)
            and mlp.c_fc.bias is not None
        ):
            return _quick_gelu_mlp(self.ln_2, mlp.c_fc, mlp.c_proj, x)
        exact_gelu = isinstance(act, nn.GELU) and act.approximate == "none"
        hidden = fast_linear(
            self.ln_2(x), mlp.c_fc.weight, mlp.c_fc.bias, post="gelu" if exact_gelu else "none"
        )
        if not exact_gelu:
            hidden = act(hidden)
        return fast_linear(hidden, mlp.c_proj.weight, mlp.c_proj.bias, post="add", other=x)


_QUICK_GELU_SCALE = 1.702


def _affine(norm: nn.Module) -> bool:
    return type(norm) in (LayerNorm, nn.LayerNorm) and norm.weight is not None and norm.bias is not None


def _quick_gelu_mlp(norm: nn.LayerNorm, fc: nn.Linear, proj: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``x + proj(quick_gelu(fc(norm(x))))`` with the activation fused into ``fc``'s product.

    ``quick_gelu(y) = y * sigmoid(a y)`` equals ``silu(a y) / a``. Scaling the
    norm's gain and bias and ``fc``'s bias by ``a`` turns ``fc``'s output into
    ``a y``, whose SiLU oneDNN fuses; ``proj`` then adds ``a`` times its bias
    and the residual, and one division by ``a`` on the (4x narrower) output
    undoes the scale. This replaces three passes over the wide hidden
    activations with two over the output; the parameters stay untouched.
    """
    a = _QUICK_GELU_SCALE
    h = F.layer_norm(x, norm.normalized_shape, norm.weight * a, norm.bias * a, norm.eps)
    hidden = fast_linear(h, fc.weight, fc.bias * a, post="silu")  # a * quick_gelu(fc(norm(x)))
    bias = proj.bias * a if proj.bias is not None else None
    return fast_linear(hidden, proj.weight, bias, post="add", other=x * a).div_(a)


def _speed_up(model: nn.Module) -> None:
    """Give every plain self-attention block of ``model`` the inference forward of :class:`_InferenceBlock`."""
    for module in model.modules():
        if (
            type(module) is ResidualAttentionBlock
            and isinstance(module.ls_1, nn.Identity)
            and isinstance(module.ls_2, nn.Identity)
            and not hasattr(module, "ln_1_kv")
            and module.attn.batch_first
            and module.attn.in_proj_weight is not None
            and module.attn.in_proj_bias is not None
            and all(isinstance(getattr(module.mlp, n, None), nn.Linear) for n in ("c_fc", "c_proj"))
            and hasattr(module.mlp, "gelu")
        ):
            module.__class__ = _InferenceBlock


def _forget_meta(model: nn.Module) -> None:
    """Unset every tensor the file did not fill (the tower not loaded), so the model can move."""
    for module in model.modules():
        for table in (module._parameters, module._buffers):
            for name, value in table.items():
                if value is not None and value.is_meta:
                    table[name] = None


def _causal_mask(length: int) -> torch.Tensor:
    return torch.full((length, length), float("-inf")).triu_(1)


class ClipConditioner(nn.Module):
    """open_clip CLIP plus MMAudio's image normalisation and token-level text encoding."""

    def __init__(self, model_config: dict[str, Any]) -> None:
        super().__init__()
        self.model_config = copy.deepcopy(model_config)
        self.model = CLIP(**self.model_config)
        _speed_up(self.model)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)
        self.tokenizer = _tokenizer()
        self.tower: str | None = None  # both towers, or only "image" / "text" (see from_pretrained)
        self.eval()

    @classmethod
    def from_pretrained(
        cls,
        weights: Path | str | None = None,
        config: Path | str | None = None,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        tower: str | None = None,
    ) -> ClipConditioner:
        """Build ViT-H-14-378-quickgelu (or the architecture in ``config``) and load ``weights``.

        ``weights=None`` leaves open_clip's random initialisation (useful only
        to inspect the layout). Loading is strict: every tensor of the
        architecture must be in the file with its shape. ``tower`` (``"image"`` or
        ``"text"``) loads only that half: the other stays on the meta device (no memory),
        so that a small machine holds 2.4 or 1.4 GB of the 3.9 GB at a time
        (``--residency one``); the file is memory-mapped, so the half not wanted is never read.
        """
        if tower not in TOWERS:
            raise ValueError(f"tower must be one of {TOWERS}, got {tower!r}")
        model_config = read_model_config(Path(config)) if config is not None else default_model_config()
        try:
            with torch.device("meta"):  # layout only: no memory, no random initialisation
                conditioner = cls(model_config)
        except (TypeError, ValueError, KeyError, AssertionError) as exc:
            raise WeightsError(f"{config}: open_clip cannot build this model config ({exc})") from exc
        if weights is None:
            return cls(model_config).to(device=device, dtype=dtype)
        image = (r"^visual\.",)
        rules = LoadRules(rename=((r"^module\.", ""),), keep=image if tower == "image" else ())
        if tower == "text":
            rules = LoadRules(rename=rules.rename, drop=image)
        what = f"CLIP {_describe(model_config)}" + (f" ({tower} tower)" if tower else "")
        expect = None if tower is None else (lambda key: key.startswith("visual.") == (tower == "image"))
        load_into(conditioner.model, weights, what, rules, assign=True, mmap=True, expect=expect)
        conditioner.tower = tower
        _forget_meta(conditioner.model)
        # non-persistent buffers are not in the file: rebuild them off the meta device
        conditioner.pixel_mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
        conditioner.pixel_std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
        conditioner.model.attn_mask = _causal_mask(conditioner.model.context_length)
        return conditioner.to(device=device, dtype=dtype).eval()

    @classmethod
    def from_placement(cls, placement: Placement) -> ClipConditioner:
        """Resolve the published DFN5B weights and config, and place the model as the pipeline asks."""
        from deepsound.weights.loading import torch_dtype
        from deepsound.weights.overrides import resolve_for

        weights = resolve_for(placement, "clip_dfn5b")
        cfg = resolve_for(placement, "clip_dfn5b_config")
        dtype = torch_dtype(placement.resolved_dtype())
        return cls.from_pretrained(weights, cfg, device=placement.resolved_device(), dtype=dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self._weight.dtype

    @property
    def device(self) -> torch.device:
        return self._weight.device

    @property
    def _weight(self) -> torch.Tensor:
        """A parameter of a loaded tower (the other may be on the meta device)."""
        return self.model.visual.conv1.weight if self.tower == "image" else self.model.token_embedding.weight

    @property
    def image_dim(self) -> int:
        return int(self.model_config["embed_dim"])

    @property
    def text_dim(self) -> int:
        return int(self.model_config["text_cfg"]["width"])

    @torch.inference_mode()
    def encode_image(self, frames: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """(B, T, 3, 384, 384) frames in [0, 1] -> (B, T, D) unit-norm image embeddings.

        ``batch_size`` frames go through the network at once (default: all).
        """
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"expected frames (B, T, 3, H, W), got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        flat = frames.to(device=self.device, dtype=self.dtype).flatten(0, 1)
        step = b * t if batch_size is None or batch_size <= 0 else batch_size
        out = []
        for i in range(0, b * t, step):
            pixels = (flat[i : i + step] - self.pixel_mean.to(flat.dtype)) / self.pixel_std.to(flat.dtype)
            out.append(F.normalize(self.model.visual(pixels), dim=-1))
        return torch.cat(out, dim=0).view(b, t, -1)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """(B, 77) token ids with start/end markers, zero padded, truncated like open_clip."""
        return self.tokenizer(list(texts))

    @torch.inference_mode()
    def encode_text(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """Prompts -> (B, 77, D) per-token last hidden states, layer-normed and unit-norm per token."""
        tokens = self.tokenize(texts).to(self.device)
        step = max(len(tokens), 1) if batch_size is None or batch_size <= 0 else batch_size
        chunks = [tokens[i : i + step] for i in range(0, len(tokens), step)] or [tokens]
        return torch.cat([self._text_states(chunk) for chunk in chunks])

    def _text_states(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.token_embedding(tokens).to(self.dtype) + m.positional_embedding.to(self.dtype)
        x = m.transformer(x, attn_mask=m.attn_mask)
        return F.normalize(m.ln_final(x), dim=-1)
