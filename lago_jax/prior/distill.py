"""Stage 1 of LaGO: distil the prior from demonstrations by maximum likelihood.

``distill(prior, prior_params, demos, config, out_dir)`` minimises
``E_(s,g,a)~D[-log p_phi(a | s, g)]`` over the prior's ``trainable`` parameters only:

* the train/validation split is by episode (no episode contributes to both);
* observation-normalisation statistics come from the training split and are stored, fixed, in
  the prior's frozen parameters;
* one jitted, data-parallel step: the batch is sharded over ``jax.local_devices()`` with
  ``shard_map``, each device computes the NLL gradient of its shard w.r.t. ``trainable``
  (the LLM enters through ``stop_gradient`` and is never given to the optimizer), gradients are
  averaged with ``lax.pmean`` and every device applies the same Adam update (one device works);
* early stopping on the validation NLL, keeping the best-validation parameters;
* Orbax checkpoints in ``out_dir``: the training state (trainable, optimizer state, step), the
  best parameters and observation statistics, and a JSON record (prior description, config,
  curves). ``resume=True`` continues from the latest checkpoint. ``load_prior`` restores the
  best parameters onto a prior's frozen parameters, refusing an LLM of another width.

A non-finite loss stops training: the parameters from before that step are checkpointed and
``NonFiniteLossError`` names the step.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
import warnings
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from lago_jax import interrupt, parallel
from lago_jax.checkpoint import Checkpointer
from lago_jax.errors import CheckpointError, NonFiniteLossError
from lago_jax.normalization import ObsNorm, compute_obs_norm
from lago_jax.prior.model import Params, DistillablePrior, PriorParams, negative_log_likelihood

CHECKPOINT_SUBDIR = "checkpoints"
CHECKPOINT_ITEMS = ("train_state", "best", "meta")
"""Each distillation checkpoint step: the training state (trainable, optimizer state), the best
parameters with the observation statistics, and a JSON record."""
LR_SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Stage-1 training settings."""

    lr: float = 3e-4
    """Adam learning rate (the peak of the schedule)."""
    lr_schedule: str = "cosine"
    """"cosine": decays from ``lr`` to ``lr * lr_final_fraction`` over ``max_steps`` (the validation
    NLL settles instead of swinging by nats between evaluations at a constant rate);
    "constant": ``lr`` throughout."""
    lr_final_fraction: float = 0.1
    """The cosine schedule's final learning rate, as a fraction of ``lr``."""
    lr_decay_steps: int | None = None
    """Steps over which the cosine decays (None: ``max_steps``)."""
    batch_size: int = 64
    """Global batch size (split evenly over the local devices; must be divisible by their count)."""
    max_steps: int = 2000
    """Total optimizer steps (a resumed run counts the steps already done)."""
    eval_every: int = 100
    """Steps between validation evaluations (and checkpoints unless checkpoint_every is set)."""
    patience: int = 5
    """Stop after this many evaluations without a validation improvement; 0 disables stopping."""
    min_delta: float = 1e-4
    """A validation NLL must beat the best so far by more than this to count as improvement."""
    val_fraction: float = 0.1
    """Fraction of episodes held out for validation; 0 trains on everything (no early stopping)."""
    seed: int = 0
    """Seeds the episode split and minibatch sampling."""
    checkpoint_every: int = 0
    """Steps between checkpoints; 0 means at every evaluation. A final checkpoint is always written."""
    grad_clip_norm: float = 1.0
    """Global gradient-norm clip; 0 disables it."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW) on the trainable parameters."""
    eval_batch_size: int = 256
    """Batch size of the validation pass (rounded up to a multiple of the device count)."""
    max_to_keep: int = 2
    """Training-state checkpoints kept on disk."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self):
        if not self.lr > 0:
            raise ValueError(f"DistillConfig.lr must be > 0, got {self.lr}")
        for name in ("batch_size", "max_steps", "eval_every", "eval_batch_size", "max_to_keep"):
            if getattr(self, name) < 1:
                raise ValueError(f"DistillConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("patience", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"DistillConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"DistillConfig.lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.lr_decay_steps is not None and self.lr_decay_steps < 1:
            raise ValueError(f"DistillConfig.lr_decay_steps must be >= 1 or None, got {self.lr_decay_steps}")
        if not 0.0 <= self.lr_final_fraction <= 1.0:
            raise ValueError(f"DistillConfig.lr_final_fraction must be in [0, 1], got {self.lr_final_fraction}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"DistillConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.grad_clip_norm < 0 or self.weight_decay < 0:
            raise ValueError("DistillConfig.grad_clip_norm and weight_decay must be >= 0")

    def learning_rate(self) -> float | optax.Schedule:
        """The learning rate or schedule, indexed by the optimizer step (kept in the optimizer state,
        so a resumed run continues the schedule where it stopped)."""
        if self.lr_schedule == "constant":
            return self.lr
        return optax.cosine_decay_schedule(self.lr, self.lr_decay_steps or self.max_steps, alpha=self.lr_final_fraction)

    def optimizer(self) -> optax.GradientTransformation:
        parts = []
        if self.grad_clip_norm > 0:
            parts.append(optax.clip_by_global_norm(self.grad_clip_norm))
        parts.append(optax.adamw(self.learning_rate(), weight_decay=self.weight_decay))
        return optax.chain(*parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class DistillResult:
    """What a distillation run did. Curves are lists of (step, value)."""

    train_nll: list
    """Mean training NLL of the minibatches since the previous entry, at each evaluation and
    checkpoint."""
    val_nll: list
    """Validation NLL at each evaluation (empty when val_fraction is 0)."""
    best_step: int
    """Step of the parameters returned (best validation NLL; the last step without validation)."""
    best_val_nll: float
    """Validation NLL of the returned parameters (nan without validation)."""
    final_step: int
    """Steps completed in total (including those before a resume)."""
    stop_reason: str
    """"max_steps", "early_stopping" or "already_done"."""
    baseline_nll: float
    """NLL of the uninformed baseline on the validation (else training) split: log A for a
    categorical head, the standard-normal NLL of the actions for a Gaussian head."""
    num_train: int
    num_val: int
    seconds_per_step: float
    """Mean wall time of a training step in this call, after the first (compiling) step."""
    backbone: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class DemoArrays:
    """The arrays distillation uses, validated: obs [N, O] f32, action [N] i32 or [N, A] f32,
    instruction_id [N] i32, episode_id [N] i64."""

    obs: np.ndarray
    action: np.ndarray
    instruction_id: np.ndarray
    episode_id: np.ndarray

    def take(self, idx: np.ndarray) -> "DemoArrays":
        return DemoArrays(self.obs[idx], self.action[idx], self.instruction_id[idx],
                          self.episode_id[idx])

    @property
    def size(self) -> int:
        return int(self.obs.shape[0])


def demo_arrays(prior: DistillablePrior, demos: Any) -> DemoArrays:
    """Checks ``demos`` (a ``envs.demos.Demos``, anything with the same arrays, or a path to a
    saved demonstrations file) against ``prior`` and returns its arrays."""
    if isinstance(demos, (str, os.PathLike)):
        from envs.demos import load_demonstrations  # pylint: disable=import-outside-toplevel
        demos = load_demonstrations(os.fspath(demos))
    missing = [k for k in ("obs", "action", "instruction_id", "episode_id") if not hasattr(demos, k)]
    if missing:
        raise ValueError(f"demonstrations lack the arrays {missing}; expected obs, action, "
                         "instruction_id and episode_id (see envs.demos.Demos)")
    obs = np.asarray(demos.obs)
    n = obs.shape[0] if obs.ndim >= 1 else 0
    if n == 0:
        raise ValueError("demonstrations are empty (0 steps): nothing to distil")
    if obs.shape != (n, prior.obs_dim):
        raise ValueError(f"demonstration obs have shape {obs.shape}; the prior expects "
                         f"[N, {prior.obs_dim}]")
    if not np.all(np.isfinite(obs)):
        raise ValueError("demonstration obs contain NaN or inf")
    action = np.asarray(demos.action)
    if prior.head == "categorical":
        if action.shape != (n,):
            raise ValueError(f"demonstration actions have shape {action.shape}; a categorical prior "
                             f"expects [N]=[{n}] integer actions")
        if not np.issubdtype(action.dtype, np.integer):
            if not np.all(np.isfinite(action)) or np.any(action != np.round(action)):
                raise ValueError(f"demonstration actions have dtype {action.dtype} with non-integer "
                                 "values; a categorical prior expects integer actions")
        action = action.astype(np.int32)
        if action.min() < 0 or action.max() >= prior.action_dim:
            raise ValueError(f"demonstration actions span [{action.min()}, {action.max()}]; the prior "
                             f"has {prior.action_dim} actions [0, {prior.action_dim})")
    else:
        if action.shape != (n, prior.action_dim):
            raise ValueError(f"demonstration actions have shape {action.shape}; a Gaussian prior "
                             f"expects [N, A]=[{n}, {prior.action_dim}]")
        action = action.astype(np.float32)
        if not np.all(np.isfinite(action)):
            raise ValueError("demonstration actions contain NaN or inf")
    instruction_id = np.asarray(demos.instruction_id)
    if instruction_id.shape != (n,) or not np.issubdtype(instruction_id.dtype, np.integer):
        raise ValueError(f"demonstration instruction_id has shape {instruction_id.shape} and dtype "
                         f"{instruction_id.dtype}; expected [{n}] integers")
    if instruction_id.min() < 0 or instruction_id.max() >= prior.num_instructions:
        raise ValueError(f"demonstration instruction ids span [{instruction_id.min()}, "
                         f"{instruction_id.max()}]; the prior's bank has {prior.num_instructions}")
    texts = tuple(getattr(demos, "instructions", ()) or ())
    if texts and prior.instructions and tuple(texts) != tuple(prior.instructions):
        raise ValueError(f"the demonstrations' {len(texts)} instructions differ from the prior's "
                         f"{len(prior.instructions)}: instruction ids would index different banks")
    episode_id = np.asarray(demos.episode_id)
    if episode_id.shape != (n,):
        raise ValueError(f"demonstration episode_id has shape {episode_id.shape}; expected [{n}]")
    return DemoArrays(obs.astype(np.float32), action, instruction_id.astype(np.int32),
                      episode_id.astype(np.int64))


def split_by_episode(data: DemoArrays, val_fraction: float, seed: int) -> tuple[DemoArrays, DemoArrays]:
    """Random split of whole episodes: round(val_fraction * E) of them (at least one) held out."""
    episodes = np.unique(data.episode_id)
    if val_fraction == 0:
        return data, data.take(np.zeros((0,), np.int64))
    if episodes.size < 2:
        raise ValueError(f"a validation split needs at least 2 episodes, the demonstrations have "
                         f"{episodes.size}; set val_fraction=0 to train without validation")
    num_val = int(np.clip(round(val_fraction * episodes.size), 1, episodes.size - 1))
    rng = np.random.default_rng([seed, 1])
    val_episodes = rng.permutation(episodes)[:num_val]
    is_val = np.isin(data.episode_id, val_episodes)
    return data.take(np.flatnonzero(~is_val)), data.take(np.flatnonzero(is_val))


def baseline_nll(prior: DistillablePrior, data: DemoArrays) -> float:
    """Uniform (log A) for a categorical head; standard-normal NLL of the actions for a Gaussian."""
    if prior.head == "categorical":
        return float(math.log(prior.action_dim))
    a = data.action.astype(np.float64)
    return float(np.mean(np.sum(0.5 * a * a + 0.5 * math.log(2 * math.pi), axis=-1)))


# ----------------------------------------------------------------------------- jitted steps


def make_train_step(prior: DistillablePrior, optimizer: optax.GradientTransformation, mesh: Mesh):
    """Jitted data-parallel step.

    ``step(trainable, opt_state, frozen, obs [B, O], action [B] | [B, A], instruction_id [B])
    -> (trainable, opt_state, mean NLL)``. The batch axis is sharded over ``mesh``'s "data" axis;
    gradients and the loss are averaged over it with ``lax.pmean``.
    """

    def local_step(trainable, opt_state, frozen, obs, action, instruction_id):
        def loss_fn(trainable_):
            params = PriorParams(trainable=trainable_, frozen=jax.lax.stop_gradient(frozen))
            dist = prior.training_apply(params, obs, instruction_id)
            return jnp.mean(negative_log_likelihood(dist, action))

        loss, grads = jax.value_and_grad(loss_fn)(trainable)
        grads = jax.lax.pmean(grads, parallel.AXIS)
        loss = jax.lax.pmean(loss, parallel.AXIS)
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, loss

    sharded = jax.shard_map(
        local_step, mesh=mesh,
        in_specs=(P(), P(), P(), P(parallel.AXIS), P(parallel.AXIS), P(parallel.AXIS)),
        out_specs=(P(), P(), P()))
    return jax.jit(sharded)


def make_eval_step(prior: DistillablePrior, mesh: Mesh):
    """Jitted ``(trainable, frozen, obs, action, instruction_id, weight [B]) -> (sum of weight *
    NLL, sum of weight)``, the batch sharded over ``mesh`` and summed with ``lax.psum``."""

    def local_eval(trainable, frozen, obs, action, instruction_id, weight):
        dist = prior.training_apply(PriorParams(trainable=trainable, frozen=frozen), obs,
                                    instruction_id)
        nll = negative_log_likelihood(dist, action)
        return (jax.lax.psum(jnp.sum(nll * weight), parallel.AXIS),
                jax.lax.psum(jnp.sum(weight), parallel.AXIS))

    sharded = jax.shard_map(
        local_eval, mesh=mesh,
        in_specs=(P(), P(), P(parallel.AXIS), P(parallel.AXIS), P(parallel.AXIS), P(parallel.AXIS)),
        out_specs=(P(), P()))
    return jax.jit(sharded)


def evaluate_nll(eval_step, trainable: Params, frozen: Params, data: DemoArrays,
                 batch_size: int, put: Callable, sharding: Any) -> float:
    """Mean NLL over ``data`` in fixed-size batches (the last one padded with weight 0), each batch
    placed with ``put(arrays, sharding)`` (``parallel.put_global`` over the batch sharding)."""
    total, count = 0.0, 0.0
    for start in range(0, data.size, batch_size):
        idx = np.arange(start, min(start + batch_size, data.size))
        pad = batch_size - idx.size
        weight = np.concatenate([np.ones(idx.size, np.float32), np.zeros(pad, np.float32)])
        idx = np.concatenate([idx, np.zeros(pad, np.int64)])
        s, c = eval_step(trainable, frozen, *put((data.obs[idx], data.action[idx], data.instruction_id[idx], weight),
                                                 sharding))
        total += float(s)
        count += float(c)
    return total / max(count, 1.0)


def demos_nll(prior: DistillablePrior, prior_params: PriorParams, demos: Any, batch_size: int = 256) -> float:
    """Mean ``-log p(a | s, g)`` of a distilled prior over every step of ``demos`` (e.g. one language
    split's expert episodes, the prior put over that split's bank by ``with_instructions``), on
    this process's first device."""
    data = demo_arrays(prior, demos)
    mesh = parallel.make_mesh(jax.local_devices()[:1])
    return evaluate_nll(make_eval_step(prior, mesh), prior_params.trainable, prior_params.frozen, data,
                        batch_size, jax.device_put, NamedSharding(mesh, P(parallel.AXIS)))


