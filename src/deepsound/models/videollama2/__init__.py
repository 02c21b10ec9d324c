"""VideoLLaMA2.1-AV, the audio-visual LLM the DeepSound-V1 authors fine-tuned for steps 0 and 2.

``model`` holds the network (transformers' Qwen2 and SigLIP, timm's RegNet
stages, BEATs written here), ``inputs`` the reference's frame and audio
preparation, ``chat`` one checkpoint answering one question, ``reasoner`` the
pipeline component (modes ``videollama2-cot`` and ``videollama2-qa``).
"""
