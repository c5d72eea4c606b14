"""Which MJX implementation runs the physics: ``"jax"`` (MJX's own, every platform) or ``"warp"``
(MuJoCo Warp behind the MJX API: NVIDIA GPUs, mujoco and mujoco-mjx >= 3.3.5).

The envs build their device model and data through :func:`put_model` and :func:`make_data`, so an
``impl`` argument on an env reaches MJX in one place. ``"warp"`` is refused with a clear message
where it cannot run (an older mujoco, or no GPU backend) instead of failing deep inside MJX.
Install for Warp (CUDA 12 machine; metaworld 3.1.1 pins mujoco 3.3.0, so it goes in without its
dependencies, as in ``requirements-gpu.txt``)::

    pip install "mujoco==3.3.5" "mujoco-mjx[warp]==3.3.5" && pip install --no-deps metaworld==3.1.1
"""

from __future__ import annotations

import warnings

import jax
import mujoco
from mujoco import mjx

# MJX's box-box collision writes ``jnp.where(isinf(dist), jnp.finfo(float).max, dist)``: under
# float32 the float64 maximum is cast to inf while tracing, which NumPy reports once per trace as
# "overflow encountered in cast". The value meant (an unbounded distance) is what inf is; the
# warning says nothing about the run, so it is not shown.
warnings.filterwarnings("ignore", message="overflow encountered in cast", category=RuntimeWarning,
                        module=r"jax\._src\.core")

IMPLS = ("jax", "warp")
WARP_MIN_VERSION = (3, 3, 5)
WARP_INSTALL = 'pip install "mujoco==3.3.5" "mujoco-mjx[warp]==3.3.5" && pip install --no-deps metaworld==3.1.1'


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_impl(impl: str, mujoco_version: str | None = None, backend: str | None = None) -> str:
    """``impl`` if this machine can run it, else a ``ValueError`` naming what is missing."""
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is not one of {IMPLS}")
    if impl == "warp":
        version = mujoco.__version__ if mujoco_version is None else mujoco_version
        if _version(version) < WARP_MIN_VERSION:
            need = ".".join(map(str, WARP_MIN_VERSION))
            raise ValueError(f"impl='warp' needs mujoco and mujoco-mjx >= {need}; this environment has mujoco "
                             f"{version} ({WARP_INSTALL})")
        platform = jax.default_backend() if backend is None else backend
        if platform != "gpu":
            raise ValueError(f"impl='warp' runs on NVIDIA GPUs only; JAX's backend here is {platform!r} "
                             "(use impl='jax')")
    return impl


def put_model(mj_model: mujoco.MjModel, impl: str = "jax") -> mjx.Model:
    """``mjx.put_model`` for ``impl`` (checked by :func:`check_impl`)."""
    if check_impl(impl) == "jax":
        return mjx.put_model(mj_model)
    return mjx.put_model(mj_model, impl=impl)  # mujoco-mjx >= 3.3.5


def make_data(model: mujoco.MjModel | mjx.Model, impl: str = "jax") -> mjx.Data:
    """``mjx.make_data`` for ``impl``."""
    if check_impl(impl) == "jax":
        return mjx.make_data(model)
    return mjx.make_data(model, impl=impl)  # mujoco-mjx >= 3.3.5