def sample_batch(data: DemoArrays, batch_size: int, seed: int, step: int) -> DemoArrays:
    """Minibatch for ``step``: a deterministic function of (seed, step), so resumes repeat it."""
    rng = np.random.default_rng([seed, 0, step])
    idx = rng.choice(data.size, size=batch_size, replace=data.size < batch_size)
    return data.take(idx)


# ----------------------------------------------------------------------------- checkpoints


def _obs_norm_tree(obs_norm: ObsNorm) -> dict[str, jax.Array]:
    return {"mean": obs_norm.mean, "std": obs_norm.std}


def _checkpointer(out_dir: str, max_to_keep: int) -> Checkpointer:
    return Checkpointer(os.path.join(os.path.abspath(out_dir), CHECKPOINT_SUBDIR), max_to_keep=max_to_keep,
                        items=CHECKPOINT_ITEMS)


def _check_compatible(path: str, meta: dict, prior: DistillablePrior) -> None:
    """Raises ValueError when the checkpointed prior does not fit ``prior``."""
    saved = meta["prior"]
    now = prior.describe()
    if saved["kind"] != now["kind"]:
        raise ValueError(f"prior checkpoint at {path} holds an {saved['kind']} prior (backbone "
                         f"{saved.get('backbone')!r}) but the prior given is an {now['kind']} prior")
    if saved["d_model"] != prior.d_model:
        raise ValueError(f"prior checkpoint at {path} was trained with d_model={saved['d_model']} "
                         f"but the {'LLM' if now['kind'] == 'llm' else 'MLP prior'} has "
                         f"d_model={prior.d_model}")
    for key in ("obs_dim", "head", "action_dim", "num_soft_tokens", "proj_hidden", "lora_rank",
                "hidden", "instruction_embed_dim", "num_instructions", "obs_keep", "text_input"):
        if saved.get(key) != now.get(key):
            raise ValueError(f"prior checkpoint at {path} has {key}={saved.get(key)!r} but the prior "
                             f"has {key}={now.get(key)!r}")
    if saved.get("backbone") != now.get("backbone"):
        # Same shape, other weights (e.g. random vs pretrained): allowed, but worth a word.
        warnings.warn(f"prior checkpoint at {path} was trained on backbone {saved.get('backbone')!r}, "
                      f"now running on {now.get('backbone')!r}")


