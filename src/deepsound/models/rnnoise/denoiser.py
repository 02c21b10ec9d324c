"""RNNoise: a small recurrent speech denoiser that lets a VAD hear a voice far under a loud bed.

Why. The speech gate's misses are voices 5–10 dB under music and engines:
Silero hears the bed, not the syllables. RNNoise (Valin, 2018) is trained to
keep speech and remove everything else, frame by frame, and it reports its own
voice probability per 10 ms; Silero run again on the track RNNoise returns hears
most of those voices (``benchmarks/bench_gate_evidence.py``). Its network ships
compiled into the library of the ``pyrnnoise`` wheel, so it works offline
like the two VADs.

Bound by hand through the C API (``ctypes``) rather than through the wheel's
Python module: that module imports a media stack for its file helpers, and its
frame loop wraps the same one C call. Two facts about that library are handled
here: it processes 480-sample frames of 48 kHz audio at int16 scale, and it
returns NaN unless each frame is denoised in place (input and output the same
buffer). A fresh state per call keeps tracks independent (its recurrent state
would otherwise carry from one clip into the next); creating one costs
microseconds.
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from deepsound.audio import Audio
from deepsound.errors import ConfigError

RNNOISE_RATE = 48000  # the network's only rate
FRAME_HOP_S = 0.01  # one voice probability per 480-sample frame
INT16_SCALE = 32767.0
_LIBRARY = "librnnoise.so"
_lock = threading.Lock()
_lib: Any = None


def _library() -> Any:
    """The wheel's shared library with its three entry points typed (loaded once per process)."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        spec = importlib.util.find_spec("pyrnnoise")  # finds the wheel without importing its module
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("RNNoise needs the pyrnnoise wheel: pip install pyrnnoise")
        path = Path(next(iter(spec.submodule_search_locations))) / _LIBRARY
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise ConfigError(f"RNNoise's library could not load from the pyrnnoise wheel ({exc})") from exc
        floats = ctypes.POINTER(ctypes.c_float)
        lib.rnnoise_create.argtypes, lib.rnnoise_create.restype = [ctypes.c_void_p], ctypes.c_void_p
        lib.rnnoise_destroy.argtypes, lib.rnnoise_destroy.restype = [ctypes.c_void_p], None
        lib.rnnoise_get_frame_size.argtypes, lib.rnnoise_get_frame_size.restype = [], ctypes.c_int
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, floats, floats]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        _lib = lib
        return lib


class RnnoiseDenoiser:
    """A 16 kHz mono track denoised by RNNoise, with RNNoise's voice probability per 10 ms frame."""

    hop_s = FRAME_HOP_S

    def __init__(self) -> None:
        # fail at construction, with the one-line reason, rather than on the first clip; the library
        # handle itself stays module-level so that a detector can be pickled to a worker process
        self.frame = int(_library().rnnoise_get_frame_size())

    def __call__(self, mono: np.ndarray, rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
        """(the denoised track at ``rate``, same length; one voice probability per 10 ms frame).

        A last partial frame is denoised (zero-padded) but gets no probability;
        a track shorter than one frame is one padded frame.
        """
        x = np.asarray(mono, np.float32)
        if x.size == 0:
            return x.copy(), np.zeros(0, np.float32)
        up = Audio(x, rate).resample(RNNOISE_RATE, "HQ").waveform[0]
        n = up.size // self.frame
        frames = np.zeros((-(-up.size // self.frame), self.frame), np.float32)
        frames.reshape(-1)[: up.size] = up * INT16_SCALE
        probs = np.empty(frames.shape[0], np.float32)
        pointer_type = ctypes.POINTER(ctypes.c_float)
        base, stride = frames.ctypes.data, self.frame * frames.itemsize
        lib = _library()
        state = lib.rnnoise_create(None)
        try:
            for i in range(frames.shape[0]):
                frame = ctypes.cast(base + i * stride, pointer_type)
                probs[i] = lib.rnnoise_process_frame(state, frame, frame)  # in place (see above)
        finally:
            lib.rnnoise_destroy(state)
        clean = Audio(frames.reshape(-1) / INT16_SCALE, RNNOISE_RATE).resample(rate, "HQ").waveform[0]
        clean = np.pad(clean[: x.size], (0, max(x.size - clean.size, 0)))
        return clean.astype(np.float32), probs[: max(n, 1)]
