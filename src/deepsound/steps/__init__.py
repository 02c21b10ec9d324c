"""The method, one module per step: plan (0), generate (1), voice_over (2), remove_voice (3), silence (4)."""
