"""Pure-functional environments for lago-jax.

Every environment follows one API (see :mod:`envs.core`): ``env.reset(key) -> State`` and
``env.step(state, action) -> State``, both pure and jittable. Wrappers in :mod:`envs.wrappers`
add batching, episode limits, auto-reset and episode statistics.
"""

from envs.core import BatchedEnv, Box, Discrete, Env, State

__all__ = ["BatchedEnv", "Box", "Discrete", "Env", "State"]
