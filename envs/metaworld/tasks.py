"""Meta-World tasks: reset distributions, observed objects, reward v2 and success, in JAX.

Each :class:`Task` mirrors one ``metaworld.envs.sawyer_*_v3`` class: its constants
(``hand_init_pos``, mocap bounds, the random reset space and the rejection rule on it), its
``reset_model`` (which joints and fixture bodies the reset vector moves), its
``_get_pos_objects``/``_get_quat_objects`` and its ``compute_reward``/``evaluate_state`` with
reward version ``v2``. The functions receive a :class:`Frame` (everything a Meta-World
reward reads from ``self``) instead of an env object, so they are pure.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.metaworld import reward_utils as ru
from envs.metaworld.model import ColliderSpec, edits_for

HAND_LOW = (-0.5, 0.40, 0.05)
HAND_HIGH = (0.5, 1.0, 0.5)


@struct.dataclass
class Frame:
    """What a reward function reads after a step.

    Attributes:
      obs: the 39-d observation, clipped as Meta-World clips it (goal as observed).
      action: the raw 4-d action of the step.
      tcp: gripper centre, mean of the two end-effector sites ``[3]``.
      left_pad, right_pad: pad body positions ``[3]``.
      qpos: joint positions.
      site_xpos: all site positions ``[nsite, 3]``.
      params: the episode's task parameters (``target_pos``, ``obj_init_pos``, ``init_tcp``, ...).
      touching: 1.0 where both gripper pads push on the task's ``touch_geom`` (Meta-World's
        ``touching_object``), else 0.0; None for tasks without a touch geom.
    """

    obs: jax.Array
    action: jax.Array
    tcp: jax.Array
    left_pad: jax.Array
    right_pad: jax.Array
    qpos: jax.Array
    site_xpos: jax.Array
    params: dict
    touching: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class Task:
    """Static description of one Meta-World task.

    Attributes:
      name: Meta-World's name, e.g. ``"reach-v3"``.
      xml: file under ``metaworld/assets/sawyer_xyz``.
      colliders: which task geoms keep collisions in the MJX model.
      hand_init_pos: mocap target during the reset's hand settling.
      rand_low, rand_high: the task's ``_random_reset_space``.
      min_obj_goal_xy: resample while ``||rand[:2] - rand[3:5]|| < min_obj_goal_xy`` (None: no rule).
      goal_low, goal_high: ``goal_space`` (clips the goal when it is observed).
      fixture_body: body whose ``pos`` the reset sets from the reset vector (None: none).
      reset: ``(rand_vec, qpos, qvel, base) -> (qpos, qvel, params)``; ``base`` holds host-side
        constants from the hand settling (``obj_z``, ``init_tcp``, pads, ...).
      post_reset: ``(params, site_xpos, xpos, ids) -> params`` after the reset's kinematics
        (targets read from sites, initial object positions).
      objects: ``(xpos, xquat, geom_xpos, geom_xmat, ids) -> [14]`` padded object slots
        (``ids["_site_xpos"]`` carries the site positions).
      reward: ``(frame) -> (reward, success, terms)``.
      names: body/site/geom/joint names the functions need, resolved to ids on the host.
      reset_obs_object_offset: added to the first object position in the reset observation only,
        where Meta-World reads that observation before a joint it sets takes effect.
      touch_geom: geom whose contact with both gripper pads the reward reads (``Frame.touching``;
        the C-engine backend computes it on the host). None: the reward reads no contact.
    """

    name: str
    xml: str
    colliders: ColliderSpec
    hand_init_pos: tuple[float, float, float]
    rand_low: tuple[float, ...]
    rand_high: tuple[float, ...]
    goal_low: tuple[float, float, float]
    goal_high: tuple[float, float, float]
    reset: Callable
    objects: Callable
    reward: Callable
    min_obj_goal_xy: float | None = None
    fixture_body: str | None = None
    post_reset: Callable | None = None
    names: dict = dataclasses.field(default_factory=dict)
    hand_low: tuple[float, float, float] = HAND_LOW
    hand_high: tuple[float, float, float] = HAND_HIGH
    reset_obs_object_offset: tuple[float, float, float] | None = None
    touch_geom: str | None = None


def _pad14(*parts):
    flat = jnp.concatenate([jnp.ravel(p) for p in parts])
    return jnp.zeros(14, jnp.float32).at[: flat.shape[0]].set(flat)


def _obj_pos(obs):
    return obs[4:7]


# --------------------------------------------------------------------------- free puck tasks


_PUCK = ColliderSpec(objects=(("obj", None),))


def _puck_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(xpos[ids["obj"]], ru.quat_from_matrix_scipy(geom_xmat[ids["objGeom"]]))


def _set_free_obj(qpos, qvel, pos):
    return qpos.at[9:12].set(pos), qvel.at[9:15].set(0.0)


def _reach_reset(rand, qpos, qvel, base):
    obj = rand[:3]
    target = rand[3:]
    qpos, qvel = _set_free_obj(qpos, qvel, obj)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=target)


def _reach_reward(f: Frame):
    target = f.params["target_pos"]
    tcp_to_target = jnp.linalg.norm(f.tcp - target)
    in_place_margin = jnp.linalg.norm(f.params["hand_init_pos"] - target)
    in_place = ru.tolerance(tcp_to_target, bounds=(0, 0.05), margin=in_place_margin, sigmoid="long_tail")
    reward = 10 * in_place
    success = (tcp_to_target <= 0.05).astype(jnp.float32)
    return reward, success, dict(in_place=in_place, tcp_to_target=tcp_to_target)


def _push_reset(rand, qpos, qvel, base):
    z = base["obj_z"]
    target = jnp.array([rand[3], rand[4], z])
    obj = jnp.array([rand[0], rand[1], z])
    qpos, qvel = _set_free_obj(qpos, qvel, obj)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=target)


def _push_reward(f: Frame):
    p = f.params
    obj = _obj_pos(f.obs)
    tcp_opened = f.obs[3]
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    target_to_obj = jnp.linalg.norm(obj - p["target_pos"])
    target_to_obj_init = jnp.linalg.norm(p["obj_init_pos"] - p["target_pos"])
    in_place = ru.tolerance(target_to_obj, bounds=(0, 0.05), margin=target_to_obj_init, sigmoid="long_tail")
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, object_reach_radius=0.01, obj_radius=0.015, pad_success_thresh=0.05, xz_thresh=0.005,
        high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    reward = 2 * object_grasped
    reward = jnp.where((tcp_to_obj < 0.02) & (tcp_opened > 0), reward + 1.0 + reward + 5.0 * in_place, reward)
    reward = jnp.where(target_to_obj < 0.05, 10.0, reward)
    success = (target_to_obj <= 0.05).astype(jnp.float32)
    return reward, success, dict(in_place=in_place, grasp_reward=object_grasped, obj_to_target=target_to_obj,
                                 tcp_to_obj=tcp_to_obj)


def _pick_place_reset(rand, qpos, qvel, base):
    obj = rand[:3]
    target = rand[3:]
    qpos, qvel = _set_free_obj(qpos, qvel, obj)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=target)


def _pick_place_caging(action, obj_pos, tcp, left_pad, right_pad, p):
    # Meta-World's pick-place stores ``init_left_pad = get_body_com("leftpad")``, a view into
    # ``data.xpos``: its "initial" pad positions are the current ones. Reproduced as is.
    init_left_pad, init_right_pad = left_pad, right_pad
    pad_success_margin, x_z_success_margin, obj_radius = 0.05, 0.005, 0.015
    delta_left = left_pad[1] - obj_pos[1]
    delta_right = obj_pos[1] - right_pad[1]
    right_margin = jnp.abs(jnp.abs(obj_pos[1] - init_right_pad[1]) - pad_success_margin)
    left_margin = jnp.abs(jnp.abs(obj_pos[1] - init_left_pad[1]) - pad_success_margin)
    right_caging = ru.tolerance(delta_right, bounds=(obj_radius, pad_success_margin), margin=right_margin, sigmoid="long_tail")
    left_caging = ru.tolerance(delta_left, bounds=(obj_radius, pad_success_margin), margin=left_margin, sigmoid="long_tail")
    y_caging = ru.hamacher_product(left_caging, right_caging)
    xz = jnp.array([0, 2])
    tcp_obj_xz = jnp.linalg.norm(tcp[xz] - obj_pos[xz])
    xz_margin = jnp.linalg.norm(p["obj_init_pos"][xz] - p["init_tcp"][xz]) - x_z_success_margin
    x_z_caging = ru.tolerance(tcp_obj_xz, bounds=(0, x_z_success_margin), margin=xz_margin, sigmoid="long_tail")
    gripper_closed = jnp.minimum(jnp.maximum(0.0, action[-1]), 1.0)
    caging = ru.hamacher_product(y_caging, x_z_caging)
    gripping = jnp.where(caging > 0.97, gripper_closed, 0.0)
    caging_and_gripping = ru.hamacher_product(caging, gripping)
    return (caging_and_gripping + caging) / 2


def _pick_place_reward(f: Frame):
    p = f.params
    obj = _obj_pos(f.obs)
    tcp_opened = f.obs[3]
    target = p["target_pos"]
    obj_to_target = jnp.linalg.norm(obj - target)
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    in_place_margin = jnp.linalg.norm(p["obj_init_pos"] - target)
    in_place = ru.tolerance(obj_to_target, bounds=(0, 0.05), margin=in_place_margin, sigmoid="long_tail")
    object_grasped = _pick_place_caging(f.action, obj, f.tcp, f.left_pad, f.right_pad, p)
    reward = ru.hamacher_product(object_grasped, in_place)
    lifted = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.01 > p["obj_init_pos"][2])
    reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
    reward = jnp.where(obj_to_target < 0.05, 10.0, reward)
    success = (obj_to_target <= 0.07).astype(jnp.float32)
    return reward, success, dict(in_place=in_place, grasp_reward=object_grasped, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


# --------------------------------------------------------------------------- drawer


# drawer_link's colliding geoms: 0 front panel, 1 back, 2-3 sides, 4 bottom, 5-7 handle capsules.
# drawercase_link's: 0-1 sides, 2 back, 3 bottom, 4 top. Natively the drawer's back meets the
# case's back when it closes (drawer-close pushes it there and holds it): that pair is the stop.
_DRAWER = ColliderSpec(
    fixtures=(("drawer_link", (0, 5, 6, 7)),), hand_fixture_contacts=True,
    stops=(("drawercase_link", (2,)),), stopped=(("drawer_link", (1,)),),
)


def _drawer_open_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(xpos[ids["drawer_link"]] + jnp.array([0.0, -0.16, 0.0]), xquat[ids["drawer_link"]])


def _drawer_close_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(xpos[ids["drawer_link"]] + jnp.array([0.0, -0.16, 0.05]), jnp.zeros(4))


def _drawer_open_reset(rand, qpos, qvel, base):
    obj = rand[:3]
    target = obj + jnp.array([0.0, -0.16 - 0.2, 0.09])
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=target, fixture_pos=obj)


def _drawer_open_reward(f: Frame):
    p = f.params
    max_dist = 0.2
    gripper = f.obs[:3]
    handle = _obj_pos(f.obs)
    handle_error = jnp.linalg.norm(handle - p["target_pos"])
    reward_for_opening = ru.tolerance(handle_error, bounds=(0, 0.02), margin=max_dist, sigmoid="long_tail")
    handle_pos_init = p["target_pos"] + jnp.array([0.0, max_dist, 0.0])
    scale = jnp.array([3.0, 3.0, 1.0])
    gripper_error = (handle - gripper) * scale
    gripper_error_init = (handle_pos_init - p["init_tcp"]) * scale
    reward_for_caging = ru.tolerance(
        jnp.linalg.norm(gripper_error), bounds=(0, 0.01), margin=jnp.linalg.norm(gripper_error_init), sigmoid="long_tail"
    )
    reward = 5.0 * (reward_for_caging + reward_for_opening)
    success = (handle_error <= 0.03).astype(jnp.float32)
    return reward, success, dict(grasp_reward=reward_for_caging, in_place=reward_for_opening, obj_to_target=handle_error)


def _drawer_close_reset(rand, qpos, qvel, base):
    obj = rand[:3]
    target = obj + jnp.array([0.0, -0.16, 0.09])
    qpos = qpos.at[9].set(-0.15)
    return qpos, qvel, dict(fixture_pos=obj, target_pos=target)


def _drawer_close_post(params, site_xpos, xpos, ids):
    # obj_init_pos = _get_pos_objects() after the drawer is pulled out.
    return dict(params, obj_init_pos=xpos[ids["drawer_link"]] + jnp.array([0.0, -0.16, 0.05]))


def _drawer_close_reward(f: Frame):
    p = f.params
    obj = _obj_pos(f.obs)
    target = p["target_pos"]
    target_to_obj = jnp.linalg.norm(obj - target)
    target_to_obj_init = jnp.linalg.norm(p["obj_init_pos"] - target)
    in_place = ru.tolerance(target_to_obj, bounds=(0, 0.05), margin=jnp.abs(target_to_obj_init - 0.05), sigmoid="long_tail")
    handle_reach_radius = 0.005
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    tcp_to_obj_init = jnp.linalg.norm(p["obj_init_pos"] - p["init_tcp"])
    reach = ru.tolerance(
        tcp_to_obj, bounds=(0, handle_reach_radius), margin=jnp.abs(tcp_to_obj_init - handle_reach_radius), sigmoid="gaussian"
    )
    gripper_closed = jnp.minimum(jnp.maximum(0.0, f.action[-1]), 1.0)
    reach = ru.hamacher_product(reach, gripper_closed)
    reward = ru.hamacher_product(reach, in_place)
    reward = jnp.where(target_to_obj <= 0.05 + 0.015, 1.0, reward) * 10
    success = (target_to_obj <= 0.05 + 0.015).astype(jnp.float32)
    return reward, success, dict(grasp_reward=reach, in_place=in_place, obj_to_target=target_to_obj, tcp_to_obj=tcp_to_obj)


# --------------------------------------------------------------------------- button press (top-down)


# button's colliding geoms: 0 rod, 1 collar, 2 cap (all cylinders); the gripper presses the cap.
# buttonbox's: 0-1 the housing's plates either side of the hole, 2-3 its sides. Natively the cap
# and the claws come to rest on plate 0, which stops both the button and the hand (stopping the
# cap on all four, or with a joint limit, is further from native: benchmarks/RESULTS_metaworld.md).
_BUTTON = ColliderSpec(
    fixtures=(("button", (2,)),), stops=(("buttonbox", (0,)),), stopped=(("button", (2,)),),
    gripper_stop_contacts=True,
)


def _button_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(xpos[ids["button"]] + jnp.array([0.0, 0.0, 0.193]), xquat[ids["button"]])


def _button_reset(rand, qpos, qvel, base):
    obj = rand[:3]
    return qpos, qvel, dict(obj_init_pos=obj, fixture_pos=obj)


def _button_post(params, site_xpos, xpos, ids):
    target = site_xpos[ids["hole"]]
    start = site_xpos[ids["buttonStart"]]
    return dict(params, target_pos=target, obj_to_target_init=jnp.abs(target[2] - start[2]))


def _button_reward(f: Frame):
    p = f.params
    obj = _obj_pos(f.obs)
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    tcp_to_obj_init = jnp.linalg.norm(obj - p["init_tcp"])
    obj_to_target = jnp.abs(p["target_pos"][2] - obj[2])
    tcp_closed = 1 - f.obs[3]
    near_button = ru.tolerance(tcp_to_obj, bounds=(0, 0.01), margin=tcp_to_obj_init, sigmoid="long_tail")
    button_pressed = ru.tolerance(obj_to_target, bounds=(0, 0.005), margin=p["obj_to_target_init"], sigmoid="long_tail")
    reward = 5 * ru.hamacher_product(tcp_closed, near_button)
    reward = jnp.where(tcp_to_obj <= 0.03, reward + 5 * button_pressed, reward)
    success = (obj_to_target <= 0.024).astype(jnp.float32)
    return reward, success, dict(grasp_reward=near_button, in_place=button_pressed, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


# --------------------------------------------------------------------------- door open


# door_link's colliding geoms: 0 handle base, 1 handle stem, 2-3 handle bars (cylinders), 4 door panel.
# The outer bar (3) touches the claws natively, but colliding it leaves the trajectories as far from
# native as without it (benchmarks/RESULTS_metaworld.md), so it stays off.
_DOOR = ColliderSpec(fixtures=(("door_link", (1, 2, 4)),), hand_fixture_contacts=True)


def _door_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(geom_xpos[ids["handle"]], ru.quat_from_matrix_scipy(geom_xmat[ids["handle"]]))


def _door_reset(rand, qpos, qvel, base):
    obj = rand[:3]
    target = obj + jnp.array([-0.3, -0.45, 0.0])
    qpos = qpos.at[9].set(0.0)
    qvel = qvel.at[9].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=target, fixture_pos=obj)


def _door_reward(f: Frame):
    p = f.params
    theta = f.qpos[9]
    reward_grab = (jnp.clip(f.action[3], -1, 1) + 1.0) / 2.0
    hand = f.obs[:3]
    door = _obj_pos(f.obs) + jnp.array([-0.05, 0.0, 0.0])
    threshold = 0.12
    radius = jnp.linalg.norm(hand[:2] - door[:2])
    floor = jnp.where(radius <= threshold, 0.0, 0.04 * jnp.log(jnp.maximum(radius - threshold, 1e-12)) + 0.4)
    above_floor = jnp.where(
        hand[2] >= floor, 1.0,
        ru.tolerance(floor - hand[2], bounds=(0.0, 0.01), margin=jnp.maximum(floor / 2.0, 0.0), sigmoid="long_tail"),
    )
    in_place = ru.tolerance(
        jnp.linalg.norm(hand - door - jnp.array([0.05, 0.03, -0.01])), bounds=(0, threshold / 2.0), margin=0.5,
        sigmoid="long_tail",
    )
    ready_to_open = ru.hamacher_product(above_floor, in_place)
    door_angle = -theta
    opened = 0.2 * (theta < -np.pi / 90.0).astype(jnp.float32) + 0.8 * ru.tolerance(
        np.pi / 2.0 + np.pi / 6 - door_angle, bounds=(0, 0.5), margin=np.pi / 3.0, sigmoid="long_tail"
    )
    reward = 2.0 * ru.hamacher_product(ready_to_open, reward_grab) + 8.0 * opened
    done = jnp.abs(f.obs[4] - p["target_pos"][0]) <= 0.08
    reward = jnp.where(done, 10.0, reward)
    return reward, done.astype(jnp.float32), dict(grasp_reward=reward_grab, in_place=opened)


# --------------------------------------------------------------------------- window open / close


# windowb_a's colliding geoms: 0-1 handle mounts (cylinders), 2-4 handle capsules, 5-10 sash boxes
# (5 and 6 its two upright edges). window/0 (the frame): 0 and 2 its uprights, 1 the base, 3-4 the
# rails. Natively the sash's edges meet the frame's uprights at both ends of its travel.
_WINDOW = ColliderSpec(
    fixtures=(("windowb_a", (2, 3, 4)),), hand_fixture_contacts=True,
    stops=(("window/0", (0, 2)),), stopped=(("windowb_a", (5, 6)),),
)


def _window_open_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(ids["_site_xpos"][ids["handleOpenStart"]], jnp.zeros(4))


def _window_close_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    return _pad14(ids["_site_xpos"][ids["handleCloseStart"]], jnp.zeros(4))


def _window_open_reset(rand, qpos, qvel, base):
    obj = rand[:3]
    qpos = qpos.at[9].set(0.0)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=obj + jnp.array([0.2, 0.0, 0.0]), fixture_pos=obj)


def _window_open_post(params, site_xpos, xpos, ids):
    return dict(params, handle_pos_init=site_xpos[ids["handleOpenStart"]])


def _window_close_reset(rand, qpos, qvel, base):
    obj = rand[:3]
    qpos = qpos.at[9].set(0.2)
    return qpos, qvel, dict(obj_init_pos=obj, target_pos=obj, fixture_pos=obj)


def _window_close_post(params, site_xpos, xpos, ids):
    # Meta-World reads the handle before moving the sash (slide 0) and adds 0.2 along x:
    # the handle's position with the sash at 0.2.
    return dict(params, handle_pos_init=site_xpos[ids["handleCloseStart"]])


def _window_reward(f: Frame, sigmoid: str, margin_from_handle: bool):
    p = f.params
    obj = _obj_pos(f.obs)
    target = p["target_pos"]
    target_to_obj = jnp.abs(obj[0] - target[0])
    start = p["handle_pos_init"] if margin_from_handle else p["obj_init_pos"]
    target_to_obj_init = jnp.abs(start[0] - target[0])
    in_place = ru.tolerance(target_to_obj, bounds=(0, 0.05), margin=jnp.abs(target_to_obj_init - 0.05), sigmoid="long_tail")
    handle_radius = 0.02
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    tcp_to_obj_init = jnp.linalg.norm(p["handle_pos_init"] - p["init_tcp"])
    reach = ru.tolerance(tcp_to_obj, bounds=(0, handle_radius), margin=jnp.abs(tcp_to_obj_init - handle_radius), sigmoid=sigmoid)
    reward = 10 * ru.hamacher_product(reach, in_place)
    success = (target_to_obj <= 0.05).astype(jnp.float32)
    return reward, success, dict(grasp_reward=reach, in_place=in_place, obj_to_target=target_to_obj, tcp_to_obj=tcp_to_obj)


def _window_open_reward(f: Frame):
    return _window_reward(f, "long_tail", margin_from_handle=False)


def _window_close_reward(f: Frame):
    return _window_reward(f, "gaussian", margin_from_handle=True)


# --------------------------------------------------------------------------- peg insert (side)


# peg: one box. box/0 (the block with the hole) colliding geoms: 0 top plate, 1 below the hole,
# 2-3 either side of it, 4 above it, 5-6 side walls. The peg meets the hole's four walls; what
# ends the insertion natively is the gripper holding the peg meeting the block's face (top plate
# and the wall above the hole), so those two stop the gripper.
_PEG = ColliderSpec(
    objects=(("peg", None),), fixtures=(("box/0", (1, 2, 3, 4)),), fixture_object_contacts=True,
    fixture_gripper_contacts=False, stops=(("box/0", (0, 4)),), gripper_stop_contacts=True,
)


def _peg_objects(xpos, xquat, geom_xpos, geom_xmat, ids):
    site_xpos, site_xmat = ids["_site_xpos"], ids["_site_xmat"]
    return _pad14(site_xpos[ids["pegGrasp"]], ru.quat_from_matrix_scipy(site_xmat[ids["pegGrasp"]]))


def _peg_reset(rand, qpos, qvel, base):
    peg, box = rand[:3], rand[3:]
    qpos, qvel = _set_free_obj(qpos, qvel, peg)
    # peg_head_pos_init is read before the peg moves: the settled peg's head.
    return qpos, qvel, dict(
        obj_init_pos=peg, fixture_pos=box, target_pos=box + jnp.array([0.03, 0.0, 0.13]),
        peg_head_pos_init=base["peg_head"],
    )


def _peg_reward(f: Frame):
    p = f.params
    s = f.site_xpos
    ids = p["_ids"]
    obj = _obj_pos(f.obs)
    obj_head = s[ids["pegHead"]]
    tcp_opened = f.obs[3]
    target = p["target_pos"]
    tcp_to_obj = jnp.linalg.norm(obj - f.tcp)
    scale = jnp.array([1.0, 2.0, 2.0])
    obj_to_target = jnp.linalg.norm((obj_head - target) * scale)
    in_place_margin = jnp.linalg.norm((p["peg_head_pos_init"] - target) * scale)
    # SawyerPegInsertionSideEnvV3.TARGET_RADIUS is 0.07.
    in_place = ru.tolerance(obj_to_target, bounds=(0, 0.07), margin=in_place_margin, sigmoid="long_tail")
    box_1 = ru.rect_prism_tolerance(obj_head, zero=s[ids["bottom_right_corner_collision_box_1"]],
                                    one=s[ids["top_left_corner_collision_box_1"]])
    box_2 = ru.rect_prism_tolerance(obj_head, zero=s[ids["bottom_right_corner_collision_box_2"]],
                                    one=s[ids["top_left_corner_collision_box_2"]])
    in_place = ru.hamacher_product(in_place, ru.hamacher_product(box_2, box_1))
    object_grasped = ru.gripper_caging_reward(
        f.action, obj, object_reach_radius=0.01, obj_radius=0.0075, pad_success_thresh=0.03, xz_thresh=0.005,
        high_density=True, left_pad=f.left_pad, right_pad=f.right_pad, tcp=f.tcp,
        obj_init_pos=p["obj_init_pos"], init_tcp=p["init_tcp"],
    )
    lifted = (tcp_to_obj < 0.08) & (tcp_opened > 0) & (obj[2] - 0.01 > p["obj_init_pos"][2])
    object_grasped = jnp.where(lifted, 1.0, object_grasped)
    reward = ru.hamacher_product(object_grasped, in_place)
    reward = jnp.where(lifted, reward + 1.0 + 5 * in_place, reward)
    reward = jnp.where(obj_to_target <= 0.07, 10.0, reward)
    success = (obj_to_target <= 0.07).astype(jnp.float32)
    return reward, success, dict(grasp_reward=object_grasped, in_place=in_place, obj_to_target=obj_to_target,
                                 tcp_to_obj=tcp_to_obj)


# --------------------------------------------------------------------------- registry


TASKS: dict[str, Task] = {}


def _register(task: Task) -> None:
    TASKS[task.name] = task


_register(Task(
    name="reach-v3", xml="sawyer_reach_v3.xml", colliders=_PUCK, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(-0.1, 0.6, 0.02, -0.1, 0.8, 0.05), rand_high=(0.1, 0.7, 0.02, 0.1, 0.9, 0.3),
    goal_low=(-0.1, 0.8, 0.05), goal_high=(0.1, 0.9, 0.3), min_obj_goal_xy=0.15,
    reset=_reach_reset, objects=_puck_objects, reward=_reach_reward,
    names=dict(bodies=("obj",), geoms=("objGeom",)),
))
_register(Task(
    name="push-v3", xml="sawyer_push_v3.xml", colliders=_PUCK, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(-0.1, 0.6, 0.02, -0.1, 0.8, 0.01), rand_high=(0.1, 0.7, 0.02, 0.1, 0.9, 0.02),
    goal_low=(-0.1, 0.8, 0.01), goal_high=(0.1, 0.9, 0.02), min_obj_goal_xy=0.15,
    reset=_push_reset, objects=_puck_objects, reward=_push_reward,
    names=dict(bodies=("obj",), geoms=("objGeom",)),
))
_register(Task(
    name="pick-place-v3", xml="sawyer_pick_place_v3.xml", colliders=_PUCK, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(-0.1, 0.6, 0.02, -0.1, 0.8, 0.05), rand_high=(0.1, 0.7, 0.02, 0.1, 0.9, 0.3),
    goal_low=(-0.1, 0.8, 0.05), goal_high=(0.1, 0.9, 0.3), min_obj_goal_xy=0.15,
    reset=_pick_place_reset, objects=_puck_objects, reward=_pick_place_reward,
    names=dict(bodies=("obj",), geoms=("objGeom",)),
))
_register(Task(
    name="drawer-open-v3", xml="sawyer_drawer.xml", colliders=_DRAWER, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(-0.1, 0.9, 0.0), rand_high=(0.1, 0.9, 0.0), goal_low=HAND_LOW, goal_high=HAND_HIGH,
    fixture_body="drawer", reset=_drawer_open_reset, objects=_drawer_open_objects, reward=_drawer_open_reward,
    names=dict(bodies=("drawer_link",)),
))
_register(Task(
    name="drawer-close-v3", xml="sawyer_drawer.xml", colliders=_DRAWER, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(-0.1, 0.9, 0.0), rand_high=(0.1, 0.9, 0.0), goal_low=HAND_LOW, goal_high=HAND_HIGH,
    fixture_body="drawer", reset=_drawer_close_reset, post_reset=_drawer_close_post,
    objects=_drawer_close_objects, reward=_drawer_close_reward,
    names=dict(bodies=("drawer_link",)),
))
_register(Task(
    name="button-press-topdown-v3", xml="sawyer_button_press_topdown.xml", colliders=_BUTTON,
    hand_init_pos=(0.0, 0.4, 0.2), rand_low=(-0.1, 0.8, 0.115), rand_high=(0.1, 0.9, 0.115),
    goal_low=HAND_LOW, goal_high=HAND_HIGH, fixture_body="box", reset=_button_reset, post_reset=_button_post,
    objects=_button_objects, reward=_button_reward,
    names=dict(bodies=("button",), sites=("hole", "buttonStart")),
))

_register(Task(
    name="door-open-v3", xml="sawyer_door_pull.xml", colliders=_DOOR, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(0.0, 0.85, 0.15), rand_high=(0.1, 0.95, 0.15), goal_low=(-0.3, 0.4, 0.1499), goal_high=(-0.2, 0.5, 0.1501),
    fixture_body="door", reset=_door_reset, objects=_door_objects, reward=_door_reward,
    names=dict(geoms=("handle",)),
))
_register(Task(
    name="window-open-v3", xml="sawyer_window_horizontal.xml", colliders=_WINDOW, hand_init_pos=(0.0, 0.4, 0.2),
    rand_low=(-0.1, 0.7, 0.16), rand_high=(0.1, 0.9, 0.16), goal_low=HAND_LOW, goal_high=HAND_HIGH,
    fixture_body="window", reset=_window_open_reset, post_reset=_window_open_post,
    objects=_window_open_objects, reward=_window_open_reward,
    names=dict(sites=("handleOpenStart",)),
))
_register(Task(
    name="window-close-v3", xml="sawyer_window_horizontal.xml", colliders=_WINDOW, hand_init_pos=(0.0, 0.4, 0.2),
    rand_low=(0.0, 0.75, 0.2), rand_high=(0.0, 0.9, 0.2), goal_low=HAND_LOW, goal_high=HAND_HIGH,
    fixture_body="window", reset=_window_close_reset, post_reset=_window_close_post,
    objects=_window_close_objects, reward=_window_close_reward,
    names=dict(sites=("handleCloseStart",)),
    # Meta-World's reset observation is read before the sash moves to 0.2 (no mj_forward in between).
    reset_obs_object_offset=(-0.2, 0.0, 0.0),
))

_register(Task(
    name="peg-insert-side-v3", xml="sawyer_peg_insertion_side.xml", colliders=_PEG, hand_init_pos=(0.0, 0.6, 0.2),
    rand_low=(0.0, 0.5, 0.02, -0.35, 0.4, -0.001), rand_high=(0.2, 0.7, 0.02, -0.25, 0.7, 0.001),
    goal_low=(-0.32, 0.4, 0.129), goal_high=(-0.22, 0.7, 0.131), min_obj_goal_xy=0.1,
    fixture_body="box", reset=_peg_reset, objects=_peg_objects, reward=_peg_reward,
    names=dict(sites=("pegGrasp", "pegHead", "bottom_right_corner_collision_box_1", "top_left_corner_collision_box_1",
                      "bottom_right_corner_collision_box_2", "top_left_corner_collision_box_2")),
))

MT10_TASKS = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
    "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3",
)


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name``; ValueError naming the valid tasks otherwise."""
    if name not in TASKS:
        pending = [t for t in MT10_TASKS if t not in TASKS]
        raise ValueError(
            f"unknown Meta-World task {name!r}; valid tasks: {sorted(TASKS)}"
            + (f" (MT10 tasks not available yet: {pending})" if pending else "")
        )
    return TASKS[name]


def model_edits(task_name: str) -> list[str]:
    """The MjSpec edits made for ``task_name``'s MJX model, one line with its reason each."""
    task = get_task(task_name)
    return edits_for(task.xml, task.colliders)
