"""The one audio value that travels between steps.

Sample rates travel with the samples (never implied by a global), so that a
16 kHz generator, a 44.1 kHz separator and a 16 kHz speech detector can be
chained without anyone guessing what a buffer means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# soxr's qualities that resampling is offered at: "VHQ" is ours everywhere; "HQ" is librosa's
# default (``res_type="soxr_hq"``), which the reference pipeline uses to bring audio to 44.1 kHz
RESAMPLE_QUALITIES = ("HQ", "VHQ")


@dataclass(frozen=True)
class Audio:
    """A float32 waveform shaped ``(channels, samples)`` and its sample rate in Hz."""

    waveform: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        wav = np.asarray(self.waveform, dtype=np.float32)
        if wav.ndim == 1:
            wav = wav[None, :]
        if wav.ndim != 2:
            raise ValueError(f"audio must be (channels, samples), got shape {wav.shape}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.sample_rate}")
        object.__setattr__(self, "waveform", np.ascontiguousarray(wav))

    @property
    def num_channels(self) -> int:
        return int(self.waveform.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.waveform.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def to_mono(self) -> Audio:
        """Average the channels: speech and silence checks look at the mix, not a side."""
        if self.num_channels == 1:
            return self
        return Audio(self.waveform.mean(axis=0, keepdims=True), self.sample_rate)

    def to_channels(self, channels: int) -> Audio:
        """Duplicate mono to ``channels`` (a stereo model fed a mono track) or downmix to mono."""
        if channels == self.num_channels:
            return self
        if self.num_channels == 1:
            return Audio(np.repeat(self.waveform, channels, axis=0), self.sample_rate)
        if channels == 1:
            return self.to_mono()
        raise ValueError(f"cannot map {self.num_channels} channels to {channels}")

    def resample(self, sample_rate: int, quality: str = "VHQ") -> Audio:
        """Resampling with soxr (the same library the media reader uses), very high quality unless
        ``quality`` names another of :data:`RESAMPLE_QUALITIES` (``"HQ"``: what librosa gives)."""
        if quality not in RESAMPLE_QUALITIES:
            raise ValueError(
                f"unknown resampling quality {quality!r}; choose one of: {', '.join(RESAMPLE_QUALITIES)}"
            )
        if sample_rate == self.sample_rate:
            return self
        import soxr

        out = soxr.resample(self.waveform.T, self.sample_rate, sample_rate, quality=quality).T
        return Audio(np.ascontiguousarray(out, dtype=np.float32), sample_rate)

    def fit_length(self, num_samples: int) -> Audio:
        """Trim or zero-pad to exactly ``num_samples``."""
        n = self.num_samples
        if n == num_samples:
            return self
        if n > num_samples:
            return Audio(self.waveform[:, :num_samples], self.sample_rate)
        pad = np.zeros((self.num_channels, num_samples - n), dtype=np.float32)
        return Audio(np.concatenate([self.waveform, pad], axis=1), self.sample_rate)

    @classmethod
    def silence(cls, duration: float, sample_rate: int, channels: int = 1) -> Audio:
        return cls(np.zeros((channels, int(round(duration * sample_rate))), np.float32), sample_rate)
