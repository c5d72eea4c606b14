"""Videos of policies: greedy episodes rendered with MuJoCo's own renderer and written as MP4.

``render_episodes(env, act, params, episodes, seed, path)`` runs fresh episodes of a (bare or
task-view) CLEVR-Robot or Meta-World env with any policy ``act(params, obs [E, O],
instruction_id [E], key) -> action [E, ...]`` (the interface of
:func:`lago_jax.ppo.evaluate.evaluate_policy`: a PPO policy, a prior acting alone, a random
policy), keeps each step's physics state, and renders every state on the host: the state's
``qpos`` (and Meta-World's mocap target and moved fixture) go into an ``MjData`` of the scene's
``MjModel``, ``mj_forward`` places the bodies, ``mujoco.Renderer`` draws them. Each frame carries
the instruction text and the episode's success flag. :func:`render_checkpoint` does the same for
a PPO checkpoint (every member task of a multi-task policy in turn).

The episodes are the ones :func:`lago_jax.ppo.evaluate.evaluate` scores for the same seed: the same
keys, the same env programs (:func:`envs.episodes.env_programs`, compiled once per env, batch and
episode limit and shared with evaluation); ``batch`` larger than ``episodes`` runs the evaluation's
batch and draws its first ``episodes`` columns.

Cameras: CLEVR-Robot's scene defines none; the original (google-research/clevr_robot_env) renders
with dm_control's default free camera of its scene, azimuth 90 and elevation -45, looking at
the table from the front (-y). :data:`CLEVR_CAMERA` is that camera with its look-at point on
the table. Meta-World renders from the fixed cameras of its own XML assets (``corner``,
``corner2``, ``corner3``, ``corner4``, ``topview``, ...); the default is ``corner``. Its corner
cameras are defined with the image's up axis pointing down, so their frames are turned 180
degrees to keep the world's up at the top. Meta-World frames are drawn from the task's original
model (``envs.metaworld.model.native_mj_model``: same joints as the MJX model, with the
original meshes and cylinders that the MJX edits replace).

OpenGL: ``MUJOCO_GL`` when set; else EGL first on machines with a GPU, OSMesa first elsewhere,
each tried in a subprocess before it is used (one clear error names the Debian package when none
works). Encoding: ``imageio`` with the ffmpeg binary of ``imageio-ffmpeg``; text: Pillow.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import subprocess
import sys
import textwrap
import warnings
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Discrete, Env
from envs.episodes import env_programs, episode_limit

WIDTH, HEIGHT = 480, 368
"""Default frame size (multiples of 16, what H.264 encoders take without resizing)."""
CLEVR_CAMERA = dict(azimuth=90.0, elevation=-45.0, distance=2.0, lookat=(0.0, 0.125, -0.325))
"""The original CLEVR-Robot view: dm_control's default free camera (azimuth 90, elevation -45),
at a distance that frames the table where the balls can go."""
METAWORLD_CAMERA = "corner"
HOLD_SECONDS = 1.0
"""Each episode's last frame stays this long, so its success flag can be read."""
OSMESA_PACKAGE = "libosmesa6"


class RenderError(RuntimeError):
    """No offscreen OpenGL backend works, or an env has no scene to render."""


# ----------------------------------------------------------------------------- OpenGL backend

_BACKEND: str | None = None
_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='.1'/></worldbody></mujoco>")
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 16, 16)
r.update_scene(d)
assert r.render().shape == (16, 16, 3)
r.close()
"""


@contextlib.contextmanager
def _spawning():
    """Silence JAX's warning about forking a multithreaded process around code that starts a
    subprocess (the backend probe, ffmpeg): the child runs ``exec`` at once and shares no threads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        yield


def _has_gpu() -> bool:
    try:
        return jax.default_backend() in ("gpu", "cuda", "rocm") or os.path.exists("/dev/nvidia0")
    except RuntimeError:
        return os.path.exists("/dev/nvidia0")


def _probe(name: str) -> str | None:
    """None when MuJoCo renders offscreen with ``MUJOCO_GL=name`` (in a fresh process); else why not."""
    env = dict(os.environ, MUJOCO_GL=name)
    env.pop("PYOPENGL_PLATFORM", None)
    if name in ("egl", "osmesa"):
        env["PYOPENGL_PLATFORM"] = name
    try:
        with _spawning():
            out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "timed out"
    if out.returncode == 0:
        return None
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {out.returncode}"


