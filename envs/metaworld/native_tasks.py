"""Meta-World tasks beyond MT10 that run on the C-engine backend only (``backend="mujoco"``).

Their models are Meta-World's own, unedited; no MJX model has been made for them (the walls would
need collision edits), so ``MetaWorldEnv(task)`` with MJX refuses them by name. Each task here is
the same :class:`envs.metaworld.tasks.Task` record as an MT10 task: the reset space and its
rejection rule (for ``reset(key)``), the observed objects and the v2 reward and success in jnp,
ported from ``metaworld.envs.sawyer_*_v3``. The resets themselves run Meta-World's own code on the
host, so ``Task.reset`` only names the parameters the reward reads. ``tests/test_metaworld_native.py``
holds each to native parity the way it holds MT10.

All 50 of Meta-World's v3 tasks run on this backend (MT10 and the 40 here). stick-push-v3's
success needs the gripper's pads pressing on the stick (``touching_main_object``: contact forces
from ``data.contact``/``efc_force``): its ``Task.touch_geom`` makes the host compute that test
after each step (:func:`envs.metaworld.native.touching_object`), read as ``Frame.touching``.

Where a reward reads a value the backend does not carry, it is rebuilt from ones it does, as the
reset computes it (handle-press's handle start, lever-pull's lever start, dial-turn's push point,
bin-picking's placing margin; each says how in its docstring). sweep-into's redraw rule on the
reset vector is slightly stricter than Meta-World's (its comment says why).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from envs.metaworld import reward_utils as ru
from envs.metaworld import tasks as mt10
from envs.metaworld.model import ColliderSpec
from envs.metaworld.tasks import HAND_HIGH, HAND_LOW, Frame, Task, _obj_pos, _pad14

NATIVE_TASKS: dict[str, Task] = {}


def _register(task: Task) -> None:
    NATIVE_TASKS[task.name] = task


# --------------------------------------------------------------------------- reach-wall
# SawyerReachWallEnvV3: reach's reward, objects and success on a scene with a wall between the
# hand and the goal.
_register(dataclasses.replace(
    mt10.TASKS["reach-v3"], name="reach-wall-v3", xml="sawyer_reach_wall_v3.xml",
    rand_low=(-0.05, 0.6, 0.015, -0.05, 0.85, 0.05), rand_high=(0.05, 0.65, 0.015, 0.05, 0.9, 0.3),
    goal_low=(-0.05, 0.85, 0.05), goal_high=(0.05, 0.9, 0.3),
))


# --------------------------------------------------------------------------- push-wall


def _push_wall_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    # SawyerPushWallEnvV3 reads the puck's geom, not its body.
    return _pad14(geom_xpos[ids["objGeom"]], ru.quat_from_matrix_scipy(geom_xmat[ids["objGeom"]]))


def _wall_terms(f: Frame, midpoint_of, scale, high_density: bool):
    """The terms the push-wall and pick-place-wall v2 rewards share: the object's way to a
    midpoint beside the wall (``midpoint_of(obj, target)``; ``scale`` weights its axes) and on to
    the target, each as a tolerance, and the gripper-caging grasp term."""
    p = f.params
    obj = _obj_pos(f.obs)
    target = p["target_pos"]
    midpoint = midpoint_of(obj, target)
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    obj_to_midpoint = jnp.linalg.norm((obj - midpoint) * scale)
    obj_to_midpoint_init = jnp.linalg.norm((p["obj_init_pos"] - midpoint) * scale)
    obj_to_target = jnp.linalg.norm(obj - target)
    obj_to_target_init = jnp.linalg.norm(p["obj_init_pos"] - target)
    in_place_1 = ru.tolerance(obj_to_midpoint, bounds=(0, 0.05), margin=obj_to_midpoint_init, sigmoid="long_tail")
    in_place_2 = ru.tolerance(obj_to_target, bounds=(0, 0.05), margin=obj_to_target_init, sigmoid="long_tail")
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, object_reach_radius=0.01, obj_radius=0.015, pad_success_thresh=0.05, xz_thresh=0.005,
        high_density=high_density, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    info = dict(in_place=in_place_2, grasp_reward=object_grasped, obj_to_target=obj_to_target, tcp_to_obj=tcp_to_obj)
    return obj, tcp_to_obj, obj_to_target, in_place_1, in_place_2, object_grasped, info


def _push_wall_reward(f: Frame):
    """``SawyerPushWallEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.07``)."""
    obj, tcp_to_obj, obj_to_target, in_place_1, in_place_2, object_grasped, info = _wall_terms(
        f, lambda obj, target: jnp.stack([jnp.float32(-0.05), jnp.float32(0.77), obj[2]]),
        jnp.array([3.0, 1.0, 1.0]), high_density=True)
    tcp_opened = f.obs[3]
    reward = 2 * object_grasped
    near = jnp.where(obj[1] > 0.75, 2 * object_grasped + 1.0 + 4.0 + 3.0 * in_place_2,
                     2.0 * object_grasped + 1.0 + 4.0 * in_place_1)
    reward = jnp.where((tcp_to_obj < 0.02) & (tcp_opened > 0), near, reward)
    reward = jnp.where(obj_to_target < 0.05, 10.0, reward)
    success = (obj_to_target <= 0.07).astype(jnp.float32)
    return reward, success, info


_register(dataclasses.replace(
    mt10.TASKS["push-v3"], name="push-wall-v3", xml="sawyer_push_wall_v3.xml",
    rand_low=(-0.05, 0.6, 0.015, -0.05, 0.85, 0.01), rand_high=(0.05, 0.65, 0.015, 0.05, 0.9, 0.02),
    goal_low=(-0.05, 0.85, 0.01), goal_high=(0.05, 0.9, 0.02),
    objects=_push_wall_objects, reward=_push_wall_reward,
))


# --------------------------------------------------------------------------- pick-place-wall


def _pick_place_wall_reward(f: Frame):
    """``SawyerPickPlaceWallEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.07``)."""
    p = f.params
    obj, tcp_to_obj, obj_to_target, in_place_1, in_place_2, object_grasped, info = _wall_terms(
        f, lambda obj, target: jnp.stack([target[0], jnp.float32(0.77), jnp.float32(0.25)]),
        jnp.array([1.0, 1.0, 3.0]), high_density=False)
    tcp_opened = f.obs[3]
    grasped_in_place = ru.hamacher_product(object_grasped, in_place_1)
    lifted = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.015 > p["obj_init_pos"][2])
    near = jnp.where(obj[1] > 0.75, grasped_in_place + 1.0 + 4.0 + 3.0 * in_place_2,
                     grasped_in_place + 1.0 + 4.0 * in_place_1)
    reward = jnp.where(lifted, near, grasped_in_place)
    reward = jnp.where(obj_to_target < 0.05, 10.0, reward)
    success = (obj_to_target <= 0.07).astype(jnp.float32)
    return reward, success, info


_register(dataclasses.replace(
    mt10.TASKS["pick-place-v3"], name="pick-place-wall-v3", xml="sawyer_pick_place_wall_v3.xml",
    rand_low=(-0.05, 0.6, 0.015, -0.05, 0.85, 0.05), rand_high=(0.05, 0.65, 0.015, 0.05, 0.9, 0.3),
    goal_low=(-0.05, 0.85, 0.05), goal_high=(0.05, 0.9, 0.3),
    objects=_push_wall_objects, reward=_pick_place_wall_reward,
))


# --------------------------------------------------------------------------- button-press-wall


def _button_wall_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(xpos[ids["button"]] + jnp.array([0.0, -0.193, 0.0]), xquat[ids["button"]])


def _button_terms(f: Frame, axis: int, near_bound: float):
    """The terms every button task's v2 reward builds on: the hand-to-button distance and its
    initial value, the button's travel along ``axis`` still to go, and the two tolerances."""
    p = f.params
    obj = _obj_pos(f.obs)
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    tcp_to_obj_init = jnp.linalg.norm(obj - p["init_tcp"])
    obj_to_target = jnp.abs(p["target_pos"][axis] - obj[axis])
    near_button = ru.tolerance(tcp_to_obj, bounds=(0, near_bound), margin=tcp_to_obj_init, sigmoid="long_tail")
    button_pressed = ru.tolerance(obj_to_target, bounds=(0, 0.005), margin=p["obj_to_target_init"], sigmoid="long_tail")
    info = dict(grasp_reward=near_button, in_place=button_pressed, obj_to_target=obj_to_target, tcp_to_obj=tcp_to_obj)
    return tcp_to_obj, obj_to_target, near_button, button_pressed, info


def _button_wall_reward(f: Frame):
    """``SawyerButtonPressWallEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.03``)."""
    tcp_to_obj, obj_to_target, near_button, button_pressed, info = _button_terms(f, axis=1, near_bound=0.01)
    far = 2 * ru.hamacher_product((1 - f.obs[3]) / 2.0, near_button)
    near = 2 + 2 * (1 + f.obs[3]) + 4 * button_pressed**2
    reward = jnp.where(tcp_to_obj > 0.07, far, near)
    success = (obj_to_target <= 0.03).astype(jnp.float32)
    return reward, success, info


_register(dataclasses.replace(
    mt10.TASKS["button-press-topdown-v3"], name="button-press-wall-v3", xml="sawyer_button_press_wall.xml",
    rand_low=(-0.05, 0.85, 0.1149), rand_high=(0.05, 0.9, 0.1151),
    objects=_button_wall_objects, reward=_button_wall_reward,
))


# --------------------------------------------------------------------------- door-close


def _door_close_reward(f: Frame):
    """``SawyerDoorCloseEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.08``)."""
    p = f.params
    obj = _obj_pos(f.obs)
    target = p["target_pos"]
    tcp_to_target = jnp.linalg.norm(f.tcp - target)
    obj_to_target = jnp.linalg.norm(obj - target)
    in_place_margin = jnp.linalg.norm(p["obj_init_pos"] - target)
    in_place = ru.tolerance(obj_to_target, bounds=(0, 0.05), margin=in_place_margin, sigmoid="gaussian")
    hand_margin = jnp.linalg.norm(p["hand_init_pos"] - obj) + 0.1
    hand_in_place = ru.tolerance(tcp_to_target, bounds=(0, 0.25 * 0.05), margin=hand_margin, sigmoid="gaussian")
    reward = 3 * hand_in_place + 6 * in_place
    reward = jnp.where(obj_to_target < 0.05, 10.0, reward)
    success = (obj_to_target <= 0.08).astype(jnp.float32)
    return reward, success, dict(in_place=hand_in_place, obj_to_target=obj_to_target, tcp_to_target=tcp_to_target)


_register(dataclasses.replace(
    mt10.TASKS["door-open-v3"], name="door-close-v3", hand_init_pos=(-0.5, 0.6, 0.2),
    goal_low=(0.2, 0.65, 0.1499), goal_high=(0.3, 0.75, 0.1501), reward=_door_close_reward,
))


# --------------------------------------------------------------------------- door-lock


def _door_lock_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(ids["_site_xpos"][ids["lockStartLock"]], xquat[ids["door_link"]])


