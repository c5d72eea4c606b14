"""The pipeline's report: per-variant summaries with 95% Student-t intervals over seeds,
``results.md`` / ``results.json`` and ``learning_curves.png``."""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from lago_jax.experiments.config import VARIANT_LABEL, VARIANT_PRIOR, ExperimentConfig, Suite
from lago_jax.experiments.stages import _write_json

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


def write_table(cfg: ExperimentConfig, suite: Suite, rows: list[dict], extra: dict,
                sections: Sequence[str] = ()) -> tuple[str, str]:
    """``results.md`` (the rows, the curves' summary, then ``sections``: more Markdown lines, e.g.
    the language protocol's per-split tables) and ``results.json``."""
    where = (" PPO trains and is evaluated on the language protocol's held-out split (see below); the priors "
             "read the goal from the instruction alone." if cfg.protocol == "language" else "")
    if cfg.variants:
        md = [f"# {suite.name}: results", "",
              f"Tasks: {', '.join(cfg.tasks)}. Seeds: {list(cfg.seeds)}. PPO budget: {cfg.env_steps} env steps "
              f"per run ({cfg.num_envs} envs x {cfg.num_steps} steps x {cfg.num_updates} updates). "
              f"beta = {cfg.beta} ({cfg.schedule}, KL {cfg.kl_direction}). Evaluation: {cfg.eval_episodes} "
              "episodes per checkpoint, greedy. Intervals: 95% Student-t over seeds (prior-alone rows: one "
              f"deterministic prior, no interval).{where}", "",
              "| task | method | backbone | seeds | success rate | return |", "|---|---|---|---|---|---|"]
    else:  # --variants with no names: the priors alone
        md = [f"# {suite.name}: results", "", f"Tasks: {', '.join(cfg.tasks)}. No PPO arm (--variants given no "
              "names)." + (f" The priors alone, {cfg.eval_episodes} greedy episodes each:" if rows else ""), ""]
        if rows:
            md += ["| task | method | backbone | success rate | return |", "|---|---|---|---|---|"]
    for r in rows:
        if cfg.variants:
            md.append(f"| {r['task']} | {r['label']} | {r['backbone'] or '-'} | {r['seeds']} | "
                      f"{r['success_mean']:.3f} ± {r['success_ci95']:.3f} | {r['return_mean']:.3f} ± {r['return_ci95']:.3f} |")
        else:
            md.append(f"| {r['task']} | {r['label']} | {r['backbone'] or '-'} | {r['success_mean']:.3f} | "
                      f"{r['return_mean']:.3f} |")
    curves = curve_summaries(cfg)
    if curves:
        md += ["", f"Training curves (success rate of the episodes that finished in each update, sampled "
               f"actions): final = mean over the last {FINAL_FRACTION:.0%} of updates; area = mean over all "
               f"updates (the normalised area under the curve); steps to {REACH_LEVEL:.0%} = first env step at "
               "which the run's curve reaches it (runs that never do are counted as not reaching it). "
               "Mean ± 95% Student-t interval over seeds.", "",
               "| task | method | seeds | final training success | area under success curve | "
               f"runs reaching {REACH_LEVEL:.0%} | env steps to {REACH_LEVEL:.0%} (runs that reach it) |",
               "|---|---|---|---|---|---|---|"]
        for c in curves:
            reach = (f"{c['steps_to_level_mean']:,.0f} ± {c['steps_to_level_ci95']:,.0f}"
                     if c["runs_reaching"] else "-")
            md.append(f"| {c['task']} | {VARIANT_LABEL[c['method']]} | {c['seeds']} | {c['final_mean']:.3f} ± "
                      f"{c['final_ci95']:.3f} | {c['area_mean']:.3f} ± {c['area_ci95']:.3f} | "
                      f"{c['runs_reaching']}/{c['seeds']} | {reach} |")
    md += list(sections)
    md_path = os.path.join(cfg.out_dir, "results.md")
    json_path = os.path.join(cfg.out_dir, "results.json")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    _write_json(json_path, {"config": cfg.to_dict(), "rows": rows, "curves": curves, **extra})
    return md_path, json_path


