"""Evaluating a policy: from a checkpoint directory, or from parameters in memory.

``evaluate(checkpoint_dir, env, episodes, seed, greedy=True)`` restores the latest checkpoint
(config, parameters, observation statistics), runs ``episodes`` episodes in parallel (each until
``done`` or the env's episode limit, no auto-reset) and reports return and success.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from envs.core import Env
from envs.episodes import episode_limit, run_episodes
from envs.multitask import MultiTaskEnv
from lago_jax.normalization import ObsNormStats, normalize_obs
from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.networks import ActorCritic, make_network
from lago_jax.ppo.rollout import env_action, sample_actions


def make_policy_eval_fn(act: Callable, env: Env, episodes: int, episode_length: int | None):
    """``eval_fn(params, key) -> dict of [episodes] arrays`` for any policy.

    ``act(params, obs [E, O], instruction_id [E], key) -> action [E, ...]`` (env-ready actions).
    Runs ``episodes`` fresh episodes without auto-reset, each until ``done`` or the limit, and
    returns their ``returns``, ``lengths`` and ``successes`` (success at any step). The env's
    batched step is compiled once per (env, episodes, limit) and shared by every policy
    evaluated on it (:func:`envs.episodes.run_episodes`); ``act`` is its own jitted program.
    """
    length = episode_limit(env, episode_length)

    def policy(params, state, key):
        return act(params, state.obs, state.info["instruction_id"], key)

    def eval_fn(params, key: jax.Array) -> dict:
        traj = run_episodes(env, policy, params, episodes, key, length)
        valid = traj["valid"]
        return dict(
            returns=(valid * traj["reward"]).sum(axis=0),
            lengths=valid.sum(axis=0),
            successes=(valid * traj["success"]).max(axis=0),
        )

    return eval_fn


def make_eval_fn(network: ActorCritic, env: Env, episodes: int, episode_length: int | None, normalize: bool, greedy: bool,
                 obs_clip: float | None = None):
    """``eval_fn(params, obs_stats, key) -> dict of [episodes] arrays`` (jitted) for a PPO policy."""

    def act(params_and_stats, obs, instruction_id, step_key):
        params, obs_stats = params_and_stats
        dist = network.apply(params, normalize_obs(obs_stats, obs, normalize, obs_clip), method=ActorCritic.policy)
        action = dist.mode() if greedy else sample_actions(dist, jax.random.split(step_key, episodes))
        return env_action(action, env.action_space)

    fn = make_policy_eval_fn(act, env, episodes, episode_length)
    return lambda params, obs_stats, key: fn((params, obs_stats), key)


def summarize(out: dict) -> dict[str, float]:
    ret, length, succ = (np.asarray(out[k]) for k in ("returns", "lengths", "successes"))
    return dict(
        return_mean=float(ret.mean()),
        return_std=float(ret.std()),
        success_rate=float(succ.mean()),
        length_mean=float(length.mean()),
        episodes=int(ret.shape[0]),
    )


def task_envs(env: Env) -> dict[str, Env] | None:
    """A multi-task env's members as plain envs, by name (:meth:`envs.multitask.MultiTaskEnv.task_env`:
    each as the multi-task policy sees it); None for any other env."""
    if not isinstance(env, MultiTaskEnv):
        return None
    return {name: env.task_env(name) for name in env.task_names}


def mean_over_tasks(tasks: dict[str, dict]) -> dict:
    """Per-task summaries -> each under ``"tasks"`` and, at the top level, their means (as
    Meta-World reports MT10: the average of the per-task success rates); ``episodes`` is summed."""
    first = next(iter(tasks.values()))
    out = {k: float(np.mean([t[k] for t in tasks.values()])) for k in first if k != "episodes"}
    if "episodes" in first:
        out["episodes"] = int(sum(t["episodes"] for t in tasks.values()))
    out["tasks"] = tasks
    return out


def evaluate_params(
    config: PPOConfig, env: Env, params: Any, obs_stats: ObsNormStats, episodes: int = 64, seed: int = 0, greedy: bool = True
) -> dict[str, float]:
    """Evaluate in-memory ``params``/``obs_stats`` (e.g. ``TrainOutput.state``).

    On a multi-task env (:func:`task_envs`, e.g. ``MT10Env``) every task runs ``episodes``
    episodes on its own (key ``fold_in(PRNGKey(seed), task index)``); the result is
    :func:`mean_over_tasks` of their summaries.
    """
    network = make_network(config, env.action_space)
    members = task_envs(env)
    if members is None:
        fn = make_eval_fn(network, env, episodes, config.episode_length, config.normalize_obs, greedy, config.obs_clip)
        return summarize(fn(params, obs_stats, jax.random.PRNGKey(seed)))
    length = config.episode_length or env.max_episode_steps
    tasks = {}
    for i, (name, task_env) in enumerate(members.items()):
        fn = make_eval_fn(network, task_env, episodes, length, config.normalize_obs, greedy, config.obs_clip)
        tasks[name] = summarize(fn(params, obs_stats, jax.random.fold_in(jax.random.PRNGKey(seed), i)))
    return mean_over_tasks(tasks)


def checkpoint_config(checkpoint_dir: str, step: int | None = None) -> PPOConfig:
    """The ``PPOConfig`` a checkpoint (latest, or ``step``) was trained with: what it takes to
    rebuild the env it expects (e.g. a multi-task env's batch) before restoring it."""
    from lago_jax.checkpoint import open_checkpoint

    mgr, step = open_checkpoint(checkpoint_dir, step)
    try:
        return PPOConfig.from_dict(mgr.restore_config(step))
    finally:
        mgr.close()


def restore_checkpoint(checkpoint_dir: str, env: Env, step: int | None = None) -> tuple[PPOConfig, Any, int]:
    """``(config, TrainState, step)`` of the PPO checkpoint (latest, or ``step``) in
    ``checkpoint_dir`` (the ``checkpoints`` folder or a run's ``out_dir`` holding it), restored for
    ``env``. Raises ``CheckpointError`` when no readable checkpoint is there."""
    from lago_jax.checkpoint import open_checkpoint
    from lago_jax.ppo.train import abstract_train_state

    mgr, step = open_checkpoint(checkpoint_dir, step)
    try:
        config = PPOConfig.from_dict(mgr.restore_config(step))
        state = mgr.restore_state(step, abstract_train_state(config, env))
    finally:
        mgr.close()
    return config, state, step


def evaluate(checkpoint_dir: str, env: Env, episodes: int = 64, seed: int = 0, greedy: bool = True, step: int | None = None) -> dict[str, float]:
    """Restore the checkpoint (latest, or ``step``) in ``checkpoint_dir`` and evaluate it.

    ``checkpoint_dir`` is either the ``checkpoints`` folder or a run's ``out_dir`` holding it.
    Returns ``return_mean, return_std, success_rate, length_mean, episodes, step``.
    Raises ``CheckpointError`` when no readable checkpoint is there.
    """
    config, state, step = restore_checkpoint(checkpoint_dir, env, step)
    result = evaluate_params(config, env, state.params, state.obs_stats, episodes, seed, greedy)
    result["step"] = int(step)
    return result


def evaluate_policy(act: Callable, params: Any, env: Env, episodes: int, seed: int,
                    episode_length: int | None = None) -> dict[str, float]:
    """Run ``act(params, obs [E, O], instruction_id [E], key) -> action [E, ...]`` for ``episodes``
    fresh episodes (no auto-reset; each until done or the episode limit): return mean and std,
    success rate, episodes."""
    out = make_policy_eval_fn(act, env, episodes, episode_length)(params, jax.random.PRNGKey(seed))
    r = summarize(jax.device_get(out))
    return {k: r[k] for k in ("return_mean", "return_std", "success_rate", "episodes")}


def evaluate_prior(prior: Any, prior_params: Any, env: Env, episodes: int, seed: int,
                   episode_length: int | None = None, greedy: bool = True) -> dict[str, float]:
    """A prior acting alone, greedily (argmax / mean) or sampling its distribution, clipped to the
    action box like PPO's actions: the "LLM as direct controller" baseline."""

    def act(params, obs, instruction_id, key):
        dist = prior.apply(params, obs, instruction_id)
        action = dist.mode() if greedy else sample_actions(dist, jax.random.split(key, obs.shape[0]))
        return env_action(action, env.action_space)

    return evaluate_policy(act, prior_params, env, episodes, seed, episode_length)


def evaluate_random(env: Env, episodes: int, seed: int, episode_length: int | None = None) -> dict[str, float]:
    """Uniformly random actions: the floor every learning curve is read against."""
    space = env.action_space

    def act(params, obs, instruction_id, key):
        return jax.vmap(space.sample)(jax.random.split(key, obs.shape[0]))

    return evaluate_policy(act, None, env, episodes, seed, episode_length)
