"""``python -m lago_jax.experiments.sweep OUT_DIR [OUT_DIR ...]``: one table over several pipeline
runs (a sweep), each row a run directory and trained variant, with the settings that differ
between the runs, the training-curve summary (final success, area under the success curve, env
steps to 50%) and the greedy evaluation, each as mean ± 95% Student-t interval over seeds, and
the KL term's scale at the start (the KL to the prior over the first updates, mean over seeds,
and beta x KL as a share of the total loss).

Reads only what the pipeline wrote (``experiment.json``, ``results.json``, every run's
``metrics.jsonl``); ``--out FILE`` writes the Markdown there as well as printing it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Sequence

from lago_jax.experiments.config import VARIANT_LABEL, ExperimentConfig

IGNORED = ("out_dir", "progress", "seeds", "variants", "checkpoint_every")  # do not change what is learnt


def load_run(out_dir: str) -> tuple[ExperimentConfig, dict]:
    """(config, results.json) of a finished pipeline run, with a clear error for anything missing."""
    paths = [os.path.join(out_dir, name) for name in ("experiment.json", "results.json")]
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{out_dir} is not a finished pipeline run: {p} is missing")
    with open(paths[0]) as f:
        raw = json.load(f)
    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    cfg = ExperimentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in fields})
    with open(paths[1]) as f:
        return cfg, json.load(f)


def sweep_rows(out_dirs: Sequence[str]) -> tuple[list[str], list[dict]]:
    """(setting names that differ between the runs, one row per run and variant)."""
    from lago_jax.experiments.report import curve_summaries

    runs = [(d, *load_run(d)) for d in out_dirs]
    settings = [dataclasses.asdict(cfg) for _, cfg, _ in runs]
    differ = sorted(k for k in settings[0] if k not in IGNORED and len({json.dumps(s[k]) for s in settings}) > 1)
    rows = []
    for (d, cfg, results), s in zip(runs, settings):
        curves = {(c["task"], c["method"]): c for c in curve_summaries(cfg)}
        for r in results["rows"]:
            c = curves.get((r["task"], r["method"]))
            if c is None:  # random policy and priors acting alone: no training curve
                continue
            rows.append(dict(run=os.path.basename(os.path.normpath(d)), task=r["task"], method=r["method"],
                             settings={k: s[k] for k in differ}, seeds=r["seeds"], curve=c, eval=r))
    return differ, rows


def markdown(differ: Sequence[str], rows: Sequence[dict]) -> str:
    def pm(m, h, digits=3):
        return f"{m:.{digits}f} ± {h:.{digits}f}"

    head = ["run", "task", "method", *differ, "seeds", "final training success", "area under success curve",
            "runs reaching 50%", "greedy success", "greedy return", "KL to prior at start (share of loss)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        c, e = r["curve"], r["eval"]
        cells = [r["run"], r["task"], VARIANT_LABEL.get(r["method"], r["method"]),
                 *[str(r["settings"][k]) for k in differ], str(r["seeds"]),
                 pm(c["final_mean"], c["final_ci95"]), pm(c["area_mean"], c["area_ci95"]),
                 f"{c['runs_reaching']}/{c['seeds']}", pm(e["success_mean"], e["success_ci95"]),
                 pm(e["return_mean"], e["return_ci95"], 1),
                 f"{c['kl_start']:.1f} ({c['kl_share']:.0%})" if "kl_start" in c else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lago_jax.experiments.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("out_dirs", nargs="+", help="pipeline output directories (finished runs)")
    p.add_argument("--out", default=None, help="also write the Markdown table to this file")
    args = p.parse_args(argv)
    try:
        differ, rows = sweep_rows(args.out_dirs)
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = markdown(differ, rows)
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
