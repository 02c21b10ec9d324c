"""Make the VideoLLaMA2 goldens and the parameter manifest from the official code.

Usage: PYTHONPATH=TRANSFORMERS_4_42_DIR python tools/goldens/videollama2.py OFFICIAL_VIDEOLLAMA2_DIR [MEDIA_DIR]

The reference pins ``transformers==4.42.3``; under transformers 5 its
``generate`` override loses the multimodal prompt after the first new token
(each later step sees only the generated ids), so the official side must run
on 4.42.3 (installed with ``pip install --target`` beside a torch
environment, its numpy<2 import check relaxed). The tiny checkpoint folder
is written by a child process of this script with the environment's own
(current) transformers, as our code writes it.

``OFFICIAL_VIDEOLLAMA2_DIR`` is the ``videollama2`` package folder of the
audio-visual code (DeepSound-V1 vendors it as ``third_party/VideoLLaMA2``;
pinned below). Its ``__init__`` pulls in every decoder the training code
uses, so the modules are imported one by one under stub parent packages and
the few imports the inference path never reaches (cv2, imageio, moviepy) are
stubbed. Writes into ``tests/data/videollama2/``:

* ``manifest.json``: name → shape of every parameter of the full-size published
  model, built from the official classes on the meta device (LLM, connector,
  audio tower, audio projector) plus transformers' SigLIP so400m/14-384 tower;
* ``modules.pt``: fbank, BEATs features and connector output at small seeded
  sizes (``fill_seeded`` weights, the same in both implementations);
* ``tiny.pt``: a tiny official-format checkpoint folder written by our
  ``write_tiny_checkpoint`` and loaded by the official classes: the input
  embeddings after the splice, the logits of one forward pass and the greedy
  ids of ``mm_infer``'s generate call, for seeded inputs and (with media) for a
  real clip's frames and audio decoded by the official ``process_video``.

The official ``mm_infer`` rounds its inputs to float16 and runs the model in
float16; here the model runs in float32, so the inputs are rounded to float16
and handed on as float32 (what our float32 path does too).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

OFFICIAL_REPO = "lym0302/DeepSound-V1 (third_party/VideoLLaMA2)"
OFFICIAL_COMMIT = "a775b9e6aac51dc755c5e9c5849d9d870a716dee"
UPSTREAM = "DAMO-NLP-SG/VideoLLaMA2 branch audio_visual @ 8cedfbda23e779246112cb963416b95415448a91"

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "videollama2"
sys.path.insert(0, str(ROOT / "src"))

# The published VideoLLaMA2.1-7B-AV layout: Qwen2-7B-Instruct's dimensions, SigLIP so400m (1152-d),
# BEATs (768-d) with an mlp2x_gelu projector, 16 frames.
FULL_CONFIG = {
    "model_type": "videollama2_qwen2",
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": False,
    "mm_vision_select_layer": -2,
    "mm_projector_type": "stc_connector_v35",
    "mm_hidden_size": 1152,
    "mm_audio_tower": "beats.pt",
    "mm_projector_a_type": "mlp2x_gelu",
    "mm_hidden_size_a": 768,
    "hidden_size_a": 3584,
    "num_frames": 16,
}
SIGLIP_SO400M = {
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "image_size": 384,
    "patch_size": 14,
}
STEP0_QUESTION = "Generate high-quality audio from video step-by-step."
STEP2_QUESTION = (
    "Given a video and its corresponding audio, determine whether the audio contains voice-over? "
    "Options: A. Yes, B. No. Choose A or B."
)


def import_official(package: Path) -> types.SimpleNamespace:
    import transformers

    for name in ("cv2", "imageio", "moviepy", "moviepy.editor"):
        stub = types.ModuleType(name)
        stub.VideoFileClip = None
        sys.modules.setdefault(name, stub)
    for name, path in (("videollama2", package), ("videollama2.model", package / "model")):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    # projector.py imports a constant transformers 5 no longer exports; lend it for that one import
    proxy = types.ModuleType("transformers")
    proxy.__getattr__ = lambda n: getattr(transformers, n)
    proxy.TRANSFORMERS_CACHE = tempfile.gettempdir()
    sys.modules["transformers"] = proxy
    try:
        projector = importlib.import_module("videollama2.model.projector")
    finally:
        sys.modules["transformers"] = transformers
    pv = importlib.import_module(
        "pytorchvideo"
    )  # the package __init__ needs iopath; only clip_sampling is used
    data = types.ModuleType("pytorchvideo.data")
    data.__path__ = [str(Path(pv.__file__).parent / "data")]
    sys.modules["pytorchvideo.data"] = data
    return SimpleNamespace(
        projector=projector,
        encoder=importlib.import_module("videollama2.model.encoder"),
        beats=importlib.import_module("videollama2.model.beats.BEATs"),
        qwen2=importlib.import_module("videollama2.model.videollama2_qwen2"),
        mm_utils=importlib.import_module("videollama2.mm_utils"),
        constants=importlib.import_module("videollama2.constants"),
    )


def official_manifest(off: SimpleNamespace, work: Path) -> dict:
    import transformers

    tower = work / "siglip-so400m-patch14-384"
    transformers.SiglipVisionConfig(
        **{k: v for k, v in SIGLIP_SO400M.items() if k != "model_type"}
    ).save_pretrained(tower)
    config = off.qwen2.Videollama2Qwen2Config(**{**FULL_CONFIG, "mm_vision_tower": str(tower)})
    with torch.device("meta"):
        model = off.qwen2.Videollama2Qwen2ForCausalLM(config)
        vision = transformers.SiglipVisionModel(transformers.SiglipVisionConfig.from_pretrained(str(tower)))
    return {
        "checkpoint": {k: list(v.shape) for k, v in model.named_parameters()},
        "vision_tower": {k: list(v.shape) for k, v in vision.state_dict().items()},
        "transformers": transformers.__version__,
        "config": FULL_CONFIG,
        "siglip": SIGLIP_SO400M,
    }


def module_goldens(off: SimpleNamespace) -> dict[str, torch.Tensor]:
    import torchaudio.compliance.kaldi as kaldi

    from deepsound.models.videollama2.tiny import TINY_BEATS
    from deepsound.testing.equivalence import fill_seeded

    gen = torch.Generator().manual_seed(7)
    wave = (torch.rand(1, 16_000 + 123, generator=gen) * 2 - 1) * 0.3 * 2**15
    out = {
        "fbank_wave": wave,
        "fbank": kaldi.fbank(wave, num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10),
    }

    beats = off.beats.BEATs(off.beats.BEATsConfig(TINY_BEATS)).eval()
    fill_seeded(beats, 3)
    fbank = torch.randn(1, 160, 128, generator=gen) * 4 + 5
    with torch.no_grad():
        features, _, _ = beats.extract_features(
            fbank, padding_mask=torch.zeros(fbank.shape).bool(), feature_only=True
        )
    out.update(beats_in=fbank, beats_out=features)

    connector = off.projector.STCConnectorV35(SimpleNamespace(mm_hidden_size=16, hidden_size=32)).eval()
    fill_seeded(connector, 4)
    frames = torch.randn(1, 4, 36, 16, generator=gen)
    with torch.no_grad():
        out.update(connector_in=frames, connector_out=connector(frames))
    return out


def load_official_tiny(off: SimpleNamespace, folder: Path):
    import transformers

    from deepsound.models.videollama2.tiny import TINY_BEATS

    default_config = off.beats.BEATsConfig
    off.encoder.BEATsConfig = lambda cfg=None: default_config(
        TINY_BEATS
    )  # the reference always builds full size
    model = off.qwen2.Videollama2Qwen2ForCausalLM.from_pretrained(
        str(folder), torch_dtype=torch.float32
    ).eval()
    tower = model.get_vision_tower()
    if not tower.is_loaded:
        tower.load_model()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), use_fast=False)
    return model, tokenizer, tower.image_processor


def official_answer(off, model, tokenizer, media, question: str, max_new_tokens: int) -> dict:
    """``mm_infer`` (modal ``video``) step by step, with float16-rounded inputs fed as float32."""
    mm = off.mm_utils
    token = off.constants.DEFAULT_VIDEO_TOKEN
    message = [{"role": "user", "content": token + "\n" + question}]
    prompt = tokenizer.apply_chat_template(message, tokenize=False, add_generation_prompt=True)
    input_ids = (
        mm.tokenizer_multimodal_token(prompt, tokenizer, token, return_tensors="pt").unsqueeze(0).long()
    )
    mask = input_ids.ne(tokenizer.pad_token_id).long()
    stopping = mm.KeywordsStoppingCriteria([tokenizer.eos_token], tokenizer, input_ids)
    images = [(media, "video")]
    with torch.inference_mode():
        _, mask2, _, embeds, _ = model.prepare_inputs_labels_for_multimodal(
            input_ids, mask, None, None, images
        )
        logits = model(inputs_embeds=embeds, attention_mask=mask2).logits
        ids = model.generate(
            input_ids,
            attention_mask=mask,
            images=images,
            do_sample=False,
            temperature=0.0,
            max_new_tokens=max_new_tokens,
            top_p=0.9,
            use_cache=True,
            stopping_criteria=[stopping],
            pad_token_id=tokenizer.eos_token_id,
        )
    return {
        "prompt": prompt,
        "input_ids": input_ids[0],
        "embeds": embeds[0],
        "logits": logits[0, -4:].clone(),
        "ids": ids[0].clone(),
        "text": tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip(),
    }


def as_fp32(x):
    return {k: v.half().float() for k, v in x.items()} if isinstance(x, dict) else x.half().float()


def main() -> None:
    if sys.argv[1] == "--write-tiny":
        from deepsound.models.videollama2.tiny import write_tiny_checkpoint

        write_tiny_checkpoint(Path(sys.argv[2]), seed=0)
        return
    package = Path(sys.argv[1]).resolve()
    candidates = [root / "shared" / "media" for root in (ROOT.parent, ROOT.parent.parent)]
    media = (
        Path(sys.argv[2]) if len(sys.argv) > 2 else next((c for c in candidates if c.is_dir()), candidates[0])
    )
    torch.set_num_threads(1)
    off = import_official(package)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = official_manifest(off, Path(tmp))
    (OUT / "manifest.json").write_text(
        json.dumps(manifest, indent=0, sort_keys=True) + "\n", encoding="utf-8"
    )
    torch.save(module_goldens(off), OUT / "modules.pt")

    from deepsound.models.videollama2.inputs import decode_audio

    report: dict = {"official": f"{OFFICIAL_REPO} @ {OFFICIAL_COMMIT}", "upstream": UPSTREAM}
    report["transformers"] = importlib.import_module("transformers").__version__
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run([sys.executable, __file__, "--write-tiny", str(folder)], check=True, env=env)
        model, tokenizer, processor = load_official_tiny(off, folder)
        gen = torch.Generator().manual_seed(11)
        seeded = {
            "video": torch.randn(4, 3, 28, 28, generator=gen),
            "audio": torch.randn(1, 400, 128, generator=gen) * 4 + 5,
        }
        tiny = {
            "seeded_media": seeded,
            "seeded": official_answer(off, model, tokenizer, as_fp32(seeded), STEP2_QUESTION, 24),
        }
        clip = media / "aa.mp4"
        if clip.is_file():
            av_media = off.mm_utils.process_video(
                str(clip), processor, aspect_ratio=None, num_frames=4, va=True
            )
            v_media = off.mm_utils.process_video(
                str(clip), processor, aspect_ratio=None, num_frames=4, va=False
            )
            tiny["clip"] = {
                "file": clip.name,
                "pixels": v_media,
                "fbank_rows": av_media["audio"][0, ::8].clone(),
                "step0": official_answer(off, model, tokenizer, as_fp32(v_media), STEP0_QUESTION, 32),
                "step2": official_answer(off, model, tokenizer, as_fp32(av_media), STEP2_QUESTION, 32),
            }
            for path in sorted(media.glob("*.mp4")):
                cli = subprocess.run(
                    [
                        "ffmpeg",
                        "-nostdin",
                        "-i",
                        str(path),
                        "-vn",
                        "-acodec",
                        "pcm_s16le",
                        "-ac",
                        "1",
                        "-ar",
                        "16000",
                        "-f",
                        "s16le",
                        "-",
                    ],
                    capture_output=True,
                ).stdout
                ref = np.frombuffer(cli, np.int16).astype(np.int64)
                ours = decode_audio(path)
                if ours is None or ref.size == 0:
                    report[path.name] = "no audio stream"
                    continue
                ours = np.round(ours * 32768).astype(np.int64)
                n = min(ref.size, ours.size)
                report[path.name] = {
                    "samples_cli": int(ref.size),
                    "samples_pyav": int(ours.size),
                    "differing": int((ref[:n] != ours[:n]).sum()),
                    "max_lsb": int(np.abs(ref[:n] - ours[:n]).max()),
                }
        torch.save(tiny, OUT / "tiny.pt")
    (OUT / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
