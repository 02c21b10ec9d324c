"""MMAudio (Cheng et al., CVPR 2025) inference, loading the released weight files unchanged.

- :mod:`.variants`: the five released variants and their sequence lengths for any duration.
- :mod:`.network` / :mod:`.layers`: the MM-DiT flow network with the checkpoints' parameter names.
- :mod:`.flow`: the seeded initial noise and the guided Euler sampler.
- :mod:`.generator`: :class:`MMAudioGenerator`, step 1 of the pipeline (video/image/text -> audio).
- :mod:`.clip`, :mod:`.synchformer`: the conditioning encoders; :mod:`.vae`, :mod:`.vocoder`: decoding.

Heavy modules are imported on use, so importing this package stays cheap.
"""

from deepsound.models.mmaudio.variants import (
    VARIANTS,
    SequenceConfig,
    Variant,
    get_variant,
    sequence_config,
)

__all__ = ["VARIANTS", "SequenceConfig", "Variant", "get_variant", "sequence_config"]
