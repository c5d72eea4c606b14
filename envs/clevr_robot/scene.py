"""The CLEVR-Robot scene as MJCF built in code, and its ``mujoco.MjModel``.

After google-research/clevr_robot_env (``utils/xml_utils.py``, ``generate_scene.py``): a table
plane at z = -0.325; five rubber spheres of radius 0.13 and density 1 on free joints (damping
0.75); a point-mass pusher (sphere radius 0.05, density 0.5) on two slide joints x, y
(damping 0.5) at z = -0.2, driven by two motors with control range [-2, 2]; joint armature
0.04; friction (0.8, 0.1, 0.1), margin 0.002, condim 3; timestep 0.01, Euler integrator.
The qpos layout is the original's: ball ``i`` occupies ``qpos[7 i : 7 i + 7]`` (x, y, z,
quaternion), the pusher's x, y are ``qpos[35:37]``.

Changes from the original, each for a reason:

* Walls. The original's invisible wall planes sit at x = +-0.6 and y = -0.3, 0.7, which
  overlap the sampled initial positions (a ball centred at y = -0.3 starts 0.13 inside the
  y = -0.3 wall and is shot out on the first step). Here the walls are at x = +-0.65,
  y = -0.45 and y = 0.7, so that every initial layout (x in [-0.5, 0.5], y in [-0.3, 0.5])
  is free of wall contact, while still keeping the balls on the table.
* Collision filtering (contype/conaffinity). Only ball-ball, pusher-ball, ball-table and
  ball-wall pairs exist, as in the original (the pusher passes through the walls there too);
  the pusher-table pair, which the original keeps but which can never touch (the pusher has no
  z joint and hovers 0.075 above the table), is removed. That leaves 15 sphere-sphere and 25
  sphere-plane candidate pairs, all supported by MJX 3.3.0.
* Solver. The original runs Newton with 20 iterations (MuJoCo's default 50 line-search
  steps). Under ``vmap`` MJX runs every line-search step of every iteration of the slowest
  batch member, so the MJX model uses ``iterations`` / ``ls_iterations`` given to
  :func:`build_model` (defaults 6 and 8); the same model, settings included, is what plain
  ``mujoco`` reference runs load. In plain mujoco, 6 / 8 reproduces the original 20 / 50 to
  1e-15 over four pushes with collisions, while 4 / 6 drifts by 1 cm and 2 / 3 by 0.4 m
  (``tests/test_clevr_env.py`` checks the defaults).
* ``max_contact_points`` (optional) caps the contacts MJX keeps per step to the most
  penetrating ones; off by default (40 candidate contacts are cheap for primitive pairs).
"""

from __future__ import annotations

import mujoco

NUM_BALLS = 5
BALL_RADIUS = 0.13
PUSHER_RADIUS = 0.05
TABLE_Z = -0.325
PUSHER_Z = -0.2
COLORS = ("red", "blue", "green", "purple", "cyan")
RGBA = {
    "red": "1 0.1 0.1 1",
    "blue": "0.2 0.5 1 1",
    "green": "0.2 1 0 1",
    "purple": "0.8 0.2 1 1",
    "cyan": "0.2 1 1 1",
}
WALL_X = 0.65  # walls at x = -WALL_X and x = +WALL_X
WALL_Y_LOW = -0.45
WALL_Y_HIGH = 0.7
TIMESTEP = 0.01
# qpos/qvel addresses (the free joints come first, then the pusher's slide joints)
BALL_QPOS = tuple(7 * i for i in range(NUM_BALLS))
PUSHER_QPOS = 7 * NUM_BALLS
PUSHER_QVEL = 6 * NUM_BALLS

# contype/conaffinity bits: 1 = ball-ball, ball-table, ball-wall; 2 = pusher-ball.
_BALL_BITS = 'contype="1" conaffinity="3"'
_STATIC_BITS = 'contype="0" conaffinity="1"'
_PUSHER_BITS = 'contype="2" conaffinity="0"'


