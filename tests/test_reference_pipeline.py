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

Where both sides hold the same samples they are compared at the module goldens' float32
tolerances: step-1 audio, the ``neg`` regeneration, the final audio when it is step 1's or the
regeneration, and the separator's vocal estimate on the reference's 44.1 kHz input. Where they
cannot: the reference resamples step 1 to 44.1 kHz stereo with soxr "HQ" (librosa) and keeps the
step-3 file at that rate; this project separates at 44.1 kHz internally and brings the result back
to step 1's rate and channel count (soxr "VHQ"): the rest of the mix is taken at 44.1 kHz, as the
reference takes it, and brought back (brought-back vocals subtracted at 16 kHz would leave the
resampler's band-edge residual, and a voice-only mix would never be silent at step 4). Step 3 and an ``s3`` final are then compared after
bringing the reference's file to 16 kHz mono, at the resamplers' tolerance (0.4 % here, 1 % asserted;
soxr "HQ" and "VHQ" differ by 0.6 % on the full-band step-1 noise). The reference's step 2
hears step 1 through an AAC-encoded temporary video; ours hears the float samples (the answer text is
fixed, so this changes no decision here).
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


def separator(meta: dict[str, Any], kind: str) -> BsRoformerSeparator:
    """The viperx YAML's chunking and band layout at the golden's small width, seeded by name."""
    config = BsRoformerConfig.from_yaml(VIPERX_YAML).replace(dim=64, depth=2, dim_head=32, heads=2)
    model = fill_seeded(build_model(config), meta["settings"]["roformer_seed"])
    if kind == "all_voice":
        all_voice(model)
    return BsRoformerSeparator(model, device="cpu")


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
        "separators": {k: separator(meta, k) for k in ("seeded", "all_voice")},
        "mllm": reasoner,
        "answers": answers,
    }


def run_ours(models: dict[str, Any], meta: dict[str, Any], name: str, out: Path) -> Any:
    """``--preset paper`` with the golden's run settings and the same models."""
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
    overrides = {
        "generator": models["generator"],
        "separator": models["separators"][case["separator"]],
        "mllm": models["mllm"],
    }
    pipe = Pipeline(config, Components(config, overrides=overrides))
    return pipe.run(DATA / "clips" / f"{case['clip']}.mp4", out, settings.run)


def check_case(models: dict[str, Any], golden, name: str, out: Path) -> None:
    data, meta = golden
    ref, ref_meta = data["cases"][name], meta["cases"][name]
    result = run_ours(models, meta, name, out)
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

    # the audio where both sides hold the same samples
    step1 = media.read_audio(out / f"{ref_meta['clip']}.step1.wav")
    assert step1.sample_rate == ref["rate1"] == 16000
    assert relative_l2(torch.from_numpy(step1.waveform), ref["step1"]) <= 1e-3
    if "neg" in ref:
        neg = media.read_audio(out / f"{ref_meta['clip']}.neg.wav")
        assert relative_l2(torch.from_numpy(neg.waveform), ref["neg"]) <= 1e-3
        assert relative_l2(ref["neg"], ref["step1"]) > 1e-2  # really regenerated with the new prompt
    stem = ref_meta["clip"]
    final = out / f"{stem}.wav"
    if ref["final"] is None:
        assert not final.exists() and result.audio is None
    elif ref["final_source"].endswith(".step3.wav"):
        # step 3 is the final audio on both sides (its samples: see the module docstring)
        assert np.array_equal(
            media.read_audio(final).waveform, media.read_audio(out / f"{stem}.step3.wav").waveform
        )
    else:
        assert relative_l2(torch.from_numpy(media.read_audio(final).waveform), ref["final"]) <= 1e-3

    # step 3: our silence rule gives the reference's verdict on the reference's own file too
    if "step3" in ref:
        ours3 = media.read_audio(out / f"{stem}.step3.wav")
        assert (ours3.sample_rate, ours3.num_samples) == (16000, ref["step1"].shape[-1])
        theirs = Audio(ref["step3"].numpy(), ref["rate3"])
        if ref_meta["is_silent"] is not None:
            assert RmsSilenceDetector().detect(theirs).is_silent == ref_meta["is_silent"]
        if not ref_meta["is_silent"]:  # the reference's file at 16 kHz mono: left, the resamplers' difference
            expected = theirs.to_mono().resample(16000).fit_length(ours3.num_samples).waveform
            assert relative_l2(torch.from_numpy(ours3.waveform), torch.from_numpy(expected)) <= 1e-2


@pytest.mark.parametrize("name", DEFAULT_CASES)
def test_paper_preset_reproduces_the_reference_pipeline(models, golden, name, tmp_path) -> None:
    check_case(models, golden, name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CASES)
def test_paper_preset_reproduces_the_reference_pipeline_more(models, golden, name, tmp_path) -> None:
    check_case(models, golden, name, tmp_path)


def test_separator_equals_the_reference_on_its_own_input(models, golden) -> None:
    """Where both hold the same samples: the reference's 44.1 kHz stereo mix (librosa's soxr "HQ")."""
    import soxr

    data, _ = golden
    ref = data["cases"]["s3"]
    mono = ref["step1"].numpy()[0]
    mix = soxr.resample(mono, ref["rate1"], ref["rate3"], quality="HQ").astype(np.float32)
    size = -(-mono.size * ref["rate3"] // ref["rate1"])  # librosa.resample's fix_length: ceil, zero-padded
    mix = np.pad(mix, (0, size - mix.size))[:size]
    mix = np.stack([mix, mix])  # the reference's mono -> stereo
    # the reference wrote instrumental = mix - vocals: its mix is recovered to float32 rounding
    assert relative_l2(torch.from_numpy(mix), ref["step3"] + ref["vocals"]) <= 1e-6
    vocals = models["separators"]["seeded"]._demix(mix)
    assert relative_l2(torch.from_numpy(vocals), ref["vocals"]) <= 1e-4
