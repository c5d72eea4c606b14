"""Meta-World instruction paraphrases: coverage, distinctness, variety, errors."""

from __future__ import annotations

import collections

import pytest

from envs.metaworld import instructions
from envs.metaworld.policies import POLICIES

MT10 = tuple(POLICIES)


def _normalize(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".?!").split())


def test_every_mt10_task_has_instructions():
    assert set(MT10) <= set(instructions.INSTRUCTIONS)


@pytest.mark.parametrize("task", MT10)
def test_at_least_ten_distinct_paraphrases(task):
    texts = instructions.instructions_for(task)
    assert isinstance(texts, tuple)
    assert all(isinstance(t, str) and t.strip() == t and t for t in texts)
    assert len({_normalize(t) for t in texts}) >= 10
    assert len(texts) == len({_normalize(t) for t in texts}), "duplicate paraphrase"
    # Varied syntax: at least one question and one polite request next to the imperatives.
    assert any(t.endswith("?") for t in texts)
    assert any("please" in t.lower() for t in texts)
    assert all(t[-1] in ".?!" for t in texts)


def test_no_instruction_is_shared_between_tasks():
    owners = collections.defaultdict(set)
    for task, texts in instructions.INSTRUCTIONS.items():
        for t in texts:
            owners[_normalize(t)].add(task)
    shared = {t: sorted(o) for t, o in owners.items() if len(o) > 1}
    assert not shared, shared


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid tasks.*reach-v3"):
        instructions.instructions_for("reach-v2")