def _door_lock_reward(f: Frame):
    """``SawyerDoorLockEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.02``).

    Its ``init_left_pad`` is a view of the left pad's current position (set once, as a view into
    ``data.xpos``), so the near-lock margin is the current distance itself.
    """
    p = f.params
    obj = _obj_pos(f.obs)
    scale = jnp.array([0.25, 1.0, 0.5])
    tcp_to_obj = jnp.linalg.norm((obj - f.left_pad) * scale)
    obj_to_target = jnp.abs(p["target_pos"][2] - obj[2])
    tcp_opened = jnp.maximum(f.obs[3], 0.0)
    near_lock = ru.tolerance(tcp_to_obj, bounds=(0, 0.01), margin=tcp_to_obj, sigmoid="long_tail")
    lock_pressed = ru.tolerance(obj_to_target, bounds=(0, 0.005), margin=0.1, sigmoid="long_tail")
    reward = 2 * ru.hamacher_product(tcp_opened, near_lock) + 8 * lock_pressed
    success = (obj_to_target <= 0.02).astype(jnp.float32)
    return reward, success, dict(grasp_reward=near_lock, in_place=lock_pressed, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


_register(dataclasses.replace(
    mt10.TASKS["door-open-v3"], name="door-lock-v3", xml="sawyer_door_lock.xml", hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(-0.1, 0.8, 0.15), rand_high=(0.1, 0.85, 0.15), goal_low=(-0.5, 0.40, -0.15), goal_high=(0.5, 1.0, 0.5),
    hand_low=(-0.5, 0.40, -0.15), objects=_door_lock_objects, reward=_door_lock_reward,
    names=dict(sites=("lockStartLock",), bodies=("door_link",)),
))


# --------------------------------------------------------------------------- faucet-close


def _faucet_close_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(ids["_site_xpos"][ids["handleStartClose"]] + jnp.array([0.0, 0.0, -0.01]), xquat[ids["faucetBase"]])


def _faucet_close_reward(f: Frame, obj_offset=(0.0, 0.0, 0.0)):
    """``SawyerFaucetCloseEnvV3.compute_reward`` (v2) and its success (``target_to_obj <= 0.07``);
    faucet-open's is the same with the handle point moved by ``obj_offset``."""
    p = f.params
    obj = _obj_pos(f.obs) + jnp.asarray(obj_offset, jnp.float32)
    target = p["target_pos"]
    radius = 0.07
    target_to_obj = jnp.linalg.norm(obj - target)
    target_to_obj_init = jnp.linalg.norm(p["obj_init_pos"] - target)
    in_place = ru.tolerance(target_to_obj, bounds=(0, radius), margin=jnp.abs(target_to_obj_init - radius),
                            sigmoid="long_tail")
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    tcp_to_obj_init = jnp.linalg.norm(p["obj_init_pos"] - p["init_tcp"])
    reach = ru.tolerance(tcp_to_obj, bounds=(0, 0.01), margin=jnp.abs(tcp_to_obj_init - 0.01), sigmoid="gaussian")
    reward = 2 * (2 * reach + 3 * in_place)
    reward = jnp.where(target_to_obj <= radius, 10.0, reward)
    success = (target_to_obj <= radius).astype(jnp.float32)
    return reward, success, dict(grasp_reward=reach, in_place=in_place, obj_to_target=target_to_obj,
                                 tcp_to_obj=tcp_to_obj)


_register(dataclasses.replace(
    mt10.TASKS["door-open-v3"], name="faucet-close-v3", xml="sawyer_faucet.xml", hand_init_pos=(0.0, 0.4, 0.2),
    rand_low=(-0.1, 0.8, 0.0), rand_high=(0.1, 0.85, 0.0), goal_low=(-0.5, 0.40, -0.15), goal_high=(0.5, 1.0, 0.5),
    hand_low=(-0.5, 0.40, -0.15), fixture_body="faucetBase", objects=_faucet_close_objects,
    reward=_faucet_close_reward, names=dict(sites=("handleStartClose",), bodies=("faucetBase",)),
))



# --------------------------------------------------------------------------- faucet-open


def _faucet_open_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(ids["_site_xpos"][ids["handleStartOpen"]] + jnp.array([0.0, 0.0, -0.01]), xquat[ids["faucetBase"]])


def _faucet_open_reward(f: Frame):
    """``SawyerFaucetOpenEnvV3.compute_reward`` (v2): faucet-close's on the handle point
    ``obs[4:7] + [-0.04, 0, 0.03]``; success ``target_to_obj <= 0.07``."""
    return _faucet_close_reward(f, obj_offset=(-0.04, 0.0, 0.03))


_register(dataclasses.replace(
    NATIVE_TASKS["faucet-close-v3"], name="faucet-open-v3", rand_low=(-0.05, 0.8, 0.0), rand_high=(0.05, 0.85, 0.0),
    objects=_faucet_open_objects, reward=_faucet_open_reward,
    names=dict(sites=("handleStartOpen",), bodies=("faucetBase",)),
))


# --------------------------------------------------------------------------- button-press-topdown-wall


def _button_topdown_wall_reward(f: Frame):
    """``SawyerButtonPressTopdownWallEnvV3.compute_reward`` (v2): button-press-topdown's with the
    gripper term ``max(obs[3], 0)`` instead of ``1 - obs[3]``; success ``obj_to_target <= 0.024``."""
    tcp_to_obj, obj_to_target, near_button, button_pressed, info = _button_terms(f, axis=2, near_bound=0.01)
    tcp_closed = jnp.maximum(f.obs[3], 0.0)
    reward = 5 * ru.hamacher_product(tcp_closed, near_button)
    reward = jnp.where(tcp_to_obj <= 0.03, reward + 5 * button_pressed, reward)
    success = (obj_to_target <= 0.024).astype(jnp.float32)
    return reward, success, info


_register(dataclasses.replace(
    mt10.TASKS["button-press-topdown-v3"], name="button-press-topdown-wall-v3",
    xml="sawyer_button_press_topdown_wall.xml", reward=_button_topdown_wall_reward,
))



# --------------------------------------------------------------------------- button-press


def _button_press_reward(f: Frame):
    """``SawyerButtonPressEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.02``)."""
    tcp_to_obj, obj_to_target, near_button, button_pressed, info = _button_terms(f, axis=1, near_bound=0.05)
    tcp_closed = jnp.maximum(f.obs[3], 0.0)
    reward = 2 * ru.hamacher_product(tcp_closed, near_button)
    reward = jnp.where(tcp_to_obj <= 0.05, reward + 8 * button_pressed, reward)
    success = (obj_to_target <= 0.02).astype(jnp.float32)
    return reward, success, info


_register(dataclasses.replace(
    NATIVE_TASKS["button-press-wall-v3"], name="button-press-v3", xml="sawyer_button_press.xml",
    rand_low=(-0.1, 0.85, 0.115), rand_high=(0.1, 0.9, 0.115), reward=_button_press_reward,
))



# --------------------------------------------------------------------------- helpers


def _quat_scipy_from_xquat(q):
    """``Rotation.from_matrix(xmat).as_quat()`` of a body: Meta-World reads some bodies' ``xmat``,
    which MuJoCo computes from ``xquat`` (``[w, x, y, z]``); rebuilt here, then scipy's rule."""
    w, x, y, z = q[0], q[1], q[2], q[3]
    mat = jnp.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ])
    return ru.quat_from_matrix_scipy(mat)


# No MJX model is made for these tasks: no geoms are picked to keep collisions.
_NO_COLLIDERS = ColliderSpec()


# --------------------------------------------------------------------------- hammer


# qpos address of the nail's slide joint (after the arm's 9 and the hammer's free joint).
_NAIL_QPOS = 16


def _hammer_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(xpos[ids["hammer"]], xquat[ids["hammer"]], xpos[ids["nail_link"]], xquat[ids["nail_link"]])


def _hammer_reset(rand, qpos, qvel, base):
    qpos, qvel = qpos.at[9:12].set(rand), qvel.at[9:15].set(0.0)
    return qpos, qvel, dict(obj_init_pos=rand)


def _hammer_post(params, site_xpos, xpos, ids):
    return dict(params, target_pos=site_xpos[ids["goal"]])


def _hammer_reward(f: Frame):
    """``SawyerHammerEnvV3.compute_reward`` (v2); success is the nail driven in (its slide joint
    past 0.09), and a successful step with a reward above 5 scores 10."""
    p = f.params
    hand = f.obs[:3]
    hammer = _obj_pos(f.obs)
    hammer_head = hammer + jnp.array([0.16, 0.06, 0.0])
    # The caging term treats the object as a sphere; along the handle (x) the hammer counts as
    # under the hand anywhere within half the handle's length (0.14 / 2).
    hammer_threshed = hammer.at[0].set(jnp.where(jnp.abs(hammer[0] - hand[0]) < 0.07, hand[0], hammer[0]))
    # A laid-down hammer has quaternion [1, 0, 0, 0].
    quat_error = jnp.linalg.norm(f.obs[7:11] - jnp.array([1.0, 0.0, 0.0, 0.0]))
    reward_quat = jnp.maximum(1.0 - quat_error / 0.4, 0.0)
    reward_grab = ru.gripper_caging_reward(
        f.action, hammer_threshed, object_reach_radius=0.01, obj_radius=0.015, pad_success_thresh=0.02,
        xz_thresh=0.01, high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    lifted = (hammer_head[2] > 0.02).astype(jnp.float32)
    reward_in_place = 0.1 * lifted + 0.9 * ru.tolerance(
        jnp.linalg.norm(p["target_pos"] - hammer_head), bounds=(0, 0.02), margin=0.2, sigmoid="long_tail")
    reward = (2.0 * reward_grab + 6.0 * reward_in_place) * reward_quat
    success = f.qpos[_NAIL_QPOS] > 0.09
    reward = jnp.where(success & (reward > 5.0), 10.0, reward)
    return reward, success.astype(jnp.float32), dict(grasp_reward=reward_grab, in_place=reward_in_place)


_register(Task(
    name="hammer-v3", xml="sawyer_hammer.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0.0, 0.4, 0.2),
    rand_low=(-0.1, 0.4, 0.0), rand_high=(0.1, 0.5, 0.0), goal_low=(0.2399, 0.7399, 0.109),
    goal_high=(0.2401, 0.7401, 0.111), reset=_hammer_reset, post_reset=_hammer_post, objects=_hammer_objects,
    reward=_hammer_reward, names=dict(bodies=("hammer", "nail_link"), sites=("goal",)),
))


# --------------------------------------------------------------------------- soccer


def _soccer_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(xpos[ids["soccer_ball"]], _quat_scipy_from_xquat(xquat[ids["soccer_ball"]]))


def _soccer_reset(rand, qpos, qvel, base):
    obj = jnp.stack([rand[0], rand[1], jnp.float32(0.03)])
    target = rand[3:]
    qpos, qvel = qpos.at[9:12].set(obj), qvel.at[9:15].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=target, fixture_pos=target)


