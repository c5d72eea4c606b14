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

Several processes (JAX's distributed runtime started by :func:`lago_jax.parallel.initialize`, which
the command line does with ``--coordinator``/``--num-processes``/``--process-id`` or from SLURM /
Open MPI) all call :func:`run_pipeline` with the same settings and an output directory they all
see. Every process runs every stage in the same order; distillation and PPO are data-parallel over
every process's devices; only process 0 writes the files that are not collective
(``experiment.json``, demonstrations, ``done.json`` files, evaluation JSON, the results and the
plot) and prints, the others waiting at a barrier after each such write.

The code is split by concern: :mod:`~lago_jax.experiments.config` (settings, variants, suites),
:mod:`~lago_jax.experiments.stages` (the stages), :mod:`~lago_jax.experiments.report` (tables,
intervals, curves), :mod:`~lago_jax.experiments.cli` (the command line: ``main``,
``build_parser``, ``eval_only``; it imports this driver, never the other way round); this module
is the driver and re-exports the public names of config, stages and report.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from lago_jax.experiments.config import (OUTPUT_ONLY, PRIOR_KINDS, VARIANT_LABEL, VARIANT_PRIOR, VARIANTS,  # noqa: F401
                                         ExperimentConfig, Suite)
from lago_jax.experiments.report import (CURVE_KEYS, curve_figure, mean_band, mean_ci95, plot_curves,  # noqa: F401
                                         plot_distillation, seed_curve, summarize, write_table)
from lago_jax.experiments.stages import (CONVERTED_CACHE_DIR, _read_json, _write_json, build_prior,  # noqa: F401
                                         demos_stage, distill_stage, eval_stage, load_backbone, log, make_task_env,
                                         member_results, train_stage)

# ----------------------------------------------------------------------------- driver


def run_pipeline(cfg: ExperimentConfig, suite: Suite) -> dict:
    """Run (or resume) every stage for every task of ``cfg``; returns the result rows and the paths
    of the table, the JSON and the plot. Collective when several processes run (see above)."""
    import jax

    from lago_jax import parallel

    unknown = [t for t in cfg.tasks if t not in suite.all_task_names]
    if unknown:
        raise ValueError(f"unknown {suite.name} task(s) {unknown}; expected some of {list(suite.all_task_names)}")
    for variant in cfg.variants:  # fail on bad PPO settings before any expensive stage runs
        cfg.ppo_config(variant, cfg.seeds[0])
    from lago_jax.llm.checkpoint import check_source

    check_source(cfg.llm)  # a bad --llm is reported before anything is written
    if cfg.random_llm is not None:
        check_source(cfg.random_llm)
    if jax.process_count() > 1:
        if cfg.protocol == "language":
            raise ValueError("--protocol language runs on one process (its per-split evaluations are not collective)")
        _check_multiprocess(cfg)
    if cfg.protocol == "language" and suite.language_splits is None:
        raise ValueError(f"the {suite.name} suite has no language protocol; --protocol must be 'standard'")
    os.makedirs(cfg.out_dir, exist_ok=True)
    if parallel.is_main_process():
        _lock_out_dir(cfg.out_dir)
    saved_cfg = os.path.join(cfg.out_dir, "experiment.json")
    weights = _weights_fingerprints(cfg)
    if os.path.exists(saved_cfg):
        old = _read_json(saved_cfg)
        mine = json.loads(json.dumps(cfg.to_dict()))
        missing = _settings_before_they_existed(suite)
        diff = sorted(k for k in mine if k not in OUTPUT_ONLY and old.get(k, missing.get(k)) != mine[k])
        if diff:
            hint = ""
            if "backend" in diff:
                hint = f" (it ran with --backend {old.get('backend', missing.get('backend'))})"
            raise ValueError(
                f"{cfg.out_dir} holds an experiment with different settings ({diff}){hint}; "
                "use another --out directory or the same flags to resume"
            )
        changed = sorted(k for k, v in old.get(WEIGHTS_KEY, {}).items() if weights.get(k) != v)
        if changed:
            raise ValueError(
                f"{cfg.out_dir}: the model behind "
                f"{', '.join(f'{_FLAG[k]} {getattr(cfg, k)!r}' for k in changed)} "
                "changed since this experiment started (its files differ from those its priors were "
                "distilled on); use another --out directory, or restore the original files to resume"
            )
    # Every process has read the old settings (and agreed) before process 0 replaces them.
    parallel.barrier("lago_jax.experiments: settings checked")
    if parallel.is_main_process():
        _write_json(saved_cfg, {**cfg.to_dict(), WEIGHTS_KEY: weights})
    parallel.barrier("lago_jax.experiments: experiment.json written")
    all_rows, extra = [], {"priors": {}, "demos": {}, "timings": {}}
    sections: list[str] = []
    kinds_needed = [VARIANT_PRIOR[v] for v in cfg.variants if VARIANT_PRIOR[v] is not None]
    kinds = [k for k in PRIOR_KINDS if k in kinds_needed or k in ("mlp", "llm")]
    for task in cfg.tasks:
        t_task = time.time()
        if cfg.protocol == "language":
            from lago_jax.experiments.language import language_section, plot_splits, run_language_task

            results, priors, split_results, rec = run_language_task(cfg, suite, task)
            if parallel.is_main_process():
                plot_splits(cfg, task, rec, split_results)
            extra["priors"].update({f"{task}/{k}": p[2] for k, p in priors.items()})
            all_rows.extend(summarize(cfg, task, results, priors))
            md, extra.setdefault("language", {})[task] = language_section(cfg, task, rec, split_results, results)
            sections.extend(md)
            extra["timings"][task] = time.time() - t_task
            continue
        env = make_task_env(cfg, suite, task)
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
        # A group's evaluations hold every member's share and, at the top level, the mean over the
        # members (as Meta-World reports MT10): rows for each member, then the group's own.
        members = member_results(suite, task, results) if task in suite.groups else {}
        for label, r in {**members, task: results}.items():
            all_rows.extend(summarize(cfg, label, r, priors))
        extra["timings"][task] = time.time() - t_task
    if parallel.is_main_process():
        md_path, json_path = write_table(cfg, suite, all_rows, extra, sections)
        # No PPO arm (--variants given no names): no learning curves to draw.
        png = plot_curves(cfg, suite, all_rows) if cfg.variants else None
        distill_png = plot_distillation(cfg.out_dir, extra["priors"])
        log(f"results table: {md_path}")
        log(f"results JSON:  {json_path}")
        if png:
            log(f"learning curves: {png}")
        if distill_png:
            log(f"distillation curves: {distill_png}")
        with open(md_path) as f:
            print(f.read())
    else:
        md_path, json_path, png = (os.path.join(cfg.out_dir, name) for name in
                                   ("results.md", "results.json", "learning_curves.png"))
        png = png if cfg.variants else None
        distill_png = os.path.join(cfg.out_dir, "distillation.png") if extra["priors"] else None
    parallel.barrier("lago_jax.experiments: results written")
    return {"rows": all_rows, "table": md_path, "json": json_path, "plot": png, "distillation": distill_png}