def _activate(name: str) -> None:
    """Make ``mujoco.Renderer`` use backend ``name`` in this process (``mujoco`` reads
    ``MUJOCO_GL`` when it is first imported, which the envs have done already)."""
    import importlib

    import mujoco.gl_context

    os.environ["MUJOCO_GL"] = name
    if name in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", name)
        mujoco.gl_context.GLContext = importlib.import_module(f"mujoco.{name}").GLContext


def gl_backend() -> str:
    """The OpenGL backend MuJoCo renders with in this process, chosen once: ``MUJOCO_GL`` when
    set, else ``egl`` then ``osmesa`` on GPU machines and ``osmesa`` then ``egl`` elsewhere.

    Raises:
      RenderError: none of them renders; names the package that provides OSMesa.
    """
    global _BACKEND
    if _BACKEND is not None:
        return _BACKEND
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    candidates = [requested] if requested else (["egl", "osmesa"] if _has_gpu() else ["osmesa", "egl"])
    errors = {}
    for name in candidates:
        err = _probe(name)
        if err is None:
            _activate(name)
            _BACKEND = name
            return name
        errors[name] = err
    tried = "; ".join(f"MUJOCO_GL={k}: {v}" for k, v in errors.items())
    raise RenderError(
        f"MuJoCo cannot render offscreen ({tried}). Install OSMesa (Debian/Ubuntu: apt-get install "
        f"{OSMESA_PACKAGE}) and set MUJOCO_GL=osmesa, or set MUJOCO_GL=egl on a machine with a GPU driver")


# ----------------------------------------------------------------------------- scenes


@dataclasses.dataclass
class Scene:
    """What it takes to draw one env's states.

    Attributes:
      model: the ``MjModel`` drawn (the env's own, or Meta-World's original).
      camera: a camera name of ``model`` or an ``MjvCamera``.
      record: ``batched State -> dict of [B, ...] arrays``: the physics each frame needs.
      apply: ``(MjData, one episode's record at one step) -> None``: puts it into the data (and
        the model, for per-episode model fields such as a moved fixture) before ``mj_forward``.
      fps: frames per second of the video (one frame per env step).
    """

    model: Any
    camera: Any
    record: Callable[[Any], dict]
    apply: Callable[[Any, dict], None]
    fps: float


def _clevr_scene(env) -> Scene:
    import mujoco

    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.azimuth, cam.elevation, cam.distance = CLEVR_CAMERA["azimuth"], CLEVR_CAMERA["elevation"], CLEVR_CAMERA["distance"]
    cam.lookat[:] = CLEVR_CAMERA["lookat"]

    def apply(data, rec):
        data.qpos[:] = rec["qpos"]

    # A copy: drawing never touches the model the env steps. One push (40 physics steps of
    # 0.01 s) per frame: two frames a second.
    return Scene(model=copy.copy(env.mj_model), camera=cam, record=lambda s: {"qpos": s.data.qpos}, apply=apply,
                 fps=2.0)


def _metaworld_scene(env, camera: str | None) -> Scene:
    import mujoco

    from envs.metaworld.env import TASK_PARAM_PREFIX
    from envs.metaworld.model import native_mj_model

    model = native_mj_model(env.task.xml)  # a fresh copy: the fixture's position is set per episode
    camera = camera or METAWORLD_CAMERA
    if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        raise ValueError(f"camera {camera!r} is not in {env.task_name}'s model; expected one of {names}")
    fixture = None
    if env.task.fixture_body:
        fixture = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, env.task.fixture_body)
    mocap = model.body_mocapid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "mocap")]
    fixture_key = TASK_PARAM_PREFIX + "fixture_pos"

    def record(s):
        rec = {"qpos": s.data.qpos, "mocap_pos": s.data.mocap_pos[..., 0, :], "mocap_quat": s.data.mocap_quat[..., 0, :]}
        if fixture is not None:
            rec["fixture_pos"] = s.info[fixture_key]
        return rec

    def apply(data, rec):
        data.qpos[:] = rec["qpos"]
        data.mocap_pos[mocap] = rec["mocap_pos"]
        data.mocap_quat[mocap] = rec["mocap_quat"]
        if fixture is not None:
            model.body_pos[fixture] = rec["fixture_pos"]

    # Meta-World steps 5 x 2.5 ms: 80 steps a second in real time, shown at half speed.
    return Scene(model=model, camera=camera, record=record, apply=apply, fps=40.0)