def _y_gripping_caging(f: Frame, obj, obj_radius: float, grip_margin: float, x_z_success_margin: float):
    """The ``_gripper_caging_reward`` that soccer, push-back, sweep and sweep-into override with
    their own: caging on y between the pads (within 0.05) with a tighter "gripping" band (within
    ``obj_radius + grip_margin``) that counts once the caging exceeds 0.95, and caging on x-z.
    Their ``init_left_pad``/``init_right_pad`` are views of the pads' current positions (set once,
    as views into ``data.xpos``), so the y margins use the current pads."""
    p = f.params
    pad_success_margin = 0.05
    grip_success_margin = obj_radius + grip_margin
    delta_left = f.left_pad[1] - obj[1]
    delta_right = obj[1] - f.right_pad[1]
    right_margin = jnp.abs(jnp.abs(obj[1] - f.right_pad[1]) - pad_success_margin)
    left_margin = jnp.abs(jnp.abs(obj[1] - f.left_pad[1]) - pad_success_margin)
    tol = lambda d, hi, m: ru.tolerance(d, bounds=(obj_radius, hi), margin=m, sigmoid="long_tail")
    y_caging = ru.hamacher_product(tol(delta_right, pad_success_margin, right_margin),
                                   tol(delta_left, pad_success_margin, left_margin))
    y_gripping = ru.hamacher_product(tol(delta_right, grip_success_margin, right_margin),
                                     tol(delta_left, grip_success_margin, left_margin))
    xz = jnp.array([0, 2])
    tcp_obj_xz = jnp.linalg.norm(f.tcp[xz] - obj[xz])
    xz_margin = jnp.linalg.norm(p["obj_init_pos"][xz] - p["init_tcp"][xz]) - x_z_success_margin
    x_z_caging = ru.tolerance(tcp_obj_xz, bounds=(0, x_z_success_margin), margin=xz_margin, sigmoid="long_tail")
    caging = ru.hamacher_product(y_caging, x_z_caging)
    gripping = jnp.where(caging > 0.95, y_gripping, 0.0)
    return (caging + gripping) / 2


def _soccer_reward(f: Frame):
    """``SawyerSoccerEnvV3.compute_reward`` (v2) and its success (``||obj - target|| <= 0.07``)."""
    p = f.params
    obj = _obj_pos(f.obs)
    target = p["target_pos"]
    target_radius = 0.07
    x_scaling = jnp.array([3.0, 1.0, 1.0])
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    target_to_obj = jnp.linalg.norm((obj - target) * x_scaling)
    # Meta-World's margin: the ball's (scaled) distance from where it started, not the target's.
    target_to_obj_init = jnp.linalg.norm((obj - p["obj_init_pos"]) * x_scaling)
    in_place = ru.tolerance(target_to_obj, bounds=(0, target_radius), margin=target_to_obj_init, sigmoid="long_tail")
    # Past the line 0.1 before the goal but more than 0.1 to its side: the ball missed the goal.
    goal_line = target[1] - 0.1
    missed = (obj[1] > goal_line) & (jnp.abs(obj[0] - target[0]) > 0.10)
    in_place = jnp.where(missed, jnp.clip(in_place - 2 * ((obj[1] - goal_line) / (1 - goal_line)), 0.0, 1.0), in_place)
    object_grasped = _y_gripping_caging(f, obj, obj_radius=0.013, grip_margin=0.01, x_z_success_margin=0.005)
    reward = 3 * object_grasped + 6.5 * in_place
    reward = jnp.where(target_to_obj < target_radius, 10.0, reward)
    obj_to_target = jnp.linalg.norm(obj - target)
    success = (obj_to_target <= 0.07).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


_register(Task(
    name="soccer-v3", xml="sawyer_soccer.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(-0.1, 0.6, 0.03, -0.1, 0.8, 0.0), rand_high=(0.1, 0.7, 0.03, 0.1, 0.9, 0.0),
    goal_low=(-0.1, 0.8, 0.0), goal_high=(0.1, 0.9, 0.0), min_obj_goal_xy=0.15, fixture_body="goal_whole",
    reset=_soccer_reset, objects=_soccer_objects, reward=_soccer_reward, names=dict(bodies=("soccer_ball",)),
))


# --------------------------------------------------------------------------- door-unlock


def _door_unlock_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(ids["_site_xpos"][ids["lockStartUnlock"]], xquat[ids["door_link"]])


def _door_unlock_reset(rand, qpos, qvel, base):
    # lock_link's origin lies on its hinge, fixed to the door body: door + [0, -0.118, 0.061].
    obj = rand + jnp.array([0.0, -0.118, 0.061])
    qpos, qvel = qpos.at[9].set(1.5708), qvel.at[9].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=obj + jnp.array([0.1, -0.04, 0.0]), fixture_pos=rand)


def _door_unlock_reward(f: Frame):
    """``SawyerDoorUnlockEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.02``):
    the gripper's "shoulder" (hand + [0, 0.055, 0.07]) near the lock, and the lock pushed along x."""
    p = f.params
    gripper = f.obs[:3]
    lock = _obj_pos(f.obs)
    offset = jnp.array([0.0, 0.055, 0.07])
    scale = jnp.array([0.25, 1.0, 0.5])
    shoulder_to_lock = jnp.linalg.norm((gripper + offset - lock) * scale)
    shoulder_to_lock_init = jnp.linalg.norm((p["init_tcp"] + offset - p["obj_init_pos"]) * scale)
    ready_to_push = ru.tolerance(shoulder_to_lock, bounds=(0, 0.02), margin=shoulder_to_lock_init, sigmoid="long_tail")
    obj_to_target = jnp.abs(p["target_pos"][0] - lock[0])
    pushed = ru.tolerance(obj_to_target, bounds=(0, 0.005), margin=0.1, sigmoid="long_tail")
    reward = 2 * ready_to_push + 8 * pushed
    success = (obj_to_target <= 0.02).astype(jnp.float32)
    return reward, success, dict(grasp_reward=ready_to_push, in_place=pushed, obj_to_target=obj_to_target,
                                 tcp_to_obj=shoulder_to_lock)


_register(dataclasses.replace(
    NATIVE_TASKS["door-lock-v3"], name="door-unlock-v3", goal_low=(0.0, 0.64, 0.21), goal_high=(0.2, 0.7, 0.2111),
    reset=_door_unlock_reset, objects=_door_unlock_objects, reward=_door_unlock_reward,
    names=dict(sites=("lockStartUnlock",), bodies=("door_link",)),
))



# --------------------------------------------------------------------------- plate-slide (four variants)


def _puck_geom_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(geom_xpos[ids["puck"]], ru.quat_from_matrix_scipy(geom_xmat[ids["puck"]]))


def _obj_goal_reset(rand, qpos, qvel, base):
    # The object's and the goal's positions straight from the reset vector (the reward reads them).
    return qpos, qvel, dict(obj_init_pos=rand[:3], target_pos=rand[3:])


def _plate_slide_terms(f: Frame, subtract_radius: bool):
    """The plate-slide rewards' terms: the puck's way to the goal and the hand's to the puck, each
    a long-tail tolerance within 0.05, with the initial distances as margins (less 0.05 in all
    variants but plate-slide itself)."""
    p = f.params
    radius = 0.05
    obj = _obj_pos(f.obs)
    target = p["target_pos"]
    obj_to_target = jnp.linalg.norm(obj - target)
    in_place_margin = jnp.linalg.norm(p["obj_init_pos"] - target)
    tcp_to_obj = jnp.linalg.norm(f.tcp - obj)
    obj_grasped_margin = jnp.linalg.norm(p["init_tcp"] - p["obj_init_pos"])
    if subtract_radius:
        in_place_margin, obj_grasped_margin = in_place_margin - radius, obj_grasped_margin - radius
    in_place = ru.tolerance(obj_to_target, bounds=(0, radius), margin=in_place_margin, sigmoid="long_tail")
    object_grasped = ru.tolerance(tcp_to_obj, bounds=(0, radius), margin=obj_grasped_margin, sigmoid="long_tail")
    info = dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=obj_to_target, tcp_to_obj=tcp_to_obj)
    return obj_to_target, tcp_to_obj, in_place, object_grasped, info


def _plate_slide_reward(f: Frame):
    """``SawyerPlateSlideEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.07``)."""
    obj_to_target, tcp_to_obj, in_place, object_grasped, info = _plate_slide_terms(f, subtract_radius=False)
    reward = 8 * ru.hamacher_product(object_grasped, in_place)
    reward = jnp.where(obj_to_target < 0.05, 10.0, reward)
    return reward, (obj_to_target <= 0.07).astype(jnp.float32), info


def _plate_slide_side_reward(f: Frame):
    """The v2 reward of plate-slide-side, -back and -back-side (the same code in each) and their
    success (``obj_to_target <= 0.07``): the hand down at the puck (tcp z <= 0.03) scores the slide."""
    obj_to_target, tcp_to_obj, in_place, object_grasped, info = _plate_slide_terms(f, subtract_radius=True)
    reward = jnp.where((f.tcp[2] <= 0.03) & (tcp_to_obj < 0.07), 2.0 + 7.0 * in_place, 1.5 * object_grasped)
    reward = jnp.where(obj_to_target < 0.05, 10.0, reward)
    return reward, (obj_to_target <= 0.07).astype(jnp.float32), info


_PLATE = Task(
    name="plate-slide-v3", xml="sawyer_plate_slide.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(0.0, 0.6, 0.0, -0.1, 0.85, 0.0), rand_high=(0.0, 0.6, 0.0, 0.1, 0.9, 0.0),
    goal_low=(-0.1, 0.85, 0.0), goal_high=(0.1, 0.9, 0.0), fixture_body="puck_goal", reset=_obj_goal_reset,
    objects=_puck_geom_objects, reward=_plate_slide_reward, names=dict(geoms=("puck",)),
)
_register(_PLATE)
# plate-slide-side and -back set the goal body's xpos, which the next kinematics overwrite: only
# the goal site moves. plate-slide-back-side moves the goal body to the puck's start.
_register(dataclasses.replace(
    _PLATE, name="plate-slide-side-v3", xml="sawyer_plate_slide_sideway.xml",
    rand_low=(0.0, 0.6, 0.0, -0.3, 0.54, 0.0), rand_high=(0.0, 0.6, 0.0, -0.25, 0.66, 0.0),
    goal_low=(-0.3, 0.54, 0.0), goal_high=(-0.25, 0.66, 0.0), fixture_body=None, reward=_plate_slide_side_reward,
))
_register(dataclasses.replace(
    _PLATE, name="plate-slide-back-v3", rand_low=(0.0, 0.85, 0.0, -0.1, 0.6, 0.015),
    rand_high=(0.0, 0.85, 0.0, 0.1, 0.6, 0.015), goal_low=(-0.1, 0.6, 0.015), goal_high=(0.1, 0.6, 0.015),
    fixture_body=None, reward=_plate_slide_side_reward,
))
_register(dataclasses.replace(
    _PLATE, name="plate-slide-back-side-v3", xml="sawyer_plate_slide_sideway.xml",
    rand_low=(-0.25, 0.6, 0.0, -0.05, 0.6, 0.015), rand_high=(-0.25, 0.6, 0.0, 0.15, 0.6, 0.015),
    goal_low=(-0.05, 0.6, 0.015), goal_high=(0.15, 0.6, 0.015), reward=_plate_slide_side_reward,
))


# --------------------------------------------------------------------------- coffee-button / -pull / -push


def _coffee_button_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(ids["_site_xpos"][ids["buttonStart"]], jnp.array([1.0, 0.0, 0.0, 0.0]))


def _coffee_button_reset(rand, qpos, qvel, base):
    # The button's pressed position: 0.03 (max_dist) in from its start, machine + [0, -0.22, 0.3].
    return qpos, qvel, dict(obj_init_pos=rand, target_pos=rand + jnp.array([0.0, -0.22 + 0.03, 0.3]),
                            fixture_pos=rand)


