"""Exploratory follow-up (not part of the pre-registered rule): the SmolLM2 prior of this
experiment distilled again at a lower constant learning rate, everything else equal (the same
demonstrations, split, batch, early stopping and evaluation episodes), and evaluated alone on the
four splits. Writes into ``OUT`` (a copy of the run's demonstrations and split must be there).

    python experiments/clevr_language_plateau/lower_lr.py /work/runs/clevr_language_plateau_lr3e-4 3e-4
"""

import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lago_jax import runtime  # noqa: E402

runtime.configure()

from lago_jax.experiments import language, stages  # noqa: E402
from lago_jax.experiments.clevr_robot import make_clevr_robot_suite  # noqa: E402
from lago_jax.experiments.config import ExperimentConfig  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main(out: str, lr: float) -> None:
    saved = json.load(open(os.path.join(HERE, "experiment.json")))
    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    cfg = ExperimentConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in fields})
    cfg = dataclasses.replace(cfg, out_dir=out, distill_lr=lr, variants=())
    suite = make_clevr_robot_suite()
    rec = language.split_record(cfg, suite, "goals")
    names = language.split_names(rec)
    envs = {n: stages.make_task_env(cfg, suite, "goals", rec["splits"][n]) for n in names}
    demos = stages.demos_stage(cfg, suite, "goals", envs["train"])
    split_demos = {n: stages.demos_stage(cfg, suite, "goals", envs[n], name=f"goals.{n}",
                                         episodes=cfg.split_demo_episodes, key_seed=777 + i) for i, n in enumerate(names)}
    priors = {"llm": stages.distill_stage(cfg, "goals", "llm", envs["train"], demos)}
    results = language.evaluate_splits(cfg, "goals", envs, split_demos, priors)
    base = json.load(open(os.path.join(HERE, "eval_goals.splits.json")))
    for n in names:
        a, b = results[f"{n}/llm"], base[f"{n}/mlp"]
        c = language.paired(a["greedy"], b["greedy"])
        print(f"{n}: SmolLM2 at lr {lr}: NLL {a['nll']:.3f}, greedy {a['greedy_success']:.3f} "
              f"(text MLP at 1e-3: {b['greedy_success']:.3f}; difference {c['diff']:+.3f} ± {c['ci95']:.3f}, p = {c['p']:.2g})")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
