"""The host loop of a PPO run: :func:`run` trains in checkpointed chunks of updates.

Each chunk is up to ``config.checkpoint_every`` updates (on one device as two programs per
update: the env rollout, shared by runs that differ only in prior or loss settings, and the rest;
on a mesh the fused, sharded update). After each chunk ``run`` logs the metrics, saves an Orbax
checkpoint and checks for non-finite values (stopping with ``NonFiniteLossError`` and keeping the
last good checkpoint); it resumes from the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Env
from envs.multitask import MultiTaskEnv
from lago_jax import interrupt, parallel
from lago_jax.errors import NonFiniteLossError
from lago_jax.ppo.acting import memoised
from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.protocol import Prior
from lago_jax.ppo.train import PPO, TrainState, make_ppo


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

    ppo = memoised(_cached_ppo, make_ppo, _program_config(config), env, prior, mesh)
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
    task_names = env.task_names if isinstance(env, MultiTaskEnv) else None
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
            chunk_rows = log_lib.metrics_to_rows(metrics, first_update=start, task_names=task_names)
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
