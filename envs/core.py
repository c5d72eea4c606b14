"""The environment API: ``Env``, its ``State`` pytree and action spaces.

An environment is a static Python object whose ``reset`` and ``step`` are pure functions
of JAX arrays, so they jit, vmap and scan. All episode bookkeeping lives in wrappers
(:mod:`envs.wrappers`); a bare environment only reports what happened on one step:

* ``terminated``: the episode reached a terminal state (goal reached, failure). The value of
  the next state is zero.
* ``truncated``: the episode was cut by a time limit (set by ``EpisodeWrapper``). The next
  state's value is *not* zero; PPO bootstraps from ``info["final_obs"]``.
* ``success``: the task's success predicate at this step (independent of termination;
  Meta-World, for instance, keeps running after success).
* ``done = max(terminated, truncated)``.

Every environment puts an integer ``info["instruction_id"]`` in its state: the index of the
natural-language instruction for this episode in ``env.instructions`` (a host-side list of
strings). Environments without language use a single empty instruction.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class State:
    """Environment state after a reset or step. Batched by ``VmapWrapper`` along axis 0.

    Attributes:
      data: physics or simulator state (``mjx.Data`` or any pytree).
      obs: observation ``[obs_dim]`` float32.
      reward: scalar float32 reward of the last step (0 after reset).
      done: scalar float32, ``max(terminated, truncated)``.
      terminated: scalar float32, 1 when a terminal state was reached.
      truncated: scalar float32, 1 when a time limit cut the episode.
      success: scalar float32, the task's success predicate at this step.
      metrics: dict of scalar float32 diagnostics (reward terms, episode statistics).
      info: dict of auxiliary arrays (``instruction_id``, step counters, rng, ...).
    """

    data: Any
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    success: jax.Array
    metrics: dict = struct.field(default_factory=dict)
    info: dict = struct.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Discrete:
    """A discrete action space ``{0, ..., n - 1}``; actions are int32 scalars."""

    n: int

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"Discrete action space needs n >= 1, got n={self.n}")

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, (), 0, self.n, dtype=jnp.int32)


@dataclasses.dataclass(frozen=True)
class Box:
    """A bounded continuous action space; actions are float32 vectors ``[dim]``."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self):
        if len(self.low) != len(self.high):
            raise ValueError(f"Box low {self.low} and high {self.high} differ in length")
        if any(lo >= hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"Box needs low < high elementwise, got low={self.low} high={self.high}")

    @classmethod
    def uniform(cls, dim: int, low: float = -1.0, high: float = 1.0) -> "Box":
        return cls((float(low),) * dim, (float(high),) * dim)

    @property
    def dim(self) -> int:
        return len(self.low)

    def sample(self, key: jax.Array) -> jax.Array:
        low, high = np.asarray(self.low, np.float32), np.asarray(self.high, np.float32)
        return jax.random.uniform(key, (self.dim,), jnp.float32, low, high)


class Env(abc.ABC):
    """Base class of all environments. Subclasses are static: hold no per-episode state."""

    @abc.abstractmethod
    def reset(self, key: jax.Array) -> State:
        """Start an episode. ``key``: a PRNG key. Returns the initial ``State``."""

    @abc.abstractmethod
    def step(self, state: State, action: jax.Array) -> State:
        """Advance one step. Pure: returns a new ``State``.

        Set ``reward``, ``terminated``, ``truncated``, ``done`` and ``success`` explicitly:
        ``state.replace`` would keep the previous step's values, and after an auto-reset those
        are the finished episode's (``done = 1``), which would end every following episode.
        """

    @property
    @abc.abstractmethod
    def observation_size(self) -> int:
        """Length of the flat observation vector."""

    @property
    @abc.abstractmethod
    def action_space(self) -> Discrete | Box:
        """The action space."""

    @property
    def instructions(self) -> Sequence[str]:
        """Host-side instruction texts indexed by ``state.info["instruction_id"]``."""
        return ("",)

    @property
    def max_episode_steps(self) -> int | None:
        """The task's own episode limit (applied by ``EpisodeWrapper``), or None."""
        return None

    @property
    def unwrapped(self) -> "Env":
        return self


class BatchedEnv(Env):
    """An env that is already a batch: declared by subclassing, never guessed from attributes.

    ``reset(key)`` takes one key and returns a ``State`` whose leaves have a leading axis
    ``num_envs``; ``step`` takes ``action [num_envs, ...]``; and the env already carries the
    training stack (episode limit, episode statistics, auto-reset), so training code steps it as
    it is, without wrapping or vmapping it again (brax's ``VmapWrapper`` plays the same part).
    :class:`envs.wrappers.VmapWrapper` and :class:`envs.multitask.MultiTaskEnv` are batched envs;
    an object that merely has a ``num_envs`` attribute is not.
    """

    @property
    @abc.abstractmethod
    def num_envs(self) -> int:
        """The batch size: the leading axis of every ``State`` leaf."""

    @property
    def task_rows(self) -> tuple[int, ...] | None:
        """The task index of every row, for a batch of several tasks; None for a single task."""
        return None


def initial_flags() -> dict[str, jax.Array]:
    """Zero reward/done/terminated/truncated/success scalars for a fresh ``State``."""
    z = jnp.zeros((), jnp.float32)
    return dict(reward=z, done=z, terminated=z, truncated=z, success=z)
