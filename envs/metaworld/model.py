"""MJX-ready Meta-World models, built in code from the XML assets of the installed package.

Meta-World's scenes load in MJX as they are, but they are slow there (mesh collisions, a
50-iteration solver with 50 line-search steps that MJX always runs in full under ``vmap``)
and some pairs are unsupported (cylinder-box). :func:`build_mj_model` loads a task's XML with
``mujoco.MjSpec.from_file`` and applies a short list of edits; :func:`envs.metaworld.tasks.model_edits` returns that
list with a one-line reason per edit, so documentation can quote it. Nothing in the XML files
is copied: the assets are always read from ``metaworld``'s own package directory.

Collision filtering uses seven bit groups (``contype``/``conaffinity``):

* ``TABLE`` (bit 0): the table top, a plane at z = 0;
* ``GRIPPER`` (bit 1): the two claws and two pads;
* ``OBJECT`` (bit 2): the task's free objects (puck, peg);
* ``FIXTURE`` (bit 3): the parts of the task's fixtures that are touched (handles, button cap);
* ``HAND`` (bit 4): the hand's gripper base, per task, colliding with fixtures only;
* ``STOP`` (bit 5): the geoms that end a fixture's travel where Meta-World's own collisions end it
  (the button housing, the drawer case's back, the window frame's sides, the peg box's face);
* ``STOPPED`` (bit 6): the moving geoms that run into the stops (button cap, drawer back panel,
  window sash edges); they collide with the stops only (unless also a fixture or object).

A pair collides when ``contype_a & conaffinity_b or contype_b & conaffinity_a``; the bits are
set so that only table-gripper, table-object, gripper-object, and (per task) gripper-fixture,
object-fixture, stop-stopped and gripper-stop pairs exist. A geom with several roles ORs their bits.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import mujoco
import numpy as np

TABLE, GRIPPER, OBJECT, FIXTURE, HAND, STOP, STOPPED = 1, 2, 4, 8, 16, 32, 64

# The Sawyer hand's collision mesh (the gripper base, ``right_hand`` body), kept per task as a box.
HAND_BODY = "right_hand"

# Geoms of the Sawyer gripper that keep their collisions (all in xyz_base.xml).
GRIPPER_GEOMS = ("rightclaw_it", "rightpad_geom", "leftclaw_it", "leftpad_geom")

# Solver settings: see DESIGN.md section 6 for the measurements behind them.
SOLVER_ITERATIONS = 2
LS_ITERATIONS = 4


@dataclasses.dataclass(frozen=True)
class ColliderSpec:
    """The task geoms that keep collisions.

    Attributes:
      objects: free objects: ``(body, indices)`` pairs; ``indices`` picks among the body's
        colliding geoms (in XML order), ``None`` keeps all. They collide with the table and gripper.
      fixtures: jointed or static fixtures, same format; they collide with the gripper only
        (and with objects when ``fixture_object_contacts``).
      fixture_object_contacts: whether fixtures also collide with objects (peg in a hole).
      fixture_gripper_contacts: whether fixtures collide with the gripper.
      hand_fixture_contacts: whether the hand's gripper-base mesh keeps a collision (as a box
        fitted to the mesh's bounding box) with the fixtures: Meta-World's scripted experts push
        window and drawer handles with it.
      stops: geoms that end a moving part's travel (same format): they collide with ``stopped``
        and, when ``gripper_stop_contacts``, with the gripper. A joint limit alone does not hold
        there: the mocap weld that drives the hand is far stiffer than a soft limit, so a pushed
        part goes on through its range; Meta-World's contacts stop it (and the hand) instead.
      stopped: the moving geoms that run into ``stops`` (same format; a geom may also be a fixture).
      gripper_stop_contacts: whether the stops also collide with the gripper's claws and pads.

    Bodies are named by their XML name; an unnamed body is ``<parent label>/<child index>``.

    Kept cylinders become boxes of the same footprint: MJX 3.3 has no cylinder-box collision
    and the gripper pads are boxes.
    """

    objects: tuple[tuple[str, tuple[int, ...] | None], ...] = ()
    fixtures: tuple[tuple[str, tuple[int, ...] | None], ...] = ()
    fixture_object_contacts: bool = False
    fixture_gripper_contacts: bool = True
    hand_fixture_contacts: bool = False
    stops: tuple[tuple[str, tuple[int, ...] | None], ...] = ()
    stopped: tuple[tuple[str, tuple[int, ...] | None], ...] = ()
    gripper_stop_contacts: bool = False


def metaworld_asset_path(xml_name: str) -> str:
    """Absolute path of ``sawyer_xyz/<xml_name>`` inside the installed metaworld package."""
    import importlib.util

    spec = importlib.util.find_spec("metaworld")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the metaworld package is not installed; it provides the Meta-World assets")
    root = spec.submodule_search_locations[0]
    path = os.path.join(root, "assets", "sawyer_xyz", xml_name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Meta-World asset {xml_name!r} not found at {path}")
    return path


def _edit_spec(spec: mujoco.MjSpec, colliders: ColliderSpec) -> list[str]:
    """Apply the MJX edits to ``spec`` in place. Returns the list of edits with reasons."""
    edits: list[str] = []

    # 1. Solver settings.
    spec.option.solver = mujoco.mjtSolver.mjSOL_NEWTON
    spec.option.iterations = SOLVER_ITERATIONS
    spec.option.ls_iterations = LS_ITERATIONS
    spec.option.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
    edits.append(
        f"solver Newton, iterations 50 -> {SOLVER_ITERATIONS}, line-search 50 -> {LS_ITERATIONS}: under vmap MJX "
        "always runs every iteration; Newton with >= 2 iterations keeps the hand within 1 mm of native"
    )
    edits.append(
        "cone elliptic -> pyramidal: elliptic cones multiply constraint rows and are slower in MJX; "
        "friction limits change by at most the pyramid's approximation"
    )

    # Unnamed bodies get the name "<parent>/<child index>" so tasks can select their geoms.
    for b in spec.bodies:
        for k, child in enumerate(b.bodies):
            if not child.name and b.name:
                child.name = f"{b.name}/{k}"
    labels = {b.name for b in spec.bodies if b.name}

    def selection(entries):
        out = {}
        for body, idx in entries:
            if body not in labels:
                raise KeyError(f"body {body!r} not in the model")
            out[body] = None if idx is None else set(idx)
        return out

    objects, fixtures = selection(colliders.objects), selection(colliders.fixtures)
    stops, stopped = selection(colliders.stops), selection(colliders.stopped)

    def chosen(sel, blabel, index):
        return blabel in sel and (sel[blabel] is None or index in sel[blabel])

    fixture_aff = (
        (GRIPPER if colliders.fixture_gripper_contacts else 0)
        | (OBJECT if colliders.fixture_object_contacts else 0)
        | (HAND if colliders.hand_fixture_contacts else 0)
    )
    hand_kept = False
    kept, dropped = [], []
    table_replaced = False
    for b in spec.bodies:
        blabel = b.name
        colliding_index = -1
        for g in b.geoms:
            if not (g.contype or g.conaffinity):
                continue
            colliding_index += 1
            name = g.name or ""
            label = f"{blabel}:{name or colliding_index}"
            if name in GRIPPER_GEOMS:
                g.contype, g.conaffinity = GRIPPER, TABLE | OBJECT
            elif blabel == HAND_BODY and g.type == mujoco.mjtGeom.mjGEOM_MESH and colliders.hand_fixture_contacts:
                # MuJoCo fits a primitive geom that names a mesh to that mesh (here its bounding box).
                g.type = mujoco.mjtGeom.mjGEOM_BOX
                g.contype, g.conaffinity = HAND, 0
                hand_kept = True
            elif b.name == "tablelink" and g.type == mujoco.mjtGeom.mjGEOM_BOX and not table_replaced:
                top = float(g.pos[2] + g.size[2])
                g.type = mujoco.mjtGeom.mjGEOM_PLANE
                g.size = np.array([g.size[0], g.size[1], 0.01])
                g.pos = np.array([g.pos[0], g.pos[1], top])
                g.contype, g.conaffinity = TABLE, 0
                table_replaced = True
            else:
                # Task roles; a geom with several roles ORs their bits.
                contype = conaffinity = 0
                if chosen(objects, blabel, colliding_index):
                    contype, conaffinity = contype | OBJECT, conaffinity | TABLE | GRIPPER
                if chosen(fixtures, blabel, colliding_index):
                    contype, conaffinity = contype | FIXTURE, conaffinity | fixture_aff
                if chosen(stops, blabel, colliding_index):
                    contype = contype | STOP
                    conaffinity = conaffinity | STOPPED | (GRIPPER if colliders.gripper_stop_contacts else 0)
                if chosen(stopped, blabel, colliding_index):
                    contype = contype | STOPPED
                g.contype, g.conaffinity = contype, conaffinity
                if contype:
                    kept.append(label)
                    _cylinder_to_box(g, label, edits)
                else:
                    dropped.append(label)
    if not table_replaced:
        raise ValueError("no table box found in the model")
    if colliders.hand_fixture_contacts:
        if not hand_kept:
            raise ValueError(f"no collision mesh found on body {HAND_BODY!r}")
        spec.compiler.fitaabb = True
        edits.append(
            f"{HAND_BODY} gripper-base mesh -> box fitted to the mesh's bounding box, colliding with the task's "
            "fixtures only: Meta-World's scripted experts push window and drawer handles with the hand itself, "
            "and MJX mesh collisions are slow"
        )
    edits.append(
        "table box -> plane at the table top (z = 0): objects stay inside the retaining walls, "
        "and plane-box is the cheapest MJX collision"
    )
    edits.append(
        f"collisions kept only for the table top, the gripper claws and pads, and the task's geoms {kept}; "
        f"dropped {len(dropped)} colliding geoms (floor, retaining walls, arm meshes, fixture parts the "
        "gripper does not touch in this task): MJX evaluates every candidate pair on every step"
    )
    edits.append(
        "contype/conaffinity re-assigned to table / gripper / object / fixture groups: only table-gripper, "
        "table-object, gripper-object and, per task, gripper-fixture and object-fixture pairs are generated"
    )
    if stops:
        edits.append(
            f"stops {sorted(stops)} collide with {sorted(stopped) or 'no moving geom'}"
            + (" and the gripper" if colliders.gripper_stop_contacts else "")
            + ": Meta-World's own contacts end the part's travel there (a joint limit alone gives way under "
            "the hand's mocap weld), so the part and the hand stop where they stop natively"
        )
    return edits


def _cylinder_to_box(g, label: str, edits: list[str]) -> None:
    if g.type != mujoco.mjtGeom.mjGEOM_CYLINDER:
        return
    r, h = float(g.size[0]), float(g.size[1])
    g.type = mujoco.mjtGeom.mjGEOM_BOX
    g.size = np.array([r, r, h])
    edits.append(
        f"{label}: cylinder (r={r:g}, half-height={h:g}) -> box ({r:g}, {r:g}, {h:g}): MJX 3.3 has no "
        "cylinder-box collision (the gripper pads are boxes); same width, depth and height"
    )


def check_max_contact_points(value) -> int | None:
    """``value`` as a positive int, or ``None``; a clear error otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"max_contact_points must be a positive integer or None, got {value!r}")
    return int(value)


