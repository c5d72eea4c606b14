"""Scripted expert policies for the MT10 tasks, in pure JAX.

Each policy is a line-by-line port of the task's policy class in ``metaworld.policies``
(``_parse_obs``, ``_desired_pos``, ``_grab_effort`` and the ``move`` helper of
``metaworld/policies/policy.py``): a proportional controller toward a waypoint chosen by a
few geometric tests on the observation. Branches become ``jnp.where`` / ``jnp.select`` on
scalar predicates, so every policy jits, vmaps and runs inside ``lax.scan``.

Signature of every policy: ``policy(obs [39] float32) -> action [4] float32``. Batch with
``jax.vmap(policy)``. As in Meta-World, the action is *not* clipped: several policies use
gains (``p`` up to 50) whose output leaves ``[-1, 1]``, and the environment clips it.

Observation layout (Meta-World v3, 39-d): ``[0:3]`` hand position, ``[3]`` gripper
openness, ``[4:7]`` first object position, ``[7:11]`` its quaternion, ``[11:18]`` second
object slot, ``[18:36]`` the previous frame's first 18 entries, ``[36:39]`` goal position.

``tests/test_metaworld_policies.py`` checks every policy against Meta-World's own class on
observations from the native environment.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

OBS_SIZE = 39
ACTION_SIZE = 4

Policy = Callable[[jax.Array], jax.Array]


# ----------------------------------------------------------------------------- helpers


def _hand(obs: jax.Array) -> jax.Array:
    """Hand (end-effector) position ``[3]``."""
    return obs[0:3]


def _gripper(obs: jax.Array) -> jax.Array:
    """Gripper openness (scalar; ~1 open, smaller when closed on something)."""
    return obs[3]


def _obj(obs: jax.Array) -> jax.Array:
    """First object position ``[3]`` (puck, handle, button, peg, window, ...)."""
    return obs[4:7]


def _goal(obs: jax.Array) -> jax.Array:
    """Goal position ``[3]`` (zeros where the task hides it)."""
    return obs[36:39]


def _norm(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(x)))


def _move(from_xyz: jax.Array, to_xyz: jax.Array, p) -> jax.Array:
    """Meta-World's ``move``: proportional response ``p * (to - from)``, unclipped."""
    return p * (to_xyz - from_xyz)


def _first(conditions: list[jax.Array], choices: list[jax.Array], default: jax.Array) -> jax.Array:
    """The choice of the first true condition, else ``default`` (an if/elif/else chain)."""
    return jnp.select(conditions, [jnp.broadcast_to(c, default.shape) for c in choices], default)


def _action(delta_pos: jax.Array, grab_effort) -> jax.Array:
    """Pack ``[dx, dy, dz, grab]`` as float32 ``[4]``."""
    grab = jnp.reshape(jnp.asarray(grab_effort, jnp.float32), (1,))
    return jnp.concatenate([delta_pos.astype(jnp.float32), grab])


def _vec(*xs: float) -> jax.Array:
    return jnp.asarray(xs, jnp.float32)


def _as_obs(obs: jax.Array) -> jax.Array:
    obs = jnp.asarray(obs, jnp.float32)
    if obs.shape != (OBS_SIZE,):
        raise ValueError(
            f"Meta-World policies take one observation of shape ({OBS_SIZE},), got {obs.shape}; "
            "use jax.vmap(policy) for a batch"
        )
    return obs


# ----------------------------------------------------------------------------- policies


def reach_policy(obs: jax.Array) -> jax.Array:
    """reach-v3: move straight to the goal, gripper relaxed (p = 5)."""
    obs = _as_obs(obs)
    return _action(_move(_hand(obs), _goal(obs), 5.0), 0.0)


def push_policy(obs: jax.Array) -> jax.Array:
    """push-v3: hover over the puck, drop onto it, close lightly, push it to the goal (p = 10)."""
    obs = _as_obs(obs)
    hand, puck_raw, goal = _hand(obs), _obj(obs), _goal(obs)
    puck = puck_raw + _vec(-0.005, 0.0, 0.0)
    far_xy = _norm(hand[:2] - puck[:2]) > 0.02
    far_z = jnp.abs(hand[2] - puck[2]) > 0.04
    desired = _first(
        [far_xy, far_z],
        [puck + _vec(0.0, 0.0, 0.2), puck + _vec(0.0, 0.0, 0.03)],
        goal,
    )
    # The grab test uses the puck position without the x offset, as in Meta-World.
    release = (_norm(hand[:2] - puck_raw[:2]) > 0.02) | (jnp.abs(hand[2] - puck_raw[2]) > 0.10)
    grab = jnp.where(release, 0.0, 0.6)
    return _action(_move(hand, desired, 10.0), grab)