def _coffee_button_reward(f: Frame):
    """``SawyerCoffeeButtonEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.02``)."""
    p = f.params
    obj = _obj_pos(f.obs)
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    tcp_to_obj_init = jnp.linalg.norm(obj - p["init_tcp"])
    obj_to_target = jnp.abs(p["target_pos"][1] - obj[1])
    tcp_closed = jnp.maximum(f.obs[3], 0.0)
    near_button = ru.tolerance(tcp_to_obj, bounds=(0, 0.05), margin=tcp_to_obj_init, sigmoid="long_tail")
    button_pressed = ru.tolerance(obj_to_target, bounds=(0, 0.005), margin=0.03, sigmoid="long_tail")
    reward = 2 * ru.hamacher_product(tcp_closed, near_button)
    reward = jnp.where(tcp_to_obj <= 0.05, reward + 8 * button_pressed, reward)
    success = (obj_to_target <= 0.02).astype(jnp.float32)
    return reward, success, dict(grasp_reward=near_button, in_place=button_pressed, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


_register(Task(
    name="coffee-button-v3", xml="sawyer_coffee.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0.0, 0.4, 0.2),
    rand_low=(-0.1, 0.8, -0.001), rand_high=(0.1, 0.9, 0.001),
    goal_low=(-0.1 - 0.001, 0.8 - 0.22 + 0.03, -0.001 + 0.299),
    goal_high=(0.1 + 0.001, 0.9 - 0.22 + 0.03, 0.001 + 0.301),
    fixture_body="coffee_machine", reset=_coffee_button_reset, objects=_coffee_button_objects,
    reward=_coffee_button_reward, names=dict(sites=("buttonStart",)),
))


def _mug_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(xpos[ids["obj"]], ru.quat_from_matrix_scipy(geom_xmat[ids["mug"]]))


def _coffee_mug_reward(f: Frame):
    """``SawyerCoffeePullEnvV3.compute_reward`` (v2; coffee-push's is the same code) and its
    success (``||mug - target|| <= 0.07``): x and y errors count twice in the placing term."""
    p = f.params
    obj = _obj_pos(f.obs)
    target = p["target_pos"]
    scale = jnp.array([2.0, 2.0, 1.0])
    target_to_obj = jnp.linalg.norm((obj - target) * scale)
    target_to_obj_init = jnp.linalg.norm((p["obj_init_pos"] - target) * scale)
    in_place = ru.tolerance(target_to_obj, bounds=(0, 0.05), margin=target_to_obj_init, sigmoid="long_tail")
    tcp_opened = f.obs[3]
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, object_reach_radius=0.04, obj_radius=0.02, pad_success_thresh=0.05, xz_thresh=0.05,
        desired_gripper_effort=0.7, medium_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    reward = ru.hamacher_product(object_grasped, in_place)
    reward = jnp.where((tcp_to_obj < 0.04) & (tcp_opened > 0), reward + 1.0 + 5.0 * in_place, reward)
    reward = jnp.where(target_to_obj < 0.05, 10.0, reward)
    obj_to_target = jnp.linalg.norm(obj - target)
    success = (obj_to_target <= 0.07).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


_COFFEE_PULL = Task(
    name="coffee-pull-v3", xml="sawyer_coffee.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0.0, 0.4, 0.2),
    rand_low=(-0.05, 0.7, -0.001, -0.1, 0.55, -0.001), rand_high=(0.05, 0.75, 0.001, 0.1, 0.65, 0.001),
    goal_low=(-0.1, 0.55, -0.001), goal_high=(0.1, 0.65, 0.001), min_obj_goal_xy=0.15,
    fixture_body="coffee_machine", reset=_obj_goal_reset, objects=_mug_objects, reward=_coffee_mug_reward,
    names=dict(bodies=("obj",), geoms=("mug",)),
)
_register(_COFFEE_PULL)
_register(dataclasses.replace(
    _COFFEE_PULL, name="coffee-push-v3", rand_low=(-0.1, 0.55, -0.001, -0.05, 0.7, -0.001),
    rand_high=(0.1, 0.65, 0.001, 0.05, 0.75, 0.001), goal_low=(-0.05, 0.7, -0.001), goal_high=(0.05, 0.75, 0.001),
))


# --------------------------------------------------------------------------- handle-press / -pull (and -side)


def _handle_objects(site: str):
    def objects(xpos, xquat, geom_xpos, geom_xmat, ids):
        return _pad14(ids["_site_xpos"][ids[site]], jnp.zeros(4))

    return objects


def _box_reset(rand, qpos, qvel, base):
    return qpos, qvel, dict(obj_init_pos=rand, fixture_pos=rand)


def _site_post(target_site: str, obj_site: str | None = None):
    """A ``post_reset`` that reads the target (and, where given, ``obj_init_pos``) from sites."""

    def post(params, site_xpos, xpos, ids):
        params = dict(params, target_pos=site_xpos[ids[target_site]])
        if obj_site is not None:
            params["obj_init_pos"] = site_xpos[ids[obj_site]]
        return params

    return post


def _handle_press_reward(f: Frame):
    """``SawyerHandlePressEnvV3.compute_reward`` (v2; handle-press-side's is the same code) and
    its success (``|handle z - target z| <= 0.02``).

    Its ``_handle_init_pos`` (the handle after the reset) is not kept as a task parameter: the
    reset leaves the handle 0.096 above the press target (``goalPress``) in both scenes.
    """
    p = f.params
    radius = 0.02
    obj = _obj_pos(f.obs)
    target = p["target_pos"]
    handle_init = target + jnp.array([0.0, 0.0, 0.096])
    target_to_obj = jnp.abs(obj[2] - target[2])
    target_to_obj_init = jnp.abs(handle_init[2] - target[2])
    in_place = ru.tolerance(target_to_obj, bounds=(0, radius), margin=jnp.abs(target_to_obj_init - radius),
                            sigmoid="long_tail")
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    tcp_to_obj_init = jnp.linalg.norm(handle_init - p["init_tcp"])
    reach = ru.tolerance(tcp_to_obj, bounds=(0, 0.02), margin=jnp.abs(tcp_to_obj_init - 0.02), sigmoid="long_tail")
    reward = ru.hamacher_product(reach, in_place)
    reward = jnp.where(target_to_obj <= radius, 1.0, reward) * 10
    success = (target_to_obj <= radius).astype(jnp.float32)
    return reward, success, dict(grasp_reward=reach, in_place=in_place, obj_to_target=target_to_obj,
                                 tcp_to_obj=tcp_to_obj)


_HANDLE_PRESS = Task(
    name="handle-press-v3", xml="sawyer_handle_press.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.1, 0.8, -0.001), rand_high=(0.1, 0.9, 0.001), goal_low=(-0.1, 0.55, 0.04), goal_high=(0.1, 0.70, 0.08),
    fixture_body="box", reset=_box_reset, post_reset=_site_post("goalPress"), objects=_handle_objects("handleStart"),
    reward=_handle_press_reward, names=dict(sites=("handleStart", "goalPress")),
)
_register(_HANDLE_PRESS)
_register(dataclasses.replace(
    _HANDLE_PRESS, name="handle-press-side-v3", xml="sawyer_handle_press_sideways.xml",
    rand_low=(-0.35, 0.65, -0.001), rand_high=(-0.25, 0.75, 0.001), goal_low=HAND_LOW, goal_high=HAND_HIGH,
))


def _handle_pull_terms(f: Frame, target_to_obj, target_to_obj_init, pad_success_thresh: float, obj_radius: float,
                       lift_height, success_radius: float):
    """The reward the two handle-pull tasks share (v2): caging the handle, then lifting it
    (``lift_height`` above the start's z counts as lifted) toward the target; success within
    ``success_radius``."""
    p = f.params
    radius = 0.05
    obj = _obj_pos(f.obs)
    in_place = ru.tolerance(target_to_obj, bounds=(0, radius), margin=target_to_obj_init, sigmoid="long_tail")
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, pad_success_thresh=pad_success_thresh, obj_radius=obj_radius, object_reach_radius=0.01,
        xz_thresh=0.01, high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    reward = ru.hamacher_product(object_grasped, in_place)
    tcp_opened = f.obs[3]
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    lifted = (tcp_to_obj < 0.035) & (tcp_opened > 0) & (lift_height - 0.01 > p["obj_init_pos"][2])
    reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
    reward = jnp.where(target_to_obj < radius, 10.0, reward)
    success = (target_to_obj <= success_radius).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=target_to_obj,
                                 tcp_to_obj=tcp_to_obj)


def _handle_pull_reward(f: Frame):
    """``SawyerHandlePullEnvV3.compute_reward`` (v2) and its success (``|target z - handle z| <= 0.05``)."""
    p, obj = f.params, _obj_pos(f.obs)
    target = p["target_pos"]
    # Meta-World compares the handle's y with the initial z here, as written.
    return _handle_pull_terms(f, jnp.abs(target[2] - obj[2]), jnp.abs(target[2] - p["obj_init_pos"][2]),
                              pad_success_thresh=0.05, obj_radius=0.022, lift_height=obj[1], success_radius=0.05)


_register(dataclasses.replace(
    _HANDLE_PRESS, name="handle-pull-v3", goal_high=(0.1, 0.70, 0.18), objects=_handle_objects("handleRight"),
    post_reset=_site_post("goalPull"), reward=_handle_pull_reward, names=dict(sites=("handleRight", "goalPull")),
))


def _handle_pull_side_reward(f: Frame):
    """``SawyerHandlePullSideEnvV3.compute_reward`` (v2) and its success (``||handle - target|| <= 0.08``);
    ``obj_init_pos`` is the handle's centre after the reset."""
    p, obj = f.params, _obj_pos(f.obs)
    target = p["target_pos"]
    return _handle_pull_terms(f, jnp.linalg.norm(obj - target), jnp.linalg.norm(p["obj_init_pos"] - target),
                              pad_success_thresh=0.06, obj_radius=0.032, lift_height=obj[2], success_radius=0.08)


_register(dataclasses.replace(
    _HANDLE_PRESS, name="handle-pull-side-v3", xml="sawyer_handle_press_sideways.xml",
    rand_low=(-0.35, 0.65, 0.0), rand_high=(-0.25, 0.75, 0.0), goal_low=HAND_LOW, goal_high=HAND_HIGH,
    objects=_handle_objects("handleCenter"), post_reset=_site_post("goalPull", "handleCenter"),
    reward=_handle_pull_side_reward, names=dict(sites=("handleCenter", "goalPull")),
))


# --------------------------------------------------------------------------- lever-pull


def _lever_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(ids["_site_xpos"][ids["leverStart"]], ru.quat_from_matrix_scipy(geom_xmat[ids["objGeom"]]))


def _lever_reset(rand, qpos, qvel, base):
    return qpos, qvel, dict(obj_init_pos=rand, target_pos=rand + jnp.array([0.12, 0.0, 0.25 + 0.2]), fixture_pos=rand)


