"""CLEVR-Robot's language splits (after KALM's protocol): which goals and phrasings a prior
learns from, and which it is tested on.

The 80 goals x 26 templates give four splits:

* ``train``: templates 0-19 (``instructions.TEMPLATE_SPLITS["train"]``) on the train goals;
* ``rephrase``: the held-out templates 20-25 on the train goals (phrasings never seen);
* ``unseen``: the held-out goals with the train templates (goal combinations never seen);
* ``unseen_rephrase``: the held-out goals with the held-out templates.

The held-out goals are chosen so that every word of their train-template instructions still
appears in the train split: ``num_heldout`` of the 20 ordered (source, destination) pairs each
lose one direction, the directions balanced across them. Every colour keeps both roles, every
ordered pair keeps at least three directions and every direction keeps most of its goals, so an
unseen goal is a new *combination* of known words. The choice is a function of ``seed`` alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from envs.clevr_robot import instructions as lang

SPLITS = ("train", "rephrase", "unseen", "unseen_rephrase")
"""Split names, in table order."""
NUM_PAIRS = len(lang.COLORS) * (len(lang.COLORS) - 1)
DEFAULT_HELDOUT = 16
"""Held-out goals by default: 16 of 80 (20%), four per direction."""


@dataclasses.dataclass(frozen=True)
class GoalSplit:
    """A seeded split of CLEVR-Robot's goals and templates (JSON round trip: ``to_dict`` /
    ``from_dict``)."""

    seed: int
    """What chose the held-out goals."""
    train_goals: tuple[int, ...]
    """Goal ids demonstrations and distillation see."""
    heldout_goals: tuple[int, ...]
    """Goal ids held out (the ``unseen`` splits)."""
    train_templates: tuple[int, ...] = lang.TEMPLATE_SPLITS["train"]
    heldout_templates: tuple[int, ...] = lang.TEMPLATE_SPLITS["test"]

    def goals(self, split: str) -> tuple[int, ...]:
        _check_split(split)
        return self.heldout_goals if split.startswith("unseen") else self.train_goals

    def templates(self, split: str) -> tuple[int, ...]:
        _check_split(split)
        return self.heldout_templates if split.endswith("rephrase") else self.train_templates

    def env_kwargs(self, split: str) -> dict[str, Any]:
        """``ClevrRobot`` arguments of a split's env: its goals and templates."""
        return {"goal_ids": list(self.goals(split)), "templates": list(self.templates(split))}

    def instructions(self, split: str) -> tuple[str, ...]:
        """Every instruction of a split (goal-major, as the split's env banks them)."""
        return tuple(lang.render(t, lang.GOALS[g]) for g in self.goals(split) for t in self.templates(split))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["heldout_goal_texts"] = [lang.render(0, lang.GOALS[g]) for g in self.heldout_goals]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GoalSplit":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields})


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")


def make_split(seed: int, num_heldout: int = DEFAULT_HELDOUT) -> GoalSplit:
    """Hold out ``num_heldout`` goals (at most one direction of each ordered pair, directions
    balanced), chosen by ``seed``."""
    if not 1 <= num_heldout <= NUM_PAIRS:
        raise ValueError(f"num_heldout must be in [1, {NUM_PAIRS}] (one goal per ordered pair at most), "
                         f"got {num_heldout}")
    rng = np.random.default_rng(int(seed))
    pairs = rng.permutation(NUM_PAIRS)[:num_heldout]  # pair p = 4 * src + dst_rank, as in goal ids
    n_dir = len(lang.DIRECTIONS)
    directions = np.resize(rng.permutation(n_dir), num_heldout)  # balanced: each direction ~n/4 times
    heldout = sorted(int(4 * p + d) for p, d in zip(pairs, directions))  # goal id = 16 src + 4 dst_rank + dir
    train = tuple(g for g in range(lang.NUM_GOALS) if g not in set(heldout))
    return GoalSplit(seed=int(seed), train_goals=train, heldout_goals=tuple(heldout))


def parse_goal(spec: str) -> int:
    """A goal id from ``"SRC,DST,DIRECTION"``, e.g. ``"red,blue,left"``."""
    parts = [p.strip().lower() for p in str(spec).split(",")]
    if len(parts) != 3 or parts[0] not in lang.COLORS or parts[1] not in lang.COLORS or parts[2] not in lang.DIRECTIONS:
        raise ValueError(f"goal {spec!r} is not SRC,DST,DIRECTION with colours from {list(lang.COLORS)} and a "
                         f"direction from {list(lang.DIRECTIONS)}, e.g. red,blue,left")
    if parts[0] == parts[1]:
        raise ValueError(f"goal {spec!r} names the same ball twice")
    return lang.goal_id(lang.COLORS.index(parts[0]), lang.COLORS.index(parts[1]), lang.DIRECTIONS.index(parts[2]))