_LOCKS: dict[str, Any] = {}


def _settings_before_they_existed(suite) -> dict:
    """What an experiment.json written before a setting existed ran with: the suite's legacy value
    (``LEGACY_SETTINGS``), else the setting's default."""
    import dataclasses

    from lago_jax.experiments.config import LEGACY_SETTINGS

    defaults = {f.name: f.default for f in dataclasses.fields(ExperimentConfig)
                if f.default is not dataclasses.MISSING}
    return json.loads(json.dumps({**defaults, **LEGACY_SETTINGS.get(suite.name, {})}))


WEIGHTS_KEY = "weights_fingerprint"
"""experiment.json's record of the files behind --llm and --random-llm (not a setting)."""
_FLAG = {"llm": "--llm", "random_llm": "--random-llm"}


def _weights_fingerprints(cfg) -> dict:
    """``{"llm": ..., "random_llm": ...}``: each model's content fingerprint (the one the converted-
    weights cache uses), so that a resumed experiment notices a model replaced at the same path.
    Random backbones are named by their spec alone."""
    from lago_jax.llm.checkpoint import source_fingerprint

    out = {}
    for key in ("llm", "random_llm"):
        spec = getattr(cfg, key)
        if spec is not None:
            out[key] = spec if spec.startswith("random:") else source_fingerprint(spec)
    return out


def _lock_out_dir(out_dir: str) -> None:
    """One run per output directory: an exclusive lock on ``<out>/.lock`` held for the process's
    life (released by the OS if it dies); a second run on the same directory is refused naming the
    process that holds it."""
    import fcntl

    path = os.path.join(os.path.abspath(out_dir), ".lock")
    if path in _LOCKS:
        return
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise ValueError(f"{out_dir} is in use by {holder}; wait for it, stop it, or use another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()} on {os.uname().nodename}")
    f.flush()
    _LOCKS[path] = f


def _check_multiprocess(cfg: ExperimentConfig) -> None:
    """Before anything is written, with several processes: every process got the same settings
    (else their collective calls would not line up), and the PPO envs and the distillation batch
    split evenly over every process's devices."""
    import zlib

    import jax

    from lago_jax import parallel

    settings = {k: v for k, v in cfg.to_dict().items() if k not in OUTPUT_ONLY}
    parallel.check_same(zlib.crc32(json.dumps(settings, sort_keys=True, default=str).encode()),
                        "experiment settings")
    n = jax.device_count()
    for name in ("num_envs", "distill_batch"):
        if getattr(cfg, name) % n:
            raise ValueError(f"{name}={getattr(cfg, name)} must be divisible by the {n} devices of the "
                             f"{jax.process_count()} processes")

__all__ = [
    "CONVERTED_CACHE_DIR", "CURVE_KEYS", "ExperimentConfig", "PRIOR_KINDS", "Suite", "VARIANTS", "VARIANT_LABEL",
    "VARIANT_PRIOR", "build_prior", "curve_figure", "demos_stage", "distill_stage",
    "eval_stage", "load_backbone", "log", "mean_band",
    "mean_ci95", "plot_curves", "run_pipeline", "seed_curve", "summarize", "train_stage", "write_table",
]
