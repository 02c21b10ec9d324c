"""The vocal-stem speech gate: a voice detector listening to the separator's vocal stem.

Why. Two voice activity detectors on the mix (``fused``) still miss a third of
the voices 10 dB under music and fire on some Foley: on the mix they hear the
voice *through* the bed. Step 3 already runs a source separator (BS-RoFormer)
whose whole job is to pull the voice out of the bed, so its vocal stem is
evidence the mix-level detectors lack, at no extra cost on the path where it
matters: when the gate hears speech, step 3 reuses the very same separation.

What the rule does. The audio is separated once, at the separator's own rate
(as step 3 does); the vocal stem and the mix are brought to 16 kHz. Two pieces
of evidence, both written into the report:

1. *Stem VAD*: the configured base detector (``silero`` or ``ten``, built
   through the registry) gives its frame probabilities on the stem, and
   :func:`deepsound.speech_frames.segments_from_probabilities` turns them into
   speech-probable runs at the base detector's own threshold and shortest run.
   Why its own operating point: on a well-separated stem the detector hears a
   nearly clean voice, the condition its published threshold was set for. It is
   not refitted to one separator: measured with HTDemucs's published weights
   (``benchmarks/bench_gate_htdemucs.py``), a near-certain peak (0.97) would keep
   laughs and horns that separator leaves in its stem out, but BS-RoFormer's
   published weights, the default separator's, do not load here to say whether
   it needs the same.
2. *Stem share*: over the speech-probable frames of each run, the stem's energy
   divided by the mix's. A run is kept as speech when the share is at least
   ``min_share`` (default 0.03, i.e. the voice 15 dB under the rest). Why that
   number: an uncorrelated voice at SNR ``s`` dB makes up ``1/(1+10^(-s/10))``
   of the mix energy — 0.091 at -10 dB, the quietest voice the goal names —
   while a separator's bleed of a voiceless bed into its vocal stem is assumed
   to stay at or below -20 dB (share 0.01; an assumption about a good
   separator, not measured here). -15 dB is the midpoint in dB, 5 dB of margin
   either way: a stem that recovers a -10 dB voice at -4.8 dB of its level still
   passes, a horn or an engine leaking a little into the stem does not, even
   when the VAD fires on that leak.

The separation is kept in a :class:`StemCache` attached to the separator
object (keyed on the audio's content digest; the separator instance carries
its settings and weights), so that step 3, the separator's own speech gate
(``--only-speech``) and the dataset builder's vocal share, on the same audio,
reuse it instead of separating again. A separator without that hook still
works (its ``separate`` is called), it just is not reused.

Steps never import models: the separator and the base detector come in through
the registry (:func:`deepsound.registry.register` entry ``vocal-stem``).
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepsound.audio import Audio
from deepsound.errors import ConfigError
from deepsound.interfaces import Separator, SpeechReport
from deepsound.speech_frames import report_from_segments, segments_from_probabilities
from deepsound.steps.speech_gate import GATE_SAMPLE_RATE, FrameSpeechDetector

NAME = "vocal-stem"  # the registry name: --speech vocal-stem
# the clips of a batch that hears every clip before judging any (``--residency one``): reports
# (a few hundred bytes each) and stems (up to the stem cache's byte cap) are kept for that many
BATCH_CLIPS = 4096
BASES = ("silero", "ten")  # the registered frame-level detectors that can listen to the stem


@dataclass
class StemGateSettings:
    """``[pipeline.speech]`` for ``vocal-stem``: which detector hears the stem, and the share rule."""

    base: str = field(
        default="silero",
        metadata={"help": "Detector run on the separator's vocal stem.", "choices": BASES},
    )
    # the stem's share of the mix energy over a speech run below which it is taken for bleed (-15 dB)
    min_share: float = 0.03
    min_silence_s: float = 0.1  # gaps shorter than this between speech runs are bridged
    pad_s: float = 0.03  # each kept segment is widened by this much

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_share < 1.0:
            raise ConfigError(f"vocal-stem min share must lie in [0, 1), got {self.min_share}")
        if self.min_silence_s < 0 or self.pad_s < 0:
            raise ConfigError("vocal-stem min silence and padding must be non-negative")


# --------------------------------------------------------------------------- the shared separation


def audio_digest(audio: Audio) -> str:
    """The content of ``audio`` (samples, shape, rate): the same clip judged and then separated."""
    wave = np.ascontiguousarray(audio.waveform)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{audio.sample_rate}:{wave.shape}:{wave.dtype}".encode())
    h.update(memoryview(wave).cast("B"))
    return h.hexdigest()


class StemCache:
    """The last few vocal stems one separator made, by the audio's content.

    It lives on the separator object (``separator.stem_cache``), so a cached stem
    is always one that separator, with its weights and settings, made; it is
    released with the separator. Small on purpose: the gate separates a clip
    and step 3 asks for the same clip moments later (the dataset builder asks
    for the generated track after judging it and its original), so a handful of
    entries and a byte cap are enough, and long tracks do not pile up.
    """

    def __init__(self, capacity: int = 4, max_bytes: int = 512 * 2**20) -> None:
        self.capacity = int(capacity)
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.separations = 0  # stems computed
        self.reuses = 0  # stems handed out again

    def vocals(self, separator: Any, audio: Audio, key: str | None = None) -> tuple[np.ndarray, bool]:
        """(the vocal stem of ``audio`` at its rate and shape, whether it was reused).

        ``key`` is ``audio_digest(audio)`` where the caller has it already.
        """
        key = key or audio_digest(audio)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.reuses += 1
                return self._items[key].copy(), True
        stem = np.asarray(separator.vocals(audio), dtype=np.float32)
        with self._lock:
            self.separations += 1
            self._items[key] = stem.copy()
            while len(self._items) > 1 and (
                len(self._items) > self.capacity
                or sum(v.nbytes for v in self._items.values()) > self.max_bytes
            ):
                self._items.popitem(last=False)
        return stem, False


def stem_cache_of(separator: Any) -> StemCache:
    """``separator``'s stem cache, made on first use (the separator has the ``stem_cache`` hook)."""
    if separator.stem_cache is None:
        separator.stem_cache = StemCache()
    return separator.stem_cache


