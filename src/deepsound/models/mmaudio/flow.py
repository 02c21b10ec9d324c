"""Euler flow-matching sampler with classifier-free guidance, as MMAudio samples.

Noise (t=0) is carried to data (t=1) in ``num_steps`` equal Euler steps. The
guided velocity is ``cfg * v(cond) + (1 - cfg) * v(uncond)``; below a strength
of 1 only the conditional branch runs. Evaluating both branches as one batch
(``batched=True``) gives the same result up to rounding and is what makes
guidance cheap on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from deepsound.models.mmaudio.network import Conditions, MMAudioNetwork
from deepsound.progress import report


def initial_noise(
    bs: int, latent_len: int, latent_dim: int, seed: int, device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """The starting noise MMAudio draws for ``seed``: one fresh generator on the target device,
    a single ``randn`` of shape (batch, latents, channels) in the working dtype."""
    rng = torch.Generator(device=device)
    rng.manual_seed(seed)
    return torch.randn(bs, latent_len, latent_dim, device=device, dtype=dtype, generator=rng)


def euler_integrate(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor, num_steps: int
) -> torch.Tensor:
    """Integrate dx/dt = velocity(t, x) from t=0 to 1 with a uniform grid of ``num_steps`` steps."""
    if num_steps < 1:
        raise ValueError(f"number of steps must be at least 1, got {num_steps}")
    # The grid is built in float32 on the CPU, exactly as the reference, so times match bit for bit.
    grid = torch.linspace(0, 1, num_steps + 1)
    x = x0
    for i in range(num_steps):
        t = grid[i]
        x = x + (grid[i + 1] - t) * velocity(t, x)
        report(i + 1, num_steps, "sampling")
    return x


class GuidedVelocity:
    """The classifier-free-guided velocity for fixed conditions (prepared once per generation)."""

    def __init__(
        self,
        net: MMAudioNetwork,
        conditions: Conditions,
        empty_conditions: Conditions,
        cfg_strength: float,
        *,
        batched: bool = True,
    ) -> None:
        self.net = net
        self.cfg_strength = float(cfg_strength)
        self.guided = self.cfg_strength >= 1.0
        self.batched = batched and self.guided
        self.conditions = conditions
        self.empty_conditions = empty_conditions
        if self.batched:
            self.joint = Conditions.concat([conditions, empty_conditions])

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        times = t * torch.ones(len(x), device=x.device, dtype=x.dtype)
        if not self.guided:
            return self.net.predict_flow(x, times, self.conditions)
        if self.batched:
            both = self.net.predict_flow(torch.cat([x, x]), torch.cat([times, times]), self.joint)
            v_cond, v_uncond = both.chunk(2)
        else:
            v_cond = self.net.predict_flow(x, times, self.conditions)
            v_uncond = self.net.predict_flow(x, times, self.empty_conditions)
        return self.cfg_strength * v_cond + (1 - self.cfg_strength) * v_uncond


def sample_latents(
    net: MMAudioNetwork,
    conditions: Conditions,
    empty_conditions: Conditions,
    x0: torch.Tensor,
    *,
    num_steps: int = 25,
    cfg_strength: float = 4.5,
    batched_cfg: bool = True,
) -> torch.Tensor:
    """Run the sampler and return the *un-normalised* latents ``(B, N, C)`` ready for the VAE."""
    velocity = GuidedVelocity(net, conditions, empty_conditions, cfg_strength, batched=batched_cfg)
    return net.unnormalize(euler_integrate(velocity, x0, num_steps))
