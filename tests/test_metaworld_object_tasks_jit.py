"""Jitted random rollouts without NaN: reach, push, pick-place, peg-insert-side and button-press-topdown (see ``metaworld_task_rollouts.py``)."""

import pytest

from metaworld_task_rollouts import FIXTURE_TASKS, OBJECT_TASKS, check_task_rollout


@pytest.mark.parametrize("task_name", OBJECT_TASKS)
def test_task_jits_without_nan(task_name):
    check_task_rollout(task_name)


def test_the_two_modules_cover_mt10():
    from envs.metaworld import MT10_TASKS

    assert sorted(OBJECT_TASKS + FIXTURE_TASKS) == sorted(MT10_TASKS)
