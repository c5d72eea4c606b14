"""CLEVR-Robot with language goals: MJX physics, instructions, a scripted oracle.

* :mod:`.scene`: the MJCF scene built in code and its ``MjModel``.
* :mod:`.env`: :class:`ClevrRobot`, the pure-functional env (discrete pushes, 24-d obs).
* :mod:`.instructions`: goals, paraphrase templates, rendering to text.
* :mod:`.oracle`: the scripted policy that makes demonstrations, and the random floor.
"""

from envs.clevr_robot.env import ClevrRobot, decode_obs, goal_satisfied, relation_holds, sample_layout
from envs.clevr_robot.instructions import COLORS, DIRECTIONS, GOALS, TEMPLATES, TEMPLATE_SPLITS
from envs.clevr_robot.oracle import oracle_policy, random_policy

__all__ = [
    "COLORS",
    "DIRECTIONS",
    "GOALS",
    "TEMPLATES",
    "TEMPLATE_SPLITS",
    "ClevrRobot",
    "decode_obs",
    "goal_satisfied",
    "oracle_policy",
    "random_policy",
    "relation_holds",
    "sample_layout",
]
