"""The pipeline's stages, each resumable from its files: demonstrations, prior distillation, PPO
training, evaluation (see :mod:`lago_jax.experiments.pipeline` for the order).

Several processes (JAX's distributed runtime, :func:`lago_jax.parallel.initialize`) run every stage
together, in the same order, so that their collective calls line up (distillation, PPO and every
Orbax save and restore are collective). Whether a stage's output already exists is process 0's
answer (:func:`lago_jax.parallel.main_value`), so every process takes the same branch. Only
process 0 writes the files that are not collective (demonstrations, ``done.json``, evaluation
JSON), evaluates and prints logs; the others wait at a barrier after each such write and read it
where they need it. On one process every one of these steps is a no-op.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any

from lago_jax.experiments.config import VARIANT_PRIOR, ExperimentConfig, Suite

# ----------------------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    """Print a time-stamped pipeline message (process 0 only: one copy of each line)."""
    from lago_jax import parallel

    if parallel.is_main_process():
        print(f"[lago {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def _exists(path: str) -> bool:
    """Whether ``path`` exists, as process 0 sees it (the same answer on every process)."""
    from lago_jax import parallel

    return parallel.main_value(os.path.exists(path))


def _write_json_main(path: str, obj: Any, what: str) -> None:
    """``_write_json`` on process 0, then every process waits until it is written."""
    from lago_jax import parallel

    if parallel.is_main_process():
        _write_json(path, obj)
    parallel.barrier(f"lago_jax.experiments: {what} written")


def _ppo_mesh():
    """The mesh PPO runs on: none on one process (one device, as always), every device of every
    process when there are several (each process steps the environments of its own devices)."""
    import jax

    from lago_jax import parallel

    return parallel.make_mesh() if jax.process_count() > 1 else None


def make_task_env(cfg: ExperimentConfig | Any, suite: Suite, task: str, env_kwargs: dict | None = None,
                  backend: str | None = None):
    """The env a task trains on: the suite's bare env, or for a group (``suite.groups``) one
    pre-batched :class:`envs.multitask.MultiTaskEnv` of its members with ``num_envs / members``
    envs per task, the one-hot task id appended to the observation and the run's episode limit.
    ``cfg`` is the experiment's config, or a run's ``PPOConfig`` (``--eval`` rebuilds the env a
    checkpoint was trained on): either holds ``num_envs``, ``episode_length`` and ``cached_reset``.
    ``env_kwargs`` (a language split's goals and phrasings) go to every ``suite.make_env`` call,
    and so does ``backend`` (default: ``cfg.backend``, else "auto") when it is not "auto" (a
    suite whose ``make_env`` takes no ``backend`` runs its own engine, "auto")."""
    kw = dict(env_kwargs or {})
    backend = backend or getattr(cfg, "backend", "auto")
    if backend != "auto":
        import inspect

        if "backend" not in inspect.signature(suite.make_env).parameters:
            raise ValueError(f"the {suite.name} suite's envs have one physics engine; --backend {backend} "
                             "does not apply (leave it at 'auto')")
        kw["backend"] = backend
    if task not in suite.groups:
        return suite.make_env(task, **kw)
    from envs.multitask import MultiTaskEnv

    members = tuple(suite.groups[task])
    if cfg.num_envs % len(members):
        raise ValueError(f"--envs {cfg.num_envs} must be a multiple of the {len(members)} tasks of {task!r} "
                         f"({', '.join(members)}): each task steps the same number of envs")
    if cfg.cached_reset:
        raise ValueError(f"--cached-reset does not apply to {task!r}: a multi-task env auto-resets each task itself")
    return MultiTaskEnv({m: suite.make_env(m, **kw) for m in members}, envs_per_task=cfg.num_envs // len(members),
                        episode_length=cfg.episode_length)


def member_results(suite: Suite, task: str, results: dict) -> dict[str, dict]:
    """A group's evaluations split by member: ``{"<group>/<member>": that member's share of every
    evaluation}`` (each evaluation of a group holds them under ``"tasks"``)."""
    out = {}
    for m in suite.groups[task]:
        out[f"{task}/{m}"] = {k: {**r["tasks"][m], **({"backbone": r["backbone"]} if "backbone" in r else {})}
                              for k, r in results.items()}
    return out


# ----------------------------------------------------------------------------- stage 1: demos


def demos_stage(cfg: ExperimentConfig, suite: Suite, task: str, env, name: str | None = None,
                episodes: int | None = None, key_seed: int = 12345) -> Any:
    """The task's expert demonstrations: loaded from ``demos/<name or task>.npz``, or collected
    (``episodes``, default ``cfg.demo_episodes``, from ``PRNGKey(key_seed)``) and saved.

    With several processes, process 0 collects and saves them and every process then loads that
    one file: the distillation's collectives need the same data on every process, and rollouts on
    different hosts (other CPUs or accelerators) need not agree to the bit.
    """
    from envs.demos import load_demonstrations
    import jax

    from lago_jax import parallel

    path = os.path.join(cfg.out_dir, "demos", f"{name or task}.npz")
    if _exists(path):
        try:
            demos = load_demonstrations(path)
            log(f"{name or task}: demonstrations loaded from {path} ({demos.num_episodes} episodes)")
            return demos
        except ValueError as err:  # a damaged file (e.g. from an older, non-atomic write): collect again
            if jax.process_count() > 1:
                raise
            aside = f"{path}.broken-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(path, aside)
            warnings.warn(f"{err}; set aside as {aside}, collecting the demonstrations again")
    demos = (_collect_and_save(cfg, suite, task, env, path, episodes or cfg.demo_episodes, key_seed)
             if parallel.is_main_process() else None)
    parallel.barrier(f"lago_jax.experiments: demonstrations of {task} saved")
    if jax.process_count() > 1:
        demos = load_demonstrations(path)
    return demos


def _collect_and_save(cfg: ExperimentConfig, suite: Suite, task: str, env, path: str, episodes: int,
                      key_seed: int) -> Any:
    """Collect the expert's episodes and save them to ``path`` (process 0's part of the demos stage)."""
    from envs.demos import collect_demonstrations, save_demonstrations
    import jax

    from envs.demos import concat_demonstrations

    os.makedirs(os.path.dirname(path), exist_ok=True)

    def collect(name: str, member_env, expert) -> Any:
        return collect_demonstrations(
            member_env,
            expert,
            episodes,
            jax.random.PRNGKey(key_seed),
            batch_size=min(cfg.demo_batch, episodes),
            episode_length=cfg.demo_episode_length or cfg.episode_length,
            env_name=f"{suite.name}/{name}",
            metadata={"policy": "scripted expert"},
        )

    if task in suite.groups:
        members = tuple(suite.groups[task])
        log(f"{task}: collecting {episodes} expert episodes of each of {len(members)} tasks")
        hot = len(members) if env.task_one_hot else 0
        parts = []
        for m in members:
            expert = suite.expert(m)
            # The expert reads the task's own observation: the one-hot task id is cut off again.
            parts.append(collect(m, env.task_env(m), lambda obs, key, e=expert: e(obs[: obs.shape[-1] - hot], key)))
        demos = concat_demonstrations(parts, f"{suite.name}/{task}", {"policy": "scripted expert", "tasks": members})
    else:
        log(f"{task}: collecting {episodes} expert episodes")
        demos = collect(task, env, suite.expert(task))
    save_demonstrations(path, demos)
    s = demos.summary()
    log(f"{task}: {s['episodes']} episodes, {s['steps']} steps, expert success {s['success_rate']:.2f} -> {path}")
    return demos


# ----------------------------------------------------------------------------- stage 2: priors


_LLM_CACHE: dict[tuple[str, str], Any] = {}
CONVERTED_CACHE_DIR = os.environ.get(
    "LAGO_JAX_CONVERTED_DIR", os.path.join(os.path.expanduser("~"), ".cache", "lago_jax", "converted"))
"""Converted LLM weights are stored here with Orbax, so later starts skip GGUF/safetensors conversion."""


def load_backbone(spec: str, dtype: str = "float32"):
    """(config, params, tokenizer) of a backbone spec in ``dtype`` ("float32" or "bfloat16");
    cached per process.

    With several processes each converts the weights itself and the converted-weights cache is
    not used: it is written and read with Orbax, whose saves and restores wait for every process,
    and it lives in each host's home directory.
    """
    if (spec, dtype) not in _LLM_CACHE:
        import jax

        from lago_jax.llm import load_pretrained
        from lago_jax.llm.checkpoint import check_source

        check_source(spec)
        cache_dir = None if spec.startswith("random:") or jax.process_count() > 1 else CONVERTED_CACHE_DIR
        config, params, tokenizer = load_pretrained(spec, dtype=dtype, cache_dir=cache_dir)
        if tokenizer is None:
            raise ValueError(f"backbone {spec} has no tokenizer files; the prior needs one to encode instructions")
        _LLM_CACHE[(spec, dtype)] = (config, params, tokenizer)
    return _LLM_CACHE[(spec, dtype)]


def _other_seed(random_spec: str) -> str:
    """``random:<preset>[:<seed>]`` with the next seed (when the main backbone is random too)."""
    parts = random_spec.split(":")
    seed = int(parts[2]) if len(parts) == 3 else 0
    return f"random:{parts[1]}:{seed + 1}"


def build_prior(cfg: ExperimentConfig, kind: str, env) -> tuple[Any, Any]:
    """(prior, initial prior_params) of a kind, for ``env``'s instruction bank."""
    import jax
    from lago_jax.prior import LLMPrior, MLPPrior

    key = jax.random.PRNGKey(7)
    language = cfg.protocol == "language"
    # Under the language protocol the goal reaches the prior through its instruction alone.
    obs_keep = prior_obs_keep(env) if language else None
    if kind == "mlp":
        # ... and the no-LLM prior reads the instruction's tokens (the LLM's tokenizer), so that it
        # takes instructions it never saw, like the LLM priors.
        tokenizer = load_backbone(cfg.llm, cfg.dtype)[2] if language else None
        prior = MLPPrior.from_instructions(env.instructions, env.observation_size, env.action_space,
                                           tokenizer=tokenizer, obs_keep=obs_keep)
        return prior, prior.init(key)
    if kind == "llm" or cfg.random_llm or cfg.llm.startswith("random:"):
        spec = cfg.llm if kind == "llm" else (cfg.random_llm or _other_seed(cfg.llm))
        llm_config, llm_params, tokenizer = load_backbone(spec, cfg.dtype)
    else:
        # Random init with exactly the pretrained backbone's shape and tokenizer.
        from lago_jax.llm import init_params

        llm_config, _, tokenizer = load_backbone(cfg.llm, cfg.dtype)
        llm_params = init_params(llm_config, jax.random.key(0))
        spec = f"random:{cfg.llm}"
    prior = LLMPrior.from_instructions(
        llm_config, tokenizer, env.instructions, env.observation_size, env.action_space,
        num_soft_tokens=cfg.num_soft_tokens, backbone=spec, obs_keep=obs_keep,
    )
    return prior, prior.init(key, llm_params)


