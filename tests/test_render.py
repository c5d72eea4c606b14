"""Videos of policies: CLEVR-Robot and Meta-World states drawn by MuJoCo's renderer with the
instruction and the success flag, encoded as MP4 and read back; the episodes drawn are the
evaluation's; Meta-World's drawn arm and fixture are where the MJX state has them."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.clevr_robot import oracle
from envs.clevr_robot.env import ClevrRobot, decode_obs
from lago_jax import render
from lago_jax.distributions import Categorical

pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")

CLEVR = ClevrRobot()


def read_video(path):
    import imageio.v3 as iio

    return iio.imread(path)


class OraclePrior:
    """A 'prior' whose greedy action is the scripted CLEVR oracle's: ``apply`` -> Categorical."""

    def apply(self, params, obs, instruction_id):
        def logits(o):
            xy, goal = decode_obs(o)
            return -10.0 * oracle.action_costs(xy, goal)

        return Categorical(jax.vmap(logits)(obs))


def flag_pixels(frame, color, band=12):
    """Pixels close to ``color`` at the bottom right (where the flag's box is drawn)."""
    h, w = frame.shape[:2]
    region = frame[h - band:, w - 3 * band:].astype(int)
    return int((np.abs(region - np.asarray(color)).sum(-1) < 60).sum())


@pytest.fixture(scope="module")
def clevr_video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video") / "clevr.mp4")
    act = render.prior_act(OraclePrior(), CLEVR)
    out = render.render_episodes(CLEVR, act, None, episodes=2, seed=3, path=path, batch=4, title="oracle prior")
    return act, out


def test_clevr_video_of_a_prior_alone(clevr_video):
    _, out = clevr_video
    video = read_video(out["path"])
    assert video.shape == (out["frames"], render.HEIGHT, render.WIDTH, 3)
    hold = int(render.HOLD_SECONDS * 2.0)
    assert out["frames"] == sum(e["steps"] + 1 + hold for e in out["episodes"])
    moving = [float(np.abs(video[i + 1].astype(int) - video[i]).mean()) for i in range(len(video) - 1)]
    assert max(moving) > 1.0  # the balls move between frames
    assert all(e["success"] for e in out["episodes"]) and all(e["instruction"] in CLEVR.instructions
                                                              for e in out["episodes"])
    first_end = out["episodes"][0]["frames"] - 1
    assert flag_pixels(video[first_end], render.GREEN) > 200 and flag_pixels(video[0], render.GREEN) == 0
    assert (video[0, :16] > 200).any()  # the instruction's white text on the top band


def test_video_episodes_are_the_evaluated_episodes(clevr_video):
    from lago_jax.ppo.evaluate import make_policy_eval_fn

    act, out = clevr_video
    ev = jax.device_get(make_policy_eval_fn(act, CLEVR, 4, None)(None, jax.random.PRNGKey(3)))
    assert [e["steps"] for e in out["episodes"]] == [int(x) for x in ev["lengths"][:2]]
    assert [e["success"] for e in out["episodes"]] == [bool(x) for x in ev["successes"][:2]]
    assert [e["return"] for e in out["episodes"]] == pytest.approx([float(x) for x in ev["returns"][:2]])


def test_a_failed_episode_ends_on_a_red_flag(tmp_path):
    def stand_still(params, obs, instruction_id, key):  # pushes the red ball right, again and again
        return jnp.zeros(obs.shape[0], jnp.int32)

    out = render.render_episodes(CLEVR, stand_still, None, episodes=1, seed=0, path=str(tmp_path / "v.mp4"),
                                 episode_length=3, width=320, height=240)
    video = read_video(out["path"])
    assert video.shape == (out["frames"], 240, 320, 3) and out["episodes"][0]["steps"] == 3
    if not out["episodes"][0]["success"]:
        assert flag_pixels(video[-1], render.RED) > 200


@pytest.fixture(scope="module")
def metaworld():
    from envs.metaworld.env import MetaWorldEnv

    env = MetaWorldEnv("drawer-open-v3")  # a task whose fixture moves at reset
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 3))
    return env, jax.device_get(states)


