"""The whole method against the reference DeepSound-V1 pipeline: same decisions, same audio.

How ``tests/data/reference_pipeline/`` was made (official code, not in the project):
``tools/make_goldens.py deepsound_pipeline --official <DeepSound-V1 checkout>`` ran the official
``pipeline.Pipeline`` (steps 0-4, its own plan matching, voice-over rule, MSST ``demix``, librosa
silence check and rm/rep/neg) at commit a775b9e6 on 1.2 s excerpts of three real clips (committed
beside the goldens), 1 s generated, seed 42, 2 Euler steps, cfg 4.5, with tiny seeded models: the
MMAudio ``generation_tiny`` parts (seed 5), BS-RoFormer at the viperx band layout and chunking
(width 64, seed 0; "all voice" variant for the silent branch), the tiny VideoLLaMA2 checkpoint (seed 0).
The MLLM's *answer text* is fixed on both sides (the canonical plan; a chain of thought ending in
A or B): a random model cannot write one. The models still run on both sides and their raw step-0
answers are compared. See the golden script's docstring for every substitution.

``--preset paper`` takes step 3 as the reference does (BS-RoFormer settings ``resample_quality = "HQ"``,
``output_format = "model"``): step 1 brought to 44.1 kHz with soxr "HQ" (librosa's), at librosa's
``ceil`` length, mono duplicated to stereo, and the instrumental (mix minus vocals) kept at that rate
and in those channels. So step 3, step 4's input and an ``s3`` run's final audio are the reference's
files, compared sample for sample at 44.1 kHz stereo, as are step 1, the ``neg`` regeneration and a
final audio that is one of them (16 kHz mono).

Two figures for step 3, both asserted. From the reference's own step-1 samples (replayed in place of
our generator; everything after it runs as in a normal run): within ``STEP3_REPLAYED`` (1e-5; measured
1e-7), vocals included. From our own step 1 (3e-5 from the reference's, the generator's float32
agreement): within ``STEP3_OWN_STEP1`` (1e-2; measured 4.3e-3 for s3 and s4_kept), because the
seeded separator is not smooth at float32 resolution: moving its 44.1 kHz input by 1e-7 of its norm
(noise band-limited as step 1 is) moves its vocal estimate by 1.1e-2, and by 1e-3 of its norm only
to 1.2e-2. That is the network at these weights, not the port: on the same input our estimate is
the official code's to 4e-7. Where the instrumental is all but silent (the "all voice" separator)
the difference is taken relative to the mix (measured: 0 replayed, 1.3e-7 from our step 1). Step 4 counts the same frames on the same file (librosa reads it at its own rate, downmixed).
The reference's step 2 hears step 1 through an AAC-encoded temporary video; ours hears the float
samples (the answer text is fixed, so this changes no decision here).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepsound import media
from deepsound.audio import Audio
from deepsound.models.bs_roformer.config import BsRoformerConfig
from deepsound.models.bs_roformer.network import build_model
from deepsound.models.bs_roformer.separator import BsRoformerSeparator
from deepsound.models.mmaudio.generator import MMAudioGenerator
from deepsound.models.mmaudio.network import MMAudioNetwork
from deepsound.models.mmaudio.vae import AudioDecoder, vae_from_state
from deepsound.models.mmaudio.variants import tiny_spec
from deepsound.models.mmaudio.vocoder import bigvgan_from_state
from deepsound.models.videollama2.reasoner import VideoLlamaReasoner, VideoLlamaSettings
from deepsound.pipeline import Pipeline
from deepsound.registry import Components
from deepsound.settings import load_settings
from deepsound.steps.silence import RmsSilenceDetector
from deepsound.testing import tiny as toy
from deepsound.testing.equivalence import fill_seeded, relative_l2, seeded_tensor
from deepsound.testing.videollama2_checkpoint import write_tiny_checkpoint

DATA = Path(__file__).parent / "data" / "reference_pipeline"
VIPERX_YAML = Path(__file__).parents[1] / "src" / "deepsound" / "data" / "bs_roformer_viperx.yaml"
DEFAULT_CASES = ("s3", "s4_neg", "no_voice_over")
SLOW_CASES = ("s4_kept", "s4_rm", "s4_rep")
# step 3 against the reference's file (relative L2; see the module docstring for the two figures)
STEP3_REPLAYED = 1e-5  # from the reference's step-1 samples
STEP3_OWN_STEP1 = 1e-2  # from our step 1 (3e-5 from the reference's), through a seeded separator
STEP_NAMES = {  # our trace's step names -> the reference's
    "step0_plan": "step0",
    "step1_generate": "step1",
    "step2_judge_voice_over": "step2",
    "step3_remove_voice_over": "step3",
    "step4_check_silence": "step4",
    "postprocess_neg": "neg",
}


# ------------------------------------------------------------------------------ the same models
def all_voice(model: torch.nn.Module) -> torch.nn.Module:
    """Every mask-estimator band outputs the mask 1 + 0j (what the golden did to the official model)."""
    with torch.no_grad():
        for estimator in model.mask_estimators:
            for band in estimator.to_freqs:
                last = [m for m in band.modules() if isinstance(m, torch.nn.Linear)][-1]
                half = last.out_features // 2
                last.weight.zero_()
                value = torch.zeros(half)
                value[0::2] = 1.0
                last.bias[:half] = value
                last.bias[half:] = 30.0
    return model


def generator(golden: dict[str, Any], meta: dict[str, Any]) -> MMAudioGenerator:
    """Our small_16k-structured generator with the golden's seeded weights (seed 5, by name)."""
    record, seed = golden["mmaudio_record"], meta["settings"]["mmaudio_seed"]

    def state(params: dict, buffers: dict) -> dict[str, torch.Tensor]:
        out = {name: seeded_tensor(name, tuple(shape), seed) for name, shape in params.items()}
        return {**out, **buffers}

    clip = toy.clip_conditioner()
    fill_seeded(clip.model, seed=seed)
    sync = fill_seeded(toy.synchformer_encoder(), seed=seed)
    shapes = toy.audio_decoder("16k")
    vae = vae_from_state(state(record["vae_params"], record["vae_buffers"]), shapes.vae.cfg, "golden")
    vocoder = bigvgan_from_state(
        state(record["vocoder_params"], record["vocoder_buffers"]), shapes.vocoder.cfg, "golden"
    )
    spec = dataclasses.replace(tiny_spec("16k", v2=False), clip_dim=32, text_dim=32, sync_dim=64)
    net = fill_seeded(MMAudioNetwork(spec), seed=seed)
    with torch.no_grad():
        net.latent_std.abs_().add_(0.5)
    return MMAudioGenerator(net, clip, sync, AudioDecoder("16k", vae, vocoder), mode="16k")