FINAL_FRACTION = 0.1
REACH_LEVEL = 0.5


def run_curve_summary(
    rows: Sequence[dict], steps_per_update: int, num_updates: int, level: float = REACH_LEVEL
) -> dict | None:
    """One run's training-success summary: final (mean of the last ``FINAL_FRACTION`` of the
    updates with a measurement), area (mean over all measured updates) and the first env step at
    which success reached ``level`` (None if never). None when nothing was measured."""
    x, y = seed_curve(rows, "success_rate", steps_per_update)
    if not len(x):
        return None
    tail = x > (1.0 - FINAL_FRACTION) * num_updates * steps_per_update
    final = float(y[tail].mean()) if tail.any() else float(y[-1])
    hit = np.flatnonzero(y >= level)
    return dict(final=final, area=float(y.mean()), steps_to_level=float(x[hit[0]]) if hit.size else None,
                **start_kl(rows))


KL_START_UPDATES = 5


def start_kl(rows: Sequence[dict], updates: int = KL_START_UPDATES) -> dict:
    """The KL term's scale at the start of a run: the mean over the first ``updates`` updates of
    the KL to the prior (``kl_start``) and of its weighted share of the total loss
    (``kl_share``: beta x KL / |total loss|). Empty for a run without a prior (beta 0)."""
    first = [r for r in rows if r.get("kl_prior") is not None and r.get("beta")][:updates]
    if not first:
        return {}
    return dict(kl_start=float(np.mean([r["kl_prior"] for r in first])),
                kl_share=float(np.mean([r["beta"] * r["kl_prior"] / max(abs(r["total_loss"]), 1e-12) for r in first])))


def curve_summaries(cfg: ExperimentConfig, level: float = REACH_LEVEL) -> list[dict]:
    """Per task and variant, :func:`run_curve_summary` over seeds (mean and 95% interval); env
    steps to ``level`` training success over the runs that reach it."""
    from lago_jax.logging import read_jsonl

    out = []
    for task in cfg.tasks:
        for variant in cfg.variants:
            runs = []
            for seed in cfg.seeds:
                path = os.path.join(cfg.out_dir, "runs", task, variant, f"seed{seed}", "metrics.jsonl")
                if os.path.exists(path):
                    r = run_curve_summary(read_jsonl(path), cfg.num_envs * cfg.num_steps, cfg.num_updates, level)
                    if r is not None:
                        runs.append(r)
            if not runs:
                continue
            fm, fh = mean_ci95([r["final"] for r in runs])
            am, ah = mean_ci95([r["area"] for r in runs])
            reached = [r["steps_to_level"] for r in runs if r["steps_to_level"] is not None]
            sm, sh = mean_ci95(reached) if reached else (float("nan"), float("nan"))
            kl = {k: float(np.mean([r[k] for r in runs])) for k in ("kl_start", "kl_share") if all(k in r for r in runs)}
            out.append(dict(task=task, method=variant, seeds=len(runs), final_mean=fm, final_ci95=fh, area_mean=am,
                            area_ci95=ah, runs_reaching=len(reached), steps_to_level_mean=sm, steps_to_level_ci95=sh,
                            level=level, **kl))
    return out


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


BAND_LIMITS = {"success_rate": (0.0, 1.0)}
"""Bounds a metric cannot leave: its interval band is clipped to them (and, for every metric, to
the range of the values the seeds measured)."""