# MJX's own model numerics (read by ``mujoco.mjx._src.collision_driver``) that a build may add,
# with the reason each is listed under in the edits.
MJX_NUMERICS = {
    "max_contact_points": "MJX keeps only the {k} deepest contacts per condim group; fewer constraint rows, "
    "faster, but a contact beyond the cap is lost when more are active (the parity tests cover the uncapped model)",
    "max_geom_pairs": "MJX runs each collision function on only the {k} nearest geom pairs (by bounding sphere); "
    "a pair beyond them is not checked",
}


def _reset_mocap_welds(model: mujoco.MjModel) -> None:
    """Meta-World's SawyerMocapBase.reset_mocap_welds: the mocap weld's relative pose and torque scale."""
    for i in range(model.neq):
        if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
            model.eq_data[i] = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0])


@functools.lru_cache(maxsize=None)
def _build(
    xml_name: str, colliders: ColliderSpec, numerics: tuple[tuple[str, int], ...] = ()
) -> tuple[mujoco.MjModel, tuple[str, ...]]:
    """The edited model and its edit list; ``numerics``: ``(name, value)`` pairs of :data:`MJX_NUMERICS`."""
    spec = mujoco.MjSpec.from_file(metaworld_asset_path(xml_name))
    edits = _edit_spec(spec, colliders)
    for name, k in numerics:
        spec.add_numeric(name=name, data=[float(k)])
        edits.append(f"{name} = {k} (opt-in): " + MJX_NUMERICS[name].format(k=k))
    model = spec.compile()
    _reset_mocap_welds(model)
    edits.append("mocap weld eq_data set as Meta-World's reset_mocap_welds does (not an MJX edit)")
    return model, tuple(edits)


def _cap(max_contact_points) -> tuple[tuple[str, int], ...]:
    k = check_max_contact_points(max_contact_points)
    return () if k is None else (("max_contact_points", k),)


def build_mj_model(
    xml_name: str, colliders: ColliderSpec, max_contact_points: int | None = None
) -> mujoco.MjModel:
    """The edited ``mujoco.MjModel`` for ``xml_name`` (cached; do not modify it in place).

    ``max_contact_points`` (opt-in, default off) adds MJX's ``max_contact_points`` numeric: each
    step keeps only that many of the deepest contacts per condim group.
    """
    return _build(xml_name, colliders, _cap(max_contact_points))[0]


def edits_for(xml_name: str, colliders: ColliderSpec, max_contact_points: int | None = None) -> list[str]:
    """The edits :func:`build_mj_model` applies, one line with its reason each."""
    return list(_build(xml_name, colliders, _cap(max_contact_points))[1])


def native_mj_model(xml_name: str) -> mujoco.MjModel:
    """The unedited model as Meta-World loads it (with its mocap weld reset), for host-side set-up."""
    model = mujoco.MjModel.from_xml_path(metaworld_asset_path(xml_name))
    _reset_mocap_welds(model)
    return model
