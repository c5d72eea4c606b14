"""Run fresh episodes of a batched env with any policy, sharing the env's compiled programs.

:func:`run_episodes` is what evaluation (:mod:`lago_jax.ppo.evaluate`) and demonstration
collection (:mod:`envs.demos`) use. The env's batched reset and step (with episode-limit and
bookkeeping) are compiled **once per (env, batch size, episode limit)** and shared by every
policy run on them; each policy is its own small jitted program, called step by step from the
host. For MJX envs, whose step takes minutes to compile on a CPU, evaluating a PPO policy, a
prior and the random floor, and collecting expert demonstrations, then cost one env compile
instead of one per policy. (Training's rollout is its own program too: ``lago_jax.ppo.acting``.)

Per step ``t`` the policy sees the state before the step and ``keys[t]`` (one key per step,
split from the run key); it returns the actions of the whole batch. Environments whose episode
ended keep being stepped, with their later steps marked invalid (``valid = 0``), so every
episode is one column. The loop stops early once every episode has ended.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Discrete, Env, State
from envs.wrappers import EpisodeWrapper, episode_limit

# Fields always returned per step, and the ones returned on request (``record``).
TRANSITION = ("reward", "done", "terminated", "success", "valid")
RECORDABLE = ("obs", "instruction_id", "action")


class _EnvPrograms:
    """Jitted batched ``reset(key)`` and ``step((state, alive), action)`` of one env."""

    def __init__(self, env: Env, batch: int, episode_length: int):
        wrapped = EpisodeWrapper(env, episode_length)

        def reset(key: jax.Array) -> tuple[State, jax.Array]:
            state = jax.vmap(wrapped.reset)(jax.random.split(key, batch))
            return state, jnp.ones((batch,), jnp.float32)

        def step(carry: tuple[State, jax.Array], action: jax.Array):
            state, alive = carry
            nstate = jax.vmap(wrapped.step)(state, action)
            out = dict(
                obs=state.obs,
                instruction_id=state.info["instruction_id"],
                action=action,
                reward=nstate.reward,
                done=nstate.done,
                terminated=nstate.terminated,
                success=nstate.success,
                valid=alive,
            )
            return (nstate, alive * (1.0 - nstate.done)), out

        self.reset = jax.jit(reset)
        self.step = jax.jit(step)


@functools.lru_cache(maxsize=16)
def _cached_programs(env: Env, batch: int, episode_length: int) -> _EnvPrograms:
    return _EnvPrograms(env, batch, episode_length)


def env_programs(env: Env, batch: int, episode_length: int) -> _EnvPrograms:
    """The shared programs of ``env`` (memoised on the env object; unhashable envs get fresh ones)."""
    try:
        hash(env)
    except TypeError:
        return _EnvPrograms(env, batch, episode_length)
    return _cached_programs(env, batch, episode_length)


def run_episodes(
    env: Env,
    act: Callable[[Any, State, jax.Array], jax.Array],
    params: Any,
    batch: int,
    key: jax.Array,
    episode_length: int | None = None,
    record: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Run ``batch`` fresh episodes of ``env`` with ``act(params, state, key) -> actions [B, ...]``.

    ``state`` is the batched :class:`State` (leaves ``[B, ...]``) before the step; ``act`` is
    jitted here (``params`` is its argument, so new parameters reuse the program).

    Returns host arrays ``[T, B]`` of ``reward, done, terminated, success, valid`` plus the
    fields named in ``record`` (any of ``obs``, ``instruction_id``, ``action``), ``T`` being the
    steps run (at most the episode limit; fewer when every episode ended sooner).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    unknown = [r for r in record if r not in RECORDABLE]
    if unknown:
        raise ValueError(f"record: unknown field(s) {unknown}; expected some of {list(RECORDABLE)}")
    length = episode_limit(env, episode_length)
    programs = env_programs(env, int(batch), length)
    space = env.action_space
    dtype = np.int32 if isinstance(space, Discrete) else np.float32
    shape = (int(batch),) if isinstance(space, Discrete) else (int(batch), space.dim)

    def canonical_act(params, state, key):
        # One dtype (never weakly typed) and shape for every policy, so the env's step program
        # is compiled once, not once per policy whose output differs only in type details.
        action = jax.lax.convert_element_type(act(params, state, key), dtype)
        if action.shape != shape:
            raise ValueError(f"the policy returned actions of shape {action.shape}; expected {shape} (batch {batch})")
        return action

    policy = jax.jit(canonical_act)
    # Committed arrays everywhere: jit keys its cache on whether each argument is committed to a
    # device, and policy parameters restored from a checkpoint are, while fresh ones are not;
    # committing the env state and actions keeps the env step at one compiled program.
    device = jax.local_devices()[0]
    reset_key, run_key = jax.random.split(key)
    carry = jax.device_put(programs.reset(reset_key), device)
    keep = TRANSITION + tuple(record)
    steps = []
    for t, step_key in enumerate(jax.random.split(run_key, length)):
        action = jax.device_put(policy(params, carry[0], step_key), device)
        carry, out = programs.step(carry, action)
        steps.append({k: out[k] for k in keep})
        if t % 16 == 15 and not bool(jnp.any(carry[1] > 0)):
            break
    steps = jax.device_get(steps)
    return {k: np.stack([s[k] for s in steps]) for k in keep}
