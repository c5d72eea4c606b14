"""Jitted random rollouts without NaN: the door, drawer and window tasks (see ``metaworld_task_rollouts.py``)."""

import pytest

from metaworld_task_rollouts import FIXTURE_TASKS, check_task_rollout


@pytest.mark.parametrize("task_name", FIXTURE_TASKS)
def test_task_jits_without_nan(task_name):
    check_task_rollout(task_name)
