"""How many large models stay loaded: ``--residency all`` (the default) or ``one``.

The paper's pipeline holds the 7B MLLM, MMAudio and BS-RoFormer at once — about 17 GB in float16
for the MLLM alone, more than a small GPU or a laptop has. With ``one``, before each stage of the
method the large model it needs (MLLM, generator, separator) is made the only one resident:

* on an accelerator, the others are moved to CPU memory (cheap to bring back);
* on the CPU, where moving is no saving, the others are released and rebuilt when next needed
  (a reload from disk), together with the small objects that hold them (judge, planner, MLLM
  silence check), so that no reference keeps the memory alive. A component handed in ready-made
  (``Components(overrides=...)``) has no factory to rebuild it: it stays, with a warning.

A single clip then loads a model once per stage that needs it. A batch does not reload per clip:
:func:`interleave` advances every clip to the same stage before moving to the next one
(plan all, generate all, judge all, separate all, then check silence and regenerate), so each model
is brought in once per stage for the whole batch. The stage order below is the method's order.

Inside the generator the same holds one level down. MMAudio's own parts (CLIP image and text
towers, Synchformer, then network, VAE and vocoder) weigh 7 GiB together in float32, and a staged
generator (``MMAudioGenerator.staged``) loads one group at a time. Before generation the pipeline
pauses at three more stages, ``condition image/motion/text`` (:data:`CONDITION_STAGES`), where
the generator computes that condition for the clip and keeps it; in a batch every clip passes each
before any samples, so each encoder loads once per batch, and sampling finds every condition ready.
Leaving a generation stage, a staged generator frees its parts but keeps the shell with the clips'
features and prompts, so the ``neg`` regeneration loads only the network, VAE and vocoder.

A speech detector that separates (``--speech vocal-stem``) needs the separator to judge, and the
judge may need the MLLM: two large models in one step. The pipeline then pauses at ``hear`` before
``judge``: with the separator resident every clip is heard (the detector keeps each clip's report),
then the MLLM comes in and the judge reads those reports, so neither model comes back per clip. The
separations the gate made (the separator's stem cache) are kept in host memory while the separator
is released and handed to it when it is rebuilt, so step 3 does not separate a judged clip again.

A clip's time (``trace.seconds``, a batch row's seconds) is what it spent in its own stages
(:func:`own_time`), not the time it waited paused while the other clips of a batch went on.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from deepsound.errors import ConfigError
from deepsound.heap import trim_heap

log = logging.getLogger(__name__)

POLICIES = ("all", "one")
LARGE_KINDS = ("mllm", "generator", "separator")
# the stages a clip's run pauses before (``Pipeline.stages``), in the method's order
STAGES = (
    "plan",
    "condition image",
    "condition motion",
    "condition text",
    "generate",
    "hear",
    "judge",
    "separate",
    "silence",
    "neg",
    "write",
)
# the conditions a staged generator computes ahead (its ``condition(request, what)``), as stages
CONDITION_STAGES = {"condition image": "image", "condition motion": "motion", "condition text": "text"}
# the small components that keep a reference to a large one (dropped with it when released)
HOLDERS = {"mllm": ("judge", "planner", "silence"), "generator": (), "separator": ()}


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ConfigError(f"unknown residency {policy!r}; choose one of: {', '.join(POLICIES)}")
    return policy


class Residency:
    """Applies a policy to one :class:`~deepsound.registry.Components` (one pipeline's models)."""

    def __init__(self, components: Any, policy: str = "all") -> None:
        self.components = components
        self.policy = check_policy(policy)
        self.events: list[tuple[str, str]] = []  # (action, kind): what the policy did, in order
        self._offloaded: dict[str, str] = {}  # kind -> the device it came from
        self._stems: Any = None  # a released separator's stem cache, for the same separator rebuilt
        if self.policy == "one":
            components.before_build = self._before_build

    @property
    def groups_batches(self) -> bool:
        """Whether a batch should run stage by stage (so that no model comes back per clip)."""
        return self.policy == "one"

    def kind_for(self, stage: str) -> str | None:
        """The large model ``stage`` uses (None: none, or only a lazily asked one)."""
        config = self.components.config
        if stage in ("generate", "neg") or stage in CONDITION_STAGES:
            return "generator"
        if stage == "separate" or (stage == "hear" and self.hears_with_separator):
            return "separator"
        if stage == "plan" and config.planner == "mllm":
            return "mllm"
        if stage == "judge" and config.judge in ("mllm", "cascade"):
            return "mllm"
        if stage == "silence" and config.silence.name == "mllm":
            return "mllm"
        return None

    @property
    def hears_with_separator(self) -> bool:
        """Whether the configured speech detector separates each clip (it needs the separator)."""
        return "separator" in self.components.entry("speech").needs

    @property
    def hears_before_judging(self) -> bool:
        """Whether a run pauses at ``hear``: the batch goes stage by stage and the detector separates."""
        return self.groups_batches and self.hears_with_separator

    def resident(self) -> list[str]:
        """The large models loaded on the compute device now."""
        return [k for k in LARGE_KINDS if self.components.is_built(k) and k not in self._offloaded]

    def prepare(self, stage: str) -> None:
        """Before ``stage``: with ``one``, its model becomes the only resident one.

        A cascade judge asks the MLLM only where speech was heard; its model is not built ahead
        (if the judge asks, building goes through :meth:`_before_build`, which makes room).
        """
        if self.policy == "all":
            return
        kind = self.kind_for(stage)
        if kind is None:
            return
        self._make_room(keep=kind)
        if kind in self._offloaded:
            self._move(kind, self._offloaded.pop(kind))
            self.events.append(("restore", kind))
        lazy = stage == "judge" and self.components.config.judge == "cascade"
        if not lazy and not self.components.is_built(kind):
            self.components.get(kind)
        if kind == "separator" and self._stems is not None and self.components.is_built(kind):
            rebuilt = self.components.get(kind)
            if getattr(rebuilt, "stem_cache", False) is None:  # it has the hook and nothing in it yet
                rebuilt.stem_cache = self._stems
            self._stems = None

    def _before_build(self, kind: str) -> None:
        if kind in LARGE_KINDS:
            self._make_room(keep=kind)
            self.events.append(("build", kind))

    def _make_room(self, keep: str) -> None:
        for other in self.resident():
            if other == keep:
                continue
            if self._accelerated():
                self._offloaded[other] = self.components.config.resolved_device()
                self._move(other, "cpu")
                self.events.append(("offload", other))
            elif getattr(self.components.get(other), "staged", False):
                # it loads its own parts when asked: free them, keep its features and prompts
                if self.components.get(other).release():
                    self.events.append(("release", other))
            elif other in self.components.given:  # a ready-made object cannot be built again
                if ("kept", other) not in self.events:
                    log.warning("residency one: the %s was given ready-made and stays loaded", other)
                self.events.append(("kept", other))
            else:
                if other == "separator":  # the gate's separations outlive the model (see above)
                    self._stems = getattr(self.components.get(other), "stem_cache", None)
                self.components.drop(other, *HOLDERS[other])
                self.events.append(("release", other))
        if not self._accelerated():
            gc.collect()
            trim_heap()

    def _accelerated(self) -> bool:
        return not self.components.config.resolved_device().startswith("cpu")

    def _move(self, kind: str, device: str) -> None:
        import torch

        for module in _modules(self.components.get(kind)):
            module.to(device)
        if device == "cpu" and torch.cuda.is_available():
            torch.cuda.empty_cache()


def _modules(obj: Any, depth: int = 3) -> Iterator[Any]:
    """The torch modules a component holds (itself, or in its attributes, a few levels down).

    Components are any registered objects with no common placement method, so their modules are
    found by walking attributes; each component keeps its own ``device`` for its inputs, which is
    right again once its modules are moved back before its next use.
    """
    import torch

    seen: set[int] = set()

    def walk(value: Any, level: int) -> Iterator[Any]:
        if id(value) in seen or level < 0:
            return
        seen.add(id(value))
        if isinstance(value, torch.nn.Module):
            yield value
            return
        if isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, list | tuple):
            children = list(value)
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            children = list(vars(value).values())
        else:
            return
        for child in children:
            yield from walk(child, level - 1)

    yield from walk(obj, depth)