def prior_obs_keep(env) -> tuple[int, ...] | None:
    """The observation entries a prior reads under the language protocol: all but the env's
    ``goal_features`` (None when it has none)."""
    hidden = set(getattr(env, "goal_features", ()))
    if not hidden:
        return None
    return tuple(i for i in range(env.observation_size) if i not in hidden)


def prior_tokenizer(cfg: ExperimentConfig, kind: str):
    """The tokenizer a prior kind encodes instructions with (every kind uses ``cfg.llm``'s, the
    random-init backbone included, unless ``cfg.random_llm`` names another model)."""
    spec = cfg.random_llm if kind == "llm_random" and cfg.random_llm else cfg.llm
    if kind == "llm_random" and cfg.llm.startswith("random:") and not cfg.random_llm:
        spec = _other_seed(cfg.llm)
    return load_backbone(spec, cfg.dtype)[2]


def distill_stage(cfg: ExperimentConfig, task: str, kind: str, env, demos) -> tuple[Any, Any, dict]:
    """(prior, distilled params, record) of one prior kind: loaded when ``done.json`` is there,
    else distilled (resuming from its checkpoints) by every process together. With several
    devices the params come back as host-local copies (distillation leaves them replicated over
    every device), usable in each process's own evaluation and in PPO on one device or a mesh."""
    from lago_jax import parallel
    from lago_jax.prior.distill import DistillConfig, distill, load_prior

    out = os.path.join(cfg.out_dir, "priors", task, kind)
    done_file = os.path.join(out, "done.json")
    prior, params = build_prior(cfg, kind, env)
    if _exists(done_file):
        params = parallel.to_local(load_prior(out, prior, params))
        info = _read_json(done_file)
        log(f"{task}/{kind}: prior loaded from {out} (val NLL {info.get('best_val_nll')})")
        return prior, params, info
    dcfg = DistillConfig(
        lr=cfg.distill_lr,
        lr_schedule=cfg.distill_schedule,
        batch_size=cfg.distill_batch,
        max_steps=cfg.distill_steps,
        eval_every=cfg.distill_eval_every,
        progress=cfg.progress,
    )
    log(f"{task}/{kind}: distilling the prior ({prior.describe()['backbone']}, {cfg.distill_steps} steps)")
    t0 = time.time()
    params, result = distill(prior, params, demos, dcfg, out, resume=True)
    params = parallel.to_local(params)
    info = {**json.loads(json.dumps(result.to_dict())), "seconds": time.time() - t0}
    _write_json_main(done_file, info, f"prior {task}/{kind}")
    log(f"{task}/{kind}: val NLL {info.get('best_val_nll')} (baseline {info.get('baseline_nll')}) in {info['seconds']:.0f}s")
    return prior, params, info


