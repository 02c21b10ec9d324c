"""Voice-over rate: how often the generated audio speaks where the real audio does not.

This is the quantity the method exists to lower, and av-benchmark has no
number for it. A generated clip counts as voice-over by the project's one rule
(:func:`deepsound.steps.voice_over.voice_over_from_speech`): PANNs hears the
speech family of AudioSet in it (the clip-level probability of *Speech* or
one of its children above ``threshold``) while its reference clip has none by
the same test (and by Silero VAD, when Silero ran on the reference). The share
of generated clips with speech at all, reference or not, is a different thing
and is reported under its own name, the *speech rate*. The
features are the ones FD/KL/IS already extracted, so the rate costs nothing
extra; Silero VAD, a dedicated speech detector, gives a second opinion on
the same clips, reported beside it, because PANNs was trained on 10-second
AudioSet clips where speech is often faint background.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from deepsound.evaluation.metrics import PANNS_FILE, clean_sample_name
from deepsound.steps.voice_over import voice_over_from_speech

# AudioSet ontology, the "Speech" node and its children, by index of the 527 classes:
# Speech, Male speech, Female speech, Child speech, Conversation, Narration/monologue,
# Babbling, Speech synthesizer.
SPEECH_CLASSES = (0, 1, 2, 3, 4, 5, 6, 7)
SILERO_FILE = "silero_speech.pth"
THRESHOLD = 0.5


def speech_probability(entry: Mapping[str, Any]) -> float:
    """Highest clip-level probability among the speech classes of one PANNs cache entry."""
    probs = entry.get("clipwise_output")
    if probs is None:
        probs = torch.sigmoid(torch.as_tensor(entry["logits"]).float())
    probs = torch.as_tensor(probs)
    return float(probs[list(SPEECH_CLASSES)].max())


def _silero(entry: Any) -> tuple[float, int]:
    values = torch.as_tensor(entry).flatten().tolist()
    return float(values[0]), int(values[1])


def _reference_key(stem: str, reference: Mapping[str, Any]) -> str | None:
    if stem in reference:
        return stem
    cleaned = clean_sample_name(stem)
    return cleaned if cleaned in reference else None


def voice_over_summary(
    generated: Mapping[str, Mapping[str, Any]],
    reference: Mapping[str, Mapping[str, Any]],
    threshold: float = THRESHOLD,
) -> dict[str, Any]:
    """The rate (PANNs), Silero's rate on the same clips, and each clip's evidence."""
    gen_panns, ref_panns = generated.get(PANNS_FILE, {}), reference.get(PANNS_FILE, {})
    gen_vad, ref_vad = generated.get(SILERO_FILE, {}), reference.get(SILERO_FILE, {})
    clips: dict[str, dict[str, Any]] = {}
    eligible: list[str] = []
    for stem, entry in gen_panns.items():
        prob = speech_probability(entry)
        clip: dict[str, Any] = {"speech_prob": prob, "speech": prob >= threshold}
        if stem in gen_vad:
            ratio, segments = _silero(gen_vad[stem])
            clip.update(silero_speech_ratio=ratio, speech_silero=segments > 0)
        key = _reference_key(stem, ref_panns)
        ref_speaks: bool | None = None
        if key is not None:
            ref_prob = speech_probability(ref_panns[key])
            clip["reference_speech_prob"] = ref_prob
            ref_speaks = ref_prob >= threshold
            if key in ref_vad:
                ratio, segments = _silero(ref_vad[key])
                clip["reference_silero_speech_ratio"] = ratio
                ref_speaks = ref_speaks or segments > 0
            clip["reference_has_speech"] = ref_speaks
            if not ref_speaks:
                eligible.append(stem)
        clip["voice_over"] = voice_over_from_speech(clip["speech"], ref_speaks)
        if "speech_silero" in clip:
            clip["voice_over_silero"] = voice_over_from_speech(clip["speech_silero"], ref_speaks)
        clips[stem] = clip

    def rate(key: str) -> float | None:
        votes = [clips[s][key] for s in eligible if key in clips[s]]
        return sum(votes) / len(votes) if votes else None

    both = [clips[s]["voice_over"] and clips[s].get("voice_over_silero", True) for s in eligible]
    return {
        "voice_over_rate": rate("voice_over"),
        "voice_over_rate_silero": rate("voice_over_silero"),
        "voice_over_rate_both": sum(both) / len(both) if both else None,
        "speech_rate_all_generated": (
            sum(c["speech"] for c in clips.values()) / len(clips) if clips else None
        ),
        "clips_without_reference_speech": len(eligible),
        "threshold": threshold,
        "speech_classes": list(SPEECH_CLASSES),
        "per_clip": clips,
    }
