"""The language protocol (``--protocol language``): does the LLM's pretrained knowledge help?

The priors read the goal from the instruction alone (the goal's observation features are left out
of their input; the no-LLM prior reads the instruction's tokens through an encoder trained from
scratch), so the three priors differ only in what they knew before the demonstrations: nothing
(the text MLP), an LLM's shape (the random-init backbone) or an LLM's pretraining. Per task:

1. the suite's splits (``Suite.language_splits``) are made from ``split_seed`` and saved as
   ``splits/<task>.json`` (a rerun with another split is refused);
2. demonstrations of the train split only (``demos/<task>.npz``) and, for the per-split
   validation NLL, ``split_demo_episodes`` expert episodes of every split
   (``demos/<task>.<split>.npz``, other keys);
3. the three priors are distilled on the train split (equal steps; wall time recorded);
4. every prior alone, put over each split's instruction bank (``with_instructions``), is
   evaluated greedily and sampling, ``prior_eval_episodes`` episodes per split, the same episodes
   for every prior (paired), with its NLL on that split's expert steps
   (``eval/<task>.splits.json``, resumable);
5. PPO's arms train and are evaluated on the suite's held-out split (``ppo_split``: CLEVR-Robot's
   unseen goals), the priors over that split's bank: the prior guides where it never saw a
   demonstration. The policy keeps its goal features: it learns online, with reward, there.

:func:`language_section` writes the per-split table, the split and paired comparisons into the
results; :func:`evaluate_texts` runs a distilled prior alone on any instruction texts paired
with their goals (``--eval-prior``).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Sequence

import numpy as np

from lago_jax.experiments.config import PRIOR_KINDS, ExperimentConfig, Suite
from lago_jax.experiments.stages import (_exists, _read_json, _write_json_main, demos_stage, distill_stage,
                                         log, make_task_env, prior_tokenizer)

TRAIN_SPLIT = "train"
"""The split demonstrations and distillation see; every suite's language splits name one so."""
PRIOR_NAMES = {"mlp": "text MLP (no pretrained weights)", "llm_random": "random-init LLM", "llm": "pretrained LLM"}
MODES = ("greedy", "sampled")


def split_record(cfg: ExperimentConfig, suite: Suite, task: str) -> dict:
    """The task's splits (``Suite.language_splits``), saved as ``splits/<task>.json`` the first time;
    a rerun whose split differs from the saved one is refused."""
    if suite.language_splits is None:
        raise ValueError(f"the {suite.name} suite has no language protocol (--protocol language)")
    rec = json.loads(json.dumps(suite.language_splits(task, cfg.split_seed, cfg.heldout)))
    path = os.path.join(cfg.out_dir, "splits", f"{task}.json")
    if _exists(path):
        if _read_json(path) != rec:
            raise ValueError(f"{path} holds another split of {task!r}; use another --out or the same "
                             "--split-seed and --heldout")
    else:
        from lago_jax import parallel

        if parallel.is_main_process():
            os.makedirs(os.path.dirname(path), exist_ok=True)
        _write_json_main(path, rec, f"split of {task}")
    return rec


def split_names(rec: dict) -> list[str]:
    """The record's splits, the train split first (then the suite's order)."""
    names = list(rec["splits"])
    if TRAIN_SPLIT not in names:
        raise ValueError(f"language splits {names} have no {TRAIN_SPLIT!r} split")
    return [TRAIN_SPLIT] + [n for n in names if n != TRAIN_SPLIT]


def rebank(cfg: ExperimentConfig, kind: str, prior: Any, params: Any, env) -> tuple[Any, Any]:
    """A distilled prior over ``env``'s instruction bank (trained weights unchanged)."""
    from lago_jax.prior import with_instructions

    return with_instructions(prior, params, prior_tokenizer(cfg, kind), env.instructions)