Stages = Generator[str, None, Any]


def conditions_ahead(
    generator: Callable[[], Any], requests: list[Any]
) -> Generator[str, None, dict[str, float]]:
    """Pause at each :data:`CONDITION_STAGES`; there, a generator that computes conditions ahead
    (``condition(request, what)``) does so for ``requests``. Returns the seconds spent, by stage.

    ``generator`` is asked only after each pause: in a batch, that is once every clip is there.
    """
    seconds: dict[str, float] = {}
    for stage, what in CONDITION_STAGES.items():
        yield stage
        condition = getattr(generator(), "condition", None)
        if condition is None or not requests:
            continue
        start = time.perf_counter()
        for request in requests:
            condition(request, what)
        seconds[what] = round(time.perf_counter() - start, 4)
    return seconds


def own_time(run: Stages, spent: list[float]) -> Stages:
    """Drive ``run``, adding to ``spent[0]`` only the time spent inside it, not while it is paused
    (where a batch runs the other clips, and the policy loads the next stage's model)."""
    try:
        while True:
            start = time.perf_counter()
            try:
                stage = next(run)
            except StopIteration as done:
                return done.value
            finally:
                spent[0] += time.perf_counter() - start
            yield stage
    finally:
        run.close()  # closed early (a batch abandoned): the run's own clean-up still happens


def interleave(
    runs: dict[Any, Stages], prepare: Callable[[str], None]
) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Advance many clips' runs stage by stage: every clip waiting at the earliest stage goes on.

    ``runs`` maps a key (the clip) to its paused run (``Pipeline.stages``). Yields
    ``(key, result, error)`` as each run ends; a run that raises ends with its error and the
    others go on. ``prepare(stage)`` is called once per stage group, before its clips go on.
    """
    waiting: dict[Any, str] = {}
    for key, run in list(runs.items()):
        step = _advance(run)
        if isinstance(step, _Done):
            yield key, step.result, step.error
        else:
            waiting[key] = step
    while waiting:
        stage = min(waiting.values(), key=_order)
        prepare(stage)
        for key in [k for k, s in waiting.items() if s == stage]:
            step = _advance(runs[key])
            if isinstance(step, _Done):
                del waiting[key]
                yield key, step.result, step.error
            else:
                waiting[key] = step


class _Done:
    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error


def _advance(run: Stages) -> str | _Done:
    try:
        return next(run)
    except StopIteration as done:
        return _Done(done.value)
    except Exception as exc:  # one clip's failure is that clip's outcome, not the batch's
        return _Done(error=exc)


def _order(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)