def separator_model(meta: dict[str, Any], kind: str) -> torch.nn.Module:
    """The viperx YAML's chunking and band layout at the golden's small width, seeded by name."""
    config = BsRoformerConfig.from_yaml(VIPERX_YAML).replace(dim=64, depth=2, dim_head=32, heads=2)
    model = fill_seeded(build_model(config), meta["settings"]["roformer_seed"])
    if kind == "all_voice":
        all_voice(model)
    return model


def configured(model: torch.nn.Module, config: Any) -> BsRoformerSeparator:
    """The golden's model run as the configuration's separator settings say (the preset's, here)."""
    return BsRoformerSeparator.with_settings(model, config.separator.selected, device="cpu")


def separator(meta: dict[str, Any], kind: str) -> BsRoformerSeparator:
    """The golden's separator as ``--preset paper`` runs it (what the pipeline benchmark uses too)."""
    return configured(separator_model(meta, kind), load_settings("paper").pipeline)


class FixedAnswers:
    """The MLLM runs for real; only the text it hands on is replaced (the same text the golden used)."""

    def __init__(self, reasoner: VideoLlamaReasoner, answers: dict[str, str]) -> None:
        self.answers = answers
        self.raw: list[tuple[str, str]] = []
        chat = reasoner.cot
        real = chat.answer

        def answer(question: str, *args: Any, **kwargs: Any) -> Any:
            reply = real(question, *args, **kwargs)
            step = "step0" if question.startswith("Generate high-quality audio") else "step2"
            self.raw.append((step, reply.text))
            return dataclasses.replace(reply, text=self.answers[step])

        chat.answer = answer  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, Any], dict[str, Any]]:
    meta = json.loads((DATA / "meta.json").read_text(encoding="utf-8"))
    return torch.load(DATA / "golden.pt", weights_only=False), meta


@pytest.fixture(scope="module")
def models(golden, tmp_path_factory) -> dict[str, Any]:
    data, meta = golden
    folder = write_tiny_checkpoint(tmp_path_factory.mktemp("vl2") / "vl2", seed=meta["settings"]["mllm_seed"])
    reasoner = VideoLlamaReasoner.load(
        VideoLlamaSettings(
            mode="cot", cot_model=str(folder), device="cpu", max_new_tokens=meta["settings"]["mllm_tokens"]
        )
    )
    answers = FixedAnswers(reasoner, {"step0": meta["plan_text"], "step2": meta["verdicts"]["A"]})
    return {
        "generator": generator(data, meta),
        "separators": {k: separator_model(meta, k) for k in ("seeded", "all_voice")},
        "mllm": reasoner,
        "answers": answers,
    }


