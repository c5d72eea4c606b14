"""PPO training as pure pieces: ``make_ppo`` builds a run's ``init`` and ``update``, and
``make_train`` runs a whole training in one ``jax.jit``.

An update is the rollout (:mod:`lago_jax.ppo.acting`: ``collect(state) -> (state, Batch)``, on
the env stack ``make_ppo`` builds once) followed by :func:`make_learn`'s ``learn(state, batch,
prior_params) -> (state, metrics)``: the prior's distribution on the visited states
(:mod:`lago_jax.ppo.guidance`, when a prior guides the run) -> GAE -> ``update_epochs`` x
``num_minibatches`` SGD steps (nested scans) -> observation statistics -> next beta.
``update(state, prior_params, num_updates)`` is a ``lax.scan`` over updates;
``make_train(config, env, prior)`` returns ``train(key, prior_params=None) -> TrainOutput``, and
``jax.vmap(train)(keys)`` trains many seeds. With a mesh (:mod:`lago_jax.parallel`) the update runs
under ``shard_map``: each device steps its slice of the environments and gradients are
``pmean``'d. The checkpointed host loop is :func:`lago_jax.ppo.runner.run`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import PartitionSpec as P

from envs.core import Env, State
from envs.wrappers import VmapWrapper, training_env  # noqa: F401  (importable from here)
from lago_jax import parallel
from lago_jax.normalization import ObsNormStats, update_obs_norm
from lago_jax.ppo.acting import Batch, batched_env, cached_batched_env, cached_collect, make_collect, memoised
from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.gae import compute_gae
from lago_jax.ppo.guidance import prior_distributions, soften_prior, with_prior  # noqa: F401  (importable from here)
from lago_jax.ppo.loss import ppo_loss
from lago_jax.ppo.networks import ActorCritic, make_network
from lago_jax.ppo.protocol import Prior
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
    ``success_sum``, ``reward_mean``). Reduce on the host with :func:`lago_jax.logging.metrics_to_rows`.
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
    GAE, SGD). ``learn(*collect(state), p)`` equals ``update(state, p, 1)``. ``run`` uses
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
        (:class:`envs.core.BatchedEnv`: ``num_envs == config.num_envs``, its own training
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
    # The env stack, built once (and memoised, so runs on the same env share it and the rollout).
    benv = memoised(cached_batched_env, batched_env, env, config.num_envs, config.episode_length,
                    config.cached_reset, mesh)
    collect = memoised(cached_collect, make_collect, network, benv, config.num_steps, config.normalize_obs, mesh,
                       config.cached_reset, config.obs_clip)

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

    learn = make_learn(config, network, optimizer, guide, local_envs, axis_name, obs_dim, benv.task_rows)

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

