"""Data parallelism over devices and processes: the mesh, collective helpers and global env ids.

The training step runs under ``jax.shard_map`` over ``Mesh(np.array(jax.devices()), ("data",))``.
With JAX's distributed runtime started (:func:`initialize`: several processes, on one host or
many) ``jax.devices()`` holds every process's devices, each process steps the environments of
its own devices, and the same collectives reduce across processes (on CPU through gloo).
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


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, timeout_s: int = 120) -> bool:
    """Start JAX's distributed runtime (call before any other JAX work); returns whether it runs.

    With ``coordinator="HOST:PORT"``, ``num_processes`` and ``process_id`` it starts with those
    (every process passes the same coordinator, process 0 serves it). Without them it starts only
    where ``jax.distributed.initialize()`` can read them from the cluster (SLURM, Open MPI) and
    otherwise does nothing (one process). On CPU the collectives go through gloo. A process that
    cannot join every other one (process 0 not started, a wrong address or port) fails after
    ``timeout_s`` seconds with a RuntimeError naming the coordinator, instead of waiting on.
    """
    import os

    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise ValueError(f"multi-process training needs coordinator, num_processes and process_id together; got "
                         f"coordinator={coordinator!r}, num_processes={num_processes!r}, process_id={process_id!r}")
    if all(given):
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ValueError(f"process_id={process_id} must be in [0, num_processes={num_processes})")
        if ":" not in coordinator:
            raise ValueError(f"coordinator={coordinator!r} must be HOST:PORT")
    elif not any(k in os.environ for k in ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE")):
        return False
    if not (isinstance(timeout_s, int) and timeout_s >= 1):
        raise ValueError(f"timeout_s={timeout_s!r} must be a whole number of seconds >= 1")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if all(given):
        if process_id != 0:  # the runtime aborts the process when it cannot connect: look first
            _wait_for_coordinator(coordinator, timeout_s)
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id,
                                   initialization_timeout=timeout_s)
    else:
        jax.distributed.initialize(initialization_timeout=timeout_s)
    return True


def _wait_for_coordinator(coordinator: str, timeout_s: float) -> None:
    """Returns once ``HOST:PORT`` accepts TCP connections; RuntimeError naming it after
    ``timeout_s`` seconds without."""
    import socket
    import sys
    import time

    host, _, port = coordinator.rpartition(":")
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
                return
        except (OSError, ValueError) as e:
            if not told:
                print(f"waiting up to {timeout_s} s for the coordinator at {coordinator} (process 0)",
                      file=sys.stderr, flush=True)
                told = True
            if time.monotonic() >= deadline:
                raise RuntimeError(f"no coordinator answers at {coordinator} after {timeout_s} s ({e}); "
                                   "start process 0 with the same --coordinator, or check the address and "
                                   "port") from None
            time.sleep(0.5)


def is_main_process() -> bool:
    """Whether this process writes logs, tables and plots (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (nothing to wait for on one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def main_value(value: bool | int) -> bool | int:
    """Process 0's ``value`` (a bool or an int32) on every process; ``value`` itself on one process.

    For decisions taken from files that process 0 may write next (does this stage's output exist
    yet?): every process follows process 0's answer, so all take the same branch and their
    collective calls stay lined up, however their views of the filesystem or their timing differ.
    """
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    out = multihost_utils.broadcast_one_to_all(np.asarray(int(value), np.int32))
    return type(value)(int(out))


def check_same(value: int, what: str) -> None:
    """Raise ValueError on every process unless all processes pass the same ``value`` (e.g. a
    checksum of their settings; compared in its low 31 bits); nothing to compare on one process.
    ``what`` names it in the error."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    try:
        multihost_utils.assert_equal(np.asarray(int(value) & 0x7FFFFFFF, np.int32), what)
    except AssertionError:
        raise ValueError(f"the {jax.process_count()} processes differ in {what}; start every process with the "
                         "same settings") from None


def to_local(tree):
    """Host-local copies of the replicated arrays in ``tree`` (uncommitted, like fresh ``jnp``
    arrays), e.g. a prior distilled over every device: each process can then use them in its own
    single-device programs (evaluation), mixed with arrays on one device, and pass them to
    programs on any mesh. Returns ``tree`` unchanged when there is only one device."""
    if jax.device_count() == 1:
        return tree

    def local(x):
        if isinstance(x, jax.Array):
            if not x.is_fully_replicated:
                raise ValueError(f"to_local needs replicated arrays; got one of shape {x.shape} sharded as "
                                 f"{x.sharding}")
            return jnp.asarray(np.asarray(x.addressable_data(0)))
        return x

    return jax.tree.map(local, tree)


def make_mesh(devices=None) -> Mesh:
    """A 1-d mesh over ``devices`` (default: every device of every process) with axis ``"data"``."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (AXIS,))


def put_global(tree, shardings):
    """``tree`` (the same host values on every process) placed with ``shardings`` (a pytree of
    ``NamedSharding``), each process filling only its own devices. Equals ``jax.device_put`` on
    one process, where it is what runs."""
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)

    def put(x, sharding):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree, shardings)


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
