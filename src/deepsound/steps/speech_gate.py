"""The fused speech gate: Silero VAD and TEN VAD on the same 16 kHz signal, one fitted rule.

Why two detectors. The cascade judge asks the MLLM only where speech was heard,
so this gate decides what step 3 ever gets to remove. Measured on the project's
development set (``tools/build_vad_devset.py``: real voices, telephone-band
Asterisk prompts and full-band recorded words and lines, in real soundtracks,
music, engines, animals and crowds; Foley, ambiences and non-verbal vocal
sounds without words), Silero alone misses voices once the bed is louder than
they are and fires on some ambiences, horns, animals, laughs; TEN VAD on its
own fires on most engines, horns and animals.

What the rule does (fitted on the tuning half only; ``bench_voice_over.py
--fit`` refits it). Silero listens to the track once the floor of its
stationary bed is subtracted (:mod:`deepsound.steps.speech_bed`: a voice's
syllables stand out of an engine or a held chord again), TEN to the track as it
is. Each 6 s window (the set's clip length; a longer track is read in
half-overlapping windows, a shorter one as the window it would sit in) gets
three numbers: Silero's loudest half-second (log-odds), TEN's loudest
half-second (log-odds) and TEN's rise above its own median in the window. A
logistic regression over them (class-balanced, so that log-odds 0 is the point
where a miss and a false alarm cost the same; L2 strength by cross-validation
grouped by source recording; voices at −10 dB left out of the fit, see the
benchmark) gives the log-odds of speech, and speech is declared at 0 or more.
The fitted weights say what the measurements said: Silero carries the
evidence, and a high or sharply rising TEN that Silero does not share (engines,
water, a neigh, a horn) counts *against* speech.

Measured and left out: Silero on the 300–3400 Hz band only (the first version:
it fits telephone voices and loses full-band ones, a real VGGSound voice burst
among them), Silero's seconds of speech (a negative weight on short phrases),
a time-local "sustained component" removal, syllable-rate (2–8 Hz) envelope
modulation, pitch steadiness and voiced/unvoiced alternation on the
bed-subtracted track (no gain on both sides at once, or false alarms on music),
and pocketsphinx's English acoustic model as a phone-loop decoder on the
bed-subtracted track (share of frames in speech phones, phones per second, the
acoustic score of speech phones over fillers, alone or only where the rule is
unsure): it hears phones in music and in "ow"s and "oof"s, the held-out half
lost more on false alarms than it gained on voices, and it costs about five
times Silero's CPU. Each detector's own reading and each window's score go into the
report's evidence, so the trace shows who heard what.

Cost: one Silero and one TEN pass (TEN is cheaper than Silero) plus one STFT each way.
Steps never import models: the detectors come in through
:class:`FrameSpeechDetector`, the registry builds them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from deepsound.audio import Audio
from deepsound.interfaces import SpeechReport
from deepsound.speech_frames import report_from_segments, segments_from_probabilities
from deepsound.steps.speech_bed import without_stationary_bed

GATE_SAMPLE_RATE = 16000


@dataclass
class FusedGateSettings:
    """``[pipeline.speech]`` for ``fused``: how segments are bridged and padded (the rule is fitted)."""

    min_silence_s: float = 0.1
    pad_s: float = 0.03


@runtime_checkable
class FrameSpeechDetector(Protocol):
    """A voice activity detector that gives one speech probability per hop of a 16 kHz mono signal."""

    name: str
    hop_s: float
    threshold: float
    min_speech_s: float

    def frame_probabilities(self, mono: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class FusionRule:
    """The fitted combination (see the module docstring); the defaults are the tuning half's fit.

    ``bench_voice_over.py --fit`` recomputes them from the development set.
    """

    w_top: float = 1.1781
    # Left out of the fit (0): the set's voices are short phrases, so seconds of speech learned a
    # negative weight there, which a long narration under a loud bed would have paid for.
    w_seconds: float = 0.0
    w_contrast: float = -0.6011
    w_secondary: float = -0.3695
    bias: float = 0.4297
    threshold: float = 0.0  # log-odds: the equal-cost point of the class-balanced fit
    top_s: float = 0.5  # the loudest half-second of each detector's evidence
    band_hz: tuple[float, float] | None = None  # a band the primary listens to (None: the full band)
    bed_subtracted: bool = True  # ... once the stationary bed's floor is taken out (steps/speech_bed.py)
    window_s: float = 6.0  # the decision is taken per window of this length (the set's clip length)

    def features(self, primary: np.ndarray, primary_hop: float, secondary: np.ndarray, secondary_hop: float,
                 duration: float) -> np.ndarray:  # fmt: skip
        """[primary top logit, primary speech seconds, secondary contrast top, secondary top logit] of one window."""
        k_s = max(int(round(self.top_s / secondary_hop)), 1)
        top_p = loudest(primary, primary_hop, self.top_s)
        seconds = sum(
            b - a
            for a, b in segments_from_probabilities(
                primary, primary_hop, threshold=0.5, min_speech_s=0.0, min_silence_s=0.1, pad_s=0.0,
                duration=duration,
            )
        )  # fmt: skip
        ls = _logit(secondary) if secondary.size else np.zeros(1)
        contrast = float(np.sort(ls - np.median(ls))[-k_s:].mean())
        return np.array([top_p, seconds, contrast, loudest(secondary, secondary_hop, self.top_s)])

    def score(self, features: np.ndarray) -> float:
        """The calibrated log-odds that the window holds speech (speech at or above ``threshold``)."""
        w = np.array([self.w_top, self.w_seconds, self.w_contrast, self.w_secondary])
        return float(features @ w + self.bias)


def _logit(p: np.ndarray | float) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    return np.log(q / (1 - q))


def band_pass(mono: np.ndarray, band_hz: tuple[float, float], rate: int = GATE_SAMPLE_RATE) -> np.ndarray:
    """``band_hz`` of ``mono`` (4th-order Butterworth, causal), for a rule that listens to one band."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, list(band_hz), btype="bandpass", fs=rate, output="sos")
    return sosfilt(sos, mono).astype(np.float32)


