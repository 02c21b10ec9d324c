"""Silero VAD, the speech detector whose real weights ship in the silero-vad wheel."""