def load_prior(out_dir: str, prior: DistillablePrior, frozen_params: Union[PriorParams, Params]) -> PriorParams:
    """The best-validation parameters saved by ``distill`` in ``out_dir``, on ``frozen_params``.

    Args:
      frozen_params: the prior's frozen parameters (``PriorParams.frozen``, or a whole
        ``PriorParams`` from ``prior.init``); their observation statistics are replaced by the
        saved ones.
    Raises:
      CheckpointError: no complete checkpoint in out_dir, or one that cannot be read.
      ValueError: the checkpoint does not fit ``prior`` (other LLM width, head, sizes).
    """
    frozen = frozen_params.frozen if isinstance(frozen_params, PriorParams) else dict(frozen_params)
    checkpointer = _checkpointer(out_dir, max_to_keep=1)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise CheckpointError(f"no prior checkpoint under {checkpointer.directory}")
        _check_compatible(checkpointer.directory, checkpointer.restore_json(step, "meta"), prior)
        template = {
            "trainable": jax.eval_shape(prior.init_trainable, jax.random.key(0)),
            "obs_norm": {name: jax.ShapeDtypeStruct((prior.obs_dim,), jnp.float32)
                         for name in ("mean", "std")},
        }
        best = checkpointer.restore_trees(step, {"best": template})["best"]
    finally:
        checkpointer.close()
    obs_norm = ObsNorm(mean=jnp.asarray(best["obs_norm"]["mean"]),
                       std=jnp.asarray(best["obs_norm"]["std"]))
    params = PriorParams(trainable=best["trainable"], frozen={**frozen, "obs_norm": obs_norm})
    return prior.refresh_prefix_cache(params)