def windows(duration: float, window_s: float) -> list[tuple[float, float]]:
    """Half-overlapping windows of ``window_s`` covering ``duration`` (one window when it is short)."""
    if duration <= 1.25 * window_s:
        return [(0.0, duration)]
    hop = window_s / 2
    starts = list(np.arange(0.0, duration - window_s, hop)) + [duration - window_s]
    return [(float(a), float(a) + window_s) for a in starts]


def window_frames(start: float, end: float, hop_s: float) -> slice:
    """The frames (at ``hop_s``) of the window ``[start, end)`` seconds: at least one."""
    first = int(start / hop_s)
    return slice(first, max(int(np.ceil(end / hop_s)), first + 1))


def loudest(probs: np.ndarray, hop_s: float, top_s: float) -> float:
    """The log-odds of a detector's loudest ``top_s`` (the mean probability of its highest frames)."""
    k = max(int(round(top_s / hop_s)), 1)
    return float(_logit(np.sort(probs)[-k:].mean() if probs.size else 0.0))


def segments_in_windows(
    probs: np.ndarray, hop: float, verdicts: list[dict[str, Any]], duration: float, *, top_s: float,
    min_silence_s: float, pad_s: float,
) -> list[tuple[float, float]]:  # fmt: skip
    """Where the speech is, inside the windows a rule says hold speech.

    The detector's own runs (any length) inside those windows; a window
    called speech with no such run (a voice deep under the bed) gets the
    detector's loudest ``top_s``, so a verdict of speech always comes with a
    segment to remove.
    """
    runs = segments_from_probabilities(
        probs,
        hop,
        threshold=0.5,
        min_speech_s=0.0,
        min_silence_s=min_silence_s,
        pad_s=pad_s,
        duration=duration,
    )
    found: list[tuple[float, float]] = []
    for w in (v for v in verdicts if v["speech"]):
        inside = [(max(a, w["start"]), min(b, w["end"])) for a, b in runs if a < w["end"] and b > w["start"]]
        if not inside:
            frames = window_frames(w["start"], w["end"], hop)
            peak = (frames.start + int(np.argmax(probs[frames]))) * hop if probs[frames].size else w["start"]
            inside = [(max(peak - top_s / 2, 0.0), min(peak + top_s / 2, duration))]
        found.extend(inside)
    merged: list[tuple[float, float]] = []
    for a, b in sorted(found):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return [(round(a, 4), round(b, 4)) for a, b in merged if b > a]


def windowed_report(
    probs: np.ndarray, hop: float, verdicts: list[dict[str, Any]], span: float, duration: float, *,
    top_s: float, min_silence_s: float, pad_s: float,
) -> SpeechReport:  # fmt: skip
    """A windowed rule's report: :func:`segments_in_windows` over the padded ``span``, cut to the track."""
    found = segments_in_windows(
        probs, hop, verdicts, span, top_s=top_s, min_silence_s=min_silence_s, pad_s=pad_s
    )
    return report_from_segments([(a, min(b, round(duration, 4))) for a, b in found if a < duration], duration)


