"""Demonstration collection, saving and loading (envs/demos.py), on the point-mass env."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import demos as demos_lib
from envs.point_mass import PointMass

_MOVES = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)


def greedy_policy(obs, key):
    """Move along the axis with the larger remaining distance to the goal."""
    delta = obs[4:6]
    along_x = jnp.abs(delta[0]) >= jnp.abs(delta[1])
    ax = jnp.where(delta[0] > 0, 1, 2)
    ay = jnp.where(delta[1] > 0, 3, 4)
    return jnp.where(along_x, ax, ay).astype(jnp.int32)


def continuous_policy(obs, key):
    return jnp.clip(obs[4:6] * 10.0, -1.0, 1.0) + 0.0 * jax.random.normal(key, (2,))


@pytest.fixture(scope="module")
def discrete_demos():
    env = PointMass(discrete=True, episode_length=30)
    return demos_lib.collect_demonstrations(
        env, greedy_policy, 10, jax.random.key(0), batch_size=4, metadata={"policy": "greedy"}
    )


def test_shapes_and_bookkeeping(discrete_demos):
    d = discrete_demos
    n = d.num_steps
    assert d.num_episodes == 10
    assert d.obs.shape == (n, 6) and d.obs.dtype == np.float32
    assert d.action.shape == (n,) and d.action.dtype == np.int32
    for name in ("reward", "done", "terminated", "success"):
        assert getattr(d, name).shape == (n,) and getattr(d, name).dtype == np.float32
    assert d.instruction_id.dtype == np.int32 and d.episode_id.dtype == np.int32
    assert d.instructions == ("Move the point to the goal.",)
    assert d.action_space == {"type": "discrete", "n": 5}
    assert d.env_name == "PointMass" and d.metadata["policy"] == "greedy"
    # episodes are contiguous, end with done=1 exactly once, and lengths add up
    np.testing.assert_array_equal(np.bincount(d.episode_id, minlength=10), d.episode_length)
    ends = np.cumsum(d.episode_length) - 1
    np.testing.assert_array_equal(np.flatnonzero(d.done), ends)
    assert np.all(d.episode_length <= 30)
    np.testing.assert_allclose(np.add.reduceat(d.reward, ends - d.episode_length + 1), d.episode_return, rtol=1e-5)


def test_steps_follow_the_dynamics(discrete_demos):
    """Within an episode, obs[t+1] is obs[t] moved by the recorded action (host reference)."""
    d = discrete_demos
    same_episode = d.episode_id[1:] == d.episode_id[:-1]
    pos, nxt = d.obs[:-1, :2], d.obs[1:, :2]
    expected = np.clip(pos + 0.1 * _MOVES[d.action[:-1]], -1, 1)
    np.testing.assert_allclose(nxt[same_episode], expected[same_episode], atol=1e-5)
    # the greedy policy reaches the goal in every episode
    assert d.success_rate == 1.0
    np.testing.assert_array_equal(d.terminated[d.done > 0], 1.0)


def test_round_trip(discrete_demos, tmp_path):
    path = demos_lib.save_demonstrations(tmp_path / "demos", discrete_demos)
    assert path.endswith(".npz")
    loaded = demos_lib.load_demonstrations(path)
    for f in dataclasses.fields(demos_lib.Demos):
        a, b = getattr(discrete_demos, f.name), getattr(loaded, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape, f.name
            np.testing.assert_array_equal(a, b, err_msg=f.name)
        else:
            assert a == b, f.name


def test_continuous_actions(tmp_path):
    env = PointMass(discrete=False, episode_length=8)
    d = demos_lib.collect_demonstrations(env, continuous_policy, 6, jax.random.key(1))
    assert d.action.dtype == np.float32 and d.action.shape == (d.num_steps, 2)
    assert d.action_space == {"type": "box", "low": [-1.0, -1.0], "high": [1.0, 1.0]}
    assert d.num_episodes == 6
    loaded = demos_lib.load_demonstrations(demos_lib.save_demonstrations(tmp_path / "c.npz", d))
    np.testing.assert_array_equal(loaded.action, d.action)


def _write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_load_errors_name_the_path(discrete_demos, tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        demos_lib.load_demonstrations(missing)

    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.*empty.npz"):
        demos_lib.load_demonstrations(empty)

    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="junk.npz"):
        demos_lib.load_demonstrations(junk)

    good = demos_lib.save_demonstrations(tmp_path / "good.npz", discrete_demos)
    with np.load(good) as z:
        contents = {k: z[k] for k in z.files}

    no_obs = tmp_path / "no_obs.npz"
    _write_npz(no_obs, **{k: v for k, v in contents.items() if k != "obs"})
    with pytest.raises(ValueError, match=r"no_obs.npz lacks key\(s\) \['obs'\]"):
        demos_lib.load_demonstrations(no_obs)

    short = tmp_path / "short.npz"
    _write_npz(short, **dict(contents, reward=contents["reward"][:-1]))
    with pytest.raises(ValueError, match="short.npz.*'reward' has"):
        demos_lib.load_demonstrations(short)

    wrong_dtype = tmp_path / "dtype.npz"
    _write_npz(wrong_dtype, **dict(contents, action=contents["action"].astype(np.float64)))
    with pytest.raises(ValueError, match="dtype.npz.*'action' has dtype float64"):
        demos_lib.load_demonstrations(wrong_dtype)

    bad_meta = tmp_path / "meta.npz"
    _write_npz(bad_meta, **dict(contents, meta_json=np.array("{not json")))
    with pytest.raises(ValueError, match="meta.npz.*not valid JSON"):
        demos_lib.load_demonstrations(bad_meta)

    old = tmp_path / "old.npz"
    meta = json.loads(str(contents["meta_json"][()]))
    meta["format_version"] = 99
    _write_npz(old, **dict(contents, meta_json=np.array(json.dumps(meta))))
    with pytest.raises(ValueError, match="old.npz has format_version 99"):
        demos_lib.load_demonstrations(old)


def test_out_of_range_actions_and_huge_observations_are_refused(discrete_demos, tmp_path):
    import dataclasses
    bad_discrete = dataclasses.replace(discrete_demos, action=discrete_demos.action.copy())
    bad_discrete.action[0] = 99
    with pytest.raises(ValueError, match=r"outside the action space \[0, 5\)"):
        demos_lib.validate_demos(bad_discrete)
    env = PointMass(discrete=False, episode_length=8)
    d = demos_lib.collect_demonstrations(env, continuous_policy, 2, jax.random.key(1))
    far = dataclasses.replace(d, action=d.action.copy())
    far.action[0, 0] = 1e6
    with pytest.raises(ValueError, match="far outside the action space"):
        demos_lib.validate_demos(far)
    huge = dataclasses.replace(d, obs=d.obs.copy())
    huge.obs[0, 0] = 1e20
    with pytest.raises(ValueError, match="magnitude 1e"):
        demos_lib.validate_demos(huge)
    nan = dataclasses.replace(d, obs=d.obs.copy())
    nan.obs[1, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        demos_lib.validate_demos(nan)
    demos_lib.validate_demos(d)  # the real ones pass


def test_concat_renumbers_episodes_and_refuses_other_envs(discrete_demos):
    both = demos_lib.concat_demonstrations([discrete_demos, discrete_demos], "two", {"tasks": ["a", "b"]})
    e, n = discrete_demos.num_episodes, discrete_demos.num_steps
    assert both.num_episodes == 2 * e and both.num_steps == 2 * n
    np.testing.assert_array_equal(both.episode_id, np.concatenate([discrete_demos.episode_id, discrete_demos.episode_id + e]))
    np.testing.assert_array_equal(both.obs[n:], discrete_demos.obs)
    other = dataclasses.replace(discrete_demos, instructions=("something else",) * len(discrete_demos.instructions))
    with pytest.raises(ValueError, match="other instructions or another action space"):
        demos_lib.concat_demonstrations([discrete_demos, other], "two")
    with pytest.raises(ValueError, match="at least one part"):
        demos_lib.concat_demonstrations([], "none")
