"""CLEVR-Robot physics on MuJoCo's C engine, callable from jitted JAX code.

MJX runs the scene's 40 physics steps per push as batched XLA programs; on a CPU that is far
slower than MuJoCo's own engine (``benchmarks/RESULTS_clevr.md``: MJX 170-200 pushes/s on 2
cores at any batch size, the C engine through ``mujoco.rollout`` with 2 threads 2,000+). This
backend steps the *same* ``MjModel`` with the C engine: the env state keeps ``qpos``/``qvel``
as JAX arrays (:class:`NativeData`), and :func:`push` hands a whole batch of pushes to
``mujoco.rollout`` (multithreaded, GIL released) through ``jax.pure_callback``, so a training
update stays one jitted program and ``vmap``/``scan`` over the env work as with MJX.

Each push starts from the stored ``qpos``/``qvel`` with a zero solver warm start, so a push's
result depends only on that env's own state and action: independent of the batch it runs in,
the thread that ran it and the pushes before it. Between pushes the state is held in float32
(as in MJX). ``tests/test_clevr_env.py`` holds this backend to MJX and to ``push_reference``.
"""

from __future__ import annotations

import os
import threading

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import rollout

from envs.clevr_robot import scene


@struct.dataclass
class NativeData:
    """The physics state the C-engine backend carries between env steps: ``qpos [nq]``,
    ``qvel [nv]`` float32 (leading batch axes under ``vmap``)."""

    qpos: jax.Array
    qvel: jax.Array


class NativePhysics:
    """A thread pool and per-thread ``MjData`` stepping one ``MjModel`` (host side).

    Args:
      model: the scene's ``MjModel``; its state must be ``time, qpos, qvel`` (no actuator
        activations or plugins), as the CLEVR scene's is.
      push_offset, push_control, push_steps, directions, ball_xy_qpos:
        the push's definition (see :mod:`envs.clevr_robot.env`).
      num_threads: threads of ``mujoco.rollout`` (default: the CPU count).
    """

    _SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS

    def __init__(self, model: mujoco.MjModel, *, push_offset: float, push_control: float, push_steps: int,
                 directions: np.ndarray, ball_xy_qpos: np.ndarray, num_threads: int | None = None):
        nstate = mujoco.mj_stateSize(model, self._SPEC)
        if nstate != 1 + model.nq + model.nv:
            raise ValueError(f"NativePhysics needs a model whose full physics state is time, qpos, qvel "
                             f"({1 + model.nq + model.nv} numbers); this one has {nstate} (activations or plugins)")
        self.model = model
        self.nq, self.nv = int(model.nq), int(model.nv)
        self.push_offset = float(push_offset)
        self.push_control = float(push_control)
        self.push_steps = int(push_steps)
        self.directions = np.asarray(directions, np.float64)
        self.ball_xy_qpos = np.asarray(ball_xy_qpos, np.int64)
        n = int(num_threads) if num_threads else (os.cpu_count() or 1)
        if n < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.num_threads = n
        self._datas = [mujoco.MjData(model) for _ in range(n)]
        self._pool = rollout.Rollout(nthread=n) if n > 1 else None
        self._lock = threading.Lock()  # one batch at a time through the pool and its MjData

    def push_host(self, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NumPy: ``qpos [..., nq]``, ``qvel [..., nv]``, ``action [...]`` int -> (qpos, qvel) float32
        after the push (teleport the pusher behind the ball, then ``push_steps`` physics steps)."""
        batch_shape = np.shape(action)
        action = np.asarray(action, np.int64).reshape(-1)
        b = action.shape[0]
        qpos = np.array(qpos, np.float64).reshape(b, self.nq)
        qvel = np.array(qvel, np.float64).reshape(b, self.nv)
        if b == 0:
            return qpos.astype(np.float32).reshape(batch_shape + (self.nq,)), qvel.astype(np.float32).reshape(
                batch_shape + (self.nv,))
        k = len(self.directions)
        ball, direction = action // k, self.directions[action % k]
        ball_xy = np.take_along_axis(qpos, self.ball_xy_qpos[ball], axis=1)  # [B, 2]
        p, v = scene.PUSHER_QPOS, scene.PUSHER_QVEL
        qpos[:, p : p + 2] = ball_xy - self.push_offset * direction
        qvel[:, v : v + 2] = 0.0
        state0 = np.concatenate([np.zeros((b, 1)), qpos, qvel], axis=1)
        control = (self.push_control * direction)[:, None, :]  # [B, 1, nu], the same at every step
        warm = np.zeros((b, self.nv))
        with self._lock:
            if self._pool is None:
                out, _ = rollout.rollout(self.model, self._datas[0], state0, control, nstep=self.push_steps,
                                         initial_warmstart=warm)
            else:
                out, _ = self._pool.rollout(self.model, self._datas, state0, control, nstep=self.push_steps,
                                            initial_warmstart=warm)
        last = out[:, -1]
        new_qpos = last[:, 1 : 1 + self.nq].astype(np.float32).reshape(batch_shape + (self.nq,))
        new_qvel = last[:, 1 + self.nq :].astype(np.float32).reshape(batch_shape + (self.nv,))
        return new_qpos, new_qvel

    def push(self, data: NativeData, action: jax.Array) -> NativeData:
        """The push as a JAX function (``pure_callback``; batches under ``vmap`` reach the host as
        one call)."""
        shapes = (jax.ShapeDtypeStruct(data.qpos.shape, jnp.float32), jax.ShapeDtypeStruct(data.qvel.shape, jnp.float32))
        qpos, qvel = jax.pure_callback(self.push_host, shapes, data.qpos, data.qvel, action.astype(jnp.int32),
                                       vmap_method="broadcast_all")
        return NativeData(qpos=qpos, qvel=qvel)