def prior_episodes(prior: Any, params: Any, env, episodes: int, seed: int, episode_length: int | None,
                   greedy: bool) -> np.ndarray:
    """Per-episode success ``[episodes]`` of a prior acting alone (greedy or sampling); the same
    ``seed`` gives every prior the same initial states and goals."""
    import jax

    from lago_jax.ppo.evaluate import make_policy_eval_fn
    from lago_jax.ppo.rollout import env_action, sample_actions

    def act(p, obs, instruction_id, key):
        dist = prior.apply(p, obs, instruction_id)
        action = dist.mode() if greedy else sample_actions(dist, jax.random.split(key, obs.shape[0]))
        return env_action(action, env.action_space)

    out = make_policy_eval_fn(act, env, episodes, episode_length)(params, jax.random.PRNGKey(seed))
    return np.asarray(jax.device_get(out["successes"]), np.float32)


def evaluate_splits(cfg: ExperimentConfig, task: str, envs: dict, split_demos: dict, priors: dict) -> dict:
    """Every prior alone on every split: NLL on the split's expert steps, greedy and sampled
    success over the same episodes; the random policy's success per split. Resumable from
    ``eval/<task>.splits.json``. On a group (a multi-task env) every member task runs
    ``prior_eval_episodes`` episodes on its own; the per-episode lists are the members' episodes
    in task order, and ``tasks`` holds each member's success rate."""
    import jax

    from lago_jax.ppo.evaluate import evaluate_random, mean_over_tasks, task_envs
    from lago_jax.prior.distill import demos_nll

    path = os.path.join(cfg.out_dir, "eval", f"{task}.splits.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    results = _read_json(path) if _exists(path) else {}
    for split, env in envs.items():
        members = task_envs(env)
        # (env, seed) per evaluated env: the env itself, or each member with its own seed.
        units = ([(None, env, cfg.eval_seed)] if members is None else
                 [(m, e, cfg.eval_seed + 7919 * (i + 1)) for i, (m, e) in enumerate(members.items())])
        key = f"{split}/random"
        if key not in results:
            rs = {m: evaluate_random(e, cfg.prior_eval_episodes, seed, cfg.episode_length) for m, e, seed in units}
            r = rs[None] if members is None else mean_over_tasks(rs)
            results[key] = {"success_rate": r["success_rate"], "episodes": r["episodes"],
                            **({"tasks": {m: t["success_rate"] for m, t in rs.items()}} if members else {})}
            _write_json_main(path, results, f"split evaluation {task}/{key}")
        for kind, (prior, params, _info) in priors.items():
            key = f"{split}/{kind}"
            if key in results:
                continue
            t0 = time.time()
            p, pp = rebank(cfg, kind, prior, params, env)
            r = {"backbone": prior.describe()["backbone"], "nll": demos_nll(p, pp, split_demos[split]),
                 "instructions": len(env.instructions)}
            for mode in MODES:
                parts = {m: prior_episodes(p, pp, e, cfg.prior_eval_episodes, seed, cfg.episode_length,
                                           greedy=mode == "greedy") for m, e, seed in units}
                s = np.concatenate(list(parts.values()))
                r[mode] = s.tolist()
                r[f"{mode}_success"] = float(s.mean())
                if members:
                    r.setdefault("tasks", {})[mode] = {m: float(v.mean()) for m, v in parts.items()}
            r["seconds"] = time.time() - t0
            del p, pp
            jax.clear_caches()  # each bank's programs are used once
            results[key] = r
            _write_json_main(path, results, f"split evaluation {task}/{key}")
            log(f"{task}/{split}/{kind}: NLL {r['nll']:.3f}, greedy success {r['greedy_success']:.3f}, "
                f"sampled {r['sampled_success']:.3f} ({len(env.instructions)} instructions, {r['seconds']:.0f}s)")
    return results


def run_language_task(cfg: ExperimentConfig, suite: Suite, task: str) -> tuple[dict, dict, dict, dict]:
    """Stages 1-5 of the language protocol for one task (see the module docstring).

    Returns ``(ppo_env_results, priors over the PPO split, split_results, split record)``: the
    first two are what the standard report summarises for the PPO table."""
    from lago_jax.experiments.stages import eval_stage, train_stage

    rec = split_record(cfg, suite, task)
    splits = rec["splits"]
    names = split_names(rec)
    envs = {name: make_task_env(cfg, suite, task, kw) for name, kw in splits.items()}
    log(f"{task}: language protocol, splits " + ", ".join(f"{n} ({len(envs[n].instructions)} instructions)"
                                                           for n in names))
    demos = demos_stage(cfg, suite, task, envs[TRAIN_SPLIT])
    split_demos = {n: demos_stage(cfg, suite, task, envs[n], name=f"{task}.{n}", episodes=cfg.split_demo_episodes,
                                  key_seed=777 + i) for i, n in enumerate(names)}
    # The three priors are the protocol's question: every one is distilled and evaluated per split,
    # whichever PPO arms run (none with --variants given no names: the priors alone).
    kinds = list(PRIOR_KINDS)
    priors = {kind: distill_stage(cfg, task, kind, envs[TRAIN_SPLIT], demos) for kind in kinds}
    split_results = evaluate_splits(cfg, task, envs, split_demos, priors)
    ppo_env = envs[rec["ppo_split"]]
    ppo_priors = {kind: (*rebank(cfg, kind, p, pp, ppo_env), info) for kind, (p, pp, info) in priors.items()}
    run_dirs = {}
    if not cfg.variants:
        return {}, ppo_priors, split_results, rec
    for variant in cfg.variants:
        for seed in cfg.seeds:
            run_dirs[(variant, seed)] = train_stage(cfg, task, variant, seed, ppo_env, ppo_priors)
    results = eval_stage(cfg, task, ppo_env, run_dirs, ppo_priors)
    return results, ppo_priors, split_results, rec


# ----------------------------------------------------------------------------- report


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """Paired comparison of ``a - b`` (same seeds, or the same episodes): mean difference, its 95%
    Student-t half-width and the two-sided p-value of the paired t-test (NaN with fewer than 2
    pairs or no variation)."""
    from scipy import stats

    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = d.size
    out = {"n": int(n), "diff": float(d.mean()) if n else float("nan"), "ci95": float("nan"), "p": float("nan")}
    if n > 1:
        sd = d.std(ddof=1)
        out["ci95"] = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n))
        if sd > 0:
            out["p"] = float(stats.ttest_rel(np.asarray(a, np.float64), np.asarray(b, np.float64)).pvalue)
        elif d.mean() == 0:
            out["p"] = 1.0
    return out