def scene_for(env: Env, camera: str | None = None) -> Scene:
    """The :class:`Scene` of a CLEVR-Robot or Meta-World env (bare, or a multi-task env's task view)."""
    from envs.clevr_robot.env import ClevrRobot
    from envs.metaworld.env import MetaWorldEnv

    base = env.unwrapped
    if isinstance(base, ClevrRobot):
        if camera is not None:
            raise ValueError(f"camera={camera!r}: CLEVR-Robot's scene has no named cameras (its view is CLEVR_CAMERA)")
        return _clevr_scene(base)
    if isinstance(base, MetaWorldEnv):
        return _metaworld_scene(base, camera)
    raise RenderError(f"no scene to render for {type(base).__name__}; videos cover CLEVR-Robot and Meta-World envs")


# ----------------------------------------------------------------------------- rollout


def rollout(env: Env, act: Callable, params: Any, batch: int, key: jax.Array, record: Callable[[Any], dict],
            episode_length: int | None = None) -> dict[str, Any]:
    """``batch`` fresh episodes, as :func:`envs.episodes.run_episodes` runs them (same keys, same
    compiled env programs), keeping ``record(state)`` of every state.

    Returns host arrays: ``physics`` (dict of ``[T + 1, B, ...]``: the reset state, then the state
    after each step), ``reward``, ``success``, ``valid`` ``[T, B]`` and ``instruction_id [B]``.
    """
    length = episode_limit(env, episode_length)
    programs = env_programs(env, int(batch), length)
    space = env.action_space
    dtype = np.int32 if isinstance(space, Discrete) else np.float32

    def policy(params, state, key):
        return jax.lax.convert_element_type(act(params, state.obs, state.info["instruction_id"], key), dtype)

    policy = jax.jit(policy)
    grab = jax.jit(record)
    device = jax.local_devices()[0]
    reset_key, run_key = jax.random.split(key)
    carry = jax.device_put(programs.reset(reset_key), device)
    instruction_id = carry[0].info["instruction_id"]
    physics, steps = [grab(carry[0])], []
    for t, step_key in enumerate(jax.random.split(run_key, length)):
        action = jax.device_put(policy(params, carry[0], step_key), device)
        carry, out = programs.step(carry, action)
        physics.append(grab(carry[0]))
        steps.append({k: out[k] for k in ("reward", "success", "valid")})
        if t % 16 == 15 and not bool(jnp.any(carry[1] > 0)):
            break
    physics, steps, instruction_id = jax.device_get((physics, steps, instruction_id))
    out = {k: np.stack([s[k] for s in steps]) for k in ("reward", "success", "valid")}
    out["physics"] = {k: np.stack([p[k] for p in physics]) for k in physics[0]}
    out["instruction_id"] = np.asarray(instruction_id)
    return out


# ----------------------------------------------------------------------------- frames


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(text: str, font, width: int) -> list[str]:
    chars = max(8, int(width / max(font.getlength("x"), 1.0)))
    return textwrap.wrap(text, chars) or [""]


