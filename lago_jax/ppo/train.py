"""PPO training: ``make_train`` (one jitted function for a whole run) and ``run`` (host loop).

Two pure halves make an update: the rollout (:func:`make_collect`: ``collect(state) -> (state,
Batch)``, memoised on what it depends on so that runs differing only in prior or loss settings
share it) and :func:`make_learn` (``learn(state, batch, prior_params) -> (state, metrics)``).
``make_ppo`` composes them into ``init(key) -> TrainState`` and
``update(state, prior_params, num_updates) -> (state, metrics)``, a ``lax.scan`` over updates,
each update being rollout (scan over ``num_steps``) -> the prior's distribution for every
visited state (when a prior is given; all ``T x B`` states, or those of a random
``config.prior_fraction`` of the time steps, in chunks of ``config.prior_chunk``, stored on the
transition) -> GAE ->
``update_epochs`` x ``num_minibatches`` SGD steps (nested scans) -> observation statistics ->
next beta.
``make_train(config, env, prior)`` returns ``train(key, prior_params=None) -> TrainOutput``
running the whole training in one ``jax.jit``; ``jax.vmap(train)(keys)`` trains many seeds.
With a mesh (:mod:`lago_jax.parallel`) the update runs under ``shard_map``: each device steps its
slice of the environments and gradients are ``pmean``'d.

``run`` is the host loop for long runs: it runs the updates in chunks of up to
``config.checkpoint_every`` updates (on one device as two programs per update: the env rollout,
shared by runs that differ only in prior or loss settings, and the rest), logs metrics, saves an
Orbax checkpoint after each chunk, resumes from the last checkpoint, and stops with ``NonFiniteLossError`` (keeping the last good
checkpoint) when a loss or a parameter goes non-finite.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import PartitionSpec as P

from envs.core import Env, State
from envs.wrappers import VmapWrapper, is_batched, training_env
from lago_jax import interrupt, parallel
from lago_jax.errors import NonFiniteLossError
from lago_jax.distributions import Categorical, DiagGaussian
from lago_jax.normalization import ObsNormStats, update_obs_norm
from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.gae import compute_gae
from lago_jax.ppo.loss import ppo_loss
from lago_jax.ppo.networks import ActorCritic, make_network
from lago_jax.ppo.protocol import Prior
from lago_jax.ppo.rollout import Transition, generate_rollout
from lago_jax.ppo.schedule import BetaSchedule, next_beta


@struct.dataclass
class TrainState:
    """Everything a PPO run carries from one update to the next (and checkpoints).

    Attributes:
      params: ``ActorCritic`` parameters (replicated over devices).
      opt_state: optax state (gradient clip + Adam; its count drives LR annealing).
      obs_stats: running observation statistics.
      beta: scalar float32 KL weight for the next update.
      update_step: scalar int32, updates done so far.
      rng: ``uint32[2]`` PRNG key.
      env_state: the batched, auto-resetting env ``State`` (leaves ``[num_envs, ...]``; sharded
        over devices along axis 0 under data parallelism).
    """

    params: Any
    opt_state: Any
    obs_stats: ObsNormStats
    beta: jax.Array
    update_step: jax.Array
    rng: jax.Array
    env_state: State


@struct.dataclass
class TrainOutput:
    """``train``'s result: the final state and metrics stacked over updates.

    ``metrics``: loss metrics ``[U, update_epochs, num_minibatches]`` (``total_loss``,
    ``policy_loss``, ``value_loss``, ``entropy``, ``kl_prior``, ``approx_kl``, ``clip_frac``) and
    per-update scalars ``[U]`` (``beta``, ``lr``, ``episodes``, ``return_sum``, ``length_sum``,
    ``success_sum``, ``reward_mean``). Reduce on the host with :func:`metrics_to_rows`.
    """

    state: TrainState
    metrics: dict


class PPO(NamedTuple):
    """The pure pieces of a PPO run (see module docstring)."""

    config: PPOConfig
    env: Env
    network: ActorCritic
    optimizer: optax.GradientTransformation
    init: Callable[[jax.Array], TrainState]
    update: Callable[..., tuple[TrainState, dict]]
    mesh: Any
    place: Callable[[TrainState], TrainState]
    """Puts a state (e.g. a restored one) on the mesh's devices: env axis sharded, the rest
    replicated. Without a mesh: commits it to the default device."""
    split: tuple[Callable, Callable] | None = None
    """Without a mesh: one update as two jitted programs, ``collect(state) -> (state, batch)`` (the
    env rollout; shared by every PPO run with the same env, network and batch, whatever its
    prior or loss settings) and ``learn(state, batch, prior_params) -> (state, metrics)`` (prior,
    GAE, SGD). ``learn(*collect(state), p)`` equals ``update(state, p, 1)``. :func:`run` uses
    them so that a sweep over variants compiles the env once. Both *donate* the state passed
    in (its buffers are reused for the new one): do not use a state after passing it in."""


def beta_schedule(config: PPOConfig) -> BetaSchedule:
    return BetaSchedule(
        kind=config.kl_schedule,
        beta_init=config.kl_coef,
        beta_final=config.kl_coef_final,
        num_updates=config.updates,
        kl_target=config.kl_target,
        beta_min=config.kl_coef_min,
        beta_max=config.kl_coef_max,
    )


def lr_at(config: PPOConfig, update_index: jax.Array) -> jax.Array:
    """The learning rate during update ``update_index`` (0-based): ``lr``, annealed linearly to 0
    over ``config.updates`` when ``anneal_lr``. The one formula the optimiser and the logs use."""
    if not config.anneal_lr:
        return jnp.asarray(config.lr, jnp.float32)
    return jnp.asarray(config.lr * (1.0 - update_index / config.updates), jnp.float32)


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """Global-norm clip then Adam at :func:`lr_at` (optax counts SGD steps: epochs x minibatches
    per update)."""
    steps_per_update = config.update_epochs * config.num_minibatches
    lr = (lambda count: lr_at(config, count // steps_per_update)) if config.anneal_lr else config.lr
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))


def _shuffle_minibatches(tree, key: jax.Array, env_ids: jax.Array, num_minibatches: int):
    """``[T, B, ...]`` leaves -> ``[M, T/M * B, ...]``: each env's time steps permuted with key
    ``fold_in(key, global_env_id)``; minibatch m holds T/M of every env's steps."""
    leaves = jax.tree.leaves(tree)
    num_steps, num_envs = leaves[0].shape[:2]
    perm = jax.vmap(lambda i: jax.random.permutation(jax.random.fold_in(key, i), num_steps))(env_ids)  # [B, T]
    perm = perm.T  # [T, B]
    cols = jnp.arange(num_envs)[None, :]

    def shuffle(x):
        x = x[perm, cols]
        return x.reshape((num_minibatches, (num_steps // num_minibatches) * num_envs) + x.shape[2:])

    return jax.tree.map(shuffle, tree)


def prior_distributions(prior: Prior, prior_params: Any, obs: jax.Array, instruction_id: jax.Array, chunk: int):
    """The frozen prior's distribution for every visited state: ``obs [T, B, O]``,
    ``instruction_id [T, B]`` -> a distribution with leaves ``[T, B, ...]``.

    The ``T * B`` states are flattened and evaluated ``chunk`` rows per call (``lax.map`` over
    ``ceil(T * B / chunk)`` chunks; the last one padded by repeating the final state, and the
    padding dropped), so each call of the LLM runs at a batch that fills the hardware rather than
    at the rollout's ``B``. The result does not depend on ``chunk`` beyond float rounding.
    """
    num_steps, num_envs = instruction_id.shape
    n = num_steps * num_envs
    chunk = max(1, min(int(chunk), n))
    num_chunks = -(-n // chunk)
    pad = num_chunks * chunk - n
    flat_obs = obs.reshape((n,) + obs.shape[2:])
    flat_ids = instruction_id.reshape(n)
    if pad:
        flat_obs = jnp.concatenate([flat_obs, jnp.repeat(flat_obs[-1:], pad, axis=0)])
        flat_ids = jnp.concatenate([flat_ids, jnp.repeat(flat_ids[-1:], pad, axis=0)])

    def one(x):
        return jax.lax.stop_gradient(prior.apply(prior_params, x[0], x[1]))

    dists = jax.lax.map(one, (flat_obs.reshape((num_chunks, chunk) + obs.shape[2:]),
                              flat_ids.reshape(num_chunks, chunk)))
    return jax.tree.map(lambda x: x.reshape((num_chunks * chunk,) + x.shape[2:])[:n].reshape(
        (num_steps, num_envs) + x.shape[2:]), dists)


def soften_prior(dist: Any, temperature: float = 1.0, min_std: float = 0.0):
    """The prior the KL term pulls toward, made less sharp: a categorical's logits divided by
    ``temperature``; a diagonal Gaussian's standard deviation multiplied by ``temperature`` and
    floored at ``min_std``. ``temperature = 1, min_std = 0`` returns ``dist`` itself (unchanged)."""
    if temperature == 1.0 and min_std == 0.0:
        return dist
    if isinstance(dist, Categorical):
        return Categorical(dist.logits / temperature)
    if isinstance(dist, DiagGaussian):
        log_std = dist.log_std + jnp.log(jnp.asarray(temperature, dist.log_std.dtype))
        if min_std > 0.0:
            log_std = jnp.maximum(log_std, jnp.log(jnp.asarray(min_std, log_std.dtype)))
        return DiagGaussian(dist.mean, log_std)
    raise TypeError(f"soften_prior: unsupported distribution {type(dist).__name__}")


def with_prior(traj: Transition, prior: Prior, prior_params: Any, config: PPOConfig, key: jax.Array) -> Transition:
    """``traj`` with ``prior_dist`` (softened by ``config.prior_temperature`` / ``prior_min_std``)
    on every state, or, when ``config.prior_fraction < 1``, on the states of
    ``max(1, round(T * prior_fraction))`` time steps drawn with ``key`` (without replacement) and
    ``prior_mask`` marking them; elsewhere the distribution holds zeros and is masked out."""
    num_steps = traj.instruction_id.shape[0]
    n_t = max(1, int(round(num_steps * config.prior_fraction)))
    if n_t >= num_steps:
        dist = prior_distributions(prior, prior_params, traj.obs, traj.instruction_id, config.prior_chunk)
        return traj.replace(prior_dist=soften_prior(dist, config.prior_temperature, config.prior_min_std))
    steps = jax.random.choice(key, num_steps, (n_t,), replace=False)
    sub = prior_distributions(prior, prior_params, traj.obs[steps], traj.instruction_id[steps], config.prior_chunk)
    sub = soften_prior(sub, config.prior_temperature, config.prior_min_std)
    dist = jax.tree.map(lambda x: jnp.zeros((num_steps,) + x.shape[1:], x.dtype).at[steps].set(x), sub)
    mask = jnp.zeros(traj.instruction_id.shape, jnp.float32).at[steps].set(1.0)
    return traj.replace(prior_dist=dist, prior_mask=mask)


class Batch(NamedTuple):
    """What the rollout hands to learning: the ``Transition`` ``[T, B, ...]`` and the key of the
    update's minibatch shuffles (split from the train state's key together with the rollout's)."""

    traj: Transition
    epoch_key: jax.Array


class _Collect(NamedTuple):
    fn: Callable
    jit: Callable
    env: Any
    """The batched training env stack (episode limit, statistics, auto-reset, vmap), built once."""


def _memoised(cached: Callable, fresh: Callable, *args):
    """``cached(*args)`` (an ``lru_cache``) when the arguments hash, else ``fresh(*args)``."""
    try:
        hash(args)
    except TypeError:  # e.g. an unhashable env or prior: build afresh (retraces)
        return fresh(*args)
    return cached(*args)


def batched_env(env: Env, num_envs: int, episode_length: int | None = None, cached_reset: bool = False,
                mesh: Any = None) -> Env:
    """The env PPO steps: ``env`` with the training stack, vmapped over ``num_envs``
    (``VmapWrapper(training_env(env))``), or ``env`` itself when it is pre-batched
    (:func:`envs.wrappers.is_batched`, e.g. :class:`envs.multitask.MultiTaskEnv`), after checking
    that the run's settings agree with it."""
    if not is_batched(env):
        return VmapWrapper(training_env(env, episode_length, cached_reset), num_envs)
    name = type(env).__name__
    if env.num_envs != num_envs:
        raise ValueError(f"PPOConfig.num_envs={num_envs} but the pre-batched {name} holds {env.num_envs} envs; "
                         "set num_envs to match")
    if episode_length is not None and episode_length != env.max_episode_steps:
        raise ValueError(f"PPOConfig.episode_length={episode_length} but the pre-batched {name} applies its own "
                         f"limit {env.max_episode_steps}; leave episode_length None or build the env with it")
    if cached_reset:
        raise ValueError(f"PPOConfig.cached_reset=True needs a plain env; the pre-batched {name} auto-resets itself")
    if mesh is not None:
        raise ValueError(f"a pre-batched env ({name}) runs on one device; pass mesh=None")
    return env


def make_collect(network, env, episode_length, num_envs, num_steps, normalize, mesh, cached_reset=False,
                 obs_clip=None) -> _Collect:
    """The rollout half of an update, built from exactly what it depends on (and memoised on it by
    ``make_ppo``), so runs that differ only in prior, loss or optimiser settings share one
    compiled rollout."""
    n_dev = 1 if mesh is None else int(mesh.devices.size)
    local_envs = num_envs // n_dev
    axis_name = None if mesh is None else parallel.AXIS
    benv = batched_env(env, num_envs, episode_length, cached_reset, mesh)

    def collect(state: TrainState) -> tuple[TrainState, Batch]:
        rng, rollout_key, epoch_key = jax.random.split(state.rng, 3)
        env_ids = parallel.global_env_ids(local_envs, axis_name)
        env_state = state.env_state
        if cached_reset:  # one fresh reset state per env per rollout (AutoResetWrapper.refresh)
            refresh_key = jax.random.fold_in(rollout_key, num_steps)
            env_state = benv.refresh(env_state, jax.vmap(jax.random.fold_in, in_axes=(None, 0))(refresh_key, env_ids))
        env_state, traj = generate_rollout(
            network, state.params, state.obs_stats, benv, env_state, rollout_key, num_steps, env_ids, normalize,
            obs_clip=obs_clip,
        )
        return state.replace(rng=rng, env_state=env_state), Batch(traj=traj, epoch_key=epoch_key)

    # The state going in is dead once the new one comes out: donate its buffers (the env state,
    # parameters and optimiser state are reused in place where XLA can alias them).
    return _Collect(fn=collect, jit=jax.jit(collect, donate_argnums=0), env=benv)


_cached_collect = functools.lru_cache(maxsize=8)(make_collect)


def make_learn(config: PPOConfig, network: ActorCritic, optimizer: optax.GradientTransformation, prior: Prior | None,
               local_envs: int, axis_name: str | None, obs_dim: int,
               task_rows: tuple[int, ...] | None = None) -> Callable:
    """The learning half of an update: ``learn(state, batch, prior_params) -> (state, metrics)``:
    the prior on every visited state (when given), GAE, ``update_epochs`` x ``num_minibatches``
    SGD steps, observation statistics and the next beta. Pure; gradients and metrics are
    ``pmean``'d over ``axis_name`` when it is set (inside ``shard_map``). ``task_rows`` (the task
    index of every env row, from a multi-task env) adds per-task episode sums
    (``task_episodes``, ``task_return_sum``, ``task_success_sum``, each ``[num_tasks]``)."""
    schedule = beta_schedule(config)
    M, E = config.num_minibatches, config.update_epochs

    def learn(state: TrainState, batch: Batch, prior_params: Any) -> tuple[TrainState, dict]:
        traj, epoch_key = batch.traj, batch.epoch_key
        env_ids = parallel.global_env_ids(local_envs, axis_name)
        if prior is not None:
            # The prior for the visited states, stored on the transition: all T x B states (or
            # those of a random ``config.prior_fraction`` of the time steps) in chunks of
            # ``config.prior_chunk`` rows (frozen, no gradient).
            traj = with_prior(traj, prior, prior_params, config, jax.random.fold_in(epoch_key, E))
        advantages, targets = compute_gae(
            traj.reward * config.reward_scale, traj.value, traj.next_value, traj.terminated, traj.done, config.gamma, config.gae_lambda
        )
        train_data = (traj.replace(metrics={}), advantages, targets)

        def sgd_step(carry, minibatch):
            params, opt_state = carry
            mb, adv, tgt = minibatch
            grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)
            (_, metrics), grads = grad_fn(
                params, network, state.obs_stats, mb, adv, tgt, state.beta, config, axis_name
            )
            grads = parallel.pmean(grads, axis_name)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), parallel.pmean(metrics, axis_name)

        def epoch(carry, key):
            minibatches = _shuffle_minibatches(train_data, key, env_ids, M)
            return jax.lax.scan(sgd_step, carry, minibatches)

        (params, opt_state), loss_metrics = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(epoch_key, E)
        )
        obs_stats = state.obs_stats
        if config.normalize_obs:
            obs_stats = update_obs_norm(obs_stats, traj.obs.reshape(-1, obs_dim), axis_name)
        measured_kl = jnp.mean(loss_metrics["kl_prior"])
        beta = next_beta(schedule, state.beta, state.update_step, measured_kl)
        ep = traj.metrics
        done = ep["episode_done"]
        update_metrics = parallel.pmean(
            dict(
                episodes=jnp.sum(done),
                return_sum=jnp.sum(done * ep["episode_return"]),
                length_sum=jnp.sum(done * ep["episode_length"]),
                success_sum=jnp.sum(done * ep["episode_success"]),
                reward_mean=jnp.mean(traj.reward),
            ),
            axis_name,
        )
        if task_rows is not None:  # one policy, several tasks: every task's episodes apart
            rows = jax.nn.one_hot(jnp.asarray(task_rows), max(task_rows) + 1)  # [B, K]
            per_task = lambda x: jnp.einsum("tb,bk->k", done * x, rows)
            update_metrics.update(task_episodes=per_task(jnp.ones_like(done)),
                                  task_return_sum=per_task(ep["episode_return"]),
                                  task_success_sum=per_task(ep["episode_success"]))
        metrics = dict(loss_metrics, beta=state.beta, lr=lr_at(config, state.update_step), **update_metrics)
        new_state = state.replace(
            params=params,
            opt_state=opt_state,
            obs_stats=obs_stats,
            beta=beta,
            update_step=state.update_step + 1,
        )
        return new_state, metrics

    return learn


def make_ppo(config: PPOConfig, env: Env, prior: Prior | None = None, mesh: Any = None) -> PPO:
    """Build the pure ``init`` and jitted ``update`` of a PPO run.

    Args:
      env: a single (unbatched) environment, wrapped with episode limit, statistics and
        auto-reset here and vmapped over ``config.num_envs``; or a pre-batched env
        (:func:`envs.wrappers.is_batched`: ``num_envs == config.num_envs``, its own training
        stack, one device), e.g. :class:`envs.multitask.MultiTaskEnv` or ``MT10Env``, which
        trains one policy on several tasks and adds per-task statistics to the metrics.
      prior: None, or an object with ``apply(prior_params, obs, instruction_id) -> Distribution``
        (see :mod:`lago_jax.ppo`). Required when ``config.kl_active`` (a positive beta at some
        update); when beta stays 0 the prior is not evaluated (its ``prior_params`` are still
        required) and the update is vanilla PPO.
      mesh: None (one device, no collectives) or a ``Mesh`` with axis ``"data"``; ``num_envs``
        must be divisible by its size.
    """
    if not isinstance(config, PPOConfig):
        raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
    if prior is None and config.kl_active:
        name = "kl_coef" if config.kl_coef > 0 else "kl_coef_final"
        raise ValueError(f"PPOConfig.{name}={getattr(config, name)} weights a KL penalty toward a prior, but no "
                         f"prior was given; pass a prior or set {name}=0")
    # A beta that stays 0 makes the KL term exactly 0: the prior is not evaluated at all.
    guide = prior if config.kl_active else None
    n_dev = 1 if mesh is None else int(mesh.devices.size)
    if config.num_envs % n_dev:
        raise ValueError(f"PPOConfig.num_envs={config.num_envs} must be divisible by the {n_dev} devices of the mesh")
    local_envs = config.num_envs // n_dev
    axis_name = None if mesh is None else parallel.AXIS
    network = make_network(config, env.action_space)
    optimizer = make_optimizer(config)
    schedule = beta_schedule(config)
    obs_dim = env.observation_size
    collect = _memoised(_cached_collect, make_collect, network, env, config.episode_length, config.num_envs,
                        config.num_steps, config.normalize_obs, mesh, config.cached_reset, config.obs_clip)
    benv = collect.env

    def init(key: jax.Array) -> TrainState:
        key, net_key, env_key = jax.random.split(key, 3)
        params = network.init(net_key, jnp.zeros((1, obs_dim), jnp.float32))
        env_state = benv.reset(env_key)
        return TrainState(
            params=params,
            opt_state=optimizer.init(params),
            obs_stats=ObsNormStats.create(obs_dim),
            beta=schedule.init(),
            update_step=jnp.zeros((), jnp.int32),
            rng=key,
            env_state=env_state,
        )

    learn = make_learn(config, network, optimizer, guide, local_envs, axis_name, obs_dim,
                       getattr(benv, "task_rows", None))

    def one_update(state: TrainState, prior_params: Any) -> tuple[TrainState, dict]:
        state, batch = collect.fn(state)
        return learn(state, batch, prior_params)

    def updates(state: TrainState, prior_params: Any, num_updates: int) -> tuple[TrainState, dict]:
        return jax.lax.scan(lambda s, _: one_update(s, prior_params), state, None, length=num_updates)

    if mesh is not None:
        abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
        state_spec = parallel.replicated_spec(abstract).replace(env_state=parallel.env_sharded_spec(abstract.env_state))

        def sharded_updates(state, prior_params, num_updates):
            fn = jax.shard_map(
                functools.partial(updates, num_updates=num_updates),
                mesh=mesh,
                in_specs=(state_spec, P()),
                out_specs=(state_spec, P()),
                check_vma=False,
            )
            return fn(state, prior_params)

        update_fn = sharded_updates

        def place(state: TrainState) -> TrainState:
            # Every process holds the same host values (same seed, or the same checkpoint); each
            # fills only its own devices (parallel.put_global).
            shardings = jax.tree.map(lambda spec: jax.sharding.NamedSharding(mesh, spec), state_spec)
            return parallel.put_global(state, shardings)

    else:
        update_fn = updates

        def place(state: TrainState) -> TrainState:
            # Committed to the default device: jit caches on whether arguments are committed, and
            # learn's outputs are once prior parameters restored from a checkpoint go in, so an
            # uncommitted initial state would compile the rollout a second time.
            return jax.device_put(state, jax.local_devices()[0])

    def check_prior_params(prior_params):
        if prior is not None and prior_params is None:
            raise ValueError("a prior was given to make_ppo/make_train but prior_params is None")
        return {} if prior_params is None else prior_params

    def update(state: TrainState, prior_params: Any, num_updates: int):
        return update_fn(state, check_prior_params(prior_params), num_updates)

    if mesh is None:
        learn_jit = jax.jit(learn, donate_argnums=0)  # the state going in is consumed
        split = (collect.jit, lambda state, batch, prior_params: learn_jit(state, batch, check_prior_params(prior_params)))
    else:
        split = None

    return PPO(
        config=config,
        env=env,
        network=network,
        optimizer=optimizer,
        init=init,
        update=jax.jit(update, static_argnums=2),
        mesh=mesh,
        place=place,
        split=split,
    )


def abstract_train_state(config: PPOConfig, env: Env) -> TrainState:
    """Shapes and dtypes of a run's ``TrainState`` (what its checkpoints restore into). The prior
    enters the update, not the state, so a guided run's config needs no prior here."""
    unguided = dataclasses.replace(config, kl_coef=0.0, kl_coef_final=0.0)
    return jax.eval_shape(make_ppo(unguided, env).init, jax.random.PRNGKey(0))


def make_train(config: PPOConfig, env: Env, prior: Prior | None = None, mesh: Any = None) -> Callable[..., TrainOutput]:
    """``train(key=None, prior_params=None) -> TrainOutput``: a whole run in one jitted function.

    ``key`` is a ``uint32[2]`` PRNG key; None uses ``PRNGKey(config.seed)``, the key :func:`run`
    starts from. ``prior_params`` is an argument (never a closed-over constant) and is replicated
    over devices; it is required when ``prior`` is given. ``jax.vmap(train)(keys)`` (or
    ``in_axes=(0, None)`` with prior params) trains several seeds at once (single-device path,
    ``mesh=None``). All ``config.updates`` updates run in one program, without checkpoints
    (``config.checkpoint_every`` is :func:`run`'s chunking).
    """
    ppo = make_ppo(config, env, prior, mesh)

    def train(key: jax.Array | None = None, prior_params: Any = None) -> TrainOutput:
        if key is None:
            key = jax.random.PRNGKey(config.seed)
        state = ppo.init(key)
        state, metrics = ppo.update(state, prior_params, config.updates)
        return TrainOutput(state=state, metrics=metrics)

    return jax.jit(train)


TASK_SUMS = ("task_episodes", "task_return_sum", "task_success_sum")


def metrics_to_rows(metrics: dict, first_update: int = 0,
                    task_names: Sequence[str] | None = None) -> list[dict[str, float]]:
    """Host-side reduction of stacked metrics (leaves ``[U, ...]``) to one dict per update.

    Loss metrics are averaged over epochs and minibatches; ``episode_return`` /
    ``episode_length`` / ``success_rate`` are means over the episodes that finished during the
    update (NaN when none did). A multi-task run adds ``episodes/<task>``,
    ``episode_return/<task>`` and ``success_rate/<task>`` (tasks named by ``task_names``, else
    by index).
    """
    m = jax.tree.map(np.asarray, jax.device_get(metrics))
    num = m["beta"].shape[0]
    rows = []
    for u in range(num):
        row = {"update": first_update + u + 1}
        for k, v in m.items():
            if k in ("episodes", "return_sum", "length_sum", "success_sum") or k in TASK_SUMS:
                continue
            row[k] = float(np.mean(v[u]))
        if "task_episodes" in m:
            eps_k = m["task_episodes"][u]
            names = list(task_names) if task_names is not None else [str(i) for i in range(len(eps_k))]
            for i, name in enumerate(names):
                row[f"episodes/{name}"] = float(eps_k[i])
                for out, key in (("episode_return", "task_return_sum"), ("success_rate", "task_success_sum")):
                    row[f"{out}/{name}"] = float(m[key][u][i]) / float(eps_k[i]) if eps_k[i] > 0 else math.nan
        eps = float(m["episodes"][u])
        row["episodes"] = eps
        for name, key in (("episode_return", "return_sum"), ("episode_length", "length_sum"), ("success_rate", "success_sum")):
            row[name] = float(m[key][u]) / eps if eps > 0 else math.nan
        rows.append(row)
    return rows


@functools.lru_cache(maxsize=8)
def _cached_ppo(config: PPOConfig, env: Env, prior: Prior | None, mesh: Any) -> PPO:
    """``make_ppo`` memoised on (config, env object, prior object, mesh): repeated ``run`` calls in
    one process (resume, other seeds, evaluation sweeps) reuse the jitted update instead of
    retracing it. Call it with :func:`_program_config` (seed and checkpoint interval do not enter
    the compiled update)."""
    return make_ppo(config, env, prior, mesh)


def _program_config(config: PPOConfig) -> PPOConfig:
    """``config`` without the fields that do not change the jitted programs (seed: the init key
    is an argument; checkpoint interval: the host loop's business)."""
    return dataclasses.replace(config, seed=0, checkpoint_every=1)


def chunk_size(num_updates: int, checkpoint_every: int) -> int:
    """Updates per jitted call in :func:`run`: the largest divisor of ``num_updates`` that is at
    most ``checkpoint_every``. Every call then has the same scan length, so a run compiles one
    update program (a shorter last chunk would be a second program: for MJX envs on CPU, minutes)."""
    return max(d for d in range(1, min(num_updates, checkpoint_every) + 1) if num_updates % d == 0)


class RunResult(NamedTuple):
    """``run``'s result: final state, per-update metric rows, and where files went."""

    state: TrainState
    rows: list
    out_dir: str
    checkpoint_dir: str


def _first_nonfinite_update(metrics: dict) -> int | None:
    loss = np.asarray(jax.device_get(metrics["total_loss"]))
    bad = ~np.isfinite(loss.reshape(loss.shape[0], -1)).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def _params_finite(params) -> bool:
    return all(bool(np.isfinite(np.asarray(x)).all()) for x in jax.tree.leaves(jax.device_get(params)))


def _run_chunk(ppo: PPO, state: TrainState, prior_params: Any, n: int) -> tuple[TrainState, dict]:
    """``n`` updates: the fused ``update`` on a mesh; else collect/learn per update (see ``PPO.split``)."""
    if ppo.split is None:
        return ppo.update(state, prior_params, n)
    collect, learn = ppo.split
    chunk = []
    for _ in range(n):
        state, metrics = learn(*collect(state), prior_params)
        chunk.append(metrics)
    return state, jax.tree.map(lambda *x: jnp.stack(x), *chunk)


def _restore_newest_intact(manager, abstract: Any, config: PPOConfig) -> Any:
    """The state of the newest checkpoint that reads back, falling back past unreadable ones
    (each is set aside with a warning naming it and the error). None when none reads back. A
    checkpoint whose config differs from ``config`` is an error, not a fallback."""
    from lago_jax import checkpoint as ckpt_lib

    want = config.to_dict()
    for step in reversed(manager.all_steps()):
        try:
            saved = manager.restore_config(step)
            if saved == want:
                return manager.restore_state(step, abstract)
        except ckpt_lib.CheckpointError as e:
            moved = manager.set_aside(step, "corrupt")
            warnings.warn(f"checkpoint step {step} cannot be restored ({e}); set aside as {moved}; "
                          "falling back to the previous step", stacklevel=3)
            continue
        diff = sorted(k for k in set(saved) | set(want) if saved.get(k) != want.get(k))
        raise ckpt_lib.CheckpointError(
            f"config differs from the one saved in {manager.directory} (step {step}) in fields {diff}")
    return None


def run(
    config: PPOConfig,
    env: Env,
    out_dir: str,
    prior: Prior | None = None,
    prior_params: Any = None,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
    mesh: Any = None,
    max_to_keep: int | None = 3,
    log_to: Any = None,
) -> RunResult:
    """Train with checkpoints in ``out_dir/checkpoints`` and logs in ``out_dir``.

    Runs updates in equal chunks of :func:`chunk_size` updates (``config.checkpoint_every`` or the
    largest divisor of ``num_updates`` below it; seeded with ``config.seed``). On one device each
    update is the two programs of ``PPO.split`` (the env rollout, compiled once for every run on
    the same env, network and batch, then prior + GAE + SGD); on a mesh it is the fused, sharded
    ``update``. The results equal ``make_train``'s for the same config. After each chunk it writes
    metrics (``metrics.csv``, ``metrics.jsonl``) and an Orbax checkpoint (train state incl. optimiser state, obs statistics, beta, update step, RNG
    and env state; the config as JSON). At the end it also writes ``learning_curve.png``.

    Args:
      resume: continue from the latest checkpoint in ``out_dir`` if there is one (its saved
        config must equal ``config``). With ``resume=False`` an existing checkpoint is an error.
      stop_after: stop once this many updates are done in total (a pre-emption; a later call
        with ``resume=True`` continues and reproduces the uninterrupted run).
      log_to: a :class:`lago_jax.logging.LogTargets`: TensorBoard event files (on by default) and
        W&B, written by process 0 at env-step ``update x num_envs x num_steps``.
    The prior's parameters are not part of the PPO checkpoint (they are frozen): pass the same
    ``prior_params`` again when resuming.

    Raises:
      CheckpointError: unreadable checkpoint, or a config that differs from the saved one.
      NonFiniteLossError: a loss or parameter went non-finite; the last good checkpoint stays.
    """
    from lago_jax import checkpoint as ckpt_lib
    from lago_jax import logging as log_lib

    ppo = _memoised(_cached_ppo, make_ppo, _program_config(config), env, prior, mesh)
    if ppo.split is not None:
        prior_params = jax.device_put(prior_params, jax.local_devices()[0])  # committed, like the state
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    manager = ckpt_lib.Checkpointer(ckpt_dir, max_to_keep=max_to_keep)
    abstract = jax.eval_shape(ppo.init, jax.random.PRNGKey(0))
    main = parallel.is_main_process()
    if main:
        for path in manager.set_aside_incomplete():
            warnings.warn(f"set aside an incomplete checkpoint folder (not a finished save): {path}", stacklevel=2)
    parallel.barrier("lago_jax.ppo.run: checkpoints checked")
    latest = manager.latest_step()
    if latest is not None and not resume:
        raise ckpt_lib.CheckpointError(
            f"{ckpt_dir} already holds checkpoint step {latest}; pass resume=True or use a new out_dir"
        )
    restored = _restore_newest_intact(manager, abstract, config) if latest is not None else None
    if restored is not None:
        state = ppo.place(restored)
        start = int(state.update_step)
    else:
        state = ppo.place(jax.jit(ppo.init)(jax.random.PRNGKey(config.seed)))
        start = 0
    total = config.updates if stop_after is None else min(config.updates, int(stop_after))
    # Only process 0 writes logs and plots (every process computes the same replicated metrics).
    logger = (log_lib.open_loggers(out_dir, start, config.num_envs * config.num_steps, log_to) if main
              else log_lib.NullLogger())
    bar = log_lib.progress_bar(total=config.updates, initial=start, enabled=progress and main, desc="ppo")
    rows = []
    chunk = chunk_size(config.updates, config.checkpoint_every)
    try:
        while start < total:
            n = min(chunk, total - start)
            new_state, metrics = _run_chunk(ppo, state, prior_params, n)
            bad = _first_nonfinite_update(metrics)
            if bad is None and not _params_finite((new_state.params, new_state.obs_stats)):
                bad = n - 1
            if bad is not None:
                last = manager.latest_step()
                raise NonFiniteLossError(
                    f"update {start + bad + 1} (of {config.updates}) produced a non-finite loss, parameters or "
                    f"observation statistics (observations too large for float32?); stopped; the last good "
                    f"checkpoint is step {last} in {ckpt_dir}"
                )
            chunk_rows = metrics_to_rows(metrics, first_update=start, task_names=getattr(env, "task_names", None))
            logger.log_rows(chunk_rows)
            rows.extend(chunk_rows)
            state = new_state
            start += n
            manager.save(start, state, config.to_dict())
            bar.update(n)
            if chunk_rows:
                bar.set_postfix(log_lib.progress_postfix(chunk_rows[-1]))
            interrupt.check()  # Ctrl-C (under interrupt.deferred) stops here, after the checkpoint
    finally:
        bar.close()
        logger.close()
        manager.close()
    if main:
        log_lib.plot_learning_curve(out_dir)
    return RunResult(state=state, rows=rows, out_dir=out_dir, checkpoint_dir=ckpt_dir)
