"""``PPOConfig``: every knob of (KL-guided) PPO, frozen and validated on construction."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from lago_jax.distributions import KL_DIRECTIONS

ACTIVATIONS = ("tanh", "relu", "gelu", "elu", "silu")
KL_SCHEDULES = ("constant", "linear", "adaptive")
"""How beta evolves over training (:mod:`lago_jax.ppo.schedule`); ``KL_DIRECTIONS`` (from
:mod:`lago_jax.distributions`) are the two KL terms."""


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Hyper-parameters of one PPO run. Sizes are global (summed over all devices)."""

    num_envs: int = 16
    """Parallel environments in total; split evenly over the devices of a data-parallel run."""
    num_steps: int = 64
    """Rollout length T: env steps per environment per update. Divisible by ``num_minibatches``."""
    total_timesteps: int | None = None
    """Training length in env steps; ``num_updates = total_timesteps // (num_envs * num_steps)``.
    Give exactly one of this and ``num_updates``."""
    num_updates: int | None = None
    """Training length in updates (one rollout + ``update_epochs`` epochs each). Give exactly one
    of this and ``total_timesteps``."""
    update_epochs: int = 4
    """SGD epochs over each rollout."""
    num_minibatches: int = 4
    """Minibatches per epoch. Each minibatch holds ``num_steps / num_minibatches`` randomly chosen
    time steps of *every* environment (a per-environment shuffle), so a data-parallel shard of a
    minibatch is exactly that minibatch restricted to the shard's environments."""
    gamma: float = 0.99
    """Discount factor, in [0, 1]."""
    gae_lambda: float = 0.95
    """GAE lambda, in [0, 1]."""
    clip_eps: float = 0.2
    """PPO ratio clip (and value clip when ``clip_value``), > 0."""
    clip_value: bool = True
    """Clip the value update to ``old_value +- clip_eps`` (the max of clipped/unclipped losses)."""
    vf_coef: float = 0.5
    """Weight of the value loss, >= 0."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus, >= 0."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip, > 0."""
    lr: float = 3e-4
    """Adam learning rate, > 0."""
    anneal_lr: bool = True
    """Linearly anneal the learning rate to 0 over ``num_updates``."""
    normalize_advantages: bool = True
    """Standardise advantages per minibatch (statistics averaged over devices)."""
    normalize_obs: bool = True
    """Normalise observations with running mean/variance kept in the train state."""
    obs_clip: float | None = None
    """Clip normalised observations to ``+-obs_clip``; None (default, as brax and purejaxrl) keeps
    them unclipped."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before GAE and the value loss (brax's ``reward_scaling``);
    logged returns stay unscaled. Dense rewards of up to 10 per step (Meta-World) put value
    targets in the thousands at 1.0."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the actor and of the critic MLP (separate trunks)."""
    activation: str = "tanh"
    """Hidden activation, one of ``ACTIVATIONS``."""
    log_std_init: float = 0.0
    """Initial value of the state-independent Gaussian log-std (continuous actions only)."""
    kl_coef: float = 0.0
    """beta: weight of the KL penalty toward the prior at the start of training, >= 0.
    0 (the default) is vanilla PPO. A positive beta at any update (``kl_active``) needs a prior;
    a prior under a beta that stays 0 is not evaluated."""
    kl_schedule: str = "constant"
    """How beta evolves: ``"constant"``, ``"linear"`` (to ``kl_coef_final`` over training) or
    ``"adaptive"`` (doubles/halves to track ``kl_target``)."""
    kl_coef_final: float = 0.0
    """beta at the last update for the linear schedule, >= 0."""
    kl_target: float = 0.01
    """Target KL to the prior for the adaptive schedule, > 0."""
    kl_coef_min: float = 1e-4
    """Lower clip of the adaptive beta, > 0."""
    kl_coef_max: float = 10.0
    """Upper clip of the adaptive beta, >= ``kl_coef_min``."""
    kl_direction: str = "reverse"
    """``"reverse"``: KL(pi || prior); ``"forward"``: KL(prior || pi)."""
    prior_temperature: float = 1.0
    """The KL term pulls toward the prior softened by this temperature (categorical logits / T;
    Gaussian std * T), > 0. 1 leaves the prior unchanged. Distilled priors can be very sharp
    (Gaussian validation NLL below -5 on reach), which puts the KL in the thousands."""
    prior_min_std: float = 0.0
    """Floor on the Gaussian prior's standard deviation in the KL term (0: none), >= 0."""
    prior_chunk: int = 256
    """Rows per call of the prior when an update evaluates it on its ``num_steps x num_envs``
    visited states (they are flattened and evaluated in chunks of this size). Only speed depends
    on it: an LLM's forward on a 2-core CPU reaches ~4x the evals/s at 256 rows per call that it
    reaches at 8 (``benchmarks/RESULTS_lago.md``)."""
    prior_fraction: float = 1.0
    """Fraction of the rollout's time steps on whose states the update evaluates the prior, in
    (0, 1]: ``max(1, round(num_steps * prior_fraction))`` time steps drawn afresh each update
    (without replacement, all envs), and the KL term averaged over those states only. 1 (default)
    evaluates every state. The KL term stays an unbiased estimate of the same mean with fewer
    samples, and the prior's cost per update falls in proportion: with an LLM prior on CPU that
    cost is most of the update (``benchmarks/RESULTS_lago.md``)."""
    episode_length: int | None = None
    """Episode limit (truncation) applied by ``EpisodeWrapper``; None uses the env's own."""
    cached_reset: bool = False
    """Auto-reset from a reset state drawn once per rollout (``AutoResetWrapper(cached=True)``,
    refreshed at the start of every rollout) instead of running the env's reset on every step
    of every env (which ``vmap`` does whether or not an episode ended). Episodes still start
    from fresh random states, except that an env finishing two episodes within one rollout
    starts both from the same one. Worth it where the reset is a real share of the step
    (CLEVR-Robot with the C-engine backend: 1.15-1.5x env steps/s), not where it is cheap and the
    cached state large (Meta-World in MJX: reset 1% of the step, cached 0.89-1.05x;
    ``benchmarks/RESULTS_lago.md``)."""
    checkpoint_every: int = 10
    """At most this many updates per jitted chunk in :func:`lago_jax.ppo.runner.run` (the largest
    divisor of the number of updates not above it, so every chunk is one compiled program); a
    checkpoint follows each chunk. Only ``run`` checkpoints: ``make_train`` runs every update in
    one program, whatever this is."""
    seed: int = 0
    """The run's PRNG seed: :func:`lago_jax.ppo.runner.run` starts from ``PRNGKey(seed)``, and so
    does ``make_train``'s ``train()`` when it is called without a key."""

    def __post_init__(self):
        def bad(name, expected):
            raise ValueError(f"PPOConfig.{name}={getattr(self, name)!r} is invalid: expected {expected}")

        for name in ("num_envs", "num_steps", "update_epochs", "num_minibatches", "checkpoint_every", "prior_chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(name, "an integer >= 1")
        if self.num_updates is None and self.total_timesteps is None:
            raise ValueError("PPOConfig needs num_updates or total_timesteps; both are None")
        if self.num_updates is not None and self.total_timesteps is not None:
            raise ValueError(f"PPOConfig.num_updates={self.num_updates} and total_timesteps={self.total_timesteps} "
                             "both set the training length; give one of them")
        if self.num_updates is not None and (not isinstance(self.num_updates, int) or self.num_updates < 1):
            bad("num_updates", "an integer >= 1 or None")
        if self.num_updates is None and self.total_timesteps < self.num_envs * self.num_steps:
            bad("total_timesteps", f">= num_envs * num_steps = {self.num_envs * self.num_steps} (one update)")
        if self.num_steps % self.num_minibatches:
            bad("num_minibatches", f"a divisor of num_steps={self.num_steps}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(name, "a value in [0, 1]")
        for name in ("clip_eps", "max_grad_norm", "lr", "kl_target", "kl_coef_min", "reward_scale", "prior_temperature"):
            if not getattr(self, name) > 0:
                bad(name, "a value > 0")
        for name in ("vf_coef", "ent_coef", "kl_coef", "kl_coef_final", "prior_min_std"):
            if not getattr(self, name) >= 0:
                bad(name, "a value >= 0")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                bad(f.name, "a finite number")
        if not 0.0 < self.prior_fraction <= 1.0:
            bad("prior_fraction", "a fraction in (0, 1]")
        if self.lr > 1.0:
            bad("lr", "an Adam learning rate in (0, 1]")
        if not self.kl_coef_max >= self.kl_coef_min:
            bad("kl_coef_max", f">= kl_coef_min={self.kl_coef_min}")
        if self.activation not in ACTIVATIONS:
            bad("activation", f"one of {ACTIVATIONS}")
        if self.kl_schedule not in KL_SCHEDULES:
            bad("kl_schedule", f"one of {KL_SCHEDULES}")
        if self.kl_direction not in KL_DIRECTIONS:
            bad("kl_direction", f"one of {KL_DIRECTIONS}")
        hs = tuple(self.hidden_sizes)
        if not hs or any(not isinstance(h, int) or h < 1 for h in hs):
            bad("hidden_sizes", "a non-empty tuple of integers >= 1")
        object.__setattr__(self, "hidden_sizes", hs)
        if self.obs_clip is not None and not self.obs_clip > 0:
            bad("obs_clip", "None or a value > 0")
        if self.episode_length is not None and self.episode_length < 1:
            bad("episode_length", "an integer >= 1 or None")

    @property
    def updates(self) -> int:
        """The number of updates this config trains for."""
        if self.num_updates is not None:
            return self.num_updates
        return self.total_timesteps // (self.num_envs * self.num_steps)

    @property
    def kl_active(self) -> bool:
        """Whether beta is positive at some update: ``kl_coef > 0``, or a linear schedule to
        ``kl_coef_final > 0`` (the adaptive rule keeps a zero beta at zero)."""
        return self.kl_coef > 0 or (self.kl_schedule == "linear" and self.kl_coef_final > 0)

    @property
    def steps_per_update(self) -> int:
        """Env steps per update, over all devices."""
        return self.num_envs * self.num_steps

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PPOConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown PPOConfig fields {unknown}; known: {sorted(names)}")
        d = dict(d)
        if "hidden_sizes" in d:
            d["hidden_sizes"] = tuple(d["hidden_sizes"])
        return cls(**d)