# ----------------------------------------------------------------------------- stage 3: PPO


def train_stage(cfg: ExperimentConfig, task: str, variant: str, seed: int, env, priors: dict) -> str:
    """Train one PPO run (resuming from its checkpoints) unless its ``done.json`` is there; returns
    its directory. Every process trains it together, on :func:`_ppo_mesh`."""
    from lago_jax.ppo import run

    out = os.path.join(cfg.out_dir, "runs", task, variant, f"seed{seed}")
    ppo_cfg = cfg.ppo_config(variant, seed)
    kind = VARIANT_PRIOR[variant]
    prior, prior_params = (None, None) if kind is None else priors[kind][:2]
    if _exists(os.path.join(out, "done.json")):
        log(f"{task}/{variant}/seed{seed}: already trained ({out})")
        return out
    log(f"{task}/{variant}/seed{seed}: PPO, {cfg.env_steps} env steps")
    t0 = time.time()
    from lago_jax.logging import LogTargets

    targets = LogTargets(tensorboard=cfg.tensorboard, wandb_project=cfg.wandb, name=f"{task}/{variant}/seed{seed}",
                         group=f"{task}/{variant}", config={**ppo_cfg.to_dict(), "task": task, "variant": variant})
    run(ppo_cfg, env, out, prior=prior, prior_params=prior_params, resume=True, progress=cfg.progress,
        mesh=_ppo_mesh(), log_to=targets)
    _write_json_main(os.path.join(out, "done.json"),
                     {"seconds": time.time() - t0, "variant": variant, "seed": seed,
                      "backbone": None if prior is None else prior.describe()["backbone"]},
                     f"run {task}/{variant}/seed{seed}")
    return out