def keep_stems_for_batch(separator: Separator) -> None:
    """Let ``separator``'s stem cache hold a whole batch's stems (up to its byte cap), not a handful.

    The pipeline calls this where it hears every clip of a batch before any is separated
    (:mod:`deepsound.residency`); a clip-by-clip run keeps the small default.
    """
    if hasattr(separator, "stem_cache"):
        cache = stem_cache_of(separator)
        cache.capacity = max(cache.capacity, BATCH_CLIPS)


def hear_ahead(separator: Separator, detector: Any, audio: Audio) -> float:
    """Hear ``audio`` with the separating ``detector`` now, while ``separator`` is loaded; the seconds.

    The detector keeps the report, so a judge reads it later with the MLLM loaded instead, and the
    separator keeps the stem (with room for a batch's worth), so step 3 reuses it.
    """
    start = time.perf_counter()
    keep_stems_for_batch(separator)
    detector.detect(audio)
    return round(time.perf_counter() - start, 4)


def vocal_stem(separator: Separator, audio: Audio, key: str | None = None) -> tuple[Audio, bool]:
    """The vocal stem of ``audio`` from ``separator``, through its stem cache where it has the hook.

    A separator with a ``stem_cache`` attribute (BS-RoFormer) gets a cache on first use and
    uses it in its own ``separate``; any other separator is asked to ``separate`` (not reused).
    The stem comes at the input's rate, or at the model's where the separator is set to give
    its results in the model's format (BS-RoFormer's ``output_format="model"``). ``key``: the
    audio's digest, where the caller has computed it.
    """
    if hasattr(separator, "stem_cache") and hasattr(separator, "vocals"):
        stem, reused = stem_cache_of(separator).vocals(separator, audio, key)
        model_format = getattr(separator, "output_format", "input") == "model"
        return Audio(stem, separator.config.sample_rate if model_format else audio.sample_rate), reused
    return separator.separate(audio).vocals, False


# ---------------------------------------------------------------------------------- the detector


def _frame_energy(mono: np.ndarray, hop: int, frames: int) -> np.ndarray:
    """Energy of each ``hop``-sample frame (the detector's frames), zero past the signal."""
    padded = np.zeros(frames * hop, np.float64)
    n = min(mono.size, padded.size)
    padded[:n] = mono[:n]
    return np.square(padded).reshape(frames, hop).sum(axis=1)


_INSIDE = threading.local()  # set while the gate separates: a separator asking the gate again would loop


