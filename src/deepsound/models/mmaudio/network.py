"""The MMAudio flow network (an MM-DiT): predicts the flow velocity of the audio latents.

Parameter names and shapes equal those of the released checkpoints, so that
they load strictly. Unlike the published module, sequence lengths are not
stored in the network: they are read from the inputs, and the rotary tables
are cached per length, so one loaded network serves any duration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepsound.models.mmaudio.layers import (
    FinalBlock,
    GatedConvMLP,
    GatedMLP,
    JointBlock,
    Linear,
    ModulatedBlock,
    TimestepEmbedder,
    TokenConv1d,
    rope_angles,
)
from deepsound.models.mmaudio.variants import SYNC_TOKENS_PER_SEGMENT, NetworkSpec
from deepsound.weights.loading import LoadRules, apply_rules, load_into, load_state_into

# Entries some published checkpoints carry that are derived, not learned.
_DERIVED_KEYS = ("t_embed.freqs", "latent_rot", "clip_rot")
# released files are {"weights": …} or bare; the rotary tables are recomputed here, not loaded
_LOAD_RULES = LoadRules(unwrap=("weights",), drop=tuple(f"^{re.escape(k)}$" for k in _DERIVED_KEYS))


@dataclass
class Conditions:
    """Projected conditions, computed once per clip and reused at every sampling step."""

    clip_f: torch.Tensor  # (B, Nc, D)
    sync_f: torch.Tensor  # (B, N, D), already stretched to the latent length
    text_f: torch.Tensor  # (B, Nt, D)
    clip_f_c: torch.Tensor  # (B, D)
    text_f_c: torch.Tensor  # (B, D)

    @property
    def batch_size(self) -> int:
        return self.clip_f.shape[0]

    def expand(self, bs: int) -> Conditions:
        return Conditions(
            clip_f=self.clip_f.expand(bs, -1, -1),
            sync_f=self.sync_f.expand(bs, -1, -1),
            text_f=self.text_f.expand(bs, -1, -1),
            clip_f_c=self.clip_f_c.expand(bs, -1),
            text_f_c=self.text_f_c.expand(bs, -1),
        )

    @staticmethod
    def concat(parts: list[Conditions]) -> Conditions:
        """Stack conditions along the batch, to evaluate several guidance branches in one pass."""
        return Conditions(
            *(torch.cat([getattr(p, f) for p in parts], dim=0) for f in Conditions.__dataclass_fields__)
        )


class MMAudioNetwork(nn.Module):
    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        d = spec.hidden_dim
        self.latent_dim = spec.latent_dim
        self.hidden_dim = d
        self.num_heads = spec.num_heads
        act = nn.SiLU if spec.v2 else nn.SELU

        self.audio_input_proj = nn.Sequential(
            TokenConv1d(spec.latent_dim, d, 7, padding=3), act(), GatedConvMLP(d, d * 4, 7, 3)
        )
        if spec.v2:
            self.clip_input_proj = nn.Sequential(
                Linear(spec.clip_dim, d), nn.SiLU(), GatedConvMLP(d, d * 4, 3, 1)
            )
            self.text_input_proj = nn.Sequential(Linear(spec.text_dim, d), nn.SiLU(), GatedMLP(d, d * 4))
        else:
            self.clip_input_proj = nn.Sequential(Linear(spec.clip_dim, d), GatedConvMLP(d, d * 4, 3, 1))
            self.text_input_proj = nn.Sequential(Linear(spec.text_dim, d), GatedMLP(d, d * 4))
        self.sync_input_proj = nn.Sequential(
            TokenConv1d(spec.sync_dim, d, 7, padding=3), act(), GatedConvMLP(d, d * 4, 3, 1)
        )

        self.clip_cond_proj = Linear(d, d)
        self.text_cond_proj = Linear(d, d)
        self.global_cond_mlp = GatedMLP(d, d * 4)
        self.sync_pos_emb = nn.Parameter(torch.zeros(1, 1, SYNC_TOKENS_PER_SEGMENT, spec.sync_dim))
        self.final_layer = FinalBlock(d, spec.latent_dim)
        if spec.v2:
            self.t_embed = TimestepEmbedder(d, frequency_embedding_size=d, max_period=1)
        else:
            self.t_embed = TimestepEmbedder(d, frequency_embedding_size=256, max_period=10000)

        n_joint = spec.depth - spec.fused_depth
        self.joint_blocks = nn.ModuleList(
            JointBlock(d, spec.num_heads, spec.mlp_ratio, pre_only=(i == n_joint - 1)) for i in range(n_joint)
        )
        self.fused_blocks = nn.ModuleList(
            ModulatedBlock(d, spec.num_heads, spec.mlp_ratio, kernel_size=3, padding=1)
            for _ in range(spec.fused_depth)
        )

        # Loaded from the checkpoint; NaN until then so that forgetting to load shows at once.
        nan = torch.full((1, 1, spec.latent_dim), float("nan"))
        self.latent_mean = nn.Parameter(nan.clone(), requires_grad=False)
        self.latent_std = nn.Parameter(nan.clone(), requires_grad=False)
        self.empty_string_feat = nn.Parameter(
            torch.zeros(spec.text_seq_len, spec.text_dim), requires_grad=False
        )
        self.empty_clip_feat = nn.Parameter(torch.zeros(1, spec.clip_dim), requires_grad=False)
        self.empty_sync_feat = nn.Parameter(torch.zeros(1, spec.sync_dim), requires_grad=False)
        self._rope_cache: dict[tuple, torch.Tensor] = {}

    # ------------------------------------------------------------ loading

    def load_checkpoint(self, path: Path | str) -> None:
        """Load a released ``mmaudio_*.pth`` strictly; a mismatch names the file and the keys."""
        load_into(self, path, f"MMAudio network {self.describe()}", _LOAD_RULES)

    def load_state(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        load_state_into(self, apply_rules(state, _LOAD_RULES), source, f"MMAudio network {self.describe()}")

    def describe(self) -> str:
        s = self.spec
        return f"(hidden {s.hidden_dim}, depth {s.depth}/{s.fused_depth} fused, latent {s.latent_dim}, v2={s.v2})"

    # ------------------------------------------------------------ latents

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.latent_mean) / self.latent_std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.latent_std + self.latent_mean

    # ------------------------------------------------------------ learned empty inputs

    def empty_text(self, bs: int) -> torch.Tensor:
        return self.empty_string_feat.unsqueeze(0).expand(bs, -1, -1)

    def empty_clip(self, bs: int, clip_len: int) -> torch.Tensor:
        return self.empty_clip_feat.unsqueeze(0).expand(bs, clip_len, -1)

    def empty_sync(self, bs: int, sync_len: int) -> torch.Tensor:
        return self.empty_sync_feat.unsqueeze(0).expand(bs, sync_len, -1)

    # ------------------------------------------------------------ forward

    def rope(self, length: int, scaling: float, device: torch.device) -> torch.Tensor:
        key = (length, float(scaling), str(device))
        table = self._rope_cache.get(key)
        if table is None:
            head_dim = self.hidden_dim // self.num_heads
            table = rope_angles(length, head_dim, scaling=scaling, device=device)
            self._rope_cache[key] = table
        return table

    def preprocess_conditions(
        self, clip_f: torch.Tensor, sync_f: torch.Tensor, text_f: torch.Tensor, latent_len: int
    ) -> Conditions:
        """Project the conditions (independent of the flow time: done once per generation)."""
        if sync_f.shape[1] % SYNC_TOKENS_PER_SEGMENT:
            raise ValueError(f"sync features must come in segments of 8 tokens, got {sync_f.shape[1]}")
        bs = sync_f.shape[0]
        sync_f = sync_f.view(bs, -1, SYNC_TOKENS_PER_SEGMENT, sync_f.shape[-1]) + self.sync_pos_emb
        sync_f = self.sync_input_proj(sync_f.flatten(1, 2))
        sync_f = F.interpolate(sync_f.transpose(1, 2), size=latent_len, mode="nearest-exact").transpose(1, 2)
        clip_f = self.clip_input_proj(clip_f)
        text_f = self.text_input_proj(text_f)
        return Conditions(
            clip_f=clip_f,
            sync_f=sync_f,
            text_f=text_f,
            clip_f_c=self.clip_cond_proj(clip_f.mean(dim=1)),
            text_f_c=self.text_cond_proj(text_f.mean(dim=1)),
        )

    def empty_conditions(
        self,
        bs: int,
        clip_len: int,
        sync_len: int,
        latent_len: int,
        negative_text_f: torch.Tensor | None = None,
    ) -> Conditions:
        """Conditions of the unconditional branch of guidance: learned empty video, and either the
        learned empty text or the (encoded) negative prompt."""
        text = negative_text_f if negative_text_f is not None else self.empty_text(1)
        cond = self.preprocess_conditions(
            self.empty_clip(1, clip_len), self.empty_sync(1, sync_len), text, latent_len
        )
        if negative_text_f is None:
            return cond.expand(bs)
        return Conditions(
            clip_f=cond.clip_f.expand(bs, -1, -1),
            sync_f=cond.sync_f.expand(bs, -1, -1),
            text_f=cond.text_f,
            clip_f_c=cond.clip_f_c.expand(bs, -1),
            text_f_c=cond.text_f_c,
        )

    def predict_flow(self, latent: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        """Velocity ``(B, N, latent_dim)`` of normalised latents at flow times ``t (B,)``."""
        n_lat, n_clip = latent.shape[1], cond.clip_f.shape[1]
        if cond.sync_f.shape[1] != n_lat:
            raise ValueError(f"conditions were prepared for {cond.sync_f.shape[1]} latents, got {n_lat}")
        latent_rope = self.rope(n_lat, 1.0, latent.device)
        clip_rope = self.rope(n_clip, 1.0 * n_lat / n_clip, latent.device)

        x = self.audio_input_proj(latent)
        global_c = self.global_cond_mlp(cond.clip_f_c + cond.text_f_c)
        global_c = self.t_embed(t).unsqueeze(1) + global_c.unsqueeze(1)  # (B, 1, D)
        extended_c = global_c + cond.sync_f  # (B, N, D)
        clip_f, text_f = cond.clip_f, cond.text_f
        for block in self.joint_blocks:
            x, clip_f, text_f = block(x, clip_f, text_f, global_c, extended_c, latent_rope, clip_rope)
        for block in self.fused_blocks:
            x = block(x, extended_c, latent_rope)
        # The released weights were trained with the global (not the per-token) condition here.
        return self.final_layer(x, global_c)

    def forward(
        self,
        latent: torch.Tensor,
        clip_f: torch.Tensor,
        sync_f: torch.Tensor,
        text_f: torch.Tensor,
        t: torch.Tensor,
    ) -> torch.Tensor:
        return self.predict_flow(
            latent, t, self.preprocess_conditions(clip_f, sync_f, text_f, latent.shape[1])
        )