def annotate(frame: np.ndarray, top: Sequence[str], bottom_left: str, flag: str, flag_color: tuple[int, int, int]) -> np.ndarray:
    """``frame [H, W, 3]`` uint8 with ``top`` lines (the instruction) on a dark band at the top, and
    ``bottom_left`` plus ``flag`` (in ``flag_color``) on a band at the bottom."""
    from PIL import Image, ImageDraw

    h, w = frame.shape[:2]
    img = Image.fromarray(frame).convert("RGBA")
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = _font(max(11, h // 26))
    line_h = int(font.getbbox("Ag")[3] + 4)
    lines = [ln for t in top for ln in _wrap(t, font, w - 12)]
    draw.rectangle([0, 0, w, 6 + line_h * len(lines)], fill=(0, 0, 0, 160))
    for i, ln in enumerate(lines):
        draw.text((6, 4 + i * line_h), ln, font=font, fill=(255, 255, 255, 255))
    draw.rectangle([0, h - line_h - 6, w, h], fill=(0, 0, 0, 160))
    draw.text((6, h - line_h - 3), bottom_left, font=font, fill=(230, 230, 230, 255))
    x = w - 12 - font.getlength(flag)  # the flag: dark text on a box of its colour, legible after encoding
    draw.rectangle([x - 6, h - line_h - 6, w, h], fill=flag_color + (255,))
    draw.text((x, h - line_h - 3), flag, font=font, fill=(0, 0, 0, 255))
    return np.asarray(Image.alpha_composite(img, layer).convert("RGB"))


GREEN, RED, GREY = (90, 230, 90), (255, 90, 90), (200, 200, 200)


def render_frames(scene: Scene, traj: dict, instructions: Sequence[str], episodes: int, width: int = WIDTH,
                  height: int = HEIGHT, title: str = "", hold: int | None = None) -> tuple[list[np.ndarray], list[dict]]:
    """Frames of the first ``episodes`` episodes of ``traj`` (from :func:`rollout`), one after the
    other: each from its reset state to its last valid step, then its last frame ``hold`` more times
    (default :data:`HOLD_SECONDS`). Returns the frames and one summary per episode (instruction,
    steps, return, success, frames)."""
    import mujoco

    gl_backend()
    model = scene.model
    if model.vis.global_.offwidth < width or model.vis.global_.offheight < height:
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    data = mujoco.MjData(model)
    hold = int(round(HOLD_SECONDS * scene.fps)) if hold is None else int(hold)
    flip = False
    if isinstance(scene.camera, str):  # a fixed camera whose image up axis points down: turn its frames
        cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, scene.camera)
        flip = bool(model.cam_mat0[cam].reshape(3, 3)[2, 1] < 0)
    valid, success, reward = traj["valid"], traj["success"], traj["reward"]
    frames, summary = [], []
    renderer = mujoco.Renderer(model, height, width)
    try:
        for b in range(min(int(episodes), valid.shape[1])):
            steps = int(valid[:, b].sum())
            text = instructions[int(traj["instruction_id"][b])] or "(no instruction)"
            ever = np.maximum.accumulate(valid[:, b] * success[:, b]) if steps else np.zeros(0)
            ret = np.cumsum(valid[:, b] * reward[:, b])
            first = len(frames)
            for t in range(steps + 1):
                scene.apply(data, {k: v[t, b] for k, v in traj["physics"].items()})
                mujoco.mj_forward(model, data)
                renderer.update_scene(data, camera=scene.camera)
                img = renderer.render()
                if flip:
                    img = img[::-1, ::-1]
                done = t == steps
                won = bool(ever[t - 1]) if t else False
                flag = "success" if won else ("failure" if done else "no success yet")
                color = GREEN if won else (RED if done else GREY)
                left = f"{title + '  ' if title else ''}episode {b + 1}  step {t}/{steps}"
                if t:
                    left += f"  return {ret[t - 1]:.2f}"
                frames.append(annotate(np.ascontiguousarray(img), [text], left, flag, color))
            frames.extend([frames[-1]] * hold)
            summary.append({"instruction": text, "steps": steps, "return": float(ret[steps - 1]) if steps else 0.0,
                            "success": bool(ever[-1]) if steps else False, "frames": len(frames) - first})
    finally:
        renderer.close()
    return frames, summary


def write_video(frames: Sequence[np.ndarray], path: str, fps: float) -> str:
    """Encode ``frames`` (``[H, W, 3]`` uint8) as an H.264 MP4 at ``path`` (written to a temporary
    file first, then renamed, so a video is never left half written)."""
    import imageio.v2 as imageio

    if not frames:
        raise ValueError("no frames to write")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".part.mp4"
    with _spawning(), imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=16,
                                         ffmpeg_log_level="error") as w:
        for f in frames:
            w.append_data(f)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- entry points


