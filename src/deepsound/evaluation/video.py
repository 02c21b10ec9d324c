"""Reference-video frames as av-benchmark feeds ImageBind and Synchformer.

The decoding lives with the models it feeds (:mod:`deepsound.models.eval.video_frames`),
so that a model given a path decodes it without importing the evaluation; the names
are kept here, where the evaluation and its tools have always found them.
"""

from __future__ import annotations

from deepsound.models.eval.video_frames import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGEBIND_FPS,
    IMAGEBIND_SIZE,
    SYNC_FPS,
    EvalVideo,
    decode_eval_video,
    decode_frames,
    imagebind_clips,
    imagebind_transform,
    uniform_crop,
)

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "IMAGEBIND_FPS",
    "IMAGEBIND_SIZE",
    "SYNC_FPS",
    "EvalVideo",
    "decode_eval_video",
    "decode_frames",
    "imagebind_clips",
    "imagebind_transform",
    "uniform_crop",
]