def pick_place_policy(obs: jax.Array) -> jax.Array:
    """pick-place-v3: hover, descend, close and wait for the grip, carry to the goal (p = 10)."""
    obs = _as_obs(obs)
    hand, puck_raw, goal = _hand(obs), _obj(obs), _goal(obs)
    puck = puck_raw + _vec(-0.005, 0.0, 0.0)
    far_xy = _norm(hand[:2] - puck[:2]) > 0.02
    descend = (jnp.abs(hand[2] - puck[2]) > 0.05) & (puck[2] < 0.04)
    still_open = _gripper(obs) > 0.73
    desired = _first(
        [far_xy, descend, still_open],
        [puck + _vec(0.0, 0.0, 0.1), puck + _vec(0.0, 0.0, 0.03), hand],
        goal,
    )
    grab = jnp.where(_norm(hand - puck_raw) < 0.07, 1.0, 0.0)
    return _action(_move(hand, desired, 10.0), grab)


def door_open_policy(obs: jax.Array) -> jax.Array:
    """door-open-v3: come down in front of the handle's edge, then pull it open (p = 25)."""
    obs = _as_obs(obs)
    hand = _hand(obs)
    door = _obj(obs) + _vec(-0.05, 0.0, 0.0)
    far_xy = _norm(hand[:2] - door[:2]) > 0.12
    far_z = jnp.abs(hand[2] - door[2]) > 0.04
    desired = _first(
        [far_xy, far_z],
        [door + _vec(0.06, 0.02, 0.2), door + _vec(0.06, 0.02, 0.0)],
        door,
    )
    return _action(_move(hand, desired, 25.0), 1.0)


def drawer_open_policy(obs: jax.Array) -> jax.Array:
    """drawer-open-v3: align over the handle, drop to it (p = 4), pull past it (p = 50)."""
    obs = _as_obs(obs)
    hand = _hand(obs)
    drawer = _obj(obs) + _vec(0.0, 0.0, -0.02)
    far_xy = _norm(hand[:2] - drawer[:2]) > 0.06
    far_z = jnp.abs(hand[2] - drawer[2]) > 0.04
    to_pos = _first(
        [far_xy, far_z],
        [drawer + _vec(0.0, 0.0, 0.3), drawer],
        drawer + _vec(0.0, -0.06, 0.0),
    )
    gain = jnp.where(far_xy | far_z, 4.0, 50.0)
    return _action(_move(hand, to_pos, gain), -1.0)


def drawer_close_policy(obs: jax.Array) -> jax.Array:
    """drawer-close-v3: rise, come round in front of the handle, drop, push it shut (p = 25)."""
    obs = _as_obs(obs)
    hand = _hand(obs)
    drawer = _obj(obs) + _vec(0.0, 0.0, -0.02)
    in_front = hand[1] > drawer[1]
    low = hand[2] < drawer[2] + 0.23
    far_z = jnp.abs(hand[2] - drawer[2]) > 0.04
    rise = jnp.stack([hand[0], hand[1], drawer[2] + 0.5])
    desired = _first(
        [in_front & low, in_front, far_z],
        [rise, drawer + _vec(0.0, -0.075, 0.23), drawer + _vec(0.0, -0.075, 0.0)],
        drawer,
    )
    return _action(_move(hand, desired, 25.0), 1.0)


def button_press_topdown_policy(obs: jax.Array) -> jax.Array:
    """button-press-topdown-v3: hover above the button, then press straight down (p = 25)."""
    obs = _as_obs(obs)
    hand, button = _hand(obs), _obj(obs)
    far_xy = _norm(hand[:2] - button[:2]) > 0.04
    desired = jnp.where(far_xy, button + _vec(0.0, 0.0, 0.1), button)
    return _action(_move(hand, desired, 25.0), 1.0)


def peg_insert_side_policy(obs: jax.Array) -> jax.Array:
    """peg-insert-side-v3: grasp the peg, line it up with the hole, slide it in (p = 25)."""
    obs = _as_obs(obs)
    hand, peg = _hand(obs), _obj(obs)
    # Lowest reachable x is -0.35 (overshooting is harmless); y from the goal; z fixed at 0.16.
    hole = jnp.stack([jnp.float32(-0.35), _goal(obs)[1], jnp.float32(0.16)])
    far_xy = _norm(hand[:2] - peg[:2]) > 0.04
    far_z = jnp.abs(hand[2] - peg[2]) > 0.025
    misaligned = _norm(peg[1:] - hole[1:]) > 0.03
    desired = _first(
        [far_xy, far_z, misaligned],
        [peg + _vec(0.0, 0.0, 0.3), peg, hole + _vec(0.4, 0.0, 0.0)],
        hole,
    )
    release = far_xy | (jnp.abs(hand[2] - peg[2]) > 0.15)
    grab = jnp.where(release, -1.0, 0.6)
    return _action(_move(hand, desired, 25.0), grab)


def window_open_policy(obs: jax.Array) -> jax.Array:
    """window-open-v3: drop beside the handle, then push it along +x (p = 25)."""
    obs = _as_obs(obs)
    hand = _hand(obs)
    window = _obj(obs) + _vec(-0.03, -0.03, -0.08)
    far_xy = _norm(hand[:2] - window[:2]) > 0.04
    far_z = jnp.abs(hand[2] - window[2]) > 0.02
    desired = _first(
        [far_xy, far_z],
        [window + _vec(0.0, 0.0, 0.3), window],
        window + _vec(0.1, 0.0, 0.0),
    )
    return _action(_move(hand, desired, 25.0), 1.0)