# ----------------------------------------------------------------------------- the training loop


def distill(prior: DistillablePrior, prior_params: PriorParams, demos: Any, config: DistillConfig,
            out_dir: Optional[str] = None, resume: bool = True) -> tuple[PriorParams, DistillResult]:
    """Fits the prior's trainable parameters to the demonstrations (maximum likelihood).

    Args:
      prior: an ``LLMPrior`` or ``MLPPrior``.
      prior_params: from ``prior.init``; its trainable part is the starting point (unless
        resuming), its frozen part (LLM, prefix caches) is used as is and its observation
        statistics are replaced by those of the training split.
      demos: ``envs.demos.Demos`` (or anything with obs, action, instruction_id, episode_id), or
        the path of a saved demonstrations file.
      out_dir: where checkpoints go; None trains without checkpoints.
      resume: continue from the latest checkpoint in out_dir if there is one; False deletes
        out_dir's earlier prior checkpoints and starts over.
    Returns:
      (prior_params with the best-validation trainable parameters, DistillResult).
    """
    data = demo_arrays(prior, demos)
    train, val = split_by_episode(data, config.val_fraction, config.seed)
    mesh = parallel.make_mesh()
    num_devices = mesh.devices.size
    if config.batch_size % num_devices:
        raise ValueError(f"DistillConfig.batch_size={config.batch_size} is not divisible by the "
                         f"{num_devices} local devices")
    eval_batch = -(-config.eval_batch_size // num_devices) * num_devices
    optimizer = config.optimizer()
    train_step = make_train_step(prior, optimizer, mesh)
    eval_step = make_eval_step(prior, mesh)
    replicated = NamedSharding(mesh, P())
    sharded = NamedSharding(mesh, P(parallel.AXIS))
    main = parallel.is_main_process()

    obs_norm = compute_obs_norm(train.obs)
    trainable = prior_params.trainable
    opt_state = optimizer.init(trainable)
    step = 0
    best_trainable, best_val, best_step, evals_since_best = trainable, math.inf, 0, 0
    train_curve: list = []
    val_curve: list = []
    ckpt_path = (os.path.join(os.path.abspath(out_dir), CHECKPOINT_SUBDIR)
                 if out_dir is not None else None)
    if ckpt_path is not None and not resume and os.path.isdir(ckpt_path) and main:
        warnings.warn(f"resume=False: removing the earlier prior checkpoints in {ckpt_path}")
        shutil.rmtree(ckpt_path)
    parallel.barrier("lago_jax.prior.distill: checkpoint folder ready")
    manager = _checkpointer(out_dir, config.max_to_keep) if out_dir is not None else None
    if manager is not None and main:
        # A step folder cut short outside Orbax's own temporary folders (a copy, a full disk) is set
        # aside: it is not resumed from, and Orbax would refuse to write that step again.
        for path in manager.set_aside_incomplete():
            warnings.warn(f"set aside an incomplete prior checkpoint folder (not a finished save): {path}")
    parallel.barrier("lago_jax.prior.distill: incomplete checkpoints set aside")

    latest = manager.latest_step() if manager is not None and resume else None
    if latest is not None:
        meta = manager.restore_json(latest, "meta")
        _check_compatible(ckpt_path, meta, prior)
        restored = manager.restore_trees(latest, {
            "train_state": jax.eval_shape(lambda: {"trainable": trainable, "opt_state": opt_state}),
            "best": jax.eval_shape(lambda: {"trainable": trainable,
                                            "obs_norm": _obs_norm_tree(obs_norm)}),
        })
        trainable = restored["train_state"]["trainable"]
        opt_state = restored["train_state"]["opt_state"]
        best_trainable = restored["best"]["trainable"]
        obs_norm = ObsNorm(mean=jnp.asarray(restored["best"]["obs_norm"]["mean"]),
                           std=jnp.asarray(restored["best"]["obs_norm"]["std"]))
        step = int(meta["step"])
        best_val = float(meta["best_val_nll"]) if meta["best_val_nll"] is not None else math.inf
        best_step = int(meta["best_step"])
        evals_since_best = int(meta["evals_since_best"])
        train_curve = [tuple(x) for x in meta["train_nll"]]
        val_curve = [tuple(x) for x in meta["val_nll"]]

    # Every process holds the same values; each fills its own devices (one process: device_put).
    put = lambda tree, sharding: parallel.put_global(tree, jax.tree.map(lambda _: sharding, tree))
    frozen = put({**prior_params.frozen, "obs_norm": obs_norm}, replicated)
    # Several processes save collectively, which needs global arrays.
    saved_obs_norm = (_obs_norm_tree(obs_norm) if jax.process_count() == 1
                      else put(_obs_norm_tree(obs_norm), replicated))
    trainable = put(trainable, replicated)
    opt_state = put(opt_state, replicated)
    has_val = val.size > 0

    def save(at_step: int, cur_trainable, cur_opt_state) -> None:
        if manager is None or manager.latest_step() == at_step:
            return
        meta = {
            "prior": prior.describe(), "config": config.to_dict(), "step": at_step,
            "best_step": best_step, "best_val_nll": None if math.isinf(best_val) else best_val,
            "evals_since_best": evals_since_best, "train_nll": train_curve, "val_nll": val_curve,
            "num_train": train.size, "num_val": val.size,
        }
        best = best_trainable if has_val else cur_trainable
        manager.save_items(at_step, {"train_state": {"trainable": cur_trainable, "opt_state": cur_opt_state},
                                     "best": {"trainable": best, "obs_norm": saved_obs_norm}}, {"meta": meta})

    stop_reason = "already_done" if step >= config.max_steps else "max_steps"
    if has_val and config.patience and evals_since_best >= config.patience:
        stop_reason = "already_done"
    checkpoint_every = config.checkpoint_every or config.eval_every
    window: list[float] = []
    step_times: list[float] = []
    bar = tqdm(total=config.max_steps, initial=step, disable=not (config.progress and main),
               desc=f"distil {prior.backbone}", dynamic_ncols=True)
    if has_val and step == 0 and not val_curve:
        # The initial parameters are a candidate too: the returned prior is never worse on the
        # validation split than the untrained head (which sits near the uniform / standard normal).
        v0 = evaluate_nll(eval_step, trainable, frozen, val, eval_batch, put, sharded)
        val_curve.append((0, v0))
        best_val, best_step, best_trainable = v0, 0, trainable
    try:
        while stop_reason == "max_steps" and step < config.max_steps:
            batch = sample_batch(train, config.batch_size, config.seed, step)
            t0 = time.perf_counter()
            new_trainable, new_opt_state, loss = train_step(
                trainable, opt_state, frozen, *put((batch.obs, batch.action, batch.instruction_id), sharded))
            loss = float(loss)
            step_times.append(time.perf_counter() - t0)
            if not math.isfinite(loss):
                save(step, trainable, opt_state)
                where = f"; the state before it is checkpointed at {ckpt_path} (step {step})" if manager else ""
                raise NonFiniteLossError(f"distillation loss is {loss} at step {step + 1} (batch drawn "
                                         f"for step index {step}){where}")
            trainable, opt_state = new_trainable, new_opt_state
            step += 1
            window.append(loss)
            bar.update(1)
            evaluated = False
            if step % config.eval_every == 0 or step == config.max_steps:
                evaluated = True
                train_curve.append((step, float(np.mean(window))))
                window = []
                postfix = {"train_nll": f"{train_curve[-1][1]:.4f}"}
                if has_val:
                    v = evaluate_nll(eval_step, trainable, frozen, val, eval_batch, put, sharded)
                    val_curve.append((step, v))
                    postfix["val_nll"] = f"{v:.4f}"
                    if v < best_val - config.min_delta:
                        best_val, best_step, best_trainable, evals_since_best = v, step, trainable, 0
                    else:
                        evals_since_best += 1
                        if config.patience and evals_since_best >= config.patience:
                            stop_reason = "early_stopping"
                bar.set_postfix(postfix)
            if step % checkpoint_every == 0 or step == config.max_steps or stop_reason != "max_steps":
                if not evaluated and window:
                    train_curve.append((step, float(np.mean(window))))
                    window = []
                save(step, trainable, opt_state)
                interrupt.check()  # Ctrl-C (under interrupt.deferred) stops here, after the checkpoint
    finally:
        bar.close()
        if manager is not None:
            manager.close()

    if not has_val:
        best_trainable, best_step = trainable, step
    result = DistillResult(
        train_nll=train_curve, val_nll=val_curve, best_step=best_step,
        best_val_nll=best_val if has_val and not math.isinf(best_val) else float("nan"),
        final_step=step, stop_reason=stop_reason,
        baseline_nll=baseline_nll(prior, val if has_val else train),
        num_train=train.size, num_val=val.size,
        seconds_per_step=float(np.mean(step_times[1:])) if len(step_times) > 1 else float("nan"),
        backbone=prior.backbone)
    params = PriorParams(trainable=best_trainable, frozen={**prior_params.frozen, "obs_norm": obs_norm})
    return prior.refresh_prefix_cache(params), result