def _lever_reward(f: Frame):
    """``SawyerLeverPullEnvV3.compute_reward`` (v2) and its success (lever within pi/24 of upright).

    The lever's start (``_lever_pos_init``, not a task parameter) is ``obj_init_pos +
    [0.12, -LEVER_RADIUS, 0.25]`` with ``LEVER_RADIUS = 0.2``, as its reset writes it.
    """
    p = f.params
    gripper = f.obs[:3]
    lever = _obj_pos(f.obs)
    lever_pos_init = p["obj_init_pos"] + jnp.array([0.12, -0.2, 0.25])
    scale = jnp.array([4.0, 1.0, 4.0])
    offset = jnp.array([0.0, 0.055, 0.07])
    shoulder_to_lever = jnp.linalg.norm((gripper + offset - lever) * scale)
    shoulder_to_lever_init = jnp.linalg.norm((p["init_tcp"] + offset - lever_pos_init) * scale)
    ready_to_lift = ru.tolerance(shoulder_to_lever, bounds=(0, 0.02), margin=shoulder_to_lever_init,
                                 sigmoid="long_tail")
    lever_angle = -f.qpos[9]
    lever_error = jnp.abs(lever_angle - np.pi / 2.0)
    lever_engagement = ru.tolerance(lever_error, bounds=(0, np.pi / 48.0), margin=np.pi / 2.0 - np.pi / 12.0,
                                    sigmoid="long_tail")
    target = p["target_pos"]
    obj_to_target = jnp.linalg.norm(lever - target)
    in_place_margin = jnp.linalg.norm(lever_pos_init - target)
    in_place = ru.tolerance(obj_to_target, bounds=(0, 0.04), margin=in_place_margin, sigmoid="long_tail")
    reward = 10.0 * ru.hamacher_product(ready_to_lift, in_place)
    success = (lever_error <= np.pi / 24).astype(jnp.float32)
    return reward, success, dict(grasp_reward=ready_to_lift, in_place=lever_engagement, obj_to_target=shoulder_to_lever)


_register(Task(
    name="lever-pull-v3", xml="sawyer_lever_pull.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.4, 0.2),
    rand_low=(-0.1, 0.7, 0.0), rand_high=(0.1, 0.8, 0.0), goal_low=(-0.5, 0.40, -0.15), goal_high=HAND_HIGH,
    hand_low=(-0.5, 0.40, -0.15), fixture_body="lever", reset=_lever_reset, objects=_lever_objects,
    reward=_lever_reward, names=dict(sites=("leverStart",), geoms=("objGeom",)),
))


# --------------------------------------------------------------------------- dial-turn


def _dial_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    # A point on the dial's rim: centre + 0.05 [sin a, -cos a, 0] for the knob angle a, read from
    # the knob's body (the dial body's first child, turned by a about z).
    q = xquat[ids["dial"] + 1]
    sin_a, cos_a = 2 * q[0] * q[3], q[0] * q[0] - q[3] * q[3]
    rim = xpos[ids["dial"]] + 0.05 * jnp.stack([sin_a, -cos_a, jnp.float32(0.0)])
    return _pad14(rim, xquat[ids["dial"]])


def _dial_reset(rand, qpos, qvel, base):
    return qpos, qvel, dict(obj_init_pos=rand, target_pos=rand + jnp.array([0.0, 0.03, 0.03]), fixture_pos=rand)


def _dial_reward(f: Frame):
    """``SawyerDialTurnEnvV3.compute_reward`` (v2) and its success (``||rim - target|| <= 0.07``).

    Its ``dial_push_position`` (the push point at the reset, not a task parameter) is the rim at
    angle 0 plus ``[0.05, 0.02, 0.09]``: ``obj_init_pos + [0.05, -0.03, 0.09]``.
    """
    p = f.params
    radius = 0.07
    obj = _obj_pos(f.obs)
    push_position = obj + jnp.array([0.05, 0.02, 0.09])
    push_position_init = p["obj_init_pos"] + jnp.array([0.05, -0.03, 0.09])
    target = p["target_pos"]
    target_to_obj = jnp.linalg.norm(obj - target)
    target_to_obj_init = jnp.linalg.norm(push_position_init - target)
    in_place = ru.tolerance(target_to_obj, bounds=(0, radius), margin=jnp.abs(target_to_obj_init - radius),
                            sigmoid="long_tail")
    tcp_to_obj = jnp.linalg.norm(push_position - f.tcp)
    tcp_to_obj_init = jnp.linalg.norm(push_position_init - p["init_tcp"])
    reach = ru.tolerance(tcp_to_obj, bounds=(0, 0.005), margin=jnp.abs(tcp_to_obj_init - 0.005), sigmoid="gaussian")
    gripper_closed = jnp.minimum(jnp.maximum(0.0, f.action[-1]), 1.0)
    reach = ru.hamacher_product(reach, gripper_closed)
    reward = 10 * ru.hamacher_product(reach, in_place)
    success = (target_to_obj <= radius).astype(jnp.float32)
    return reward, success, dict(grasp_reward=reach, in_place=in_place, obj_to_target=target_to_obj,
                                 tcp_to_obj=tcp_to_obj)


_register(Task(
    name="dial-turn-v3", xml="sawyer_dial.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.1, 0.7, 0.0), rand_high=(0.1, 0.8, 0.0), goal_low=(-0.1, 0.73, 0.0299), goal_high=(0.1, 0.83, 0.0301),
    fixture_body="dial", reset=_dial_reset, objects=_dial_objects, reward=_dial_reward, names=dict(bodies=("dial",)),
))



# --------------------------------------------------------------------------- push-back


def _obj_geom_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(geom_xpos[ids["objGeom"]], ru.quat_from_matrix_scipy(geom_xmat[ids["objGeom"]]))


def _body_objects(body: str):
    """The observed object: ``body``'s position and quaternion."""
    def objects(xpos, xquat, geom_xpos, geom_xmat, ids):
        return _pad14(xpos[ids[body]], xquat[ids[body]])

    return objects


_obj_body_objects = _body_objects("obj")


def _push_back_reward(f: Frame):
    """``SawyerPushBackEnvV3.compute_reward`` (v2) and its success (``target_to_obj <= 0.07``)."""
    p = f.params
    obj = _obj_pos(f.obs)
    tcp_opened = f.obs[3]
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    target_to_obj = jnp.linalg.norm(obj - p["target_pos"])
    target_to_obj_init = jnp.linalg.norm(p["obj_init_pos"] - p["target_pos"])
    in_place = ru.tolerance(target_to_obj, bounds=(0, 0.05), margin=target_to_obj_init, sigmoid="long_tail")
    object_grasped = _y_gripping_caging(f, obj, obj_radius=0.007, grip_margin=0.003, x_z_success_margin=0.01)
    reward = ru.hamacher_product(object_grasped, in_place)
    pushing = (tcp_to_obj < 0.01) & (tcp_opened > 0) & (tcp_opened < 0.55) & (target_to_obj_init - target_to_obj > 0.01)
    reward = jnp.where(pushing, reward + 1.0 + 5.0 * in_place, reward)
    reward = jnp.where(target_to_obj < 0.05, 10.0, reward)
    success = (target_to_obj <= 0.07).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=target_to_obj,
                                 tcp_to_obj=tcp_to_obj)


_register(Task(
    name="push-back-v3", xml="sawyer_push_back_v3.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.1, 0.8, 0.02, -0.1, 0.6, 0.0199), rand_high=(0.1, 0.85, 0.02, 0.1, 0.7, 0.0201),
    goal_low=(-0.1, 0.6, 0.0199), goal_high=(0.1, 0.7, 0.0201), min_obj_goal_xy=0.15, reset=_obj_goal_reset,
    objects=_obj_geom_objects, reward=_push_back_reward, names=dict(geoms=("objGeom",)),
))


# --------------------------------------------------------------------------- sweep


def _sweep_reset(rand, qpos, qvel, base):
    # The goal is the table's edge (x 0.5, z 0.01) at the puck's y.
    return qpos, qvel, dict(obj_init_pos=rand, target_pos=jnp.stack([jnp.float32(0.5), rand[1], jnp.float32(0.01)]))


def _sweep_terms(f: Frame, target, grip_margin: float, x_z_success_margin: float):
    """The reward of the two sweep tasks (``SawyerSweepEnvV3`` / ``SawyerSweepIntoGoalEnvV3``,
    v2) toward ``target``, and their success (``obj_to_target <= 0.05``)."""
    p = f.params
    obj = _obj_pos(f.obs)
    obj_to_target = jnp.linalg.norm(obj - target)
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    in_place_margin = jnp.linalg.norm(p["obj_init_pos"] - target)
    in_place = ru.tolerance(obj_to_target, bounds=(0, 0.05), margin=in_place_margin, sigmoid="long_tail")
    object_grasped = _y_gripping_caging(f, obj, obj_radius=0.02, grip_margin=grip_margin,
                                        x_z_success_margin=x_z_success_margin)
    reward = 2 * object_grasped + 6 * ru.hamacher_product(object_grasped, in_place)
    reward = jnp.where(obj_to_target < 0.05, 10.0, reward)
    success = (obj_to_target <= 0.05).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


def _sweep_reward(f: Frame):
    """``SawyerSweepEnvV3.compute_reward`` (v2) and its success."""
    return _sweep_terms(f, f.params["target_pos"], grip_margin=0.01, x_z_success_margin=0.005)


_register(Task(
    name="sweep-v3", xml="sawyer_sweep_v3.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(-0.1, 0.6, 0.02), rand_high=(0.1, 0.7, 0.02), goal_low=(0.49, 0.6, 0.00), goal_high=(0.51, 0.7, 0.02),
    reset=_sweep_reset, objects=_obj_body_objects, reward=_sweep_reward, names=dict(bodies=("obj",)),
))


# --------------------------------------------------------------------------- peg-unplug-side


def _peg_unplug_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(ids["_site_xpos"][ids["pegEnd"]], xquat[ids["plug1"]])


def _peg_unplug_reset(rand, qpos, qvel, base):
    plug = rand + jnp.array([0.044, 0.0, 0.131])
    qpos = qpos.at[9:12].set(plug).at[12:16].set(jnp.array([1.0, 0.0, 0.0, 0.0]))
    return qpos, qvel.at[9:12].set(0.0), dict(target_pos=plug + jnp.array([0.15, 0.0, 0.0]), fixture_pos=rand)


def _peg_unplug_reward(f: Frame):
    """``SawyerPegUnplugSideEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.07``);
    ``obj_init_pos`` is the peg's end after the reset."""
    p = f.params
    obj = _obj_pos(f.obs)
    tcp_opened = f.obs[3]
    target = p["target_pos"]
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    obj_to_target = jnp.linalg.norm(obj - target)
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, object_reach_radius=0.01, obj_radius=0.025, pad_success_thresh=0.05, xz_thresh=0.005,
        desired_gripper_effort=0.8, high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    in_place_margin = jnp.linalg.norm(p["obj_init_pos"] - target)
    in_place = ru.tolerance(obj_to_target, bounds=(0, 0.05), margin=in_place_margin, sigmoid="long_tail")
    grasp_success = (tcp_opened > 0.5) & (obj[0] - p["obj_init_pos"][0] > 0.015)
    reward = jnp.where(grasp_success & (tcp_to_obj < 0.035), 1 + 2 * object_grasped + 5 * in_place, 2 * object_grasped)
    reward = jnp.where(obj_to_target <= 0.05, 10.0, reward)
    success = (obj_to_target <= 0.07).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


_register(Task(
    name="peg-unplug-side-v3", xml="sawyer_peg_unplug_side.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.25, 0.6, -0.001), rand_high=(-0.15, 0.8, 0.001),
    goal_low=(-0.25 + 0.194, 0.6, -0.001 + 0.131), goal_high=(-0.15 + 0.194, 0.8, 0.001 + 0.131),
    fixture_body="box", reset=_peg_unplug_reset, post_reset=_site_post("goal", "pegEnd"),
    objects=_peg_unplug_objects, reward=_peg_unplug_reward, names=dict(sites=("pegEnd", "goal"), bodies=("plug1",)),
))


# --------------------------------------------------------------------------- hand-insert