class VocalStemSpeechDetector:
    """Speech heard by a frame detector in the separator's vocal stem, kept where the stem is loud enough.

    ``separator`` is a zero-argument callable giving the configured separator: it is
    looked up on each call, never held, so that the separator is built only when a clip
    is judged and a policy that releases it (``--residency one``) is not defeated.
    """

    name = "vocal-stem"

    def __init__(
        self,
        base: FrameSpeechDetector,
        separator: Callable[[], Separator | None],
        settings: StemGateSettings | None = None,
    ) -> None:
        if not isinstance(base, FrameSpeechDetector):
            raise ConfigError(
                f"vocal-stem needs a frame-level detector ({', '.join(BASES)}), got {getattr(base, 'name', base)!r}"
            )
        self.base = base
        self._separator = separator
        self.settings = settings or StemGateSettings()
        # each clip's report by content: the judge reads what a "hear" stage heard without the
        # separator loaded (``--residency one``), and a second consumer of the same track
        # (the separator's own speech gate) does not separate it again
        self._heard: OrderedDict[str, SpeechReport] = OrderedDict()
        self._heard_lock = threading.Lock()

    def separator(self) -> Separator:
        found = self._separator()
        if found is None:
            raise ConfigError("the vocal-stem speech detector needs a separator; none is configured")
        return found

    def detect(self, audio: Audio) -> SpeechReport:
        """Speech segments in seconds of ``audio`` (any rate, any channels), with the stem's evidence.

        A track heard before (same samples and rate) gets a copy of that report, marked
        ``heard_before``, without asking for the separator.
        """
        duration = audio.duration
        if audio.num_samples == 0:
            return SpeechReport(segments=[], speech_ratio=0.0, duration=duration)
        key = audio_digest(audio)
        with self._heard_lock:
            if key in self._heard:
                self._heard.move_to_end(key)
                report = copy.deepcopy(self._heard[key])
                report.evidence["heard_before"] = True
                return report
        report = self._hear(audio, key)
        with self._heard_lock:
            self._heard[key] = copy.deepcopy(report)
            while len(self._heard) > BATCH_CLIPS:
                self._heard.popitem(last=False)
        report.evidence["heard_before"] = False
        return report

    def _hear(self, audio: Audio, key: str) -> SpeechReport:
        duration = audio.duration
        separator = self.separator()
        if getattr(_INSIDE, "detecting", False):
            raise ConfigError(
                f"{getattr(separator, 'name', 'the separator')} asks the vocal-stem gate while separating for it;"
                " a separator gated by this detector must separate through its stem cache"
            )
        start = time.perf_counter()
        _INSIDE.detecting = True
        try:
            stem, reused = vocal_stem(separator, audio, key)
        finally:
            _INSIDE.detecting = False
        seconds = time.perf_counter() - start
        mix16 = audio.to_mono().resample(GATE_SAMPLE_RATE).waveform[0].astype(np.float64)
        stem16 = stem.to_mono().resample(GATE_SAMPLE_RATE).waveform[0].astype(np.float64)
        stem16 = np.pad(stem16[: mix16.size], (0, max(mix16.size - stem16.size, 0)))
        probs = self.base.frame_probabilities(stem16.astype(np.float32))
        segments, runs = self.decide(probs, stem16, mix16, duration)
        report = report_from_segments(segments, duration)
        report.evidence = {
            "separation": {
                "separator": getattr(separator, "name", type(separator).__name__),
                "model_sample_rate": getattr(getattr(separator, "config", None), "sample_rate", None),
                "reused": reused,
                "seconds": round(seconds, 3),
            },
            "stem_vad": {
                "detector": self.base.name,
                "input": "vocal stem",
                "threshold": self.base.threshold,
                "speech_seconds": round(sum(r["end"] - r["start"] for r in runs), 3),
                "max_probability": round(float(probs.max()) if probs.size else 0.0, 4),
            },
            "stem_share": {
                "min_share": self.settings.min_share,
                "runs": runs,
                "stem_rms_db": _db(np.mean(np.square(stem16)) if stem16.size else 0.0),
                "mix_rms_db": _db(np.mean(np.square(mix16)) if mix16.size else 0.0),
            },
        }
        return report

    def decide(
        self, probs: np.ndarray, stem16: np.ndarray, mix16: np.ndarray, duration: float
    ) -> tuple[list[tuple[float, float]], list[dict[str, Any]]]:
        """(speech segments, each stem-VAD run with its share and verdict) from the stem's frame probabilities."""
        base, s = self.base, self.settings
        hop = max(int(round(base.hop_s * GATE_SAMPLE_RATE)), 1)
        runs = segments_from_probabilities(
            probs, base.hop_s, threshold=base.threshold, min_speech_s=base.min_speech_s,
            min_silence_s=s.min_silence_s, pad_s=0.0, duration=duration,
        )  # fmt: skip
        e_stem, e_mix = _frame_energy(stem16, hop, probs.size), _frame_energy(mix16, hop, probs.size)
        probable = probs >= base.threshold
        kept: list[tuple[float, float]] = []
        out = []
        for a, b in runs:
            frames = np.zeros(probs.size, bool)
            frames[int(round(a / base.hop_s)) : int(round(b / base.hop_s))] = True
            frames &= probable
            mix_energy = float(e_mix[frames].sum())
            share = min(float(e_stem[frames].sum()) / mix_energy, 1.0) if mix_energy > 0 else 0.0
            speech = share >= s.min_share
            out.append({"start": round(a, 3), "end": round(b, 3), "share": round(share, 4), "speech": speech})
            if speech:
                lo, hi = max(a - s.pad_s, 0.0), min(b + s.pad_s, duration)
                if kept and lo <= kept[-1][1]:
                    kept[-1] = (kept[-1][0], round(hi, 4))
                else:
                    kept.append((round(lo, 4), round(hi, 4)))
        return kept, out


def _db(power: float) -> float:
    return round(10.0 * float(np.log10(max(float(power), 1e-20))), 2)


def check_consumer(components: Any, uses_separator: bool, consumer: str) -> None:
    """A consumer that runs without a separator cannot use a speech detector that needs one."""
    # a detector handed in ready-made (Components overrides) is not the configured one
    if "speech" in getattr(components, "given", ()):
        return
    if not uses_separator and "separator" in components.entry("speech").needs:
        name = components.name_for("speech")
        raise ConfigError(
            f"{consumer}: the speech detector {name!r} separates every clip, so it needs the separator;"
            " enable it or choose another --speech"
        )