def _fmt(c: dict) -> str:
    p = "-" if not np.isfinite(c["p"]) else (f"{c['p']:.3f}" if c["p"] >= 1e-3 else f"{c['p']:.1e}")
    return f"{c['diff']:+.3f} ± {c['ci95']:.3f} (p = {p}, n = {c['n']})"


def language_section(cfg: ExperimentConfig, task: str, rec: dict, split_results: dict, ppo_results: dict) -> tuple[list[str], dict]:
    """Markdown lines and JSON of the language protocol's results for one task: the split, each
    prior alone per split (NLL, greedy and sampled success), paired comparisons of the pretrained
    prior with the others on the same episodes, and of the PPO arms over seeds on the PPO split."""
    names = split_names(rec)
    kinds = [k for k in PRIOR_KINDS if any(f"{s}/{k}" in split_results for s in names)]
    members = next((list(r["tasks"]) for r in split_results.values() if "tasks" in r and "greedy" not in r), None)
    per_split = (f"{cfg.prior_eval_episodes} episodes of each of its {len(members)} tasks per split" if members
                 else f"{cfg.prior_eval_episodes} episodes per split")
    md = ["", f"## {task}: language protocol", "", f"![per split](splits_{task}.png)", "",
          "The priors read the goal from the instruction alone; demonstrations and distillation saw the "
          f"`{TRAIN_SPLIT}` split only. Split (seed {cfg.split_seed}): `{json.dumps(rec['record'])}`.", "",
          f"Each prior alone, {per_split} (the same episodes for every prior); NLL = mean -log p(a | s, g) on the split's expert steps. One distillation per prior: "
          "the intervals below are over episodes, not over distillation seeds.", "",
          "| split | instructions | prior | backbone | NLL | greedy success | sampled success |",
          "|---|---|---|---|---|---|---|"]
    for s in names:
        rnd = split_results.get(f"{s}/random")
        for k in kinds:
            r = split_results.get(f"{s}/{k}")
            if r is None:
                continue
            md.append(f"| {s} | {r['instructions']} | {PRIOR_NAMES[k]} | {r['backbone']} | {r['nll']:.3f} | "
                      f"{r['greedy_success']:.3f} | {r['sampled_success']:.3f} |")
        if rnd is not None:
            md.append(f"| {s} | - | random policy | - | - | {rnd['success_rate']:.3f} | - |")
    if members:
        md += ["", "Greedy success per task:", "",
               "| split | prior | " + " | ".join(members) + " |", "|---|---|" + "---|" * len(members)]
        for s in names:
            for k in kinds:
                r = split_results.get(f"{s}/{k}")
                if r is not None and "tasks" in r:
                    md.append(f"| {s} | {PRIOR_NAMES[k]} | " + " | ".join(
                        f"{r['tasks']['greedy'][m]:.2f}" for m in members) + " |")
            rnd = split_results.get(f"{s}/random")
            if rnd is not None and "tasks" in rnd:
                md.append(f"| {s} | random policy | " + " | ".join(f"{rnd['tasks'][m]:.2f}" for m in members) + " |")
    comparisons: dict = {"priors": {}, "ppo": {}}
    if "llm" in kinds:
        md += ["", "Pretrained LLM prior minus each other prior, success on the same episodes (paired t-test "
               "over episodes):", "", "| split | other prior | greedy | sampled |", "|---|---|---|---|"]
        for s in names:
            for k in kinds:
                a, b = split_results.get(f"{s}/llm"), split_results.get(f"{s}/{k}")
                if k == "llm" or a is None or b is None:
                    continue
                c = {m: paired(a[m], b[m]) for m in MODES}
                comparisons["priors"][f"{s}/llm-{k}"] = c
                md.append(f"| {s} | {PRIOR_NAMES[k]} | {_fmt(c['greedy'])} | {_fmt(c['sampled'])} |")
    pairs = [("lago", "ppo_mlp_prior"), ("lago", "lago_random_llm"), ("lago", "ppo"), ("ppo_mlp_prior", "ppo"),
             ("lago_random_llm", "ppo")]
    rows = []
    for a, b in pairs:
        seeds = [s for s in cfg.seeds if f"{a}/seed{s}" in ppo_results and f"{b}/seed{s}" in ppo_results]
        if len(seeds) < 2:
            continue
        c = paired([ppo_results[f"{a}/seed{s}"]["success_rate"] for s in seeds],
                   [ppo_results[f"{b}/seed{s}"]["success_rate"] for s in seeds])
        comparisons["ppo"][f"{a}-{b}"] = c
        rows.append(f"| {a} - {b} | {_fmt(c)} |")
    if rows:
        md += ["", f"PPO arms on the `{rec['ppo_split']}` split, greedy success, paired over the same seeds "
               "(paired t-test):", "", "| arms | difference |", "|---|---|", *rows]
    return md, {"split": rec, "splits": split_results, "comparisons": comparisons}


