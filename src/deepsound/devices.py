"""Where a model runs and in what precision when the configuration says "auto": the one rule.

``auto`` device is CUDA when present, else the CPU; ``auto`` precision is bf16 on CUDA
(the references' inference precision; VideoLLaMA2's reference loads in fp16, so its
loader asks for that) and fp32 on the CPU. Torch is imported only when a device is
actually resolved, so reading a configuration stays cheap.
"""

from __future__ import annotations


def resolve_device(device: str = "auto") -> str:
    """``auto`` is CUDA when present, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype_name(dtype: str, device: str, on_cuda: str = "bfloat16") -> str:
    """``dtype`` unless it is "auto": then ``on_cuda`` on a CUDA device and float32 elsewhere."""
    if dtype != "auto":
        return dtype
    return on_cuda if str(device).startswith("cuda") else "float32"
