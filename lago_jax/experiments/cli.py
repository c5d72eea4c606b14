"""The entry points' command line: ``build_parser`` and ``main`` (one line per error, ``--debug``
for the traceback), ``--eval`` of a single checkpoint, and several processes
(``--coordinator``/``--num-processes``/``--process-id``, or SLURM / Open MPI found by itself)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
from typing import Callable, Sequence

from lago_jax.experiments.config import BACKENDS, DTYPES, PROTOCOLS, VARIANTS, ExperimentConfig, Suite

MULTIPROCESS_FLAGS = (("coordinator", "--coordinator"), ("num_processes", "--num-processes"),
                      ("process_id", "--process-id"))
"""(dest, flag) of the options that start JAX's distributed runtime; entry-point options, not
``ExperimentConfig`` settings (the same experiment runs on one process or many)."""


def start_processes(args: argparse.Namespace) -> bool:
    """Start JAX's distributed runtime from ``--coordinator``, ``--num-processes`` and
    ``--process-id`` (all three or none; with none it starts only where SLURM or Open MPI
    describe the job). Call before any other JAX work. Returns whether it started."""
    from lago_jax import parallel

    missing = [flag for dest, flag in MULTIPROCESS_FLAGS if getattr(args, dest) is None]
    if missing and len(missing) < len(MULTIPROCESS_FLAGS):
        raise ValueError(f"{', '.join(flag for _, flag in MULTIPROCESS_FLAGS)} go together; missing "
                         f"{' and '.join(missing)}")
    return parallel.initialize(args.coordinator, args.num_processes, args.process_id,
                               timeout_s=args.coordinator_timeout)


def _recorded_backend(path: str, suite: Suite) -> str | None:
    """The ``backend`` of the experiment a run directory belongs to (``<out>/runs/<task>/<variant>/
    seed<k>[/checkpoints]`` next to ``<out>/experiment.json``; the suite's legacy value when that
    file predates the setting), or None outside an experiment."""
    from lago_jax.experiments.config import LEGACY_SETTINGS

    parts = path.rstrip(os.sep).split(os.sep)
    if parts[-1] == "checkpoints":
        parts = parts[:-1]
    if len(parts) < 5 or parts[-4] != "runs":
        return None
    exp = os.path.join(os.sep.join(parts[:-4]) or os.sep, "experiment.json")
    if not os.path.isfile(exp):
        return None
    from lago_jax.experiments.stages import _read_json

    saved = _read_json(exp)
    return saved.get("backend", LEGACY_SETTINGS.get(suite.name, {}).get("backend", "auto"))


def eval_only(checkpoint_dir: str, suite: Suite, task: str | None, episodes: int, seed: int,
              video: str | None = None, video_episodes: int = 2, camera: str | None = None,
              backend: str = "auto") -> dict:
    """``--eval CHECKPOINT_DIR``: reload a PPO run and evaluate it (task read from the run's path
    ``.../runs/<task>/<variant>/seed<k>`` unless given). With several processes each evaluates
    on its own first device and process 0 prints. ``video`` (``--video [PATH]``; "" for the
    default ``<run dir>/video_seed<seed>.mp4``): also write an MP4 of the first ``video_episodes``
    of the evaluated greedy episodes (:func:`lago_jax.render.render_checkpoint`; one process).
    The env runs on the physics engine the experiment recorded (``backend`` outside one)."""
    from lago_jax.ppo import evaluate
    from lago_jax.experiments.stages import make_task_env

    path = os.path.abspath(checkpoint_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--eval {checkpoint_dir}: no such checkpoint directory")
    if task is None:
        parts = path.rstrip("/").split(os.sep)
        if parts[-1] == "checkpoints":
            parts = parts[:-1]
        task = parts[-3] if len(parts) >= 3 and parts[-3] in suite.all_task_names else None
        if task is None:
            raise ValueError(f"cannot tell the task of {checkpoint_dir}; pass --task")
    from lago_jax import parallel

    # Every process evaluates (the checkpoint's restore waits for all of them); process 0 prints.
    backend = _recorded_backend(path, suite) or backend
    if task in suite.groups:  # a multi-task policy: rebuilt on the multi-task env it was trained on
        from lago_jax.ppo.evaluate import checkpoint_config

        env = make_task_env(checkpoint_config(path), suite, task, backend=backend)
    else:
        env = make_task_env(None, suite, task, backend=backend)
    import jax

    if video is not None and jax.process_count() > 1:
        raise ValueError("--video renders on one process; run --eval ... --video without --coordinator")
    r = evaluate(path, env, episodes=episodes, seed=seed)  # a multi-task env: per task under "tasks", and the mean
    if video is not None:
        from lago_jax.render import render_checkpoint

        run_dir = os.path.dirname(path) if os.path.basename(path.rstrip(os.sep)) == "checkpoints" else path
        out = video or os.path.join(run_dir, f"video_seed{seed}.mp4")
        # The evaluation's batch and key: the video shows the first of the episodes just scored.
        v = render_checkpoint(path, env, out, episodes=video_episodes, seed=seed, batch=max(episodes, video_episodes),
                              camera=camera, title=os.sep.join(run_dir.split(os.sep)[-2:]))
        r["video"] = {"path": os.path.abspath(v["path"]), "frames": v["frames"], "episodes": v["episodes"]}
    if parallel.is_main_process():
        print(json.dumps({"checkpoint": path, "task": task, **r}, indent=2))
    return r


def read_instructions(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(texts, goals) from ``--instruction``/``--goal`` pairs and ``--instructions-file`` lines."""
    texts, goals = list(args.instructions), list(args.goals)
    if len(texts) != len(goals):
        raise ValueError(f"{len(texts)} --instruction and {len(goals)} --goal: give one goal per instruction")
    if args.instructions_file:
        with open(args.instructions_file, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if "\t" not in line:
                    raise ValueError(f"{args.instructions_file}:{n}: expected 'GOAL<TAB>TEXT', got {line!r}")
                goal, text = line.split("\t", 1)
                goals.append(goal.strip())
                texts.append(text.strip())
    if not texts:
        raise ValueError("--eval-prior needs at least one --instruction TEXT --goal GOAL or an --instructions-file")
    return texts, goals


def eval_prior_texts(args: argparse.Namespace, suite: Suite) -> list[dict]:
    """``--eval-prior PRIOR_DIR``: the distilled prior alone on each instruction with its goal; one JSON
    line per instruction (greedy and sampled success over ``--eval-episodes`` episodes)."""
    from lago_jax.experiments.language import evaluate_texts, load_experiment_prior

    texts, goals = read_instructions(args)
    out_dir, task, kind, settings = load_experiment_prior(args.eval_prior)
    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    tuples = {"tasks", "seeds", "variants", "hidden_sizes"}
    cfg = ExperimentConfig(**{k: tuple(v) if k in tuples else v for k, v in settings.items() if k in fields})
    cfg = dataclasses.replace(cfg, out_dir=out_dir, progress=False)
    results = evaluate_texts(cfg, suite, task, kind, texts, goals, args.eval_episodes, args.eval_seed)
    for r in results:
        print(json.dumps(r))
    return results


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose ``--help`` ends with the suite's task and group names, found only
    when help is asked for (building a suite imports its environments)."""

    task_names: Callable[[], Sequence[str]] | None = None

    def format_help(self) -> str:
        text = super().format_help()
        if self.task_names is not None:
            text += f"\ntasks and groups (--task): {' '.join(self.task_names())}\n"
        return text


def build_parser(suite_name: str, default_tasks: Sequence[str], defaults: dict,
                 task_names: Callable[[], Sequence[str]] | None = None) -> argparse.ArgumentParser:
    p = _Parser(
        prog=f"python -m lago_jax.experiments.{suite_name}",
        description="LaGO pipeline: collect demos -> distill priors -> train PPO variants -> evaluate -> report.",
    )
    from lago_jax.ppo.config import KL_DIRECTIONS, KL_SCHEDULES  # imports jax: after runtime.configure (main)

    p.task_names = task_names
    d = {**{f.name: f.default for f in dataclasses.fields(ExperimentConfig) if f.default is not dataclasses.MISSING}, **defaults}
    p.add_argument("--task", "--tasks", dest="tasks", nargs="+", default=None,
                   help=f"task or group name(s) (default: {' '.join(default_tasks)}; every name is listed at the end)")
    p.add_argument("--out", default=os.path.join("outputs", suite_name), help="output directory (resumed if it exists)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(d["seeds"]))
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS),
                   help="PPO arms to train; given with no names, none (the priors alone)")
    p.add_argument("--envs", dest="num_envs", type=int, default=d["num_envs"], help="parallel envs per PPO run")
    p.add_argument("--rollout", dest="num_steps", type=int, default=d["num_steps"], help="rollout length per update")
    p.add_argument("--updates", dest="num_updates", type=int, default=None,
                   help=f"PPO updates per run (default {d['num_updates']})")
    p.add_argument("--steps", dest="total_steps", type=int, default=None,
                   help="PPO env steps per run (sets --updates = steps / (envs * rollout))")
    p.add_argument("--lr", type=float, default=d["lr"], help="PPO learning rate (Adam)")
    p.add_argument("--ent-coef", dest="ent_coef", type=float, default=d["ent_coef"], help="PPO entropy bonus")
    p.add_argument("--gamma", type=float, default=d["gamma"], help="discount")
    p.add_argument("--epochs", dest="update_epochs", type=int, default=d["update_epochs"], help="PPO epochs per update")
    p.add_argument("--minibatches", dest="num_minibatches", type=int, default=d["num_minibatches"],
                   help="PPO minibatches per epoch")
    p.add_argument("--beta", type=float, default=d["beta"])
    p.add_argument("--schedule", default=d["schedule"], choices=list(KL_SCHEDULES))
    p.add_argument("--beta-final", dest="beta_final", type=float, default=d["beta_final"])
    p.add_argument("--kl-target", dest="kl_target", type=float, default=d["kl_target"])
    p.add_argument("--kl-direction", dest="kl_direction", default=d["kl_direction"], choices=list(KL_DIRECTIONS))
    p.add_argument("--llm", default=d["llm"],
                   help="'smollm2-135m' (bundled), 'gemma3-270m' (its GGUF packages, see the README), "
                        "a local HF directory or .gguf file")
    p.add_argument("--dtype", default=d["dtype"], choices=list(DTYPES),
                   help="the backbones' dtype (float32 on CPUs; bfloat16 on accelerators)")
    p.add_argument("--random-llm", dest="random_llm", default=d["random_llm"], help="random backbone spec, e.g. random:smollm2-135m")
    p.add_argument("--demo-episodes", dest="demo_episodes", type=int, default=d["demo_episodes"])
    p.add_argument("--distill-steps", dest="distill_steps", type=int, default=d["distill_steps"])
    p.add_argument("--distill-batch", dest="distill_batch", type=int, default=d["distill_batch"])
    p.add_argument("--distill-lr", dest="distill_lr", type=float, default=d["distill_lr"])
    p.add_argument("--distill-eval-every", dest="distill_eval_every", type=int, default=d["distill_eval_every"],
                   help="distillation steps between validation evaluations (early stopping counts these)")
    p.add_argument("--distill-schedule", dest="distill_schedule", default=d["distill_schedule"],
                   choices=["cosine", "constant"], help="distillation learning-rate schedule")
    p.add_argument("--eval-episodes", dest="eval_episodes", type=int, default=d["eval_episodes"])
    p.add_argument("--episode-length", dest="episode_length", type=int, default=d["episode_length"])
    p.add_argument("--prior-chunk", dest="prior_chunk", type=int, default=d["prior_chunk"],
                   help="rows per call of the prior inside the PPO update")
    p.add_argument("--prior-fraction", dest="prior_fraction", type=float, default=d["prior_fraction"],
                   help="fraction of each rollout's time steps the prior is evaluated on (KL averaged over them)")
    p.add_argument("--hidden", dest="hidden_sizes", type=int, nargs="+", default=list(d["hidden_sizes"]),
                   help="hidden layer widths of the PPO actor and critic")
    p.add_argument("--reward-scale", dest="reward_scale", type=float, default=d["reward_scale"])
    p.add_argument("--prior-temperature", dest="prior_temperature", type=float, default=d["prior_temperature"])
    p.add_argument("--prior-min-std", dest="prior_min_std", type=float, default=d["prior_min_std"])
    p.add_argument("--cached-reset", dest="cached_reset", action=argparse.BooleanOptionalAction,
                   default=d["cached_reset"], help="auto-reset from a reset state refreshed once per rollout")
    p.add_argument("--backend", default=d["backend"], choices=list(BACKENDS),
                   help="physics engine: 'auto' (MuJoCo's C engine on a CPU, MJX on an accelerator), 'mjx' or 'mujoco'")
    p.add_argument("--protocol", default=d["protocol"], choices=list(PROTOCOLS),
                   help="'language': the priors read the goal from the instruction alone, demonstrations come "
                        "from the train split, each prior alone is evaluated on every split (train, held-out "
                        "phrasings, unseen goals) and PPO trains on the held-out split")
    p.add_argument("--split-seed", dest="split_seed", type=int, default=d["split_seed"],
                   help="chooses the language protocol's held-out goals and phrasings")
    p.add_argument("--heldout", type=int, default=d["heldout"],
                   help="held-out goals (CLEVR-Robot, default 16 of 80) or phrasings per task (Meta-World, 4 of 12)")
    p.add_argument("--split-demo-episodes", dest="split_demo_episodes", type=int, default=d["split_demo_episodes"],
                   help="expert episodes per split for the per-split validation NLL")
    p.add_argument("--prior-eval-episodes", dest="prior_eval_episodes", type=int, default=d["prior_eval_episodes"],
                   help="episodes per split for each prior alone (greedy and sampled)")
    p.add_argument("--eval", dest="eval_dir", default=None, help="only reload CHECKPOINT_DIR and evaluate it")
    own = p.add_argument_group(
        "try your own words", "evaluate a distilled prior of a --protocol language run alone on instruction texts "
        "paired with goals, e.g. --eval-prior OUT/priors/goals/llm --instruction 'Shove the red ball left of the "
        "blue one.' --goal red,blue,left")
    own.add_argument("--eval-prior", dest="eval_prior", default=None, metavar="PRIOR_DIR",
                     help="an experiment's priors/<task>/<kind> folder")
    own.add_argument("--instruction", dest="instructions", action="append", default=[], metavar="TEXT",
                     help="an instruction (repeat for several; one --goal each)")
    own.add_argument("--goal", dest="goals", action="append", default=[], metavar="GOAL",
                     help="the goal the env scores: SRC,DST,DIRECTION on CLEVR-Robot (red,blue,left), a task name "
                          "on Meta-World")
    own.add_argument("--instructions-file", dest="instructions_file", default=None, metavar="FILE",
                     help="lines 'GOAL<TAB>TEXT' (more instructions; '#' starts a comment)")
    p.add_argument("--eval-seed", dest="eval_seed", type=int, default=d["eval_seed"])
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=d["tensorboard"],
                   help="TensorBoard event files in every PPO run's directory (tensorboard --logdir OUT/runs)")
    p.add_argument("--wandb", default=d["wandb"], metavar="PROJECT",
                   help="also log every PPO run to this Weights & Biases project (pip install 'lago-jax[wandb]'; "
                        "WANDB_MODE=offline keeps runs local)")
    vid = p.add_argument_group("videos", "with --eval CHECKPOINT_DIR: an MP4 of greedy episodes with the instruction "
                               "and the success flag on every frame (MuJoCo's renderer; OSMesa or EGL)")
    vid.add_argument("--video", nargs="?", const="", default=None, metavar="PATH",
                     help="write the video (default PATH: <run dir>/video_seed<eval-seed>.mp4)")
    vid.add_argument("--video-episodes", dest="video_episodes", type=int, default=2, metavar="N",
                     help="episodes in the video (the first N of the evaluated ones; per task of a multi-task run)")
    vid.add_argument("--camera", default=None, help="a Meta-World camera (corner, corner2, corner3, corner4, topview)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    multi = p.add_argument_group(
        "several processes", "run on several processes (hosts) with JAX's distributed runtime: give all three "
        "on every process, with the same other flags and an --out every process sees; under SLURM or Open MPI "
        "(srun, mpirun) leave them out")
    multi.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                       help="address of process 0, where the coordination service listens")
    multi.add_argument("--num-processes", dest="num_processes", type=int, default=None, metavar="N",
                       help="number of processes")
    multi.add_argument("--process-id", dest="process_id", type=int, default=None, metavar="I",
                       help="this process's index in [0, N)")
    multi.add_argument("--coordinator-timeout", dest="coordinator_timeout", type=int, default=120, metavar="S",
                       help="seconds to wait for every process to join before failing (default 120)")
    return p


class _CheckpointThreadFilter(logging.Filter):
    """Drops Orbax's log records of an exception in one of its writer threads (a traceback of
    dozens of lines each): the same exception reaches the caller, which names it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "_SignalingThread.run() raised an exception" not in record.getMessage()


