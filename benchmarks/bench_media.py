"""Media layer speed, side by side with what the reference DeepSound-V1 pipeline does.

For a synthesized 10 s 1280x720 clip (25 fps, with a stereo soundtrack):

- decode: :func:`deepsound.media.decode_video` (both frame streams, one pass)
  vs. MMAudio's ``load_video(path, 10)`` as the reference pipeline calls it
  (it also keeps every full-size frame, for re-encoding later);
- mux: :func:`deepsound.media.mux_audio` (video packets copied, AAC audio)
  vs. MMAudio's ``make_video`` (re-encodes every frame with H.264, as the
  reference's step 1 does) and vs. moviepy's ``write_videofile`` (how the
  reference assembles its final video, re-encoding through an ffmpeg binary).

The reference code is not a dependency: point ``--mmaudio-ref`` at an MMAudio
checkout (DeepSound-V1 ships one under ``third_party/MMAudio``) and put moviepy
1.x on ``PYTHONPATH``; a reference that cannot be imported shows as "n/a".

    python benchmarks/bench_media.py --mmaudio-ref /path/to/MMAudio [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from machine import describe  # noqa: E402
from media_factory import make_video, tone  # noqa: E402

from deepsound.media import decode_video, mux_audio, write_audio  # noqa: E402

DURATION = 10.0
SIZE = (1280, 720)
FPS = 25
SAMPLE_RATE = 44100


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest of ``repeats`` runs: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def load_reference(mmaudio_ref: Path | None):
    if mmaudio_ref is None:
        return None
    sys.path.insert(0, str(mmaudio_ref))
    try:
        from mmaudio import eval_utils  # type: ignore[import-not-found]
    except ImportError as exc:
        print(f"reference MMAudio not importable from {mmaudio_ref}: {exc}", file=sys.stderr)
        return None
    logging.getLogger().setLevel(logging.ERROR)  # its "video is too short" warnings
    return eval_utils


def moviepy_mux(video: Path, wav: Path, out: Path) -> None:
    """The reference's final assembly: subclip both to the shorter length, write_videofile."""
    from moviepy.editor import AudioFileClip, VideoFileClip  # type: ignore[import-not-found]

    audio = AudioFileClip(str(wav))
    clip = VideoFileClip(str(video))
    length = min(audio.duration, clip.duration)
    clip.audio = audio.subclip(0, length)
    clip = clip.subclip(0, length)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        clip.write_videofile(str(out), logger=None)
    clip.close()
    audio.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mmaudio-ref", type=Path, default=None, help="an MMAudio checkout to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (both sides)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference = load_reference(args.mmaudio_ref)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        video = make_video(
            tmp / "clip720p.mp4",
            duration=DURATION,
            fps=FPS,
            size=SIZE,
            audio=tone(DURATION, SAMPLE_RATE, 440.0, channels=2),
        )
        new_audio = tone(DURATION, SAMPLE_RATE, 660.0, channels=2)
        wav = write_audio(tmp / "generated.wav", new_audio)
        rows: list[tuple[str, float, str, float | None]] = []

        ours = best_of(args.repeats, lambda: decode_video(video, DURATION))
        ref_time = None
        info = None
        if reference is not None:
            ref_time = best_of(args.repeats, lambda: reference.load_video(video, DURATION))
            info = reference.load_video(video, DURATION)
        rows.append(("decode 10 s 720p (8 fps + 25 fps)", ours, "MMAudio load_video", ref_time))

        ours_mux = best_of(args.repeats, lambda: mux_audio(video, new_audio, tmp / "ours.mp4"))
        ref_mux = None
        if info is not None:
            waveform = torch.from_numpy(new_audio.to_mono().waveform)  # (1, samples), as generated
            ref_mux = best_of(
                args.repeats, lambda: reference.make_video(info, tmp / "ref.mp4", waveform, SAMPLE_RATE)
            )
        rows.append(("mux new audio", ours_mux, "MMAudio make_video (re-encode)", ref_mux))

        movie_mux = None
        try:
            import moviepy  # type: ignore[import-not-found]  # noqa: F401

            movie_mux = best_of(
                max(1, args.repeats - 1), lambda: moviepy_mux(video, wav, tmp / "moviepy.mp4")
            )
        except ImportError:
            pass
        rows.append(("mux new audio", ours_mux, "moviepy write_videofile", movie_mux))

    print(describe())
    print(
        f"\nclip: {DURATION:.0f} s {SIZE[0]}x{SIZE[1]} {FPS} fps H.264; best of {args.repeats}; "
        f"torch threads {args.threads}"
    )
    header = f"{'operation':36} {'ours (s)':>9}  {'reference':32} {'ref (s)':>9} {'ref/ours':>9}"
    print(header)
    print("-" * len(header))
    for name, ours_s, ref_name, ref_s in rows:
        ref_text = f"{ref_s:9.3f}" if ref_s is not None else f"{'n/a':>9}"
        ratio = f"{ref_s / ours_s:8.2f}x" if ref_s is not None else f"{'n/a':>9}"
        print(f"{name:36} {ours_s:9.3f}  {ref_name:32} {ref_text} {ratio}")


if __name__ == "__main__":
    main()