def scene_xml(
    iterations: int = 6,
    ls_iterations: int = 8,
    max_contact_points: int | None = None,
    ball_xy: tuple[tuple[float, float], ...] | None = None,
) -> str:
    """MJCF text of the scene. ``ball_xy`` sets the balls' initial x, y (default: a row)."""
    if ball_xy is None:
        ball_xy = ((-0.4, 0.0), (0.0, 0.0), (0.4, 0.0), (-0.2, 0.4), (0.2, 0.4))
    if len(ball_xy) != NUM_BALLS:
        raise ValueError(f"ball_xy needs {NUM_BALLS} positions, got {len(ball_xy)}")
    ball_z = TABLE_Z + BALL_RADIUS
    balls = "\n".join(
        f"""    <body name="obj{i}" pos="{x} {y} {ball_z}">
      <geom name="ball_{c}" type="sphere" size="{BALL_RADIUS}" density="1" rgba="{RGBA[c]}" {_BALL_BITS}/>
      <joint name="obj{i}_slide" type="free" damping="0.75" limited="false"/>
    </body>"""
        for i, ((x, y), c) in enumerate(zip(ball_xy, COLORS))
    )
    custom = ""
    if max_contact_points is not None:
        custom = f'  <custom><numeric name="max_contact_points" data="{int(max_contact_points)}"/></custom>\n'
    # Wall planes: a plane's normal is its local +z; the euler angles turn it inward.
    return f"""<mujoco model="clevr_robot">
  <compiler inertiafromgeom="true" angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP}" gravity="0 0 -9.81" integrator="Euler" solver="Newton" cone="pyramidal"
          iterations="{int(iterations)}" ls_iterations="{int(ls_iterations)}"/>
{custom}  <default>
    <joint armature="0.04" damping="1"/>
    <geom friction=".8 .1 .1" density="300" margin="0.002" condim="3" contype="0" conaffinity="0"/>
  </default>
  <worldbody>
    <light diffuse=".5 .5 .5" pos="0 0 3" dir="0 0 -1"/>
    <geom name="table" type="plane" pos="0 0.5 {TABLE_Z}" size="1 1 0.1" rgba="0.6 0.6 0.6 1" {_STATIC_BITS}/>
    <geom name="wall_left" type="plane" pos="{-WALL_X} 0 0" size="2 2 0.1" euler="0 1.5707963 0" rgba="0 0 0 0" {_STATIC_BITS}/>
    <geom name="wall_right" type="plane" pos="{WALL_X} 0 0" size="2 2 0.1" euler="0 -1.5707963 0" rgba="0 0 0 0" {_STATIC_BITS}/>
    <geom name="wall_front" type="plane" pos="0 {WALL_Y_LOW} 0" size="2 2 0.1" euler="-1.5707963 0 0" rgba="0 0 0 0" {_STATIC_BITS}/>
    <geom name="wall_behind" type="plane" pos="0 {WALL_Y_HIGH} 0" size="2 2 0.1" euler="1.5707963 0 0" rgba="0 0 0 0" {_STATIC_BITS}/>
{balls}
    <body name="point_mass" pos="0 0 {PUSHER_Z}">
      <geom name="pm" type="sphere" size="{PUSHER_RADIUS}" density="0.5" rgba="1 1 1 1" {_PUSHER_BITS}/>
      <joint name="pm_joint_x" type="slide" axis="1 0 0" damping="0.5" range="-10.3213 10.3"/>
      <joint name="pm_joint_y" type="slide" axis="0 1 0" damping="0.5" range="-10.3213 10.3"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="pm_joint_x" ctrlrange="-2 2"/>
    <motor joint="pm_joint_y" ctrlrange="-2 2"/>
  </actuator>
</mujoco>
"""


def build_model(
    iterations: int = 6, ls_iterations: int = 8, max_contact_points: int | None = None
) -> mujoco.MjModel:
    """The scene's ``MjModel`` (loads in plain ``mujoco`` and in ``mjx.put_model``)."""
    return mujoco.MjModel.from_xml_string(scene_xml(iterations, ls_iterations, max_contact_points))
