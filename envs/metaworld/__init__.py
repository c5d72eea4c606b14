"""Meta-World (MT10 first) in MJX: models built from the installed metaworld assets, v2 rewards.

``MetaWorldEnv(task_name)`` is one task; ``MT10Env`` batches several tasks, one sub-batch per
task; ``model_edits(task_name)`` lists the MJX edits made to that task's model, with reasons.
"""

from envs.metaworld.env import MetaWorldEnv, MT10Env
from envs.metaworld.model import model_edits
from envs.metaworld.tasks import MT10_TASKS, TASKS, get_task

__all__ = ["MetaWorldEnv", "MT10Env", "MT10_TASKS", "TASKS", "get_task", "model_edits"]
