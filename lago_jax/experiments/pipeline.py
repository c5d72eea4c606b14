"""The LaGO pipeline: collect -> distill -> train -> evaluate -> report.

One call of :func:`run_pipeline` runs, for every task of a suite (CLEVR-Robot or Meta-World):

1. **demos**: the suite's scripted expert collects demonstrations (``demos/<task>.npz``).
2. **distill**: one prior per kind in ``PRIOR_KINDS`` is distilled from them (stage 1):
   ``mlp`` (no LLM), ``llm_random`` (a random-init backbone of the LLM's shape) and ``llm``
   (the pretrained backbone, SmolLM2-135M by default), in ``priors/<task>/<kind>``.
3. **train**: every variant in ``VARIANTS`` is trained with PPO for each seed, the same seeds
   and step budget for all: ``ppo`` (beta = 0), ``ppo_mlp_prior``, ``lago_random_llm`` and
   ``lago`` (``runs/<task>/<variant>/seed<k>``).
4. **evaluate**: each run's final Orbax checkpoint is reloaded and evaluated; every distilled
   prior is also evaluated acting alone, greedily (the "LLM as direct controller" baseline).
5. **report**: ``results.md`` and ``results.json`` (success rate and return: mean and 95%
   t-interval over seeds) and ``learning_curves.png``.

Every stage is resumable: finished stages are detected from their files and skipped; an
interrupted distillation or PPO run continues from its last Orbax checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

VARIANTS = ("ppo", "ppo_mlp_prior", "lago_random_llm", "lago")
"""Trained variants, in table order. Each maps to the prior it is guided by (None for PPO)."""
VARIANT_PRIOR = {"ppo": None, "ppo_mlp_prior": "mlp", "lago_random_llm": "llm_random", "lago": "llm"}
PRIOR_KINDS = ("mlp", "llm_random", "llm")
VARIANT_LABEL = {
    "ppo": "PPO (vanilla)",
    "ppo_mlp_prior": "PPO + MLP prior",
    "lago_random_llm": "LaGO, random-init LLM",
    "lago": "LaGO",
    "prior_mlp": "MLP prior alone (greedy)",
    "prior_llm_random": "random-init LLM prior alone (greedy)",
    "prior_llm": "LLM prior alone (greedy)",
    "random": "random policy",
}


@dataclasses.dataclass(frozen=True)
class Suite:
    """What the pipeline needs from an environment family.

    Attributes:
      name: "clevr_robot" or "metaworld".
      task_names: every valid task name (for the error on an unknown one).
      make_env: ``task -> Env`` (bare, unbatched).
      expert: ``task -> policy(obs, key) -> action`` (pure JAX) used for demonstrations.
    """

    name: str
    task_names: tuple[str, ...]
    make_env: Callable[[str], Any]
    expert: Callable[[str], Callable]


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: tasks x variants x seeds at a fixed step budget."""

    tasks: tuple[str, ...]
    """Tasks to run, each with its own demos, priors and runs."""
    out_dir: str
    """Where everything is written (and resumed from)."""
    seeds: tuple[int, ...] = (0, 1)
    """PPO seeds; every variant uses the same seeds."""
    variants: tuple[str, ...] = VARIANTS
    """Which of ``VARIANTS`` to train."""
    num_envs: int = 16
    """Parallel environments per PPO run."""
    num_steps: int = 32
    """Rollout length per update."""
    num_updates: int = 10
    """PPO updates per run (env steps = num_envs * num_steps * num_updates)."""
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 3e-4
    ent_coef: float = 0.01
    gamma: float = 0.99
    hidden_sizes: tuple[int, ...] = (64, 64)
    beta: float = 0.1
    """KL weight toward the prior (constant schedule start value)."""
    schedule: str = "constant"
    """beta schedule: constant, linear, adaptive."""
    beta_final: float = 0.0
    """beta at the end of a linear schedule."""
    kl_target: float = 0.05
    """Target KL of the adaptive schedule."""
    kl_direction: str = "reverse"
    checkpoint_every: int = 5
    """PPO updates between checkpoints."""
    demo_episodes: int = 64
    """Expert episodes collected per task."""
    demo_batch: int = 32
    """Expert episodes run in parallel."""
    demo_episode_length: int | None = None
    """Step limit of expert episodes (None: ``episode_length``, else the task's own). Experts that
    finish fast (the CLEVR oracle: ~4.4 pushes) need far fewer steps than the task allows."""
    distill_steps: int = 100
    distill_batch: int = 32
    distill_lr: float = 1e-3
    distill_eval_every: int = 25
    llm: str = "smollm2-135m"
    """The pretrained backbone: "smollm2-135m", a local HF directory or a .gguf file."""
    random_llm: str | None = None
    """Random-init backbone of the same shape; default ``random:<preset>`` matching ``llm``."""
    num_soft_tokens: int = 1
    eval_episodes: int = 32
    eval_seed: int = 1000
    episode_length: int | None = None
    """Override the task's episode limit (None keeps it)."""
    prior_chunk: int = 256
    """Rows per call of the prior inside the PPO update (``PPOConfig.prior_chunk``)."""
    cached_reset: bool = False
    """Auto-reset from a reset state refreshed once per rollout (``PPOConfig.cached_reset``)."""
    reward_scale: float = 1.0
    """Rewards are scaled by this for PPO's value targets (``PPOConfig.reward_scale``)."""
    prior_temperature: float = 1.0
    """The KL term's prior softened by this temperature (``PPOConfig.prior_temperature``)."""
    prior_min_std: float = 0.0
    """Floor on the Gaussian prior's std in the KL term (``PPOConfig.prior_min_std``)."""
    progress: bool = True

    def __post_init__(self):
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ValueError(f"unknown variant(s) {bad}; expected some of {list(VARIANTS)}")
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed")
        dup = sorted({s for s in self.seeds if list(self.seeds).count(s) > 1})
        if dup:
            raise ValueError(f"seeds {list(self.seeds)} repeat {dup}: each seed is one independent run, "
                             "and a repeated seed would be counted twice in the intervals")
        if not self.tasks:
            raise ValueError("tasks must hold at least one task")
        for name in ("num_envs", "num_steps", "num_updates", "demo_episodes", "distill_steps", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def env_steps(self) -> int:
        return self.num_envs * self.num_steps * self.num_updates

    def ppo_config(self, variant: str, seed: int):
        from lago_jax.ppo import PPOConfig

        guided = VARIANT_PRIOR[variant] is not None
        return PPOConfig(
            num_envs=self.num_envs,
            num_steps=self.num_steps,
            num_updates=self.num_updates,
            update_epochs=self.update_epochs,
            num_minibatches=self.num_minibatches,
            lr=self.lr,
            ent_coef=self.ent_coef,
            gamma=self.gamma,
            hidden_sizes=tuple(self.hidden_sizes),
            kl_coef=self.beta if guided else 0.0,
            kl_schedule=self.schedule,
            kl_coef_final=self.beta_final if guided else 0.0,
            kl_target=self.kl_target,
            kl_direction=self.kl_direction,
            episode_length=self.episode_length,
            prior_chunk=self.prior_chunk,
            cached_reset=self.cached_reset,
            reward_scale=self.reward_scale,
            prior_temperature=self.prior_temperature,
            prior_min_std=self.prior_min_std,
            checkpoint_every=self.checkpoint_every,
            seed=int(seed),
        )


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


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t interval (0 half-width for one value)."""
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), 0.0
    from scipy import stats

    t = float(stats.t.ppf(0.975, df=x.size - 1))
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(x.size))


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

        if not spec.startswith("random:") and spec not in ("smollm2-135m",) and not os.path.exists(spec):
            raise FileNotFoundError(
                f"--llm {spec!r}: no such file or directory; expected 'smollm2-135m', "
                "'random:<preset>', a local Hugging Face checkpoint directory or a .gguf file"
            )
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
        batch_size=cfg.distill_batch,
        max_steps=cfg.distill_steps,
        eval_every=cfg.distill_eval_every,
        progress=cfg.progress,
    )
    log(f"{task}/{kind}: distilling the prior ({prior.describe()['backbone']}, {cfg.distill_steps} steps)")
    t0 = time.time()
    params, result = distill(prior, params, demos, dcfg, out, resume=True)
    info = {
        "backbone": prior.describe()["backbone"],
        "seconds": time.time() - t0,
        **{k: v for k, v in _result_summary(result).items()},
    }
    _write_json(done_file, info)
    log(f"{task}/{kind}: val NLL {info.get('best_val_nll')} (baseline {info.get('baseline_nll')}) in {info['seconds']:.0f}s")
    return prior, params, info


def _result_summary(result) -> dict:
    out = {}
    for name in ("best_val_nll", "baseline_nll", "steps", "stopped_early", "best_step"):
        if hasattr(result, name):
            v = getattr(result, name)
            out[name] = v if isinstance(v, (bool, str)) or v is None else float(v)
    for name in ("train_nll", "val_nll"):
        if hasattr(result, name):
            out[name] = [list(map(float, row)) if isinstance(row, (tuple, list)) else float(row) for row in getattr(result, name)]
    return out


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


def evaluate_policy(act: Callable, params: Any, env, episodes: int, seed: int,
                    episode_length: int | None = None) -> dict:
    """Run ``act(params, obs [E, O], instruction_id [E], key) -> action [E, ...]`` for ``episodes``
    fresh episodes (no auto-reset; each until done or the episode limit)."""
    import jax
    from lago_jax.ppo.evaluate import make_policy_eval_fn, summarize

    out = make_policy_eval_fn(act, env, episodes, episode_length)(params, jax.random.PRNGKey(seed))
    r = summarize(jax.device_get(out))
    return {k: r[k] for k in ("return_mean", "return_std", "success_rate", "episodes")}


def evaluate_prior(prior, prior_params, env, episodes: int, seed: int, episode_length: int | None = None) -> dict:
    """The prior acting alone, greedily (argmax / mean, clipped to the action box)."""
    import jax.numpy as jnp
    from envs.core import Box

    space = env.action_space

    def act(params, obs, instruction_id, key):
        action = prior.apply(params, obs, instruction_id).mode()
        if isinstance(space, Box):
            action = jnp.clip(action, jnp.asarray(space.low), jnp.asarray(space.high))
        return action

    return evaluate_policy(act, prior_params, env, episodes, seed, episode_length)


def evaluate_random(env, episodes: int, seed: int, episode_length: int | None = None) -> dict:
    """Uniformly random actions: the floor every learning curve is read against."""
    import jax

    space = env.action_space

    def act(params, obs, instruction_id, key):
        return jax.vmap(space.sample)(jax.random.split(key, obs.shape[0]))

    return evaluate_policy(act, None, env, episodes, seed, episode_length)


def eval_stage(cfg: ExperimentConfig, task: str, env, run_dirs: dict, priors: dict) -> dict:
    from lago_jax.ppo import evaluate

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


# ----------------------------------------------------------------------------- stage 5: report


def summarize(cfg: ExperimentConfig, task: str, results: dict, priors: dict) -> list[dict]:
    rows = []
    for variant in cfg.variants:
        runs = [results[f"{variant}/seed{s}"] for s in cfg.seeds if f"{variant}/seed{s}" in results]
        if not runs:
            continue
        sm, sh = mean_ci95([r["success_rate"] for r in runs])
        rm, rh = mean_ci95([r["return_mean"] for r in runs])
        kind = VARIANT_PRIOR[variant]
        rows.append(dict(task=task, method=variant, label=VARIANT_LABEL[variant], seeds=len(runs),
                         backbone=None if kind is None else priors[kind][0].describe()["backbone"],
                         success_mean=sm, success_ci95=sh, return_mean=rm, return_ci95=rh,
                         env_steps=cfg.env_steps))
    if "random" in results:
        r = results["random"]
        rows.append(dict(task=task, method="random", label=VARIANT_LABEL["random"], seeds=1, backbone=None,
                         success_mean=r["success_rate"], success_ci95=0.0, return_mean=r["return_mean"],
                         return_ci95=0.0, env_steps=0))
    for kind in priors:
        r = results.get(f"prior_{kind}")
        if r is None:
            continue
        rows.append(dict(task=task, method=f"prior_{kind}", label=VARIANT_LABEL[f"prior_{kind}"], seeds=1,
                         backbone=r.get("backbone"), success_mean=r["success_rate"], success_ci95=0.0,
                         return_mean=r["return_mean"], return_ci95=0.0, env_steps=0))
    return rows


def write_table(cfg: ExperimentConfig, suite: Suite, rows: list[dict], extra: dict) -> tuple[str, str]:
    md = [f"# {suite.name}: results", "",
          f"Tasks: {', '.join(cfg.tasks)}. Seeds: {list(cfg.seeds)}. PPO budget: {cfg.env_steps} env steps "
          f"per run ({cfg.num_envs} envs x {cfg.num_steps} steps x {cfg.num_updates} updates). "
          f"beta = {cfg.beta} ({cfg.schedule}, KL {cfg.kl_direction}). Evaluation: {cfg.eval_episodes} "
          "episodes per checkpoint, greedy. Intervals: 95% Student-t over seeds (prior-alone rows: one "
          "deterministic prior, no interval).", "",
          "| task | method | backbone | seeds | success rate | return |", "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['task']} | {r['label']} | {r['backbone'] or '-'} | {r['seeds']} | "
                  f"{r['success_mean']:.3f} ± {r['success_ci95']:.3f} | {r['return_mean']:.3f} ± {r['return_ci95']:.3f} |")
    md_path = os.path.join(cfg.out_dir, "results.md")
    json_path = os.path.join(cfg.out_dir, "results.json")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    _write_json(json_path, {"config": cfg.to_dict(), "rows": rows, **extra})
    return md_path, json_path


CURVE_KEYS = (("success_rate", "training success rate"), ("episode_return", "training episode return"))
_FLOOR_KEYS = {"success_rate": "success_mean", "episode_return": "return_mean"}


def seed_curve(rows: Sequence[dict], key: str, steps_per_update: int) -> tuple[np.ndarray, np.ndarray]:
    """One run's curve: (env steps, value) at the updates where ``key`` was measured. Points come
    from each row's ``update`` field, never from row order; updates in which no episode finished
    (value None/NaN) are skipped rather than plotted as gaps."""
    pts = sorted((int(r["update"]) * steps_per_update, float(r[key])) for r in rows
                 if r.get(key) is not None and np.isfinite(float(r[key])))
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = zip(*pts)
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def mean_band(curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and the half-width of its 95% Student-t interval on ``grid``. Each seed's
    curve is interpolated linearly between its measured points and held after its last one; before
    its first point it does not count. Returns (mean, half-width, seeds counted) per grid point."""
    from scipy import stats

    ys = []
    for x, y in curves:
        if len(x):
            ys.append(np.interp(grid, x, y, left=np.nan, right=y[-1]))
    if not ys:
        nan = np.full(grid.shape, np.nan)
        return nan, nan, np.zeros(grid.shape, int)
    ys = np.asarray(ys)
    n = np.sum(np.isfinite(ys), axis=0)
    mean = np.full(grid.shape, np.nan)
    half = np.zeros(grid.shape)
    for g in np.flatnonzero(n):
        col = ys[np.isfinite(ys[:, g]), g]
        mean[g] = col.mean()
        if col.size > 1:
            half[g] = stats.t.ppf(0.975, col.size - 1) * col.std(ddof=1) / math.sqrt(col.size)
    return mean, half, n


def plot_curves(cfg: ExperimentConfig, suite: Suite, rows: Sequence[dict] = ()) -> str:
    """``learning_curves.png``: per task, training success rate and episode return against env
    steps; per variant the mean over seeds with its 95% band; the random policy and each prior
    acting alone (greedy evaluation, from ``rows``) as dashed horizontal lines."""
    import matplotlib.pyplot as plt

    fig = curve_figure(cfg, rows)
    path = os.path.join(cfg.out_dir, "learning_curves.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curve_figure(cfg: ExperimentConfig, rows: Sequence[dict] = ()):
    """The figure :func:`plot_curves` saves (matplotlib ``Figure``; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lago_jax.logging import read_jsonl

    fig, axes = plt.subplots(len(cfg.tasks), len(CURVE_KEYS), figsize=(6 * len(CURVE_KEYS), 3.6 * len(cfg.tasks)),
                             squeeze=False)
    steps_per_update = cfg.num_envs * cfg.num_steps
    grid = np.arange(1, cfg.num_updates + 1) * steps_per_update
    colors = plt.get_cmap("tab10").colors
    styles = ("-", "--", "-.", ":")
    for i, task in enumerate(cfg.tasks):
        for v, variant in enumerate(cfg.variants):
            runs = []
            for seed in cfg.seeds:
                path = os.path.join(cfg.out_dir, "runs", task, variant, f"seed{seed}", "metrics.jsonl")
                if os.path.exists(path):
                    runs.append(read_jsonl(path))
            if not runs:
                continue
            for j, (key, title) in enumerate(CURVE_KEYS):
                mean, half, n = mean_band([seed_curve(r, key, steps_per_update) for r in runs], grid)
                ok = np.isfinite(mean)
                if not ok.any():
                    continue
                ax = axes[i, j]
                color = colors[v % len(colors)]
                ax.plot(grid[ok], mean[ok], color=color, linestyle=styles[v % len(styles)], linewidth=1.6,
                        label=f"{VARIANT_LABEL[variant]} ({len(runs)} seeds)")
                if len(runs) > 1:
                    ax.fill_between(grid[ok], (mean - half)[ok], (mean + half)[ok], color=color, alpha=0.15, linewidth=0)
        for j, (key, title) in enumerate(CURVE_KEYS):
            ax = axes[i, j]
            for k, row in enumerate(r for r in rows if r.get("task") == task and r.get("env_steps", 1) == 0):
                ax.axhline(row[_FLOOR_KEYS[key]], color=colors[(len(cfg.variants) + k) % len(colors)], linestyle=(0, (4, 3)),
                           linewidth=1.0, label=f"{row['label']} (greedy eval)")
            ax.set_title(f"{task}: {title}")
            ax.set_xlabel("env steps")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, framealpha=0.7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- driver


def run_pipeline(cfg: ExperimentConfig, suite: Suite) -> dict:
    unknown = [t for t in cfg.tasks if t not in suite.task_names]
    if unknown:
        raise ValueError(f"unknown {suite.name} task(s) {unknown}; expected some of {list(suite.task_names)}")
    for variant in cfg.variants:  # fail on bad PPO settings before any expensive stage runs
        cfg.ppo_config(variant, cfg.seeds[0])
    from lago_jax.llm.checkpoint import check_source

    check_source(cfg.llm)  # a bad --llm is reported before anything is written
    if cfg.random_llm is not None:
        check_source(cfg.random_llm)
    os.makedirs(cfg.out_dir, exist_ok=True)
    saved_cfg = os.path.join(cfg.out_dir, "experiment.json")
    if os.path.exists(saved_cfg):
        old = _read_json(saved_cfg)
        mine = json.loads(json.dumps(cfg.to_dict()))
        diff = sorted(k for k in mine if k not in ("progress", "out_dir") and old.get(k) != mine[k])
        if diff:
            raise ValueError(
                f"{cfg.out_dir} holds an experiment with different settings ({diff}); "
                "use another --out directory or the same flags to resume"
            )
    _write_json(saved_cfg, cfg.to_dict())
    all_rows, extra = [], {"priors": {}, "demos": {}, "timings": {}}
    kinds_needed = [VARIANT_PRIOR[v] for v in cfg.variants if VARIANT_PRIOR[v] is not None]
    kinds = [k for k in PRIOR_KINDS if k in kinds_needed or k in ("mlp", "llm")]
    for task in cfg.tasks:
        t_task = time.time()
        env = suite.make_env(task)
        demos = demos_stage(cfg, suite, task, env)
        extra["demos"][task] = demos.summary()
        priors = {}
        for kind in kinds:
            priors[kind] = distill_stage(cfg, task, kind, env, demos)
            extra["priors"][f"{task}/{kind}"] = priors[kind][2]
        run_dirs = {}
        for variant in cfg.variants:
            for seed in cfg.seeds:
                run_dirs[(variant, seed)] = train_stage(cfg, task, variant, seed, env, priors)
        results = eval_stage(cfg, task, env, run_dirs, priors)
        all_rows.extend(summarize(cfg, task, results, priors))
        extra["timings"][task] = time.time() - t_task
    md_path, json_path = write_table(cfg, suite, all_rows, extra)
    png = plot_curves(cfg, suite, all_rows)
    log(f"results table: {md_path}")
    log(f"results JSON:  {json_path}")
    log(f"learning curves: {png}")
    with open(md_path) as f:
        print(f.read())
    return {"rows": all_rows, "table": md_path, "json": json_path, "plot": png}


def eval_only(checkpoint_dir: str, suite: Suite, task: str | None, episodes: int, seed: int) -> dict:
    """``--eval CHECKPOINT_DIR``: reload a PPO run and evaluate it (task read from the run's path
    ``.../runs/<task>/<variant>/seed<k>`` unless given)."""
    from lago_jax.ppo import evaluate

    path = os.path.abspath(checkpoint_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--eval {checkpoint_dir}: no such checkpoint directory")
    if task is None:
        parts = path.rstrip("/").split(os.sep)
        if parts[-1] == "checkpoints":
            parts = parts[:-1]
        task = parts[-3] if len(parts) >= 3 and parts[-3] in suite.task_names else None
        if task is None:
            raise ValueError(f"cannot tell the task of {checkpoint_dir}; pass --task")
    env = suite.make_env(task)
    r = evaluate(path, env, episodes=episodes, seed=seed)
    print(json.dumps({"checkpoint": path, "task": task, **r}, indent=2))
    return r


def build_parser(suite_name: str, default_tasks: Sequence[str], defaults: dict) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m lago_jax.experiments.{suite_name}",
        description="LaGO pipeline: collect demos -> distill priors -> train PPO variants -> evaluate -> report.",
    )
    d = {**{f.name: f.default for f in dataclasses.fields(ExperimentConfig) if f.default is not dataclasses.MISSING}, **defaults}
    p.add_argument("--task", "--tasks", dest="tasks", nargs="+", default=None,
                   help=f"task name(s) (default: {' '.join(default_tasks)})")
    p.add_argument("--out", default=os.path.join("outputs", suite_name), help="output directory (resumed if it exists)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(d["seeds"]))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--envs", dest="num_envs", type=int, default=d["num_envs"], help="parallel envs per PPO run")
    p.add_argument("--rollout", dest="num_steps", type=int, default=d["num_steps"], help="rollout length per update")
    p.add_argument("--updates", dest="num_updates", type=int, default=None,
                   help=f"PPO updates per run (default {d['num_updates']})")
    p.add_argument("--steps", dest="total_steps", type=int, default=None,
                   help="PPO env steps per run (sets --updates = steps / (envs * rollout))")
    p.add_argument("--beta", type=float, default=d["beta"])
    p.add_argument("--schedule", default=d["schedule"], choices=["constant", "linear", "adaptive"])
    p.add_argument("--beta-final", dest="beta_final", type=float, default=d["beta_final"])
    p.add_argument("--kl-target", dest="kl_target", type=float, default=d["kl_target"])
    p.add_argument("--kl-direction", dest="kl_direction", default=d["kl_direction"], choices=["reverse", "forward"])
    p.add_argument("--llm", default=d["llm"], help="'smollm2-135m', a local HF directory or .gguf file")
    p.add_argument("--random-llm", dest="random_llm", default=d["random_llm"], help="random backbone spec, e.g. random:smollm2-135m")
    p.add_argument("--demo-episodes", dest="demo_episodes", type=int, default=d["demo_episodes"])
    p.add_argument("--distill-steps", dest="distill_steps", type=int, default=d["distill_steps"])
    p.add_argument("--distill-batch", dest="distill_batch", type=int, default=d["distill_batch"])
    p.add_argument("--eval-episodes", dest="eval_episodes", type=int, default=d["eval_episodes"])
    p.add_argument("--episode-length", dest="episode_length", type=int, default=d["episode_length"])
    p.add_argument("--prior-chunk", dest="prior_chunk", type=int, default=d["prior_chunk"],
                   help="rows per call of the prior inside the PPO update")
    p.add_argument("--hidden", dest="hidden_sizes", type=int, nargs="+", default=list(d["hidden_sizes"]),
                   help="hidden layer widths of the PPO actor and critic")
    p.add_argument("--reward-scale", dest="reward_scale", type=float, default=d["reward_scale"])
    p.add_argument("--prior-temperature", dest="prior_temperature", type=float, default=d["prior_temperature"])
    p.add_argument("--prior-min-std", dest="prior_min_std", type=float, default=d["prior_min_std"])
    p.add_argument("--cached-reset", dest="cached_reset", action=argparse.BooleanOptionalAction,
                   default=d["cached_reset"], help="auto-reset from a reset state refreshed once per rollout")
    p.add_argument("--eval", dest="eval_dir", default=None, help="only reload CHECKPOINT_DIR and evaluate it")
    p.add_argument("--eval-seed", dest="eval_seed", type=int, default=d["eval_seed"])
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return p


def main(suite_factory: Callable[[], Suite], default_tasks: Sequence[str], defaults: dict, argv=None) -> int:
    from lago_jax import runtime

    runtime.configure()
    suite_name = suite_factory.__name__.replace("make_", "").replace("_suite", "")
    args = build_parser(suite_name, default_tasks, defaults).parse_args(argv)
    suite = suite_factory()
    try:
        if args.eval_dir:
            tasks = args.tasks if args.tasks else [None]
            eval_only(args.eval_dir, suite, tasks[0], args.eval_episodes, args.eval_seed)
            return 0
        fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
        kw = {k: v for k, v in vars(args).items() if k in fields}
        kw.update(tasks=tuple(args.tasks or default_tasks), seeds=tuple(args.seeds), variants=tuple(args.variants),
                  out_dir=args.out, hidden_sizes=tuple(args.hidden_sizes))
        for k, v in defaults.items():
            if k not in kw:
                kw[k] = v
        if args.total_steps is not None and args.num_updates is not None:
            raise ValueError(f"--steps {args.total_steps} and --updates {args.num_updates} both set the run's "
                             "length; give one of them")
        if args.total_steps is not None:
            kw["num_updates"] = max(1, args.total_steps // (args.num_envs * args.num_steps))
        elif args.num_updates is not None:
            kw["num_updates"] = args.num_updates
        else:
            kw["num_updates"] = defaults.get("num_updates", ExperimentConfig.num_updates)
        cfg = ExperimentConfig(**kw)
        run_pipeline(cfg, suite)
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume from the last checkpoints", file=sys.stderr)
        return 130
    except Exception as e:  # one line naming the problem; --debug for the traceback
        if args.debug:
            raise
        kind = "" if isinstance(e, (ValueError, FileNotFoundError)) else f"{type(e).__name__}: "
        print(f"error: {kind}{e}", file=sys.stderr)
        print("(rerun with --debug for the full traceback)", file=sys.stderr)
        return 2
    return 0
