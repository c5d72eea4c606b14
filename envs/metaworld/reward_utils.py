"""JAX ports of ``metaworld.utils.reward_utils`` (dm_control's tolerance and friends).

Each function matches the NumPy original on the same inputs (tested side by side on random
inputs in ``tests/test_metaworld_env.py``). Static arguments (bounds, sigmoid names,
``value_at_margin``) are Python values; data arguments are JAX arrays or floats.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

_DEFAULT_VALUE_AT_MARGIN = 0.1


def _sigmoids(x, value_at_1: float, sigmoid: str):
    if sigmoid == "gaussian":
        scale = np.sqrt(-2 * np.log(value_at_1))
        return jnp.exp(-0.5 * (x * scale) ** 2)
    if sigmoid == "hyperbolic":
        scale = np.arccosh(1 / value_at_1)
        return 1 / jnp.cosh(x * scale)
    if sigmoid == "long_tail":
        scale = np.sqrt(1 / value_at_1 - 1)
        return 1 / ((x * scale) ** 2 + 1)
    if sigmoid == "reciprocal":
        scale = 1 / value_at_1 - 1
        return 1 / (jnp.abs(x) * scale + 1)
    if sigmoid == "cosine":
        scale = np.arccos(2 * value_at_1 - 1) / np.pi
        sx = x * scale
        return jnp.where(jnp.abs(sx) < 1, (1 + jnp.cos(np.pi * sx)) / 2, 0.0)
    if sigmoid == "linear":
        scale = 1 - value_at_1
        sx = x * scale
        return jnp.where(jnp.abs(sx) < 1, 1 - sx, 0.0)
    if sigmoid == "quadratic":
        scale = np.sqrt(1 - value_at_1)
        sx = x * scale
        return jnp.where(jnp.abs(sx) < 1, 1 - sx**2, 0.0)
    if sigmoid == "tanh_squared":
        scale = np.arctanh(np.sqrt(1 - value_at_1))
        return 1 - jnp.tanh(x * scale) ** 2
    raise ValueError(f"Unknown sigmoid type {sigmoid!r}.")


def tolerance(x, bounds=(0.0, 0.0), margin=0.0, sigmoid: str = "gaussian", value_at_margin: float = _DEFAULT_VALUE_AT_MARGIN):
    """1 inside ``bounds``, decaying with ``sigmoid`` outside; ``margin`` may be traced.

    A margin of exactly 0 gives a hard indicator, as in the original.
    """
    lower, upper = bounds
    x = jnp.asarray(x, jnp.float32)
    margin = jnp.asarray(margin, jnp.float32)
    in_bounds = jnp.logical_and(lower <= x, x <= upper)
    safe_margin = jnp.where(margin == 0, 1.0, margin)
    d = jnp.where(x < lower, lower - x, x - upper) / safe_margin
    soft = jnp.where(in_bounds, 1.0, _sigmoids(d, value_at_margin, sigmoid))
    hard = jnp.where(in_bounds, 1.0, 0.0)
    return jnp.where(margin == 0, hard, soft)


def hamacher_product(a, b):
    """The Hamacher t-norm ``a b / (a + b - a b)``; 0 when the denominator is 0."""
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    den = a + b - a * b
    return jnp.where(den > 0, a * b / jnp.where(den > 0, den, 1.0), 0.0)


def gripper_caging_reward(
    action,
    obj_pos,
    obj_radius: float,
    pad_success_thresh: float,
    object_reach_radius: float,
    xz_thresh: float,
    *,
    left_pad,
    right_pad,
    tcp,
    obj_init_pos,
    init_tcp,
    desired_gripper_effort: float = 1.0,
    high_density: bool = False,
    medium_density: bool = False,
):
    """``SawyerXYZEnv._gripper_caging_reward`` with the env's state passed in explicitly.

    ``left_pad``/``right_pad``: body positions of the pads; ``tcp``: the gripper centre
    (mean of the two end-effector sites); ``obj_init_pos``/``init_tcp``: from the reset.
    """
    if high_density and medium_density:
        raise ValueError("Can only be either high_density or medium_density")
    pad_y_lr = jnp.stack([left_pad[1], right_pad[1]])
    pad_to_obj_lr = jnp.abs(pad_y_lr - obj_pos[1])
    pad_to_objinit_lr = jnp.abs(pad_y_lr - obj_init_pos[1])
    caging_lr_margin = jnp.abs(pad_to_objinit_lr - pad_success_thresh)
    caging_lr = [
        tolerance(pad_to_obj_lr[i], bounds=(obj_radius, pad_success_thresh), margin=caging_lr_margin[i], sigmoid="long_tail")
        for i in range(2)
    ]
    caging_y = hamacher_product(*caging_lr)

    xz = jnp.array([0, 2])
    caging_xz_margin = jnp.linalg.norm(obj_init_pos[xz] - init_tcp[xz]) - xz_thresh
    caging_xz = tolerance(
        jnp.linalg.norm(tcp[xz] - obj_pos[xz]), bounds=(0, xz_thresh), margin=caging_xz_margin, sigmoid="long_tail"
    )
    gripper_closed = jnp.minimum(jnp.maximum(0.0, action[-1]), desired_gripper_effort) / desired_gripper_effort
    caging = hamacher_product(caging_y, caging_xz)
    gripping = jnp.where(caging > 0.97, gripper_closed, 0.0)
    caging_and_gripping = hamacher_product(caging, gripping)
    if high_density:
        caging_and_gripping = (caging_and_gripping + caging) / 2
    if medium_density:
        tcp_to_obj = jnp.linalg.norm(obj_pos - tcp)
        tcp_to_obj_init = jnp.linalg.norm(obj_init_pos - init_tcp)
        reach_margin = jnp.abs(tcp_to_obj_init - object_reach_radius)
        reach = tolerance(tcp_to_obj, bounds=(0, object_reach_radius), margin=reach_margin, sigmoid="long_tail")
        caging_and_gripping = (caging_and_gripping + reach) / 2
    return caging_and_gripping


def rect_prism_tolerance(curr, zero, one):
    """Product of the per-axis fractions of ``curr`` between ``zero`` and ``one`` inside the box, else 1."""

    def in_range(a, b, c):
        return jnp.where(c >= b, (b <= a) & (a <= c), (c <= a) & (a <= b))

    inside = in_range(curr[0], zero[0], one[0]) & in_range(curr[1], zero[1], one[1]) & in_range(curr[2], zero[2], one[2])
    diff = one - zero
    scale = (curr - zero) / jnp.where(diff == 0, 1.0, diff)
    return jnp.where(inside, scale[0] * scale[1] * scale[2], 1.0)


def quat_from_matrix_scipy(mat):
    """``scipy.spatial.transform.Rotation.from_matrix(mat).as_quat()`` in JAX: ``[x, y, z, w]``.

    Meta-World reports some object orientations this way (scalar last, scipy's sign choice),
    so the same branch rule is used: the largest of the diagonal and the trace picks the formula.
    """
    m = mat.reshape(3, 3)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    decision = jnp.stack([m[0, 0], m[1, 1], m[2, 2], tr])
    choice = jnp.argmax(decision)

    def diag_branch(i):
        j, k = (i + 1) % 3, (i + 2) % 3
        q = [None] * 4
        q[i] = 1 - tr + 2 * m[i, i]
        q[j] = m[j, i] + m[i, j]
        q[k] = m[k, i] + m[i, k]
        q[3] = m[k, j] - m[j, k]
        return jnp.stack(q)

    trace_branch = jnp.stack([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], 1 + tr])
    cands = jnp.stack([diag_branch(0), diag_branch(1), diag_branch(2), trace_branch])
    q = cands[choice]
    return q / jnp.linalg.norm(q)
