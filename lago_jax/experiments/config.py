"""The experiment's settings: ``ExperimentConfig``, the variants and their labels, and ``Suite``
(an environment suite: task names, env factory, scripted expert)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

VARIANTS = ("ppo", "ppo_mlp_prior", "lago_random_llm", "lago")
"""Trained variants, in table order. Each maps to the prior it is guided by (None for PPO)."""
VARIANT_PRIOR = {"ppo": None, "ppo_mlp_prior": "mlp", "lago_random_llm": "llm_random", "lago": "llm"}
PRIOR_KINDS = ("mlp", "llm_random", "llm")
PROTOCOLS = ("standard", "language")
DTYPES = ("float32", "bfloat16")
BACKENDS = ("auto", "mjx", "mujoco")
"""Physics engines of the suites' envs: "mjx" (MJX, jitted XLA), "mujoco" (MuJoCo's C engine through a
host callback, the unedited model), "auto" ("mujoco" when JAX runs on the CPU, else "mjx")."""
LEGACY_SETTINGS = {"metaworld": {"backend": "mjx"}}
"""Per suite, the value a setting had in experiments recorded before the setting existed (their
experiment.json lacks it): what a resumed experiment is compared with."""
OUTPUT_ONLY = ("progress", "out_dir", "tensorboard", "wandb")
"""``ExperimentConfig`` fields that change where results are shown, never the results: a resumed
experiment may change them, and several processes may differ in them."""
MAX_EPISODE_LENGTH = 100_000
"""Longest episode limit accepted: greedy evaluation runs every episode to its limit."""
PPO_NAMES = {"beta": "kl_coef", "schedule": "kl_schedule", "beta_final": "kl_coef_final"}
"""``ExperimentConfig`` fields that set a ``PPOConfig`` field of another name; every other field
whose name ``PPOConfig`` also has sets that field as it is (:meth:`ExperimentConfig.ppo_config`)."""
PPO_DEFAULT_DIFFERS = {
    "beta": "the KL weight of the prior-guided variants; PPOConfig.kl_coef's 0 means no guidance, "
            "and guided variants at 0 would train as vanilla PPO",
    "num_updates": "an experiment needs a length; PPOConfig takes num_updates or total_timesteps, so it has none",
}
"""The shared fields whose ``ExperimentConfig`` default differs from ``PPOConfig``'s, and why.
Every other shared field has the library's default (``tests/test_experiments.py`` checks it);
a suite's own settings (its ``DEFAULTS``) are on top of these."""
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
      make_env: ``(task, **env_kwargs) -> Env`` (bare, unbatched); keyword arguments come from a
        language split or a parsed goal only.
      expert: ``task -> policy(obs, key) -> action`` (pure JAX) used for demonstrations.
      groups: name -> member tasks trained jointly as one multi-task policy (``--task mt10``):
        one :class:`envs.multitask.MultiTaskEnv` with ``num_envs / len(members)`` envs per task
        and a one-hot task id in the observation, demonstrations of every member, priors on all
        of them, results per member and averaged.
    """

    name: str
    task_names: tuple[str, ...]
    make_env: Callable[[str], Any]
    expert: Callable[[str], Callable]
    groups: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    language_splits: Callable[[str, int, int | None], dict] | None = None
    """The language protocol's splits of a task (``--protocol language``): ``(task, split_seed,
    heldout) -> {"record": JSON-able description (saved and printed), "splits": {split name:
    make_env keyword arguments (its goals and phrasings)}, "ppo_split": the split PPO trains and
    is evaluated on}``; the first split is the one demonstrations and distillation see. None: the
    suite has no language protocol."""
    parse_goal: Callable[[str], tuple[str, dict]] | None = None
    """``goal text -> (task, make_env keyword arguments of an env with that one goal and a bank of
    one instruction)``: what ``--eval-prior ... --goal`` pairs your own instruction with."""

    @property
    def all_task_names(self) -> tuple[str, ...]:
        """Single tasks and group names: everything ``--task`` accepts."""
        return tuple(self.task_names) + tuple(self.groups)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: tasks x variants x seeds at a fixed step budget.

    The PPO fields carry ``PPOConfig``'s defaults, except those in ``PPO_DEFAULT_DIFFERS``; the
    suites' command lines start from these and their own ``DEFAULTS``.
    """

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
    num_steps: int = 64
    """Rollout length per update."""
    num_updates: int = 10
    """PPO updates per run (env steps = num_envs * num_steps * num_updates)."""
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 3e-4
    ent_coef: float = 0.0
    gamma: float = 0.99
    hidden_sizes: tuple[int, ...] = (64, 64)
    beta: float = 0.1
    """KL weight toward the prior (constant schedule start value)."""
    schedule: str = "constant"
    """beta schedule: constant, linear, adaptive."""
    beta_final: float = 0.0
    """beta at the end of a linear schedule."""
    kl_target: float = 0.01
    """Target KL of the adaptive schedule."""
    kl_direction: str = "reverse"
    checkpoint_every: int = 10
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
    distill_schedule: str = "cosine"
    """Distillation learning-rate schedule: "cosine" (to a tenth of ``distill_lr``) or "constant"."""
    distill_eval_every: int = 25
    llm: str = "smollm2-135m"
    """The pretrained backbone: "smollm2-135m", a local HF directory or a .gguf file."""
    dtype: str = "float32"
    """The backbones' parameter and compute dtype: "float32" (the CPU default: bfloat16 is slower on
    CPUs) or "bfloat16" (what accelerators run). The projection, head and PPO stay float32."""
    random_llm: str | None = None
    """Random-init backbone of the same shape; default ``random:<preset>`` matching ``llm``."""
    num_soft_tokens: int = 1
    eval_episodes: int = 32
    eval_seed: int = 1000
    episode_length: int | None = None
    """Override the task's episode limit (None keeps it)."""
    prior_chunk: int = 256
    """Rows per call of the prior inside the PPO update (``PPOConfig.prior_chunk``)."""
    prior_fraction: float = 1.0
    """Fraction of each rollout's time steps the prior is evaluated on (``PPOConfig.prior_fraction``)."""
    cached_reset: bool = False
    """Auto-reset from a reset state refreshed once per rollout (``PPOConfig.cached_reset``)."""
    reward_scale: float = 1.0
    """Rewards are scaled by this for PPO's value targets (``PPOConfig.reward_scale``)."""
    prior_temperature: float = 1.0
    """The KL term's prior softened by this temperature (``PPOConfig.prior_temperature``)."""
    prior_min_std: float = 0.0
    """Floor on the Gaussian prior's std in the KL term (``PPOConfig.prior_min_std``)."""
    protocol: str = "standard"
    """"standard": every prior sees the whole observation (goal features included) and the
    demonstrations' instructions. "language": the priors read the goal from the instruction alone
    (the goal's observation features are left out of their input; the MLP prior reads the
    instruction's tokens), demonstrations and distillation see the train split only, each prior
    alone is evaluated on every split, and PPO trains on the suite's held-out split."""
    split_seed: int = 0
    """Chooses the language protocol's held-out goals and phrasings."""
    heldout: int | None = None
    """Held-out goals (CLEVR-Robot, default 16 of 80) or phrasings per task (Meta-World, default 4 of 12)."""
    split_demo_episodes: int = 256
    """Expert episodes per split for the per-split validation NLL (language protocol)."""
    prior_eval_episodes: int = 256
    """Episodes per split for each prior alone, greedy and sampled (language protocol)."""
    backend: str = "auto"
    """The envs' physics engine (one of ``BACKENDS``): MJX, MuJoCo's C engine, or "auto" (the C
    engine on a CPU, MJX on an accelerator). A checkpoint resumes and evaluates on the engine it
    was trained with (the env state differs)."""
    progress: bool = True
    tensorboard: bool = True
    """Write each PPO run's metrics as TensorBoard event files into its run directory
    (``tensorboard --logdir OUT/runs``); tensorboardX, no TensorFlow."""
    wandb: str | None = None
    """A Weights & Biases project every PPO run also logs to (the ``wandb`` extra; with
    ``WANDB_MODE=offline`` runs stay in ``<run dir>/wandb`` for ``wandb sync``). None: no W&B."""

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
        try:
            self.out_dir.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"out_dir {self.out_dir!r} is not valid UTF-8; choose a path the logs and "
                             "checkpoints can name") from None
        bad_seeds = [s for s in self.seeds if not 0 <= int(s) < 2**32]
        if bad_seeds:
            raise ValueError(f"seeds {bad_seeds} are outside [0, 2**32): JAX keys wrap there, so such a seed "
                             "would repeat another run")
        if not self.tasks:
            raise ValueError("tasks must hold at least one task")
        dup_tasks = sorted({t for t in self.tasks if list(self.tasks).count(t) > 1})
        if dup_tasks:
            raise ValueError(f"tasks {list(self.tasks)} repeat {dup_tasks}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{f.name} must be a finite number, got {v}")
        for name in ("episode_length", "demo_episode_length"):
            v = getattr(self, name)
            if v is not None and not 1 <= v <= MAX_EPISODE_LENGTH:
                raise ValueError(f"{name} must be in [1, {MAX_EPISODE_LENGTH:,}], got {v} (CLEVR-Robot's episodes "
                                 "last 50 pushes, Meta-World's 500 steps)")
        for name in ("num_envs", "num_steps", "num_updates", "demo_episodes", "distill_steps", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {self.protocol!r}")
        for name in ("split_demo_episodes", "prior_eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.wandb is not None and not str(self.wandb).strip():
            raise ValueError("wandb must be a W&B project name or None, got an empty string")
        if self.heldout is not None and self.heldout < 1:
            raise ValueError(f"heldout must be >= 1, got {self.heldout}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def env_steps(self) -> int:
        return self.num_envs * self.num_steps * self.num_updates

    def ppo_config(self, variant: str, seed: int):
        """The ``PPOConfig`` of one run: every field ``PPOConfig`` shares (renamed by
        ``PPO_NAMES``), the KL weights zeroed for an unguided variant, and ``seed``."""
        from lago_jax.ppo import PPOConfig

        ppo_fields = {f.name for f in dataclasses.fields(PPOConfig)}
        kw = {PPO_NAMES.get(f.name, f.name): getattr(self, f.name) for f in dataclasses.fields(self)
              if PPO_NAMES.get(f.name, f.name) in ppo_fields}
        kw["hidden_sizes"] = tuple(self.hidden_sizes)
        if VARIANT_PRIOR[variant] is None:
            kw.update(kl_coef=0.0, kl_coef_final=0.0)
        return PPOConfig(**kw, seed=int(seed))
