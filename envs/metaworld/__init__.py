"""Meta-World (MT10 first) in JAX: models from the installed metaworld assets, v2 rewards.

``MetaWorldEnv(task_name)`` is one task, stepped by MJX (``backend="mjx"``) or by MuJoCo's C
engine on the unedited model (``backend="mujoco"``, exact to native); ``MT10Env`` batches several
tasks, one sub-batch per task; ``model_edits(task_name)`` lists the MJX edits made to that task's
model, with reasons. ``NATIVE_TASKS`` run on the C engine only.
"""

from envs.metaworld.env import MetaWorldEnv, MT10Env
from envs.metaworld.native_tasks import KALM_UNSEEN_TASKS, NATIVE_TASKS
from envs.metaworld.tasks import MT10_TASKS, TASKS, get_task, model_edits

__all__ = ["MetaWorldEnv", "MT10Env", "MT10_TASKS", "TASKS", "NATIVE_TASKS", "KALM_UNSEEN_TASKS", "get_task",
           "model_edits"]
