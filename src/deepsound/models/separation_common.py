"""What every step-3 separator does around its network: channels, rates, and the levels it reports.

Why shared: the paper keeps ``mix − vocals``, so each separator must hand back
vocals whose complement is the input's own rest, whatever the input's rate and
channel count; and the trace compares separators by the same numbers. Two
separators (BS-RoFormer, HTDemucs) run at 44.1 kHz stereo; these helpers are
what they have in common.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepsound.audio import Audio

_DB_FLOOR = 1e-10  # -200 dB for digital silence


def rms_db(wave: np.ndarray) -> float:
    """RMS level in dB full scale (a sine of amplitude 1 is about -3 dB)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    return 20.0 * float(np.log10(max(rms, _DB_FLOOR)))


def levels(mix: np.ndarray, vocals: np.ndarray, instrumental: np.ndarray) -> dict[str, float]:
    """How loud each part is, and the vocals' share of the separated energy."""
    e_vocals = float(np.sum(np.square(vocals, dtype=np.float64)))
    e_inst = float(np.sum(np.square(instrumental, dtype=np.float64)))
    share = e_vocals / (e_vocals + e_inst) if e_vocals + e_inst > 0 else 0.0
    return {
        "mix_rms_db": round(rms_db(mix), 2),
        "vocals_rms_db": round(rms_db(vocals), 2),
        "instrumental_rms_db": round(rms_db(instrumental), 2),
        "vocals_energy_share": round(share, 5),
    }


def vocals_per_channel(
    at_rate: Audio, channels: int, demix: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The vocal estimate of ``at_rate`` (already at the model's rate) from a ``channels``-channel model.

    Mono is duplicated to the model's channels and the result averaged back; wider
    inputs (e.g. 5.1 into a stereo model) are separated channel by channel, each
    duplicated, so that nothing is mixed across channels.
    """
    if at_rate.num_channels == channels:
        tracks = [at_rate.waveform]
    elif at_rate.num_channels == 1 or channels == 1:
        tracks = [at_rate.to_channels(channels).waveform]
    else:
        tracks = [np.repeat(ch[None], channels, axis=0) for ch in at_rate.waveform]
    stems = [demix(track) for track in tracks]
    if len(stems) > 1:
        return np.stack([s.mean(axis=0) for s in stems])
    est = stems[0]
    return est if est.shape[0] == at_rate.num_channels else est.mean(axis=0, keepdims=True)


def vocals_at_input_rate(audio: Audio, at_rate: Audio, vocals: np.ndarray, quality: str) -> np.ndarray:
    """Vocals at ``audio``'s rate whose complement is the model's rest brought back.

    The rest of the mix is taken at the model's rate and resampled, as the reference
    keeps it (mix − vocals at 44.1 kHz); subtracting resampled vocals instead would
    leave the resampler's band-edge residual in it (about −15 dB on full-band noise),
    so a voice-only mix would never come out silent at step 4.
    """
    rest = Audio(at_rate.waveform - vocals, at_rate.sample_rate).resample(audio.sample_rate, quality)
    return audio.waveform - rest.fit_length(audio.num_samples).waveform