def plot_splits(cfg: ExperimentConfig, task: str, rec: dict, split_results: dict) -> str:
    """``splits_<task>.png``: per split, each prior alone (greedy and sampled success, with 95%
    intervals over the episodes) and the random policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    names = split_names(rec)
    kinds = [k for k in PRIOR_KINDS if any(f"{s}/{k}" in split_results for s in names)]
    fig, axes = plt.subplots(1, len(MODES), figsize=(6 * len(MODES), 3.8), squeeze=False)
    width = 0.8 / max(len(kinds), 1)
    for j, mode in enumerate(MODES):
        ax = axes[0, j]
        for i, k in enumerate(kinds):
            means, errs = [], []
            for s in names:
                x = np.asarray(split_results.get(f"{s}/{k}", {}).get(mode, []), np.float64)
                means.append(x.mean() if x.size else np.nan)
                errs.append(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size) if x.size > 1 else 0.0)
            lo = np.clip(np.asarray(means) - np.asarray(errs), 0, 1)
            hi = np.clip(np.asarray(means) + np.asarray(errs), 0, 1)
            pos = np.arange(len(names)) + (i - (len(kinds) - 1) / 2) * width
            ax.bar(pos, means, width, label=PRIOR_NAMES[k],
                   yerr=np.stack([np.asarray(means) - lo, hi - np.asarray(means)]), capsize=3)
        rnd = [split_results.get(f"{s}/random", {}).get("success_rate", np.nan) for s in names]
        ax.scatter(np.arange(len(names)), rnd, marker="_", s=600, color="k", label="random policy", zorder=3)
        ax.set_xticks(np.arange(len(names)), names)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{mode} success")
        ax.set_title(f"{task}: each prior alone, {mode} ({cfg.prior_eval_episodes} episodes per split)")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(cfg.out_dir, f"splits_{task}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- your own words


def load_experiment_prior(prior_dir: str):
    """``(out_dir, task, kind, settings)`` of a distilled prior's folder ``<out>/priors/<task>/<kind>``:
    the experiment's directory, the task, the prior kind and the saved ``experiment.json``."""
    path = os.path.abspath(prior_dir).rstrip(os.sep)
    kind, task = os.path.basename(path), os.path.basename(os.path.dirname(path))
    out_dir = os.path.dirname(os.path.dirname(os.path.dirname(path)))
    if kind not in PRIOR_KINDS or os.path.basename(os.path.dirname(os.path.dirname(path))) != "priors":
        raise ValueError(f"--eval-prior {prior_dir}: expected an experiment's priors/<task>/<kind> folder "
                         f"(kind one of {list(PRIOR_KINDS)})")
    exp = os.path.join(out_dir, "experiment.json")
    if not os.path.exists(exp):
        raise FileNotFoundError(f"--eval-prior {prior_dir}: no experiment.json in {out_dir}")
    return out_dir, task, kind, _read_json(exp)