def _quiet_checkpoint_threads() -> None:
    logger = logging.getLogger("absl")
    if not any(isinstance(f, _CheckpointThreadFilter) for f in logger.filters):
        logger.addFilter(_CheckpointThreadFilter())


def main(suite_factory: Callable[[], Suite], default_tasks: Sequence[str], defaults: dict, argv=None) -> int:
    from lago_jax import runtime

    runtime.configure()
    suite_name = suite_factory.__name__.replace("make_", "").replace("_suite", "")
    args = build_parser(suite_name, default_tasks, defaults,
                        task_names=lambda: suite_factory().all_task_names).parse_args(argv)
    if not args.debug:
        _quiet_checkpoint_threads()
    try:
        start_processes(args)  # before any other JAX work (the suite's modules may build arrays)
        suite = suite_factory()
        if args.video is None and args.camera is not None:
            raise ValueError("--camera goes with --video")
        if args.video is not None and not args.eval_dir:
            raise ValueError("--video goes with --eval CHECKPOINT_DIR")
        if args.video_episodes < 1:
            raise ValueError(f"--video-episodes must be >= 1, got {args.video_episodes}")
        if args.eval_prior:
            eval_prior_texts(args, suite)
            return 0
        if args.instructions or args.goals or args.instructions_file:
            raise ValueError("--instruction, --goal and --instructions-file go with --eval-prior PRIOR_DIR")
        if args.eval_dir:
            tasks = args.tasks if args.tasks else [None]
            eval_only(args.eval_dir, suite, tasks[0], args.eval_episodes, args.eval_seed, args.video,
                      args.video_episodes, args.camera, backend=args.backend)
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
            for flag, v in (("--envs", args.num_envs), ("--rollout", args.num_steps)):
                if v < 1:
                    raise ValueError(f"{flag} must be >= 1, got {v}")
            per_update = args.num_envs * args.num_steps
            if args.total_steps < per_update:
                raise ValueError(f"--steps {args.total_steps} is less than one update ({args.num_envs} envs x "
                                 f"{args.num_steps} steps = {per_update} env steps)")
            kw["num_updates"] = args.total_steps // per_update
        elif args.num_updates is not None:
            kw["num_updates"] = args.num_updates
        else:
            kw["num_updates"] = defaults.get("num_updates", ExperimentConfig.num_updates)
        cfg = ExperimentConfig(**kw)
        import jax

        from lago_jax import interrupt
        from lago_jax.experiments.pipeline import run_pipeline

        # One process: Ctrl-C stops at the next checkpoint, never inside a compiled step (the C
        # engines' callbacks). Several processes stop together only through the runtime.
        with interrupt.deferred() if jax.process_count() == 1 else contextlib.nullcontext():
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