class ReplayedStep1:
    """The reference's own step-1 (and ``neg``) samples in place of our generator's: the rest of the
    step loop then starts from the very samples the reference's steps 2-4 started from."""

    name = "replayed-reference-step1"
    sample_rate = 16000

    def __init__(self, case: dict[str, Any]) -> None:
        self.case = case

    def generate(self, request: Any) -> Audio:
        key = "neg" if "human voice" in request.negative_prompt else "step1"
        return Audio(self.case[key].numpy(), self.case["rate1"])


def run_ours(
    models: dict[str, Any], meta: dict[str, Any], name: str, out: Path, generator: Any = None
) -> Any:
    """``--preset paper`` with the golden's run settings and the same models (or ``generator``)."""
    case = meta["cases"][name]
    models["answers"].answers["step2"] = meta["verdicts"][case["verdict_letter"]]
    models["answers"].raw.clear()
    s = meta["settings"]
    settings = load_settings(
        "paper",
        overrides={
            "pipeline": {"device": "cpu", "generator": {"variant": "small_16k"}},
            "run": {"duration": s["duration"], "seed": s["seed"], "num_steps": s["num_steps"],
                    "mode": case["mode"], "postprocess": case["postprocess"], "write_video": False},
        },
    )  # fmt: skip
    config = settings.pipeline
    assert (config.planner, config.judge, config.mllm.name) == ("mllm", "mllm", "videollama2-cot")
    assert (config.separator.resample_quality, config.separator.output_format) == ("HQ", "model")
    overrides = {
        "generator": generator or models["generator"],
        "separator": configured(models["separators"][case["separator"]], config),
        "mllm": models["mllm"],
    }
    pipe = Pipeline(config, Components(config, overrides=overrides))
    return pipe.run(DATA / "clips" / f"{case['clip']}.mp4", out, settings.run)


def check_case(models: dict[str, Any], golden, name: str, out: Path, *, replay: bool = False) -> None:
    """One case against the reference: from our own step 1, or (``replay``) from the reference's."""
    data, meta = golden
    ref, ref_meta = data["cases"][name], meta["cases"][name]
    result = run_ours(models, meta, name, out, ReplayedStep1(ref) if replay else None)
    trace = result.trace.to_dict()
    steps = {s["step"]: s for s in trace["steps"]}

    # the decisions, step by step
    ran = [STEP_NAMES[s["step"]] for s in trace["steps"] if s["step"] in STEP_NAMES]
    assert ran == ref_meta["steps_run"]
    planned = ["generate", "detect_voice_over", "remove_voice_over", "check_silence"]
    assert steps["step0_plan"]["decision"] == (planned[:3] if ref_meta["mode"] == "s3" else planned)
    assert result.has_voice_over == ref_meta["is_vo"]
    if ref_meta["is_silent"] is not None:
        assert steps["step4_check_silence"]["decision"]["is_silent"] == ref_meta["is_silent"]
    expected_fallback = ref_meta["postprocess"] if ref_meta["is_silent"] else None
    assert result.fallback == expected_fallback
    assert trace["mllm_call_count"] == len(ref_meta["mllm_calls"]) == 2
    # the tiny MLLM itself: the same greedy answer to the plan question on the same frames
    raw = dict(models["answers"].raw)
    reference_raw = {c["step"]: c["raw_text"] for c in ref_meta["mllm_calls"]}
    assert raw["step0"] == reference_raw["step0"]

    # step 1 and the neg regeneration: the module goldens' tolerance (replayed: the same samples)
    stem = ref_meta["clip"]
    step1 = media.read_audio(out / f"{stem}.step1.wav")
    assert step1.sample_rate == ref["rate1"] == 16000
    assert relative_l2(torch.from_numpy(step1.waveform), ref["step1"]) <= (0.0 if replay else 1e-3)
    if "neg" in ref:
        neg = media.read_audio(out / f"{stem}.neg.wav")
        assert relative_l2(torch.from_numpy(neg.waveform), ref["neg"]) <= (0.0 if replay else 1e-3)
        assert relative_l2(ref["neg"], ref["step1"]) > 1e-2  # really regenerated with the new prompt

    # step 3: the reference's file, sample for sample (44.1 kHz stereo, librosa's length)
    step3_tolerance = STEP3_REPLAYED if replay else STEP3_OWN_STEP1
    if "step3" in ref:
        ours3 = media.read_audio(out / f"{stem}.step3.wav")
        vocals3 = media.read_audio(out / f"{stem}.step3.vocals.wav")
        assert ours3.sample_rate == vocals3.sample_rate == ref["rate3"] == 44100
        assert ours3.waveform.shape == vocals3.waveform.shape == tuple(ref["step3"].shape)
        mix = torch.from_numpy(ours3.waveform + vocals3.waveform)
        difference = torch.from_numpy(ours3.waveform) - ref["step3"]
        # what is left of the mix differs from the reference's by this share of the mix: the measure
        # that holds where the instrumental itself is (nearly) silent too
        assert float(difference.norm() / mix.norm()) <= step3_tolerance
        if not ref_meta["is_silent"]:
            assert relative_l2(torch.from_numpy(ours3.waveform), ref["step3"]) <= step3_tolerance
        if "vocals" in ref and replay:  # (from our step 1 they move twice as far as the instrumental)
            assert relative_l2(torch.from_numpy(vocals3.waveform), ref["vocals"]) <= STEP3_REPLAYED
        assert steps["step3_remove_voice_over"]["evidence"]["output_sample_rate"] == ref["rate3"]

    # step 4 runs on what the reference's runs on (its 44.1 kHz file, downmixed), frame for frame
    if ref_meta["is_silent"] is not None:
        theirs = RmsSilenceDetector().detect(Audio(ref["step3"].numpy(), ref["rate3"]))
        assert theirs.is_silent == ref_meta["is_silent"]  # our rule on the reference's own file
        evidence = steps["step4_check_silence"]["evidence"]
        assert evidence["sample_rate"] == ref["rate3"]
        assert evidence["num_frames"] == 1 + ref["step3"].shape[-1] // 512 == theirs.evidence["num_frames"]
        assert evidence["silent_frame_ratio"] == theirs.silent_frame_ratio

    # the final audio: none (rm), step 1 / the regeneration, or step 3's file as it is (s3, kept)
    final = out / f"{stem}.wav"
    if ref["final"] is None:
        assert not final.exists() and result.audio is None
        return
    ours = media.read_audio(final)
    assert ours.sample_rate == trace["final"]["sample_rate"]
    assert ours.waveform.shape == tuple(ref["final"].shape)
    if ref["final_source"].endswith(".step3.wav"):
        assert ours.sample_rate == ref["rate3"]
        assert np.array_equal(ours.waveform, media.read_audio(out / f"{stem}.step3.wav").waveform)
        assert relative_l2(torch.from_numpy(ours.waveform), ref["final"]) <= step3_tolerance
    else:
        assert ours.sample_rate == ref["rate1"]
        assert relative_l2(torch.from_numpy(ours.waveform), ref["final"]) <= (0.0 if replay else 1e-3)