def curve_figure(cfg: ExperimentConfig, rows: Sequence[dict] = ()):
    """The figure :func:`plot_curves` saves (matplotlib ``Figure``; the caller closes it).

    The x axis runs from the first update's env steps (the first point any run has) to the budget;
    the title states the budget per run and the seeds. A success band stays within [0, 1] and a
    return band within the returns the seeds measured."""
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
                curves = [seed_curve(r, key, steps_per_update) for r in runs]
                mean, half, n = mean_band(curves, grid)
                ok = np.isfinite(mean)
                if not ok.any():
                    continue
                ax = axes[i, j]
                color = colors[v % len(colors)]
                ax.plot(grid[ok], mean[ok], color=color, linestyle=styles[v % len(styles)], linewidth=1.6,
                        label=f"{VARIANT_LABEL[variant]} ({len(runs)} seeds)")
                if len(runs) > 1:
                    seen = np.concatenate([y for _, y in curves])
                    lo, hi = BAND_LIMITS.get(key, (-np.inf, np.inf))
                    lo, hi = max(lo, float(seen.min())), min(hi, float(seen.max()))
                    ax.fill_between(grid[ok], np.clip(mean - half, lo, hi)[ok], np.clip(mean + half, lo, hi)[ok],
                                    color=color, alpha=0.15, linewidth=0)
        for j, (key, title) in enumerate(CURVE_KEYS):
            ax = axes[i, j]
            for k, row in enumerate(r for r in rows if r.get("task") == task and r.get("env_steps", 1) == 0):
                ax.axhline(row[_FLOOR_KEYS[key]], color=colors[(len(cfg.variants) + k) % len(colors)], linestyle=(0, (4, 3)),
                           linewidth=1.0, label=row["label"] if "greedy" in row["label"] else f"{row['label']} (eval)")
            ax.set_title(f"{task}: {title}")
            ax.set_xlabel("env steps")
            if cfg.num_updates > 1:
                ax.set_xlim(grid[0], grid[-1])
            else:  # one point: centred on it
                ax.set_xlim(0.5 * grid[0], 1.5 * grid[0])
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, framealpha=0.7)
    fig.suptitle(f"budget: {cfg.env_steps:,} env steps per run ({cfg.num_envs} envs x {cfg.num_steps} steps x "
                 f"{cfg.num_updates} updates); seeds {list(cfg.seeds)}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_distillation(out_dir: str, records: dict[str, dict]) -> str | None:
    """``distillation.png``: per task, each prior's validation NLL (solid, the chosen best step
    marked) and training NLL (dashed) against distillation steps, from the records the
    distillation stage keeps (``{"<task>/<kind>": record}``, each with ``val_nll`` / ``train_nll``
    as ``[(step, value)]``). None when no record has a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks: dict[str, dict[str, dict]] = {}
    for key, rec in records.items():
        task, kind = key.rsplit("/", 1)
        if rec.get("val_nll") or rec.get("train_nll"):
            tasks.setdefault(task, {})[kind] = rec
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 3.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (task, kinds) in zip(axes[0], tasks.items()):
        for i, (kind, rec) in enumerate(kinds.items()):
            color = colors[i % len(colors)]
            label = f"{kind} ({rec.get('backbone', kind)})"
            if rec.get("val_nll"):
                steps, vals = zip(*rec["val_nll"])
                ax.plot(steps, vals, color=color, label=f"{label}: validation")
                best = rec.get("best_step")
                if best in steps:
                    ax.plot([best], [vals[steps.index(best)]], "o", color=color)
            if rec.get("train_nll"):
                steps, vals = zip(*rec["train_nll"])
                ax.plot(steps, vals, color=color, linestyle="--", linewidth=0.9, label=f"{label}: training")
        baseline = next((r["baseline_nll"] for r in kinds.values() if r.get("baseline_nll") is not None), None)
        if baseline is not None:
            ax.axhline(baseline, color="k", linestyle=":", linewidth=1.0, label="untrained head")
        ax.set_title(f"{task}: distillation (dot: best step, kept)")
        ax.set_xlabel("distillation step")
        ax.set_ylabel("NLL of the expert's action")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out_dir, "distillation.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