def _obj_xy_goal_reset(rand, qpos, qvel, base):
    # The object at the vector's x, y (its z kept), the goal at the vector's goal part.
    obj = jnp.stack([rand[0], rand[1], base["obj_z"]])
    qpos, qvel = qpos.at[9:12].set(obj), qvel.at[9:15].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=rand[3:])


def _hand_insert_reward(f: Frame):
    """``SawyerHandInsertEnvV3.compute_reward`` (v2) and its success (``target_to_obj <= 0.05``)."""
    p = f.params
    obj = _obj_pos(f.obs)
    target_to_obj = jnp.linalg.norm(obj - p["target_pos"])
    target_to_obj_init = jnp.linalg.norm(p["obj_init_pos"] - p["target_pos"])
    in_place = ru.tolerance(target_to_obj, bounds=(0, 0.05), margin=target_to_obj_init, sigmoid="long_tail")
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, object_reach_radius=0.01, obj_radius=0.015, pad_success_thresh=0.05, xz_thresh=0.005,
        high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    reward = ru.hamacher_product(object_grasped, in_place)
    tcp_opened = f.obs[3]
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    reward = jnp.where((tcp_to_obj < 0.02) & (tcp_opened > 0), reward + 1.0 + 7.0 * in_place, reward)
    reward = jnp.where(target_to_obj < 0.05, 10.0, reward)
    success = (target_to_obj <= 0.05).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=target_to_obj,
                                 tcp_to_obj=tcp_to_obj)


_register(Task(
    name="hand-insert-v3", xml="sawyer_table_with_hole.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.1, 0.6, 0.05, -0.04, 0.8, -0.0201), rand_high=(0.1, 0.7, 0.05, 0.04, 0.88, -0.0199),
    goal_low=(-0.04, 0.8, -0.0201), goal_high=(0.04, 0.88, -0.0199), min_obj_goal_xy=0.15,
    hand_low=(-0.5, 0.40, -0.15), reset=_obj_xy_goal_reset, objects=_obj_body_objects, reward=_hand_insert_reward,
    names=dict(bodies=("obj",)),
))


# --------------------------------------------------------------------------- shelf-place


def _obj_body_geom_quat_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(xpos[ids["obj"]], ru.quat_from_matrix_scipy(geom_xmat[ids["objGeom"]]))


def _shelf_reset(rand, qpos, qvel, base):
    # The shelf goes 0.3 below the vector's goal; the goal site sits on it at the vector's goal.
    obj = jnp.stack([rand[0], rand[1], base["obj_z"]])
    qpos, qvel = qpos.at[9:12].set(obj), qvel.at[9:15].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=rand[3:], fixture_pos=rand[3:] - jnp.array([0.0, 0.0, 0.3]))


def _shelf_place_reward(f: Frame):
    """``SawyerShelfPlaceEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.07``).

    Below the shelf (z in (0, 0.24)) and within 0.15 of the target in x, the placing term shrinks
    as the block nears the shelf's front from below (y within 0.15 before the target), and is 0
    past the target in y: the block must go over the shelf, not through it. The grasp product
    uses the placing term before that penalty, the lift bonus after it.
    """
    p = f.params
    radius = 0.05
    obj = _obj_pos(f.obs)
    tcp_opened = f.obs[3]
    target = p["target_pos"]
    obj_to_target = jnp.linalg.norm(obj - target)
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    in_place_margin = jnp.linalg.norm(p["obj_init_pos"] - target)
    in_place = ru.tolerance(obj_to_target, bounds=(0, radius), margin=in_place_margin, sigmoid="long_tail")
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, obj_radius=0.02, pad_success_thresh=0.05, object_reach_radius=0.01, xz_thresh=0.01,
        left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp, obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    reward = ru.hamacher_product(object_grasped, in_place)
    below_in_x = (0.0 < obj[2]) & (obj[2] < 0.24) & (target[0] - 0.15 < obj[0]) & (obj[0] < target[0] + 0.15)
    in_front = below_in_x & (target[1] - 3 * radius < obj[1]) & (obj[1] < target[1])
    z_scaling = (0.24 - obj[2]) / 0.24
    y_scaling = (obj[1] - (target[1] - 3 * radius)) / (3 * radius)
    bound_loss = ru.hamacher_product(y_scaling, z_scaling)
    in_place = jnp.where(in_front, jnp.clip(in_place - bound_loss, 0.0, 1.0), in_place)
    in_place = jnp.where(below_in_x & (obj[1] > target[1]), 0.0, in_place)
    lifted = (tcp_to_obj < 0.025) & (tcp_opened > 0) & (obj[2] - 0.01 > p["obj_init_pos"][2])
    reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
    reward = jnp.where(obj_to_target < radius, 10.0, reward)
    success = (obj_to_target <= 0.07).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


_register(Task(
    name="shelf-place-v3", xml="sawyer_shelf_placing.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.1, 0.5, 0.019, -0.1, 0.8, 0.299), rand_high=(0.1, 0.6, 0.021, 0.1, 0.9, 0.301),
    goal_low=(-0.1, 0.8, 0.299), goal_high=(0.1, 0.9, 0.301), min_obj_goal_xy=0.1, fixture_body="shelf",
    reset=_shelf_reset, objects=_obj_body_geom_quat_objects, reward=_shelf_place_reward,
    names=dict(bodies=("obj",), geoms=("objGeom",)),
))


# --------------------------------------------------------------------------- box-close


def _box_close_reset(rand, qpos, qvel, base):
    obj = jnp.stack([rand[0], rand[1], jnp.float32(0.02)])
    qpos, qvel = qpos.at[9:12].set(obj), qvel.at[9:15].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=rand[3:], fixture_pos=rand[3:])


def _box_close_reward(f: Frame):
    """``SawyerBoxCloseEnvV3.compute_reward`` (v2): success is the lid within 0.08 of the target
    (reward 10), and every reward is scaled by how upright the lid is (its quaternion near
    ``[0.707, 0, 0, 0.707]``)."""
    p = f.params
    target = p["target_pos"]
    reward_grab = jnp.clip((jnp.clip(f.action[3], -1, 1) + 1.0) / 2.0, 0.0, 1.0)
    quat_error = jnp.linalg.norm(f.obs[7:11] - jnp.array([0.707, 0.0, 0.0, 0.707]))
    reward_quat = jnp.maximum(1.0 - quat_error / 0.2, 0.0)
    hand = f.obs[:3]
    lid = _obj_pos(f.obs) + jnp.array([0.0, 0.0, 0.02])
    # A floor rising with the hand's horizontal distance from the handle: the hand must come
    # down onto the lid from above.
    threshold = 0.02
    radius = jnp.linalg.norm(hand[:2] - lid[:2])
    floor = jnp.where(radius <= threshold, 0.0, 0.04 * jnp.log(jnp.maximum(radius - threshold, 1e-12)) + 0.4)
    above_floor = jnp.where(
        hand[2] >= floor, 1.0,
        ru.tolerance(floor - hand[2], bounds=(0.0, 0.01), margin=floor / 2.0, sigmoid="long_tail"),
    )
    in_place = ru.tolerance(jnp.linalg.norm(hand - lid), bounds=(0, 0.02), margin=0.5, sigmoid="long_tail")
    ready_to_lift = ru.hamacher_product(above_floor, in_place)
    pos_error = (target - lid) * jnp.array([1.0, 1.0, 3.0])
    lifted = 0.2 * (lid[2] > 0.04).astype(jnp.float32) + 0.8 * ru.tolerance(
        jnp.linalg.norm(pos_error), bounds=(0, 0.05), margin=0.25, sigmoid="long_tail")
    reward = 2.0 * ru.hamacher_product(reward_grab, ready_to_lift) + 8.0 * lifted
    success = jnp.linalg.norm(_obj_pos(f.obs) - target) < 0.08
    reward = jnp.where(success, 10.0, reward) * reward_quat
    return reward, success.astype(jnp.float32), dict(grasp_reward=reward_grab, in_place=lifted)


_register(Task(
    name="box-close-v3", xml="sawyer_box.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.05, 0.5, 0.02, -0.1, 0.7, 0.133), rand_high=(0.05, 0.55, 0.02, 0.1, 0.8, 0.133),
    goal_low=(-0.1, 0.7, 0.133), goal_high=(0.1, 0.8, 0.133), min_obj_goal_xy=0.25, fixture_body="boxbody",
    reset=_box_close_reset, objects=_body_objects("top_link"), reward=_box_close_reward,
    names=dict(bodies=("top_link",)),
))


# --------------------------------------------------------------------------- basketball


def _basketball_reset(rand, qpos, qvel, base):
    obj = jnp.stack([rand[0], rand[1], jnp.float32(0.03)])
    qpos, qvel = qpos.at[9:12].set(obj), qvel.at[9:15].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, fixture_pos=rand[3:])


def _basketball_reward(f: Frame):
    """``SawyerBasketballEnvV3.compute_reward`` (v2) and its success (``target_to_obj <= 0.08``).

    Its ``_target_pos`` is a view of the hoop's goal site (``data.site_xpos``), read here from the
    current sites; the reward aims at its x, y at height 0.3, z errors counting twice.
    """
    p = f.params
    radius = 0.08
    obj = _obj_pos(f.obs)
    target = f.site_xpos[p["_ids"]["goal"]].at[2].set(0.3)
    scale = jnp.array([1.0, 1.0, 2.0])
    target_to_obj = jnp.linalg.norm((obj - target) * scale)
    target_to_obj_init = jnp.linalg.norm((p["obj_init_pos"] - target) * scale)
    in_place = ru.tolerance(target_to_obj, bounds=(0, radius), margin=target_to_obj_init, sigmoid="long_tail")
    tcp_opened = f.obs[3]
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, object_reach_radius=0.01, obj_radius=0.025, pad_success_thresh=0.06, xz_thresh=0.005,
        high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    lifted = (tcp_to_obj < 0.035) & (tcp_opened > 0) & (obj[2] - 0.01 > p["obj_init_pos"][2])
    object_grasped = jnp.where(lifted, 1.0, object_grasped)
    reward = ru.hamacher_product(object_grasped, in_place)
    reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
    reward = jnp.where(target_to_obj < radius, 10.0, reward)
    success = (target_to_obj <= radius).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=target_to_obj,
                                 tcp_to_obj=tcp_to_obj)


_register(Task(
    name="basketball-v3", xml="sawyer_basketball.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.1, 0.6, 0.0299, -0.1, 0.85, 0.0), rand_high=(0.1, 0.7, 0.0301, 0.1, 0.9 + 1e-7, 0.0),
    goal_low=(-0.1, 0.85 - 0.083, 0.2499), goal_high=(0.1, 0.9 + 1e-7 - 0.083, 0.2501), min_obj_goal_xy=0.15,
    fixture_body="basket_goal", reset=_basketball_reset, post_reset=_site_post("goal"),
    objects=_body_objects("bsktball"),
    reward=_basketball_reward, names=dict(bodies=("bsktball",), sites=("goal",)),
))


# --------------------------------------------------------------------------- pick-out-of-hole


