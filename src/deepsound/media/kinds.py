"""Which files are videos, audio or still images, by name: one list for the whole project."""

from __future__ import annotations

from pathlib import Path

# in order of preference where one stem has several files (the evaluation picks the first)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# containers our muxer writes a copied video stream back into unchanged
MUX_SUFFIXES = (".mp4", ".mov", ".mkv")


def is_video_file(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_audio_file(path: Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def is_image_file(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
