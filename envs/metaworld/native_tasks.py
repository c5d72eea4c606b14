"""Meta-World tasks beyond MT10 that run on the C-engine backend only (``backend="mujoco"``).

Their models are Meta-World's own, unedited; no MJX model has been made for them (the walls would
need collision edits), so ``MetaWorldEnv(task)`` with MJX refuses them by name. Each task here is
the same :class:`envs.metaworld.tasks.Task` record as an MT10 task: the reset space and its
rejection rule (for ``reset(key)``), the observed objects and the v2 reward and success in jnp,
ported from ``metaworld.envs.sawyer_*_v3``. The resets themselves run Meta-World's own code on the
host, so ``Task.reset`` only names the parameters the reward reads. ``tests/test_metaworld_native.py``
holds each to native parity the way it holds MT10.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from envs.metaworld import reward_utils as ru
from envs.metaworld import tasks as mt10
from envs.metaworld.tasks import Frame, Task, _obj_pos, _pad14

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


KALM_UNSEEN_TASKS = (
    "reach-wall-v3", "push-wall-v3", "pick-place-wall-v3", "button-press-wall-v3", "door-lock-v3", "door-close-v3",
    "faucet-close-v3", "window-close-v3",
)
"""KALM's unseen Meta-World tasks (Pang et al. 2024) that run here (window-close is in MT10);
KALM's harder ones (hammer, soccer, door-unlock) are not ported yet."""
