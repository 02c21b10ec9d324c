"""Qwen2.5-Omni / Qwen3-Omni thinker as an audio-visual reasoner (transformers backend)."""
