"""The pipeline's stages, each resumable from its files: demonstrations, prior distillation, PPO
training, evaluation (see :mod:`lago_jax.experiments.pipeline` for the order)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from lago_jax.experiments.config import VARIANT_PRIOR, ExperimentConfig, Suite

# ----------------------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    print(f"[lago {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- stage 1: demos


def demos_stage(cfg: ExperimentConfig, suite: Suite, task: str, env) -> Any:
    from envs.demos import collect_demonstrations, load_demonstrations, save_demonstrations
    import jax

    path = os.path.join(cfg.out_dir, "demos", f"{task}.npz")
    if os.path.exists(path):
        demos = load_demonstrations(path)
        log(f"{task}: demonstrations loaded from {path} ({demos.num_episodes} episodes)")
        return demos
    os.makedirs(os.path.dirname(path), exist_ok=True)
    log(f"{task}: collecting {cfg.demo_episodes} expert episodes")
    demos = collect_demonstrations(
        env,
        suite.expert(task),
        cfg.demo_episodes,
        jax.random.PRNGKey(12345),
        batch_size=min(cfg.demo_batch, cfg.demo_episodes),
        episode_length=cfg.demo_episode_length or cfg.episode_length,
        env_name=f"{suite.name}/{task}",
        metadata={"policy": "scripted expert"},
    )
    save_demonstrations(path, demos)
    s = demos.summary()
    log(f"{task}: {s['episodes']} episodes, {s['steps']} steps, expert success {s['success_rate']:.2f} -> {path}")
    return demos


# ----------------------------------------------------------------------------- stage 2: priors


_LLM_CACHE: dict[str, Any] = {}
CONVERTED_CACHE_DIR = os.environ.get(
    "LAGO_JAX_CONVERTED_DIR", os.path.join(os.path.expanduser("~"), ".cache", "lago_jax", "converted"))
"""Converted LLM weights are stored here with Orbax, so later starts skip GGUF/safetensors conversion."""


def load_backbone(spec: str):
    """(config, params, tokenizer) of a backbone spec; cached per process."""
    if spec not in _LLM_CACHE:
        from lago_jax.llm import load_pretrained
        from lago_jax.llm.checkpoint import check_source

        check_source(spec)
        cache_dir = None if spec.startswith("random:") else CONVERTED_CACHE_DIR
        config, params, tokenizer = load_pretrained(spec, cache_dir=cache_dir)
        if tokenizer is None:
            raise ValueError(f"backbone {spec} has no tokenizer files; the prior needs one to encode instructions")
        _LLM_CACHE[spec] = (config, params, tokenizer)
    return _LLM_CACHE[spec]


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
    if kind == "mlp":
        prior = MLPPrior.from_instructions(env.instructions, env.observation_size, env.action_space)
        return prior, prior.init(key)
    if kind == "llm" or cfg.random_llm or cfg.llm.startswith("random:"):
        spec = cfg.llm if kind == "llm" else (cfg.random_llm or _other_seed(cfg.llm))
        llm_config, llm_params, tokenizer = load_backbone(spec)
    else:
        # Random init with exactly the pretrained backbone's shape and tokenizer.
        from lago_jax.llm import init_params

        llm_config, _, tokenizer = load_backbone(cfg.llm)
        llm_params = init_params(llm_config, jax.random.key(0))
        spec = f"random:{cfg.llm}"
    prior = LLMPrior.from_instructions(
        llm_config, tokenizer, env.instructions, env.observation_size, env.action_space,
        num_soft_tokens=cfg.num_soft_tokens, backbone=spec,
    )
    return prior, prior.init(key, llm_params)


def distill_stage(cfg: ExperimentConfig, task: str, kind: str, env, demos) -> tuple[Any, Any, dict]:
    from lago_jax.prior.distill import DistillConfig, distill, load_prior

    out = os.path.join(cfg.out_dir, "priors", task, kind)
    done_file = os.path.join(out, "done.json")
    prior, params = build_prior(cfg, kind, env)
    if os.path.exists(done_file):
        params = load_prior(out, prior, params)
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
    info = {**json.loads(json.dumps(result.to_dict())), "seconds": time.time() - t0}
    _write_json(done_file, info)
    log(f"{task}/{kind}: val NLL {info.get('best_val_nll')} (baseline {info.get('baseline_nll')}) in {info['seconds']:.0f}s")
    return prior, params, info


# ----------------------------------------------------------------------------- stage 3: PPO


def train_stage(cfg: ExperimentConfig, task: str, variant: str, seed: int, env, priors: dict) -> str:
    from lago_jax.ppo import run

    out = os.path.join(cfg.out_dir, "runs", task, variant, f"seed{seed}")
    ppo_cfg = cfg.ppo_config(variant, seed)
    kind = VARIANT_PRIOR[variant]
    prior, prior_params = (None, None) if kind is None else priors[kind][:2]
    if os.path.exists(os.path.join(out, "done.json")):
        log(f"{task}/{variant}/seed{seed}: already trained ({out})")
        return out
    log(f"{task}/{variant}/seed{seed}: PPO, {cfg.env_steps} env steps")
    t0 = time.time()
    run(ppo_cfg, env, out, prior=prior, prior_params=prior_params, resume=True, progress=cfg.progress)
    _write_json(os.path.join(out, "done.json"), {"seconds": time.time() - t0, "variant": variant, "seed": seed,
                                                  "backbone": None if prior is None else prior.describe()["backbone"]})
    return out


# ----------------------------------------------------------------------------- stage 4: evaluation


def eval_stage(cfg: ExperimentConfig, task: str, env, run_dirs: dict, priors: dict) -> dict:
    from lago_jax.ppo import evaluate
    from lago_jax.ppo.evaluate import evaluate_prior, evaluate_random

    path = os.path.join(cfg.out_dir, "eval", f"{task}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    results = _read_json(path) if os.path.exists(path) else {}
    for (variant, seed), run_dir in run_dirs.items():
        key = f"{variant}/seed{seed}"
        if key in results:
            continue
        r = evaluate(run_dir, env, episodes=cfg.eval_episodes, seed=cfg.eval_seed + seed)
        r["checkpoint"] = os.path.join(run_dir, "checkpoints")
        results[key] = r
        _write_json(path, results)
        log(f"{task}/{key}: success {r['success_rate']:.3f} return {r['return_mean']:.3f}")
    if "random" not in results:
        results["random"] = evaluate_random(env, cfg.eval_episodes, cfg.eval_seed, cfg.episode_length)
        _write_json(path, results)
        log(f"{task}/random: success {results['random']['success_rate']:.3f}")
    for kind, (prior, params, _info) in priors.items():
        key = f"prior_{kind}"
        if key in results:
            continue
        r = evaluate_prior(prior, params, env, cfg.eval_episodes, cfg.eval_seed, cfg.episode_length)
        r["backbone"] = prior.describe()["backbone"]
        results[key] = r
        _write_json(path, results)
        log(f"{task}/{key}: success {r['success_rate']:.3f} return {r['return_mean']:.3f}")
    return results