def window_close_policy(obs: jax.Array) -> jax.Array:
    """window-close-v3: drop beside the handle, then push it along -x (p = 25)."""
    obs = _as_obs(obs)
    hand = _hand(obs)
    window = _obj(obs) + _vec(0.03, -0.03, -0.08)
    far_xy = _norm(hand[:2] - window[:2]) > 0.04
    far_z = jnp.abs(hand[2] - window[2]) > 0.02
    desired = _first(
        [far_xy, far_z],
        [window + _vec(0.0, 0.0, 0.25), window],
        window + _vec(-0.1, 0.0, 0.0),
    )
    return _action(_move(hand, desired, 25.0), 1.0)


# ----------------------------------------------------------------------------- registry

POLICIES: dict[str, Policy] = {
    "reach-v3": reach_policy,
    "push-v3": push_policy,
    "pick-place-v3": pick_place_policy,
    "door-open-v3": door_open_policy,
    "drawer-open-v3": drawer_open_policy,
    "drawer-close-v3": drawer_close_policy,
    "button-press-topdown-v3": button_press_topdown_policy,
    "peg-insert-side-v3": peg_insert_side_policy,
    "window-open-v3": window_open_policy,
    "window-close-v3": window_close_policy,
}
"""Task name (Meta-World v3 spelling) -> JAX policy ``obs [39] -> action [4]``."""

NATIVE_POLICY_CLASSES: dict[str, str] = {
    "reach-v3": "SawyerReachV3Policy",
    "push-v3": "SawyerPushV3Policy",
    "pick-place-v3": "SawyerPickPlaceV3Policy",
    "door-open-v3": "SawyerDoorOpenV3Policy",
    "drawer-open-v3": "SawyerDrawerOpenV3Policy",
    "drawer-close-v3": "SawyerDrawerCloseV3Policy",
    "button-press-topdown-v3": "SawyerButtonPressTopdownV3Policy",
    "peg-insert-side-v3": "SawyerPegInsertionSideV3Policy",
    "window-open-v3": "SawyerWindowOpenV3Policy",
    "window-close-v3": "SawyerWindowCloseV3Policy",
}
"""Task name -> the class in ``metaworld.policies`` that each JAX policy ports."""


def _check_task(task_name: str) -> None:
    if task_name not in POLICIES:
        raise ValueError(
            f"No scripted policy for Meta-World task {task_name!r}; valid tasks: {sorted(POLICIES)}"
        )


def get_policy(task_name: str) -> Policy:
    """The JAX policy for ``task_name`` (e.g. ``"push-v3"``); ValueError names valid tasks."""
    _check_task(task_name)
    return POLICIES[task_name]


def native_policy(task_name: str):
    """An instance of Meta-World's own policy class for ``task_name`` (the reference)."""
    _check_task(task_name)
    import metaworld.policies  # host-only reference; imported lazily

    return getattr(metaworld.policies, NATIVE_POLICY_CLASSES[task_name])()


def host_policy(task_name: str) -> Policy:
    """Meta-World's own scripted policy for ``task_name``, any of its 50 v3 tasks, as a JAX-callable
    ``policy(obs [39]) -> action [4]`` that runs on the host through ``jax.pure_callback``.

    For the tasks without a JAX port (those the C-engine backend adds beyond MT10). Under ``vmap``
    one callback receives the whole batch ``[..., 39]`` and loops over it in Python, so it suits
    demonstration collection, not a training step's inner loop. Meta-World's policies are
    stateless functions of the observation (some edit it in place: each row is copied first).
    """
    import warnings

    import numpy as np

    from metaworld.policies import ENV_POLICY_MAP  # host-only; imported lazily

    if task_name not in ENV_POLICY_MAP:
        raise ValueError(f"No scripted policy for Meta-World task {task_name!r}; valid tasks: {sorted(ENV_POLICY_MAP)}")
    policy = ENV_POLICY_MAP[task_name]()

    def host(obs):
        obs = np.asarray(obs, np.float64)
        flat = obs.reshape(-1, obs.shape[-1])
        out = np.zeros((len(flat), ACTION_SIZE), np.float32)
        with warnings.catch_warnings():
            # Several policies' gains exceed [-1, 1] by design and warn at every call; the env clips.
            warnings.filterwarnings("ignore", message="Constant", category=UserWarning)
            for i, row in enumerate(flat):
                out[i] = policy.get_action(row.copy())
        return out.reshape(obs.shape[:-1] + (ACTION_SIZE,))

    def act(obs: jax.Array) -> jax.Array:
        if obs.shape[-1] != OBS_SIZE:
            raise ValueError(f"{task_name}: expected observations of {OBS_SIZE} numbers, got shape {obs.shape}")
        out = jax.ShapeDtypeStruct(obs.shape[:-1] + (ACTION_SIZE,), jnp.float32)
        return jax.pure_callback(host, out, obs, vmap_method="expand_dims")

    act.__name__ = f"host_policy[{task_name}]"
    return act
