"""CLEVR-Robot goals and their natural-language instructions (host side only).

A goal is ``(src, dst, direction)``: move ball ``src`` so it lies in ``direction`` of ball
``dst``. Balls are indexed by :data:`COLORS`; directions by :data:`DIRECTIONS` (KALM's order:
0 behind = +y, 1 left = -x, 2 front = -y, 3 right = +x). :data:`GOALS` enumerates all
``5 * 4 * 4 = 80`` goals, ``goal_id = 16 * src + 4 * dst_rank + direction`` where ``dst_rank``
is ``dst``'s position among the balls other than ``src``.

:data:`TEMPLATES` holds paraphrases of a goal; :func:`render` fills one in. The env's
instruction list is ``[render(t, g) for g in goals for t in templates]``, so
``instruction_id = goal_id * len(templates) + template_slot``. Templates 0..19 are the
``"train"`` split, 20..25 the ``"test"`` split (held-out phrasings).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

COLORS = ("red", "blue", "green", "purple", "cyan")
DIRECTIONS = ("behind", "left", "front", "right")
# unit vectors of the directions, in the table's x, y
DIRECTION_VECTORS = np.array([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]], np.float32)

# relation phrases: ``rel`` reads "... the red ball {rel} the blue ball"; ``rel_short`` is terser.
_REL = {"behind": "behind", "left": "to the left of", "front": "in front of", "right": "to the right of"}
_REL_SHORT = {"behind": "behind", "left": "left of", "front": "in front of", "right": "right of"}

TEMPLATES = (
    "Push the {src} ball {rel} the {dst} ball.",
    "Can you move the {src} ball {rel_short} the {dst} ball?",
    "Move the {src} ball {rel} the {dst} ball.",
    "Put the {src} ball {rel} the {dst} ball.",
    "Place the {src} sphere {rel} the {dst} sphere.",
    "I want the {src} ball {rel} the {dst} ball.",
    "The {src} ball should end up {rel} the {dst} ball.",
    "Get the {src} ball {rel} the {dst} ball.",
    "Slide the {src} ball {rel} the {dst} one.",
    "Could you push the {src} ball so it is {rel} the {dst} ball?",
    "Make the {src} ball sit {rel} the {dst} ball.",
    "Position the {src} sphere {rel} the {dst} sphere.",
    "Please move the {src} ball {rel} the {dst} ball.",
    "Rearrange the balls so that the {src} ball is {rel} the {dst} ball.",
    "Shift the {src} ball {rel_short} the {dst} ball.",
    "Nudge the {src} ball until it is {rel} the {dst} ball.",
    "Bring the {src} ball {rel} the {dst} ball.",
    "Move the {src} object {rel} the {dst} object.",
    "Find the {src} ball and push it {rel} the {dst} ball.",
    "Set the {src} ball {rel} the {dst} ball.",
    # held-out phrasings (the "test" split)
    "Roll the {src} ball {rel} the {dst} ball.",
    "Your task: the {src} ball goes {rel} the {dst} ball.",
    "Take the {src} ball and place it {rel} the {dst} ball.",
    "Can you put the {src} ball {rel_short} the {dst} ball?",
    "The {dst} ball needs the {src} ball {rel} it.",
    "Is it possible to have the {src} ball {rel} the {dst} ball?",
)
TEMPLATE_SPLITS = {
    "all": tuple(range(len(TEMPLATES))),
    "train": tuple(range(20)),
    "test": tuple(range(20, len(TEMPLATES))),
}


def _enumerate_goals() -> np.ndarray:
    goals = []
    for src in range(len(COLORS)):
        for dst in [b for b in range(len(COLORS)) if b != src]:
            for direction in range(len(DIRECTIONS)):
                goals.append((src, dst, direction))
    return np.array(goals, np.int32)


GOALS = _enumerate_goals()  # [80, 3] int32: (src, dst, direction)
NUM_GOALS = len(GOALS)


def goal_id(src: int, dst: int, direction: int) -> int:
    """Index of ``(src, dst, direction)`` in :data:`GOALS`."""
    if src == dst or not (0 <= src < len(COLORS) and 0 <= dst < len(COLORS)):
        raise ValueError(f"need two different balls in [0, {len(COLORS)}), got src={src} dst={dst}")
    if not 0 <= direction < len(DIRECTIONS):
        raise ValueError(f"direction must be in [0, {len(DIRECTIONS)}), got {direction}")
    dst_rank = dst - (dst > src)
    return 16 * src + 4 * dst_rank + direction


def render(template: int, goal: Sequence[int]) -> str:
    """The text of template ``template`` for goal ``(src, dst, direction)``."""
    src, dst, direction = (int(x) for x in goal)
    word = DIRECTIONS[direction]
    return TEMPLATES[template].format(src=COLORS[src], dst=COLORS[dst], rel=_REL[word], rel_short=_REL_SHORT[word])


def resolve_templates(templates: Sequence[int] | str | int | None) -> tuple[int, ...]:
    """Template indices from a split name (``"all"``, ``"train"``, ``"test"``), a count ``k``
    (the first ``k``), a sequence of indices, or None (all)."""
    if templates is None:
        return TEMPLATE_SPLITS["all"]
    if isinstance(templates, str):
        if templates not in TEMPLATE_SPLITS:
            raise ValueError(f"unknown template split {templates!r}; expected one of {sorted(TEMPLATE_SPLITS)}")
        return TEMPLATE_SPLITS[templates]
    if isinstance(templates, (int, np.integer)):
        templates = range(int(templates))
    out = tuple(int(t) for t in templates)
    if not out:
        raise ValueError("templates must name at least one template")
    bad = [t for t in out if not 0 <= t < len(TEMPLATES)]
    if bad or len(set(out)) != len(out):
        raise ValueError(f"templates must be distinct indices in [0, {len(TEMPLATES)}), got {list(out)}")
    return out


def instruction_texts(templates: Sequence[int]) -> tuple[str, ...]:
    """All instructions, goal-major: entry ``goal_id * len(templates) + slot``."""
    return tuple(render(t, g) for g in GOALS for t in templates)