def evaluate_texts(cfg: ExperimentConfig, suite: Suite, task: str, kind: str, texts: Sequence[str],
                   goals: Sequence[str], episodes: int, seed: int = 0) -> list[dict]:
    """A distilled prior (``<cfg.out_dir>/priors/<task>/<kind>``) acting alone on each instruction
    text paired with its goal (``Suite.parse_goal``), texts it never saw included: the prior reads
    the goal from the text only, the env scores the goal. Greedy and sampled success per text."""
    from lago_jax.experiments.stages import build_prior
    from lago_jax.prior.distill import load_prior

    if suite.parse_goal is None:
        raise ValueError(f"the {suite.name} suite cannot parse goals for --eval-prior")
    if len(texts) != len(goals) or not texts:
        raise ValueError(f"give one goal per instruction: {len(texts)} instructions, {len(goals)} goals")
    if cfg.protocol != "language":
        raise ValueError(f"{cfg.out_dir} was run with --protocol {cfg.protocol}: its priors see the goal in the "
                         "observation; evaluate the priors of a --protocol language run")
    rec = split_record(cfg, suite, task)
    train_env = make_task_env(cfg, suite, task, rec["splits"][TRAIN_SPLIT])
    prior, params = build_prior(cfg, kind, train_env)
    params = load_prior(os.path.join(cfg.out_dir, "priors", task, kind), prior, params)
    out = []
    for text, goal in zip(texts, goals):
        goal_task, kw = suite.parse_goal(goal)
        env = make_task_env(cfg, suite, goal_task, kw)
        if len(env.instructions) != 1:
            raise ValueError(f"goal {goal!r} gives an env with {len(env.instructions)} instructions; expected one")
        from lago_jax.prior import with_instructions

        p, pp = with_instructions(prior, params, prior_tokenizer(cfg, kind), [text])
        r = {"instruction": text, "goal": goal, "prior": kind, "backbone": prior.describe()["backbone"],
             "seen_in_training": text in train_env.instructions, "episodes": episodes}
        for mode in MODES:
            r[f"{mode}_success"] = float(prior_episodes(p, pp, env, episodes, seed, cfg.episode_length,
                                                        greedy=mode == "greedy").mean())
        out.append(r)
    return out
