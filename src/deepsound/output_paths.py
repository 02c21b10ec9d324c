"""Where one clip's files go: named after its video, never onto the video itself.

Apart from the step loop because the batch runner, the Ray actors and their summary find a
clip's files (its trace marks it done) without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepsound.files import same_file

OUTPUT_SUFFIXES = (".wav", ".mp4", ".trace.json", ".step1.wav", ".step3.wav", ".step3.vocals.wav", ".neg.wav")


@dataclass
class OutputPaths:
    """Where one clip's files go; the trace is written last and marks the clip as done."""

    folder: Path
    name: str

    @classmethod
    def for_clip(cls, folder: Path, video: Path) -> OutputPaths:
        """Named after the video — but never onto the input itself: ``-o`` may be the input's own
        folder, where ``clip.mp4`` would replace the user's video. Then every output is named
        ``clip.deepsound.*`` beside it."""
        paths = cls(Path(folder), Path(video).stem)
        if Path(video).parent.resolve() == Path(folder).resolve() and any(
            paths.file(suffix).name == Path(video).name or same_file(paths.file(suffix), video)
            for suffix in OUTPUT_SUFFIXES
        ):
            paths = cls(Path(folder), f"{Path(video).stem}.deepsound")
        return paths

    def file(self, suffix: str) -> Path:
        return self.folder / f"{self.name}{suffix}"

    @property
    def audio(self) -> Path:
        return self.file(".wav")

    @property
    def video(self) -> Path:
        return self.file(".mp4")

    @property
    def trace(self) -> Path:
        return self.file(".trace.json")