def render_episodes(env: Env, act: Callable, params: Any, episodes: int, seed: int, path: str, *,
                    batch: int | None = None, episode_length: int | None = None, camera: str | None = None,
                    width: int = WIDTH, height: int = HEIGHT, title: str = "", fps: float | None = None) -> dict:
    """Write an MP4 of ``episodes`` episodes of ``act`` on ``env`` (greedy if ``act`` is).

    Args:
      act: ``act(params, obs [E, O], instruction_id [E], key) -> action [E, ...]`` (env-ready).
      batch: episodes run in parallel (default ``episodes``); the first ``episodes`` are drawn.
        The evaluation's episode count gives the evaluation's episodes and shares its env program.
      episode_length: the episode limit (default the env's own).
      camera: a Meta-World camera name (default :data:`METAWORLD_CAMERA`).
      title: drawn on every frame (e.g. the method).
    Returns ``{"path", "frames", "fps", "episodes": [per-episode summaries]}``.
    """
    batch = int(episodes if batch is None else batch)
    if not 1 <= int(episodes) <= batch:
        raise ValueError(f"episodes must be in [1, batch={batch}], got {episodes}")
    scene = scene_for(env, camera)
    traj = rollout(env, act, params, batch, jax.random.PRNGKey(seed), scene.record, episode_length)
    frames, summary = render_frames(scene, traj, env.instructions, episodes, width, height, title)
    fps = scene.fps if fps is None else float(fps)
    write_video(frames, path, fps)
    return {"path": path, "frames": len(frames), "fps": fps, "episodes": summary}


def ppo_act(config, env: Env, greedy: bool = True) -> Callable:
    """The act function of a PPO policy; its ``params`` are ``(network params, obs statistics)``."""
    from lago_jax.normalization import normalize_obs
    from lago_jax.ppo.networks import ActorCritic, make_network
    from lago_jax.ppo.rollout import env_action, sample_actions

    network = make_network(config, env.action_space)

    def act(params_and_stats, obs, instruction_id, key):
        params, obs_stats = params_and_stats
        dist = network.apply(params, normalize_obs(obs_stats, obs, config.normalize_obs, config.obs_clip),
                             method=ActorCritic.policy)
        action = dist.mode() if greedy else sample_actions(dist, jax.random.split(key, obs.shape[0]))
        return env_action(action, env.action_space)

    return act


def prior_act(prior: Any, env: Env, greedy: bool = True) -> Callable:
    """The act function of a prior acting alone (as :func:`lago_jax.ppo.evaluate.evaluate_prior`
    runs it); its ``params`` are the prior's."""
    from lago_jax.ppo.rollout import env_action, sample_actions

    def act(params, obs, instruction_id, key):
        dist = prior.apply(params, obs, instruction_id)
        action = dist.mode() if greedy else sample_actions(dist, jax.random.split(key, obs.shape[0]))
        return env_action(action, env.action_space)

    return act


def load_ppo_policy(checkpoint_dir: str, env: Env, step: int | None = None):
    """``(config, act, params)`` of the PPO checkpoint (latest, or ``step``) in ``checkpoint_dir``."""
    from lago_jax.ppo.evaluate import restore_checkpoint

    config, state, _ = restore_checkpoint(checkpoint_dir, env, step)
    return config, ppo_act(config, env), (state.params, state.obs_stats)


def render_checkpoint(checkpoint_dir: str, env: Env, path: str, episodes: int = 2, seed: int = 0,
                      batch: int | None = None, camera: str | None = None, title: str = "", **kwargs) -> dict:
    """:func:`render_episodes` of a PPO checkpoint's greedy policy. On a multi-task env
    (:func:`lago_jax.ppo.evaluate.task_envs`) every member task runs ``episodes`` episodes, one after the
    other in one video, seeded as :func:`lago_jax.ppo.evaluate.evaluate_params` seeds them."""
    from lago_jax.ppo.evaluate import task_envs

    config, act, params = load_ppo_policy(checkpoint_dir, env)
    length = config.episode_length
    members = task_envs(env)
    if members is None:
        return render_episodes(env, act, params, episodes, seed, path, batch=batch, episode_length=length,
                               camera=camera, title=title, **kwargs)
    frames, summary, fps = [], [], None
    length = length or env.max_episode_steps
    for i, (name, task_env) in enumerate(members.items()):
        scene = scene_for(task_env, camera)
        traj = rollout(task_env, act, params, int(batch or episodes), jax.random.fold_in(jax.random.PRNGKey(seed), i),
                       scene.record, length)
        f, s = render_frames(scene, traj, task_env.instructions, episodes, title=f"{title} {name}".strip(),
                             **{k: kwargs[k] for k in ("width", "height") if k in kwargs})
        frames += f
        summary += [dict(r, task=name) for r in s]
        fps = scene.fps
    write_video(frames, path, fps)
    return {"path": path, "frames": len(frames), "fps": fps, "episodes": summary}
