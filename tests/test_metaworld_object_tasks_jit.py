"""Parity with native and jitted random rollouts without NaN: push, pick-place, peg-insert-side and
button-press-topdown (see ``metaworld_task_rollouts.py``; reach is covered elsewhere, said there)."""

import pytest

from metaworld_task_rollouts import FIXTURE_TASKS, OBJECT_TASKS, check_task_rollout


@pytest.mark.parametrize("task_name", OBJECT_TASKS)
def test_task_jits_without_nan(task_name):
    check_task_rollout(task_name)


def test_the_two_modules_cover_mt10():
    from envs.metaworld import MT10_TASKS

    assert sorted(("reach-v3",) + OBJECT_TASKS + FIXTURE_TASKS) == sorted(MT10_TASKS)
