"""One policy on several tasks: ``MultiTaskEnv`` (pre-batched) through ``make_train``, ``run``,
checkpoints and per-task evaluation, on two point-mass tasks with different dynamics."""

import jax
import numpy as np
import pytest

from envs.core import BatchedEnv
from envs.multitask import MultiTaskEnv
from envs.point_mass import PointMass
from envs.wrappers import is_batched, wrap_for_training
from lago_jax.ppo import PPOConfig, evaluate, evaluate_params, make_ppo, make_train, metrics_to_rows, run

PER_TASK = 8
UPDATES = 80
TASKS = ("slow", "fast")


def two_tasks(**kw):
    return MultiTaskEnv({"slow": PointMass(discrete=True, step_size=0.1), "fast": PointMass(discrete=True, step_size=0.2)},
                        envs_per_task=PER_TASK, **kw)


def config(**kw):
    return PPOConfig(**dict(dict(num_envs=2 * PER_TASK, num_steps=32, num_updates=UPDATES, num_minibatches=4,
                                 checkpoint_every=UPDATES // 2), **kw))


def test_multitask_env_is_pre_batched_with_task_blocks_and_one_hot():
    env = two_tasks()
    assert is_batched(env) and is_batched(wrap_for_training(PointMass(), 3)) and not is_batched(PointMass())
    assert env.num_envs == 16 and env.task_rows == (0,) * 8 + (1,) * 8 and env.observation_size == 6 + 2
    s = jax.jit(env.reset)(jax.random.PRNGKey(0))
    assert s.obs.shape == (16, 8)
    np.testing.assert_array_equal(np.asarray(s.obs[:, 6:]), np.eye(2)[np.asarray(env.task_rows)])
    np.testing.assert_array_equal(np.asarray(s.info["task_id"]), env.task_rows)
    s2 = jax.jit(env.step)(s, np.zeros(16, np.int32) + 1)
    # the fast task moves twice as far for the same action
    dx = np.asarray(s2.obs[:, 0] - s.obs[:, 0])
    # (for most rows: a move past the wall is clipped, an episode that ends is reset)
    assert np.median(dx[:8]) == pytest.approx(0.1, rel=1e-5) and np.median(dx[8:]) == pytest.approx(0.2, rel=1e-5)
    # one task on its own sees what the multi-task policy sees
    view = env.task_env("fast")
    v = view.reset(jax.random.PRNGKey(1))
    assert v.obs.shape == (8,) and view.observation_size == 8
    np.testing.assert_array_equal(np.asarray(v.obs[6:]), [0.0, 1.0])
    assert view.instructions == env.instructions
    with pytest.raises(ValueError, match="unknown task 'medium'"):
        env.task_env("medium")
    with pytest.raises(ValueError, match="observation size"):
        MultiTaskEnv({"a": PointMass(), "b": PointMass(discrete=False)})


@pytest.fixture(scope="module")
def trained():
    env = two_tasks()
    cfg = config()
    return env, cfg, jax.device_get(jax.jit(make_train(cfg, env))(jax.random.PRNGKey(0)))


def test_one_policy_learns_both_tasks_and_reports_each(trained):
    env, cfg, out = trained
    rows = metrics_to_rows(out.metrics, task_names=env.task_names)
    assert len(rows) == UPDATES
    for r in rows:
        assert r["episodes/slow"] + r["episodes/fast"] == r["episodes"]
    late = rows[-10:]
    for name in TASKS:
        assert {f"success_rate/{name}", f"episode_return/{name}", f"episodes/{name}"} <= set(rows[0])
        print(name, "training success, last 10 updates:", np.nanmean([r[f"success_rate/{name}"] for r in late]))
    res = evaluate_params(cfg, env, out.state.params, out.state.obs_stats, episodes=64, seed=1)
    print("greedy evaluation per task:", {k: v["success_rate"] for k, v in res["tasks"].items()})
    assert set(res["tasks"]) == set(TASKS)
    assert res["success_rate"] == pytest.approx(np.mean([t["success_rate"] for t in res["tasks"].values()]))
    for name in TASKS:  # random: about 10% success (tests/test_ppo_train.py)
        assert res["tasks"][name]["success_rate"] > 0.5, (name, res["tasks"][name])


def test_run_resumes_and_evaluates_a_multitask_checkpoint(trained, tmp_path):
    env, cfg, out = trained
    run(cfg, env, str(tmp_path), progress=False, stop_after=UPDATES // 2)
    result = run(cfg, env, str(tmp_path), progress=False)  # resumed from update 40
    for a, b in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(out.state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    header = open(tmp_path / "metrics.csv").readline()
    assert "success_rate/slow" in header and "success_rate/fast" in header
    ev = evaluate(str(tmp_path), env, episodes=16, seed=2)
    assert ev["step"] == UPDATES and set(ev["tasks"]) == set(TASKS)


def test_pre_batched_env_settings_that_cannot_apply_are_refused():
    env = two_tasks()
    with pytest.raises(ValueError, match="num_envs=12 but the pre-batched MultiTaskEnv holds 16"):
        make_ppo(config(num_envs=12), env)
    with pytest.raises(ValueError, match="episode_length=20 but the pre-batched"):
        make_ppo(config(episode_length=20), env)
    with pytest.raises(ValueError, match="cached_reset"):
        make_ppo(config(cached_reset=True), env)


class HasNumEnvs(PointMass):
    """A plain env that happens to carry a ``num_envs`` attribute: still one env, not a batch."""

    num_envs = 16
    task_rows = (0,) * 16


def test_an_env_with_a_num_envs_attribute_is_not_treated_as_batched():
    env = HasNumEnvs(discrete=True)
    assert not is_batched(env) and not isinstance(env, BatchedEnv)
    assert isinstance(two_tasks(), BatchedEnv) and isinstance(wrap_for_training(PointMass(), 3), BatchedEnv)
    # make_ppo wraps and vmaps it over config.num_envs (a batched env of 16 would be refused for 4),
    # and takes no per-task statistics from its attribute
    ppo = make_ppo(PPOConfig(num_envs=4, num_steps=8, num_updates=1, num_minibatches=2), env)
    state = jax.jit(ppo.init)(jax.random.PRNGKey(0))
    assert state.env_state.obs.shape == (4, env.observation_size)
    _, metrics = ppo.update(state, None, 1)
    assert "task_episodes" not in metrics


@pytest.mark.slow
def test_mt10_env_trains_two_metaworld_tasks_jointly():
    """Meta-World's multi-task env through ``make_train``: one policy, reach and push, with every
    task's training statistics (a few updates: the mechanics, not learning)."""
    from envs.metaworld import MT10Env

    env = MT10Env(("reach-v3", "push-v3"), envs_per_task=4, episode_length=16, observe_goal=True)
    cfg = PPOConfig(num_envs=8, num_steps=16, num_updates=2, num_minibatches=2, hidden_sizes=(32, 32), reward_scale=0.1)
    out = jax.device_get(jax.jit(make_train(cfg, env))(jax.random.PRNGKey(0)))
    rows = metrics_to_rows(out.metrics, task_names=env.task_names)
    for name in env.task_names:
        assert rows[-1][f"episodes/{name}"] == 4.0  # each of its 4 envs finished one 16-step episode per update
        assert np.isfinite(rows[-1][f"episode_return/{name}"])
    res = evaluate_params(cfg, env, out.state.params, out.state.obs_stats, episodes=4, seed=0)
    assert set(res["tasks"]) == set(env.task_names) and 0.0 <= res["success_rate"] <= 1.0
