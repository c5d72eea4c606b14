"""Data parallelism over local devices: the mesh, collective helpers and global env ids.

The training step runs under ``jax.shard_map`` over ``Mesh(np.array(jax.devices()), ("data",))``.
Each device steps its own slice of the environments (the env batch axis is sharded over
``"data"``); parameters, optimiser state, observation statistics, beta and the RNG key are
replicated. Gradients, observation statistics, advantage statistics and metrics are averaged
with ``lax.pmean``. Every helper here accepts ``axis_name=None`` and then does nothing, so
the same step function serves one device and many.

Layout that makes N devices x B envs equal to 1 device x N*B envs (same seed):
* environment ``j`` of device ``d`` has the global id ``d * B + j``; its per-step sampling key is
  ``fold_in(step_key, global_id)`` and its minibatch shuffle key ``fold_in(epoch_key, global_id)``;
* every minibatch takes the same number of time steps from every environment, so the mean of
  the per-device minibatch means is the global minibatch mean.
Only floating-point summation order differs between the two layouts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-d mesh over ``devices`` (default: all local devices) with axis ``"data"``."""
    devices = jax.local_devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (AXIS,))


def pmean(x, axis_name: str | None):
    """``lax.pmean`` over ``axis_name`` for every leaf of ``x``; identity when ``axis_name`` is None."""
    if axis_name is None:
        return x
    return jax.tree.map(lambda v: lax.pmean(v, axis_name), x)


def axis_size(axis_name: str | None) -> int:
    """Number of devices along ``axis_name`` (1 when None)."""
    if axis_name is None:
        return 1
    return lax.axis_size(axis_name)


def global_env_ids(local_num_envs: int, axis_name: str | None) -> jax.Array:
    """Global ids ``[local_num_envs]`` int32 of this device's environments."""
    ids = jnp.arange(local_num_envs, dtype=jnp.int32)
    if axis_name is None:
        return ids
    return ids + lax.axis_index(axis_name).astype(jnp.int32) * local_num_envs


def env_sharded_spec(tree) -> object:
    """``P("data")`` for every leaf of ``tree`` (the env batch axis 0 is split over devices)."""
    return jax.tree.map(lambda _: P(AXIS), tree)


def replicated_spec(tree) -> object:
    """``P()`` for every leaf of ``tree``."""
    return jax.tree.map(lambda _: P(), tree)