def test_metaworld_frames_show_the_states_arm_and_fixture(metaworld, tmp_path):
    """Three reset states drawn as one episode's frames: the drawn model's bodies (native
    Meta-World model, from the recorded qpos, mocap and fixture position) are where MJX put them."""
    import mujoco

    env, states = metaworld
    scene = render.scene_for(env)
    physics = jax.device_get(jax.jit(scene.record)(states))
    data = mujoco.MjData(scene.model)
    names = [scene.model.body(i).name for i in range(scene.model.nbody)]
    for t in range(3):
        scene.apply(data, {k: v[t] for k, v in physics.items()})
        mujoco.mj_forward(scene.model, data)
        for name in ("hand", "rightpad", "leftpad", env.task.fixture_body):
            mine = env.mj_model.body(name).id
            np.testing.assert_allclose(data.xpos[names.index(name)], states.data.xpos[t, mine], atol=2e-4, err_msg=name)
    traj = {"physics": {k: v[:, None] for k, v in physics.items()}, "valid": np.ones((2, 1), np.float32),
            "success": np.array([[0.0], [1.0]], np.float32), "reward": np.zeros((2, 1), np.float32),
            "instruction_id": np.asarray(states.info["instruction_id"][:1])}
    frames, summary = render.render_frames(scene, traj, env.instructions, 1, hold=0)
    path = render.write_video(frames, str(tmp_path / "mw.mp4"), scene.fps)
    video = read_video(path)
    assert video.shape == (3, render.HEIGHT, render.WIDTH, 3) and summary[0]["success"]
    assert np.abs(video[1].astype(int) - video[0]).mean() > 0.5  # the drawer and goal moved between resets
    assert flag_pixels(video[-1], render.GREEN) > 200


def test_metaworld_camera_names_are_checked(metaworld):
    env, _ = metaworld
    with pytest.raises(ValueError, match="corner2"):
        render.scene_for(env, camera="no-such-camera")
    assert render.scene_for(env, camera="topview").camera == "topview"


def test_no_scene_and_no_backend_are_named():
    from envs.point_mass import PointMass

    with pytest.raises(render.RenderError, match="CLEVR-Robot and Meta-World"):
        render.scene_for(PointMass())


def test_no_working_backend_names_the_package(monkeypatch):
    monkeypatch.setattr(render, "_BACKEND", None)
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(render, "_probe", lambda name: f"{name}: cannot load library")
    with pytest.raises(render.RenderError, match="apt-get install libosmesa6"):
        render.gl_backend()


def test_cli_video_flags_go_with_eval(tmp_path, capsys):
    from lago_jax.experiments.clevr_robot import DEFAULTS, TASKS, make_clevr_robot_suite
    from lago_jax.experiments.cli import main

    for argv, msg in ((["--video"], "--video goes with --eval"), (["--camera", "corner"], "--camera goes with --video"),
                      (["--eval", "x", "--video", "--video-episodes", "0"], "--video-episodes must be >= 1")):
        code = main(make_clevr_robot_suite, TASKS, DEFAULTS, ["--out", str(tmp_path / "o")] + argv)
        assert code == 2 and msg in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")


def test_cli_eval_writes_a_video_of_a_checkpoint(tmp_path, capsys):
    import json

    from lago_jax.experiments.clevr_robot import DEFAULTS, TASKS, make_clevr_robot_suite
    from lago_jax.experiments.cli import main
    from lago_jax.logging import LogTargets
    from lago_jax.ppo import PPOConfig, run

    run_dir = tmp_path / "runs" / "goals" / "ppo" / "seed0"
    cfg = PPOConfig(num_envs=4, num_steps=2, num_updates=1, update_epochs=1, num_minibatches=1, hidden_sizes=(8,),
                    episode_length=4)
    run(cfg, CLEVR, str(run_dir), progress=False, log_to=LogTargets(tensorboard=False))
    code = main(make_clevr_robot_suite, TASKS, DEFAULTS, ["--eval", str(run_dir), "--eval-episodes", "3", "--video",
                                                          "--video-episodes", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    r = json.loads(out)
    assert r["video"]["path"] == str(run_dir / "video_seed1000.mp4")
    assert read_video(r["video"]["path"]).shape[0] == r["video"]["frames"]


@pytest.mark.slow
def test_metaworld_policy_video_end_to_end(tmp_path):
    """A Meta-World env stepped by MJX (compiles its step: minutes on a CPU without the cache)."""
    from envs.metaworld.env import MetaWorldEnv

    env = MetaWorldEnv("reach-v3")

    def act(params, obs, instruction_id, key):
        return jnp.tile(jnp.array([0.5, 0.0, -0.5, 1.0]), (obs.shape[0], 1))

    out = render.render_episodes(env, act, None, episodes=1, seed=0, path=str(tmp_path / "mw.mp4"), batch=2,
                                 episode_length=8, camera="corner2")
    video = read_video(out["path"])
    assert video.shape[0] == out["frames"] == 8 + 1 + int(render.HOLD_SECONDS * 40)
    assert np.abs(video[8].astype(int) - video[0]).mean() > 0.5  # the arm moved