def _pick_out_of_hole_reward(f: Frame):
    """``SawyerPickOutOfHoleEnvV3.compute_reward`` (v2) and its success (``obj_to_target <= 0.07``).

    A floor rising with the gripper's horizontal distance from the hole keeps the lift bonus for
    a gripper that comes down onto the peg from above.
    """
    p = f.params
    obj = _obj_pos(f.obs)
    gripper = f.tcp
    target = p["target_pos"]
    obj_to_target = jnp.linalg.norm(obj - target)
    tcp_to_obj = jnp.linalg.norm(obj - gripper)
    in_place_margin = jnp.linalg.norm(p["obj_init_pos"] - target)
    threshold = 0.03
    radius = jnp.linalg.norm(gripper[:2] - p["obj_init_pos"][:2])
    floor = jnp.where(radius <= threshold, 0.0, 0.015 * jnp.log(jnp.maximum(radius - threshold, 1e-12)) + 0.15)
    above_floor = jnp.where(
        gripper[2] >= floor, 1.0,
        ru.tolerance(jnp.maximum(floor - gripper[2], 0.0), bounds=(0.0, 0.01), margin=0.02, sigmoid="long_tail"),
    )
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, object_reach_radius=0.01, obj_radius=0.015, pad_success_thresh=0.02, xz_thresh=0.03,
        desired_gripper_effort=0.1, high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    in_place = ru.tolerance(obj_to_target, bounds=(0, 0.02), margin=in_place_margin, sigmoid="long_tail")
    reward = ru.hamacher_product(object_grasped, in_place)
    grasp_success = (tcp_to_obj < 0.04) & (obj[2] - 0.02 > p["obj_init_pos"][2]) & ~(f.obs[3] < 0.33)
    reward = jnp.where(grasp_success, reward + 1.0 + 5.0 * ru.hamacher_product(in_place, above_floor), reward)
    reward = jnp.where(obj_to_target < 0.05, 10.0, reward)
    success = (obj_to_target <= 0.07).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


_register(Task(
    name="pick-out-of-hole-v3", xml="sawyer_pick_out_of_hole.xml", colliders=_NO_COLLIDERS,
    hand_init_pos=(0.0, 0.6, 0.2), rand_low=(0, 0.75, 0.02, -0.1, 0.5, 0.15), rand_high=(0, 0.75, 0.02, 0.1, 0.6, 0.3),
    goal_low=(-0.1, 0.5, 0.15), goal_high=(0.1, 0.6, 0.3), min_obj_goal_xy=0.15, hand_low=(-0.5, 0.40, -0.05),
    reset=mt10._pick_place_reset, objects=_obj_body_objects,
    reward=_pick_out_of_hole_reward, names=dict(bodies=("obj",)),
))


# --------------------------------------------------------------------------- assembly / disassemble


def _nut_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    # The nut body shares its name with a site ("RoundNut"), which is what ``ids`` resolves it
    # to; the body is the parent of ``asmbly_peg``, numbered just before it.
    return _pad14(ids["_site_xpos"][ids["RoundNut-8"]], xquat[ids["asmbly_peg"] - 1])


def _nut_terms(f: Frame, medium_density: bool):
    """What the nut tasks' v2 rewards share: the nut upright (its quaternion near
    ``[0.707, 0, 0, 0.707]``) and the caging term on the handle (``obs[4:7]``, the ``RoundNut-8``
    site), whose x counts as under the hand within half the handle's length (0.02 / 2)."""
    p = f.params
    hand = f.obs[:3]
    wrench = _obj_pos(f.obs)
    wrench_threshed = wrench.at[0].set(jnp.where(jnp.abs(wrench[0] - hand[0]) < 0.01, hand[0], wrench[0]))
    quat_error = jnp.linalg.norm(f.obs[7:11] - jnp.array([0.707, 0.0, 0.0, 0.707]))
    reward_quat = jnp.maximum(1.0 - quat_error / 0.4, 0.0)
    reward_grab = ru.gripper_caging_reward(
        f.action, wrench_threshed, object_reach_radius=0.01, obj_radius=0.015, pad_success_thresh=0.02,
        xz_thresh=0.01, high_density=not medium_density, medium_density=medium_density, left_pad=f.left_pad,
        right_pad=f.right_pad, tcp=f.tcp, obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    wrench_center = f.site_xpos[p["_ids"]["RoundNut"]]
    return reward_quat, reward_grab, wrench_center


def _assembly_reward(f: Frame):
    """``SawyerNutAssemblyEnvV3.compute_reward`` (v2): success is the nut's centre within 0.02 of
    the peg in x, y and below its top (reward 10)."""
    reward_quat, reward_grab, wrench_center = _nut_terms(f, medium_density=True)
    pos_error = f.params["target_pos"] - wrench_center
    radius = jnp.linalg.norm(pos_error[:2])
    success = (radius < 0.02) & (pos_error[2] > 0.0)
    threshold = jnp.where(success, 0.02, 0.01)
    # Away from the peg the nut should be carried high (the height rises with the distance).
    target_height = jnp.where(radius > threshold, 0.02 * jnp.log(jnp.maximum(radius - threshold, 1e-12)) + 0.2, 0.0)
    pos_error = pos_error.at[2].set(target_height - wrench_center[2])
    lifted = ((wrench_center[2] > 0.02) | (radius < threshold)).astype(jnp.float32)
    reward_in_place = 0.1 * lifted + 0.9 * ru.tolerance(
        jnp.linalg.norm(pos_error * jnp.array([1.0, 1.0, 3.0])), bounds=(0, 0.02), margin=0.4, sigmoid="long_tail")
    reward = (2.0 * reward_grab + 6.0 * reward_in_place) * reward_quat
    reward = jnp.where(success, 10.0, reward)
    return reward, success.astype(jnp.float32), dict(grasp_reward=reward_grab, in_place=reward_in_place)


def _nut_reset(target_offset):
    def reset(rand, qpos, qvel, base):
        obj = rand[:3]
        qpos, qvel = qpos.at[9:12].set(obj), qvel.at[9:15].set(0.0)
        target = rand[3:] if target_offset is None else obj + jnp.asarray(target_offset, jnp.float32)
        peg = target - jnp.array([0.0, 0.0, 0.05]) if target_offset is None else obj + jnp.array([0.0, 0.0, 0.03])
        return qpos, qvel, dict(obj_init_pos=obj, target_pos=target, fixture_pos=peg)

    return reset


_register(Task(
    name="assembly-v3", xml="sawyer_assembly_peg.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(0, 0.6, 0.02, -0.1, 0.75, 0.1), rand_high=(0, 0.6, 0.02, 0.1, 0.85, 0.1),
    goal_low=(-0.1, 0.75, 0.1), goal_high=(0.1, 0.85, 0.1), min_obj_goal_xy=0.1, fixture_body="peg",
    reset=_nut_reset(None), objects=_nut_objects, reward=_assembly_reward,
    names=dict(sites=("RoundNut-8", "RoundNut"), bodies=("asmbly_peg",)),
))


def _disassemble_reward(f: Frame):
    """``SawyerNutDisassembleEnvV3.compute_reward`` (v2): success is the handle (``obs[6]``) above
    the target height (reward 10)."""
    reward_quat, reward_grab, wrench_center = _nut_terms(f, medium_density=False)
    target = f.params["target_pos"]
    pos_error = target + jnp.array([0.0, 0.0, 0.1]) - wrench_center
    lifted = (wrench_center[2] > 0.02).astype(jnp.float32)
    reward_in_place = 0.1 * lifted + 0.9 * ru.tolerance(
        jnp.linalg.norm(pos_error), bounds=(0, 0.02), margin=0.2, sigmoid="long_tail")
    reward = (2.0 * reward_grab + 6.0 * reward_in_place) * reward_quat
    success = f.obs[6] > target[2]
    reward = jnp.where(success, 10.0, reward)
    return reward, success.astype(jnp.float32), dict(grasp_reward=reward_grab, in_place=reward_in_place)


_register(Task(
    name="disassemble-v3", xml="sawyer_assembly_peg.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.4, 0.2),
    rand_low=(0.0, 0.6, 0.025, -0.1, 0.6, 0.1699), rand_high=(0.1, 0.75, 0.02501, 0.1, 0.75, 0.1701),
    goal_low=(-0.1, 0.6, 0.1699 + 0.005), goal_high=(0.1, 0.75, 0.1701 + 0.005), min_obj_goal_xy=0.1,
    fixture_body="peg",
    reset=_nut_reset((0.0, 0.0, 0.15)), objects=_nut_objects, reward=_disassemble_reward,
    names=dict(sites=("RoundNut-8", "RoundNut"), bodies=("asmbly_peg",)),
))



# --------------------------------------------------------------------------- bin-picking


def _bin_picking_reset(rand, qpos, qvel, base):
    # The goal is the target bin's centre (a fixed body), not the vector's goal part.
    obj = jnp.stack([rand[0], rand[1], base["obj_z"]])
    qpos, qvel = qpos.at[9:12].set(obj), qvel.at[9:15].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=jnp.array([0.12, 0.7, 0.0]))


def _bin_picking_reward(f: Frame):
    """``SawyerBinPickingEnvV3.compute_reward`` (v2) and its success (``target_to_obj <= 0.05``).

    Its placing margin (``_target_to_obj_init``) is the object's distance to the bin at the first
    reward of the episode, one step after the reset; here it is the distance at the reset (the
    object rests on the table in between: the two differed by 5e-12 on four scripted episodes).
    The lift bonus needs the hand above a floor that rises around both bins' centres.
    """
    p = f.params
    hand = f.obs[:3]
    obj = _obj_pos(f.obs)
    target = p["target_pos"]
    target_to_obj = jnp.linalg.norm(obj - target)
    target_to_obj_init = jnp.linalg.norm(p["obj_init_pos"] - target)
    in_place = ru.tolerance(target_to_obj, bounds=(0, 0.05), margin=target_to_obj_init, sigmoid="long_tail")
    threshold = 0.03
    radii = jnp.stack([jnp.linalg.norm(hand[:2] - p["obj_init_pos"][:2]), jnp.linalg.norm(hand[:2] - target[:2])])
    floors = jnp.where(radii > threshold, 0.02 * jnp.log(jnp.maximum(radii - threshold, 1e-12)) + 0.2, 0.0)
    floor = jnp.min(floors)
    above_floor = jnp.where(
        hand[2] >= floor, 1.0,
        ru.tolerance(jnp.maximum(floor - hand[2], 0.0), bounds=(0.0, 0.01), margin=0.05, sigmoid="long_tail"),
    )
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, obj_radius=0.015, pad_success_thresh=0.05, object_reach_radius=0.01, xz_thresh=0.01,
        desired_gripper_effort=0.7, high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    reward = ru.hamacher_product(object_grasped, in_place)
    near_object = jnp.linalg.norm(obj - hand) < 0.04
    pinched_without_obj = f.obs[3] < 0.43
    lifted = obj[2] - 0.02 > p["obj_init_pos"][2]
    grasp_success = near_object & lifted & ~pinched_without_obj
    reward = jnp.where(grasp_success, reward + 1.0 + 5.0 * ru.hamacher_product(above_floor, in_place), reward)
    reward = jnp.where(target_to_obj < 0.05, 10.0, reward)
    success = (target_to_obj <= 0.05).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=target_to_obj)


_register(Task(
    name="bin-picking-v3", xml="sawyer_bin_picking.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.21, 0.65, 0.02, 0.1199, 0.699, -0.001), rand_high=(-0.03, 0.75, 0.02, 0.1201, 0.701, 0.001),
    goal_low=(0.1199, 0.699, -0.001), goal_high=(0.1201, 0.701, 0.001), hand_low=(-0.5, 0.40, 0.07),
    reset=_bin_picking_reset, objects=_obj_body_objects, reward=_bin_picking_reward, names=dict(bodies=("obj",)),
))



# --------------------------------------------------------------------------- sweep-into