# ----------------------------------------------------------------------------- stage 4: evaluation


def eval_stage(cfg: ExperimentConfig, task: str, env, run_dirs: dict, priors: dict) -> dict:
    """Evaluate every run's final checkpoint, the random policy and each prior acting alone;
    ``eval/<task>.json`` keeps what is done (resumable).

    With several processes every process evaluates (each on its own first device; a checkpoint's
    Orbax restore waits for every process, so they restore together) and process 0's results are
    the ones written; the others wait for each write and return what process 0 wrote.
    """
    import jax

    from lago_jax import parallel
    from lago_jax.ppo import evaluate
    from lago_jax.ppo.evaluate import evaluate_prior, evaluate_random, mean_over_tasks, task_envs

    path = os.path.join(cfg.out_dir, "eval", f"{task}.json")
    if parallel.is_main_process():
        os.makedirs(os.path.dirname(path), exist_ok=True)
    results = _read_json(path) if _exists(path) else {}

    def done(key: str) -> bool:  # process 0's answer, so that every process joins the same restores
        return parallel.main_value(key in results)

    def record(key: str, r: dict, message: str) -> None:
        results[key] = r
        _write_json_main(path, results, f"evaluation {task}/{key}")
        log(f"{task}/{key}: {message}")

    def per_task(fn) -> dict:  # a multi-task env: every member on its own, and their mean
        members = task_envs(env)
        return fn(env) if members is None else mean_over_tasks({m: fn(e) for m, e in members.items()})

    for (variant, seed), run_dir in run_dirs.items():
        key = f"{variant}/seed{seed}"
        if done(key):
            continue
        r = evaluate(run_dir, env, episodes=cfg.eval_episodes, seed=cfg.eval_seed + seed)
        r["checkpoint"] = os.path.join(run_dir, "checkpoints")
        record(key, r, f"success {r['success_rate']:.3f} return {r['return_mean']:.3f}")
    if not done("random"):
        r = per_task(lambda e: evaluate_random(e, cfg.eval_episodes, cfg.eval_seed, cfg.episode_length))
        record("random", r, f"success {r['success_rate']:.3f}")
    for kind, (prior, params, _info) in priors.items():
        key = f"prior_{kind}"
        if done(key):
            continue
        r = per_task(lambda e: evaluate_prior(prior, params, e, cfg.eval_episodes, cfg.eval_seed, cfg.episode_length))
        r["backbone"] = prior.describe()["backbone"]
        record(key, r, f"success {r['success_rate']:.3f} return {r['return_mean']:.3f}")
    if jax.process_count() > 1:
        results = _read_json(path)
    return results
