"""What the vocal-stem speech gate costs per clip, beside Silero on the mix and beside step 3.

Rows (each on the same clip, the separator built once, its stem cache emptied between rows; the
fastest of ``--repeat`` runs counts, as other work on a shared machine only ever adds time):

* ``silero (mix)``: the plain gate, Silero VAD on the mix.
* ``vocal-stem gate``: one separation plus Silero on the stem and the share.
* ``step 3 alone``: the separation step 3 makes on a voice-over clip.
* ``gate + step 3 (reused)``: what the cascade does on a voice-over clip with ``--speech vocal-stem``.
* ``gate + step 3 (no reuse)``: the same without the stem cache (two separations).

BS-RoFormer runs at the viperx configuration with seeded weights
(:func:`deepsound.testing.equivalence.fill_seeded`): published weights cannot load here, and
the compute does not depend on the weights' values, so the times are those of the real model;
``--tiny`` uses the toy configuration instead (a smoke run). ``--chunk-size`` shortens the
model's 8 s chunks for a quick run on a slow machine (say so when quoting it). The clip is a
real Asterisk prompt (Debian's ``asterisk-core-sounds-en-wav``) when present, else seeded
noise: the cost does not depend on what is said.

Measured (``--seconds 4 --chunk-size 88200 --repeat 1``, viperx size with seeded weights, fp32,
a 2-core AMD EPYC shared with other jobs, load about 8, so single runs are noisy): Silero on the
mix 0.115 s; the vocal-stem gate 205.8 s (0.999x step 3); step 3 alone 206.1 s; gate + step 3
reused 188.3 s (0.91x); gate + step 3 without reuse 311.4 s (1.51x). The gate costs one step-3
separation (about 1800x Silero on this CPU); on a voice-over clip that is step 3's own
separation, reused; on a clip without speech it is a separation step 3 would not have made.

Example::

    python benchmarks/bench_stem_gate.py --seconds 10
    python benchmarks/bench_stem_gate.py --seconds 4 --chunk-size 88200   # quicker, shorter chunks
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from machine import describe

from deepsound.audio import Audio
from deepsound.models.bs_roformer.config import BsRoformerConfig
from deepsound.models.silero.detector import SileroSpeechDetector
from deepsound.steps.stem_speech import StemCache, VocalStemSpeechDetector
from deepsound.testing import tiny as toy

VOICE = Path("/usr/share/asterisk/sounds/en_US_f_Allison/vm-intro.wav")


def clip(seconds: float, rate: int = 16000) -> Audio:
    n = int(seconds * rate)
    if VOICE.exists():
        import soundfile as sf

        wav, r = sf.read(VOICE, dtype="float32")
        voice = Audio(wav, r).resample(rate).waveform[0]
        return Audio(np.tile(voice, n // voice.size + 1)[:n], rate)
    return Audio(0.1 * np.random.default_rng(0).standard_normal(n).astype(np.float32), rate)


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tiny", action="store_true", help="the toy BS-RoFormer (smoke run)")
    parser.add_argument("--chunk-size", type=int, help="override the model's chunk (samples at 44.1 kHz)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per row; the fastest counts (a shared CPU)"
    )
    args = parser.parse_args()
    print(describe())
    base = BsRoformerConfig.tiny() if args.tiny else BsRoformerConfig.viperx()
    config = base.replace(chunk_size=args.chunk_size) if args.chunk_size else base
    separator = toy.bs_roformer_separator(seed=0, config=config)
    silero = SileroSpeechDetector()
    gate = VocalStemSpeechDetector(SileroSpeechDetector(), lambda: separator)
    audio = clip(args.seconds)
    silero.detect(audio)  # load the VAD's weights outside the timings

    def fresh(cache: bool) -> None:
        separator.stem_cache = StemCache() if cache else None

    def both(cache: bool) -> None:
        fresh(cache)
        gate.detect(audio)
        if not cache:  # the gate attached a cache; without reuse step 3 separates on its own
            separator.stem_cache = None
        separator.separate(audio)

    rows = [("silero (mix)", lambda: silero.detect(audio))]
    rows.append(("vocal-stem gate", lambda: (fresh(True), gate.detect(audio))))
    rows.append(("step 3 alone", lambda: (fresh(False), separator.separate(audio))))
    rows.append(("gate + step 3 (reused)", lambda: both(True)))
    rows.append(("gate + step 3 (no reuse)", lambda: both(False)))
    times = {name: min(timed(fn) for _ in range(max(args.repeat, 1))) for name, fn in rows}
    step3 = times["step 3 alone"]
    size = "tiny" if args.tiny else "viperx (seeded weights)"
    chunk = f", chunk {config.chunk_size}" if args.chunk_size else ""
    print(f"BS-RoFormer {size}{chunk}; clip {args.seconds:g} s at 16 kHz; fp32 on CPU")
    print(f"{'row':28s} {'seconds':>9s} {'s per min audio':>16s} {'x step 3':>9s}")
    for name, seconds in times.items():
        per_min = seconds * 60.0 / args.seconds
        print(f"{name:28s} {seconds:9.3f} {per_min:16.2f} {seconds / step3:9.3f}")


if __name__ == "__main__":
    main()