def detector_reading(
    detector: FrameSpeechDetector, probs: np.ndarray, duration: float, view: str, *, min_silence_s: float,
    pad_s: float,
) -> dict[str, Any]:  # fmt: skip
    """What one detector heard on its own (its own threshold and minimum run), for the trace."""
    segs = segments_from_probabilities(
        probs, detector.hop_s, threshold=detector.threshold, min_speech_s=detector.min_speech_s,
        min_silence_s=min_silence_s, pad_s=pad_s, duration=duration,
    )  # fmt: skip
    return {
        "detector": detector.name,
        "input": view,
        "speech_seconds": round(sum(b - a for a, b in segs), 3),
        "segments": [[round(a, 3), round(b, 3)] for a, b in segs],
        "max_probability": round(float(probs.max()) if probs.size else 0.0, 4),
    }


def padded_to_window(audio: Audio, window_s: float) -> tuple[np.ndarray, float]:
    """The 16 kHz mono track, silence-padded to one window when shorter, and the span it covers.

    A track shorter than a window is judged as the window it would sit in,
    as the rules were fitted on windows of that length.
    """
    mono = audio.to_mono().resample(GATE_SAMPLE_RATE).waveform[0]
    span = max(audio.duration, window_s)
    return np.pad(mono, (0, max(int(round(span * GATE_SAMPLE_RATE)) - mono.size, 0))), span


class FusedSpeechDetector:
    """Speech heard by the fused rule over two frame-level detectors run on the same 16 kHz signal."""

    name = "fused-vad"

    def __init__(
        self,
        primary: FrameSpeechDetector,
        secondary: FrameSpeechDetector,
        rule: FusionRule | None = None,
        *,
        min_silence_s: float = 0.1,
        pad_s: float = 0.03,
    ) -> None:
        self.primary = primary
        self.secondary = secondary
        self.rule = rule or FusionRule()
        self.min_silence_s = float(min_silence_s)
        self.pad_s = float(pad_s)

    def frame_probabilities(self, mono: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(primary on the track without its stationary bed, secondary on the track as it is), each at its hop."""
        heard = without_stationary_bed(mono, self.rule.window_s) if self.rule.bed_subtracted else mono
        return (
            self.primary.frame_probabilities(
                band_pass(heard, self.rule.band_hz) if self.rule.band_hz else heard
            ),
            self.secondary.frame_probabilities(mono),
        )

    def decide(self, primary: np.ndarray, secondary: np.ndarray, duration: float) -> list[dict[str, Any]]:
        """The rule's score of each window: ``[{"start", "end", "score", "speech"}]``."""
        hp, hs = self.primary.hop_s, self.secondary.hop_s
        out = []
        for a, b in windows(duration, self.rule.window_s):
            p, q = primary[window_frames(a, b, hp)], secondary[window_frames(a, b, hs)]
            z = self.rule.score(self.rule.features(p, hp, q, hs, b - a))
            out.append(
                {
                    "start": round(a, 3),
                    "end": round(b, 3),
                    "score": round(z, 4),
                    "speech": z >= self.rule.threshold,
                }
            )
        return out

    def _reading(self, detector: FrameSpeechDetector, probs: np.ndarray, duration: float, view: str) -> dict:
        return detector_reading(
            detector, probs, duration, view, min_silence_s=self.min_silence_s, pad_s=self.pad_s
        )

    def detect(self, audio: Audio) -> SpeechReport:
        """Speech segments in seconds of ``audio`` (any rate, any channel count), with each detector's reading."""
        duration = audio.duration
        if audio.num_samples == 0:
            return SpeechReport(segments=[], speech_ratio=0.0, duration=duration)
        padded, span = padded_to_window(audio, self.rule.window_s)
        primary, secondary = self.frame_probabilities(padded)
        verdicts = self.decide(primary, secondary, span)
        report = windowed_report(
            primary, self.primary.hop_s, verdicts, span, duration, top_s=self.rule.top_s,
            min_silence_s=self.min_silence_s, pad_s=self.pad_s,
        )  # fmt: skip
        band = "{:g}-{:g} Hz".format(*self.rule.band_hz) if self.rule.band_hz else "full band"
        band += ", bed subtracted" if self.rule.bed_subtracted else ""
        report.evidence = {
            "primary": self._reading(self.primary, primary, duration, band),
            "secondary": self._reading(self.secondary, secondary, duration, "full band"),
            "fused": {"windows": verdicts, "threshold": self.rule.threshold, "rule": asdict(self.rule)},
        }
        return report
