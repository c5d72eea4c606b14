"""Observation normalisation: one ``standardize`` and the two kinds of statistics it is given.

* :class:`ObsNormStats` (``count``, ``mean``, ``var``): PPO's statistics, merged batch by batch
  as the data arrives (:func:`update_obs_norm`, a parallel Welford update whose batch moments are
  averaged over devices), applied as ``(obs - mean) / sqrt(var + OBS_EPS)``.
* :class:`ObsNorm` (``mean``, ``std``): a prior's statistics, computed once from the
  demonstrations' training split (:func:`compute_obs_norm`) and frozen with the prior, applied as
  ``(obs - mean) / std`` and clipped to ``+-OBS_NORM_CLIP``.

The two differ in what they are for, not in how they normalise: the policy's inputs drift as it
learns, so its statistics must follow the data; the prior was fitted to fixed demonstrations, and
it must see the inputs it was fitted on for as long as it is used.
"""

from __future__ import annotations

from typing import Union

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from lago_jax import parallel

OBS_EPS = 1e-8
"""Added to the running variance before its square root."""
OBS_NORM_CLIP = 10.0
"""A prior's normalised observations are clipped to [-OBS_NORM_CLIP, OBS_NORM_CLIP]."""


def standardize(x: jax.Array, mean: jax.Array, std: jax.Array, clip: float | None = None) -> jax.Array:
    """``(x - mean) / std``, clipped to ``+-clip`` when ``clip`` is given."""
    z = (x - mean) / std
    return z if clip is None else jnp.clip(z, -clip, clip)


@struct.dataclass
class ObsNormStats:
    """Running observation statistics. ``count`` scalar; ``mean, var [obs_dim]`` float32."""

    count: jax.Array
    mean: jax.Array
    var: jax.Array

    @classmethod
    def create(cls, obs_dim: int) -> "ObsNormStats":
        return cls(
            count=jnp.asarray(OBS_EPS, jnp.float32),
            mean=jnp.zeros((obs_dim,), jnp.float32),
            var=jnp.ones((obs_dim,), jnp.float32),
        )


def normalize_obs(stats: ObsNormStats, obs: jax.Array, enabled: bool = True, clip: float | None = None) -> jax.Array:
    """``obs [..., D]`` -> ``(obs - mean) / sqrt(var + OBS_EPS)``, clipped to ``+-clip`` when
    ``clip`` is given (identity when not enabled)."""
    if not enabled:
        return obs
    return standardize(obs, stats.mean, jnp.sqrt(stats.var + OBS_EPS), clip)


def update_obs_norm(stats: ObsNormStats, obs: jax.Array, axis_name: str | None = None) -> ObsNormStats:
    """Merge a batch ``obs [N, D]`` into ``stats`` (parallel Welford / Chan et al. update).

    Under data parallelism every device holds ``N`` rows; the batch mean and second moment are
    averaged over ``axis_name``, so all devices get the statistics of the global batch.
    """
    chex.assert_rank(obs, 2)
    n_dev = parallel.axis_size(axis_name)
    batch_mean = parallel.pmean(jnp.mean(obs, axis=0), axis_name)
    batch_sq = parallel.pmean(jnp.mean(jnp.square(obs - batch_mean), axis=0), axis_name)
    batch_count = jnp.asarray(obs.shape[0] * n_dev, jnp.float32)
    total = stats.count + batch_count
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * batch_count / total
    m2 = stats.var * stats.count + batch_sq * batch_count + jnp.square(delta) * stats.count * batch_count / total
    return ObsNormStats(count=total, mean=mean, var=m2 / total)


@struct.dataclass
class ObsNorm:
    """Fixed observation statistics (computed from the demonstrations, never trained).

    Attributes:
      mean: [O] float32.
      std: [O] float32, strictly positive (constant features get std 1).
    """

    mean: jax.Array
    std: jax.Array

    def normalize(self, obs_bo: jax.Array) -> jax.Array:
        """[B, O] raw -> [B, O] normalised and clipped to +-OBS_NORM_CLIP."""
        return standardize(obs_bo.astype(jnp.float32), self.mean, self.std, OBS_NORM_CLIP)


def identity_obs_norm(obs_dim: int) -> ObsNorm:
    return ObsNorm(mean=jnp.zeros((obs_dim,), jnp.float32), std=jnp.ones((obs_dim,), jnp.float32))


def compute_obs_norm(obs_no: Union[np.ndarray, jax.Array], min_std: float = 1e-6) -> ObsNorm:
    """Per-feature mean and std of ``obs [N, O]`` (host, float64); std < min_std becomes 1."""
    obs = np.asarray(obs_no, np.float64)
    if obs.ndim != 2 or obs.shape[0] == 0:
        raise ValueError(f"compute_obs_norm needs observations [N, O] with N > 0, got shape {obs.shape}")
    if not np.all(np.isfinite(obs)):
        raise ValueError("compute_obs_norm: observations contain NaN or inf")
    mean = obs.mean(axis=0)
    std = obs.std(axis=0)
    std = np.where(std < min_std, 1.0, std)
    return ObsNorm(mean=jnp.asarray(mean, jnp.float32), std=jnp.asarray(std, jnp.float32))