@pytest.mark.parametrize("name", DEFAULT_CASES)
def test_paper_preset_reproduces_the_reference_pipeline(models, golden, name, tmp_path) -> None:
    check_case(models, golden, name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CASES)
def test_paper_preset_reproduces_the_reference_pipeline_more(models, golden, name, tmp_path) -> None:
    check_case(models, golden, name, tmp_path)


@pytest.mark.parametrize("name", ("s3", "s4_neg"))
def test_from_the_reference_step1_every_later_step_is_the_reference(models, golden, name, tmp_path) -> None:
    """Steps 2-4, the fallback and the final audio started from the reference's own step-1 samples."""
    check_case(models, golden, name, tmp_path, replay=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ("s4_kept", "s4_rm", "s4_rep"))
def test_from_the_reference_step1_every_later_step_is_the_reference_more(
    models, golden, name, tmp_path
) -> None:
    check_case(models, golden, name, tmp_path, replay=True)


def test_separator_equals_the_reference_on_its_own_input(models, golden) -> None:
    """The paper preset's step 3 hears what the reference's hears (librosa's soxr "HQ" load at 44.1 kHz,
    its ``ceil`` length, mono duplicated to stereo) and gives its vocal estimate back."""
    data, _ = golden
    ref = data["cases"]["s3"]
    paper = configured(models["separators"]["seeded"], load_settings("paper").pipeline)
    mix = paper.model_input(Audio(ref["step1"].numpy(), ref["rate1"]))
    # the reference wrote instrumental = mix - vocals: its mix is recovered to float32 rounding
    assert mix.sample_rate == ref["rate3"] and mix.waveform.shape == tuple(ref["step3"].shape)
    assert relative_l2(torch.from_numpy(mix.waveform), ref["step3"] + ref["vocals"]) <= 1e-6
    vocals = paper.vocals(Audio(ref["step1"].numpy(), ref["rate1"]))
    assert relative_l2(torch.from_numpy(vocals), ref["vocals"]) <= STEP3_REPLAYED