def _sweep_into_reset(rand, qpos, qvel, base):
    # The goal is the hole, fixed at [0, 0.84, 0.02]; the vector's goal part only enters the
    # redraw rule.
    obj = jnp.stack([rand[0], rand[1], base["obj_z"]])
    qpos, qvel = qpos.at[9:12].set(obj), qvel.at[9:15].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=jnp.array([0.0, 0.84, 0.02]))


def _sweep_into_reward(f: Frame):
    """``SawyerSweepIntoGoalEnvV3.compute_reward`` (v2) and its success, distances to the hole
    taken at the puck's own height."""
    target = f.params["target_pos"].at[2].set(_obj_pos(f.obs)[2])
    return _sweep_terms(f, target, grip_margin=0.005, x_z_success_margin=0.01)


_register(Task(
    name="sweep-into-v3", xml="sawyer_table_with_hole.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(-0.1, 0.6, 0.02, -0.001, 0.8399, 0.0199), rand_high=(0.1, 0.7, 0.02, 0.001, 0.8401, 0.0201),
    goal_low=(-0.001, 0.8399, 0.0199), goal_high=(0.001, 0.8401, 0.0201),
    # Meta-World redraws while the puck is within 0.15 in x, y of the fixed hole [0, 0.84], not
    # of the vector's goal part (which lies within 0.00101 of the hole): this rule on the vector
    # rejects every vector Meta-World's rejects (its reset would loop forever on one), and also
    # those in a band about 0.002 wide outside that circle, which Meta-World keeps.
    min_obj_goal_xy=0.1511,
    reset=_sweep_into_reset, objects=_obj_body_geom_quat_objects, reward=_sweep_into_reward,
    names=dict(bodies=("obj",), geoms=("objGeom",)),
))


# --------------------------------------------------------------------------- stick-pull


def _stick_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    # The stick's body, then the thermos's insertion site (its quaternion slot left zero).
    return _pad14(xpos[ids["stick"]], _quat_scipy_from_xquat(xquat[ids["stick"]]), ids["_site_xpos"][ids["insertion"]])


def _stick_pull_reset(rand, qpos, qvel, base):
    # The stick at the vector's x, y (z 0.02), the goal at the vector's goal x, y at the same
    # height; the thermos slides 0.09 in y, and ``obj_init_pos`` is its body there.
    stick = jnp.stack([rand[0], rand[1], jnp.float32(0.02)])
    target = jnp.stack([rand[3], rand[4], jnp.float32(0.02)])
    qpos, qvel = qpos.at[9:12].set(stick), qvel.at[9:15].set(0.0)
    qpos = qpos.at[16:18].set(jnp.array([0.0, 0.09]))
    return qpos, qvel, dict(stick_init_pos=stick, target_pos=target, obj_init_pos=jnp.array([0.2, 0.69, 0.0]))


def _stick_pull_reward(f: Frame):
    """``SawyerStickPullEnvV3.compute_reward`` (v2) and its success: the thermos's handle (the
    insertion site, ``obs[11:14]``) within 0.12 of the target with the stick's end inserted in it
    (past the handle in x, within 0.04 in y and 0.06 in z).

    The stick is grasped once it is lifted 0.01 above its start in the closed hand; then the stick
    nearing the thermos (z errors counting twice) scores, and once inserted, the stick and the
    thermos nearing the target. The caging term's margins use the thermos's start
    (``obj_init_pos``), as the inherited ``_gripper_caging_reward`` does.
    """
    p = f.params
    radius = 0.05
    tcp_opened = f.obs[3]
    stick = _obj_pos(f.obs)
    end_of_stick = f.site_xpos[p["_ids"]["stick_end"]]
    handle = f.obs[11:14]
    offset = jnp.array([0.05, 0.0, 0.0])
    container = handle + offset
    container_init = p["obj_init_pos"] + offset
    target = p["target_pos"]
    stick_init = p["stick_init_pos"]
    tcp_to_stick = jnp.linalg.norm(stick - f.tcp)
    handle_to_target = jnp.linalg.norm(handle - target)
    yz_scaling = jnp.array([1.0, 1.0, 2.0])
    stick_in_place = ru.tolerance(
        jnp.linalg.norm((stick - container) * yz_scaling), bounds=(0, radius),
        margin=jnp.linalg.norm((stick_init - container_init) * yz_scaling), sigmoid="long_tail")
    stick_in_place_2 = ru.tolerance(
        jnp.linalg.norm(stick - target), bounds=(0, radius), margin=jnp.linalg.norm(stick_init - target),
        sigmoid="long_tail")
    container_in_place = ru.tolerance(
        jnp.linalg.norm(container - target), bounds=(0, radius), margin=jnp.linalg.norm(p["obj_init_pos"] - target),
        sigmoid="long_tail")
    object_grasped = ru.gripper_caging_reward(
        f.action, stick, obj_radius=0.014, pad_success_thresh=0.05, object_reach_radius=0.01, xz_thresh=0.01,
        high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    grasp_success = (tcp_to_stick < 0.02) & (tcp_opened > 0) & (stick[2] - 0.01 > stick_init[2])
    object_grasped = jnp.where(grasp_success, 1.0, object_grasped)
    in_place_and_object_grasped = ru.hamacher_product(object_grasped, stick_in_place)
    inserted = ((end_of_stick[0] >= handle[0]) & (jnp.abs(end_of_stick[1] - handle[1]) <= 0.040)
                & (jnp.abs(end_of_stick[2] - handle[2]) <= 0.060))
    reward = in_place_and_object_grasped
    reward = jnp.where(grasp_success, 1.0 + in_place_and_object_grasped + 5.0 * stick_in_place, reward)
    reward = jnp.where(grasp_success & inserted,
                       1.0 + in_place_and_object_grasped + 5.0 + 2.0 * stick_in_place_2 + container_in_place, reward)
    reward = jnp.where(grasp_success & inserted & (handle_to_target <= 0.12), 10.0, reward)
    success = ((handle_to_target <= 0.12) & inserted).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=stick_in_place, obj_to_target=handle_to_target,
                                 tcp_to_obj=tcp_to_stick)


_register(Task(
    name="stick-pull-v3", xml="sawyer_stick_obj.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.1, 0.55, 0.0, 0.35, 0.45, 0.0199), rand_high=(0.0, 0.65, 0.001, 0.45, 0.55, 0.0201),
    goal_low=(0.35, 0.45, 0.0199), goal_high=(0.45, 0.55, 0.0201), min_obj_goal_xy=0.1,
    hand_low=(-0.5, 0.35, 0.05), reset=_stick_pull_reset, objects=_stick_objects,
    reward=_stick_pull_reward, names=dict(bodies=("stick",), sites=("insertion", "stick_end")),
))



# --------------------------------------------------------------------------- stick-push


def _stick_push_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    # The stick's body, then the thermos's insertion site moved 0.09 in y (its quaternion slot left zero).
    return _pad14(xpos[ids["stick"]], _quat_scipy_from_xquat(xquat[ids["stick"]]),
                  ids["_site_xpos"][ids["insertion"]] + jnp.array([0.0, 0.09, 0.0]))


def _stick_push_reset(rand, qpos, qvel, base):
    # The stick at the vector's x, y (z 0.02), the goal at the vector's goal x, y (the native reset
    # sets its z to the insertion site's height); the thermos's joints at zero, ``obj_init_pos``
    # its body there.
    stick = jnp.stack([rand[0], rand[1], jnp.float32(0.02)])
    target = jnp.stack([rand[3], rand[4], rand[5]])
    qpos, qvel = qpos.at[9:12].set(stick), qvel.at[9:15].set(0.0)
    return qpos, qvel, dict(stick_init_pos=stick, target_pos=target, obj_init_pos=jnp.array([0.2, 0.6, 0.0]))


def _stick_push_reward(f: Frame):
    """``SawyerStickPushEnvV3.compute_reward`` (v2) and its success: the thermos (``obs[11:14]``)
    within 0.12 of the target while the stick is grasped, i.e. both pads push on the stick
    (``touching_main_object``: ``Frame.touching``, on ``objGeom``), the gripper is open in the
    observation's sense (``obs[3] > 0``) and the stick is 0.01 above its start.

    The reward's stick point is 0.015 ahead of the stick's body in x. Before the lift (hand within
    0.02 of that point, stick 0.01 up) the reward is the caging term (margins from the stick's
    start); after it, 2 + 5 x the stick nearing the target + 3 x the thermos nearing it (margins
    less the 0.12 radius), and 10 once the thermos is within 0.12.
    """
    p = f.params
    radius = 0.12
    tcp_opened = f.obs[3]
    stick = _obj_pos(f.obs) + jnp.array([0.015, 0.0, 0.0])
    container = f.obs[11:14]
    target = p["target_pos"]
    stick_init = p["stick_init_pos"]
    tcp_to_stick = jnp.linalg.norm(stick - f.tcp)
    stick_in_place = ru.tolerance(
        jnp.linalg.norm(stick - target), bounds=(0, radius), margin=jnp.linalg.norm(stick_init - target) - radius,
        sigmoid="long_tail")
    container_to_target = jnp.linalg.norm(container - target)
    container_in_place = ru.tolerance(
        container_to_target, bounds=(0, radius), margin=jnp.linalg.norm(p["obj_init_pos"] - target) - radius,
        sigmoid="long_tail")
    object_grasped = ru.gripper_caging_reward(
        f.action, stick, obj_radius=0.04, pad_success_thresh=0.05, object_reach_radius=0.01, xz_thresh=0.01,
        high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=stick_init, init_tcp=p["init_tcp"],
    )
    lifted = (tcp_to_stick < 0.02) & (tcp_opened > 0) & (stick[2] - 0.01 > stick_init[2])
    reward = jnp.where(lifted, 2.0 + 5.0 * stick_in_place + 3.0 * container_in_place, object_grasped)
    reward = jnp.where(lifted & (container_to_target <= radius), 10.0, reward)
    object_grasped = jnp.where(lifted, 1.0, object_grasped)
    grasp_success = (f.touching > 0) & (tcp_opened > 0) & (_obj_pos(f.obs)[2] - 0.01 > stick_init[2])
    success = (grasp_success & (container_to_target <= radius)).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=stick_in_place,
                                 obj_to_target=container_to_target, tcp_to_obj=tcp_to_stick)


_register(Task(
    name="stick-push-v3", xml="sawyer_stick_obj.xml", colliders=_NO_COLLIDERS, hand_init_pos=(0, 0.6, 0.2),
    rand_low=(-0.08, 0.58, 0.0, 0.399, 0.55, 0.1319), rand_high=(-0.03, 0.62, 0.001, 0.401, 0.6, 0.1321),
    goal_low=(0.399, 0.55, 0.1319), goal_high=(0.401, 0.6, 0.1321), min_obj_goal_xy=0.1,
    reset=_stick_push_reset, objects=_stick_push_objects, reward=_stick_push_reward,
    names=dict(bodies=("stick",), sites=("insertion",)), touch_geom="objGeom",
))


KALM_UNSEEN_TASKS = (
    "reach-wall-v3", "push-wall-v3", "pick-place-wall-v3", "button-press-wall-v3", "door-lock-v3", "door-close-v3",
    "faucet-close-v3", "window-close-v3", "hammer-v3", "soccer-v3", "door-unlock-v3",
)
"""KALM's unseen Meta-World tasks (Pang et al. 2024), all of which run here (window-close is in MT10)."""
