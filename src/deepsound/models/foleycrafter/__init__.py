"""FoleyCrafter (open-mmlab), the paper's second video-to-audio generator, weight-compatible.

Modules: ``settings`` (its own small settings), ``layout`` (published files and the strict load
rules), ``frames`` (the official frame reading), ``detector`` (R(2+1)D onsets → control map),
``semantic`` (IP-Adapter image tokens), ``sampler`` (the ControlNet/UNet/PNDM recipe), ``vocoder``
(HiFi-GAN and the spectrogram image), ``generator`` (step 1), ``weights`` (resolution by name).
"""

from deepsound.models.foleycrafter.settings import FoleyCrafterSettings

__all__ = ["FoleyCrafterSettings"]
