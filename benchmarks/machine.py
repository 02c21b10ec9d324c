"""The machine a benchmark ran on, for the header of every table in ``benchmarks/``.

Speed ratios between two implementations depend on the CPU: which vector units exist (AVX2 or
AVX-512, AMX for bfloat16), which of them torch's kernels actually use (``ATEN_CPU_CAPABILITY``
and oneDNN's ``DNNL_MAX_CPU_ISA`` can lower it), how many threads run, and the torch version.
A number without these is not comparable with another one, so every script prints this line first.

    from machine import describe   # the scripts run from benchmarks/, so this module is importable
    print(describe())
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model in ("unknown CPU", platform.processor()):
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def vector_units(flags: set[str]) -> str:
    """The widest x86 vector extension the CPU reports ('AVX-512', 'AVX2', ...)."""
    if "avx512f" in flags:
        name = "AVX-512"
        if "avx512_bf16" in flags:
            name += " (bf16)"
    elif "avx2" in flags:
        name = "AVX2"
    elif flags:
        name = "no AVX2"
    else:
        return "vector units unknown"
    if "amx_tile" in flags:
        name += " + AMX"
    return name


def describe(threads: int | None = None) -> str:
    """One line: CPU model, vector units, what torch uses, threads, torch version.

    ``threads`` names the thread count of worker processes when it differs from this process's.
    """
    import torch

    model, flags = _cpuinfo()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    overrides = [
        f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA") if k in os.environ
    ]
    used = torch.backends.cpu.get_cpu_capability()
    parts = [
        f"machine: {model}",
        f"{vector_units(flags)} (torch kernels: {used}{'; ' + ', '.join(overrides) if overrides else ''})",
        f"{cores} cores, {threads or torch.get_num_threads()} torch threads",
        f"torch {torch.__version__}",
    ]
    return ", ".join(parts)


if __name__ == "__main__":
    print(describe())
