"""MMAudio's sub-models, each loaded when first used; with ``one``, one group in memory at a time.

MMAudio small_16k holds about 1.9 B float32 parameters (7 GiB): CLIP ViT-H (image tower 2.4 GiB,
text tower 1.3 GiB), Synchformer, the flow network, the VAE and BigVGAN. Generation uses them in a
fixed order: the conditions (CLIP image, Synchformer, CLIP text), then the network for every
sampling step, then the VAE and the vocoder. Nothing needs two of the encoders at once, so under
``--residency one`` (:mod:`deepsound.residency`) each *group* is loaded alone, used and released
before the next one loads: the CLIP image tower, the CLIP text tower, Synchformer, and "synthesis"
(network, VAE and vocoder: together smaller than the image tower, and needed together for every clip).
The machine's peak is then the largest group, not the sum.

A part given ready-made (no loader) is never released. Loads are counted per part, so that a batch
can show that it loaded each group once per stage, not once per clip.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deepsound.errors import ConfigError
from deepsound.heap import trim_heap
from deepsound.models.mmaudio.variants import sequence_config

if TYPE_CHECKING:
    from deepsound.interfaces import Placement
    from deepsound.models.mmaudio.network import NetworkSpec
    from deepsound.models.mmaudio.variants import Variant

log = logging.getLogger(__name__)

# part -> its group: parts of one group are resident together
GROUPS = {
    "clip_image": "clip image",
    "clip_text": "clip text",
    "synchformer": "synchformer",
    "network": "synthesis",
    "decoder": "synthesis",
}


class Parts:
    """Named sub-models: ``modules`` ready-made, ``loaders`` to (re)build the others on demand.

    ``one_group``: loading a part first releases every loaded part of another group.
    """

    def __init__(
        self,
        modules: dict[str, Any] | None = None,
        loaders: dict[str, Callable[[], Any]] | None = None,
        *,
        one_group: bool = False,
        prepare: Callable[[str, Any], Any] | None = None,
    ) -> None:
        self._modules: dict[str, Any] = dict(modules or {})
        self._given = frozenset(self._modules)
        self._loaders = dict(loaders or {})
        unknown = (self._modules.keys() | self._loaders.keys()) - GROUPS.keys()
        if unknown:
            raise ValueError(f"unknown MMAudio parts: {sorted(unknown)}")
        self.one_group = one_group
        self._prepare = prepare  # (name, module) -> module placed for use (device, dtype, eval)
        self.loads: Counter[str] = Counter()
        self.load_seconds: dict[str, float] = {}
        self.events: list[tuple[str, str]] = []  # ("load" | "release", part), in order

    def get(self, name: str) -> Any:
        module = self._modules.get(name)
        if module is not None:
            return module
        loader = self._loaders.get(name)
        if loader is None:
            raise KeyError(f"no MMAudio part {name!r}")
        if self.one_group:
            self.release(keep=GROUPS[name])
        start = time.perf_counter()
        module = loader()
        if self._prepare is not None:
            module = self._prepare(name, module)
        self._modules[name] = module
        self.loads[name] += 1
        self.load_seconds[name] = self.load_seconds.get(name, 0.0) + time.perf_counter() - start
        self.events.append(("load", name))
        log.debug("MMAudio %s loaded in %.1f s", name, time.perf_counter() - start)
        return module

    def loaded(self) -> list[str]:
        return list(self._modules)

    def release(self, keep: str | None = None) -> list[str]:
        """Drop every loaded part that can be loaded again (except group ``keep``); returns them."""
        gone = [n for n in self._modules if n not in self._given and n in self._loaders and GROUPS[n] != keep]
        for name in gone:
            del self._modules[name]
            self.events.append(("release", name))
        if gone:
            gc.collect()
            trim_heap()
        return gone

    def can_release(self) -> bool:
        return any(n not in self._given for n in self._loaders)


def check_part(name: str, module: Any, spec: NetworkSpec, mode: str) -> None:
    """A part that does not fit the network (a wrong file or config) fails with one line."""
    found: dict[str, tuple[int, int]] = {}
    if name in ("clip_image", "clip_text"):
        found = {
            "CLIP image": (module.image_dim, spec.clip_dim),
            "CLIP text": (module.text_dim, spec.text_dim),
        }
    elif name == "synchformer":
        found = {"Synchformer": (module.feature_dim, spec.sync_dim)}
    elif name == "decoder":
        found = {"VAE latent": (module.latent_dim, spec.latent_dim)}
    wrong = [f"{k} {a} != {b}" for k, (a, b) in found.items() if a != b]
    if wrong:
        raise ConfigError("MMAudio parts do not fit the network: " + ", ".join(wrong))
    if name == "decoder" and module.sample_rate != sequence_config(mode).sampling_rate:
        raise ConfigError(
            f"the {mode} network needs a {sequence_config(mode).sampling_rate} Hz decoder, "
            f"got {module.sample_rate} Hz"
        )


def part_loaders(placement: Placement, variant: Variant) -> dict[str, Any]:
    """How to load each part of ``variant`` (each call loads afresh).

    A part's files are resolved when it first loads (the network's first, as the published
    order of loading is), and remembered: a staged generator reloads a released part without
    resolving or checking its files again.
    """
    from functools import cache

    from deepsound.models.mmaudio.clip import ClipConditioner
    from deepsound.models.mmaudio.network import MMAudioNetwork
    from deepsound.models.mmaudio.synchformer import SynchformerEncoder
    from deepsound.models.mmaudio.vae import AudioDecoder
    from deepsound.weights.overrides import resolve_for

    @cache
    def files(part: str) -> Any:
        if part == "network":
            return resolve_for(placement, variant.weights_name)
        if part == "clip":
            return resolve_for(placement, "clip_dfn5b"), resolve_for(placement, "clip_dfn5b_config")
        if part == "synchformer":
            return resolve_for(placement, "synchformer")
        return AudioDecoder.resolve_files(placement, variant.mode)

    def network() -> MMAudioNetwork:
        net = MMAudioNetwork(variant.network)
        net.load_checkpoint(files("network"))
        return net

    return {
        "network": network,
        "clip_whole": lambda: ClipConditioner.from_pretrained(*files("clip")),
        "clip_image": lambda: ClipConditioner.from_pretrained(*files("clip"), tower="image"),
        "clip_text": lambda: ClipConditioner.from_pretrained(*files("clip"), tower="text"),
        "synchformer": lambda: SynchformerEncoder.load(files("synchformer")),
        "decoder": lambda: AudioDecoder.build(variant.mode, *files("decoder")),
    }
