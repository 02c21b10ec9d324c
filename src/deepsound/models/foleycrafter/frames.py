"""The frames FoleyCrafter looks at, read the way its official inference reads them.

The official reader decodes every frame of the clip and keeps ``150`` spread evenly over them
(``numpy.linspace(0, n - 1, 150)`` cast to ints; short clips repeat frames). The same frames feed
both encoders:

* the timestamp detector: resized to 128×128 (bilinear, antialiased), centre-cropped to 112,
  and normalised with the ImageNet mean/std *on the 0..255 values* (the official numbers);
* the IP-Adapter image encoder: ``CLIPImageProcessor``'s default recipe (shortest side 224,
  bicubic with PIL, centre crop, CLIP mean/std).

Frames are decoded with PyAV in two passes (count, then decode only the kept ones), so a long or
large video never holds all its frames in memory, which the official reader does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepsound.errors import MediaError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def frame_indices(total: int, keep: int) -> np.ndarray:
    """The official choice of ``keep`` frames out of ``total``."""
    return np.linspace(0, total - 1, keep, dtype=int)


def read_frames(path: Path | str, keep: int, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """``(keep, H, W, 3)`` uint8 RGB frames of ``[start, end)`` seconds, chosen like the official reader."""
    from deepsound.media._open import media_errors, open_input

    path = Path(path)

    offset = 0.0

    def inside(t: float | None) -> bool:
        return t is None or (t - offset >= start - 1e-6 and (end is None or t - offset < end - 1e-6))

    with media_errors(path, "reading frames"):
        with open_input(path) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.start_time is not None:
                offset = float(stream.start_time * stream.time_base)
            total = sum(
                1
                for p in container.demux(stream)
                if p.size and inside(None if p.pts is None else float(p.pts * stream.time_base))
            )
        if total == 0:
            raise MediaError(f"{path}: no video frames between {start:.3f} s and {end} s")
        wanted = frame_indices(total, keep)
        wanted_set = {int(i) for i in wanted}
        picked: dict[int, np.ndarray] = {}
        with open_input(path) as container:
            stream = container.streams.video[0]
            index = 0
            for frame in container.decode(stream):
                if not inside(frame.time):
                    continue
                if index in wanted_set:
                    picked[index] = frame.to_ndarray(format="rgb24")
                index += 1
                if index > wanted[-1]:
                    break
    last = max(picked)  # a stream that decodes fewer frames than it has packets repeats its last one
    return np.stack([picked.get(int(i), picked[last]) for i in wanted])


def detector_input(frames: np.ndarray) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 → ``(1, 3, N, 112, 112)`` float32, the official detector recipe."""
    import torchvision.transforms.functional as TF

    x = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2)
    x = TF.resize(x, [128, 128], antialias=True)
    x = TF.center_crop(x, [112, 112])
    x = TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD)
    return x.unsqueeze(0).permute(0, 2, 1, 3, 4)


def clip_processor():
    """transformers' CLIP image processor with the PIL recipe the official (transformers 4.30) used."""
    try:  # transformers 5 names the PIL recipe apart; its default class resizes with torchvision
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        return CLIPImageProcessorPil()
    except ImportError:
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor()


def clip_input(frames: np.ndarray, processor=None) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 → ``(N, 3, 224, 224)`` pixel values for the image encoder."""
    processor = processor or clip_processor()
    return processor(images=list(frames), return_tensors="pt")["pixel_values"]
