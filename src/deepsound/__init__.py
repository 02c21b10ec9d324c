"""DeepSound: step-by-step video-to-audio generation (DeepSound-V1)."""

__version__ = "0.1.0"
