"""Checkpointed runs: resume reproduces the uninterrupted run, half-written and corrupt
checkpoints, non-finite losses, logs, and evaluation from a checkpoint."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.point_mass import PointMass
from lago_jax.checkpoint import Checkpointer, CheckpointError
from lago_jax.ppo import NonFiniteLossError, PPOConfig, evaluate, evaluate_params, run

CFG = PPOConfig(num_envs=4, num_steps=8, num_minibatches=2, update_epochs=2, num_updates=4, checkpoint_every=2,
                hidden_sizes=(16, 16), episode_length=20, seed=3)
ENV = PointMass(discrete=True)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("full"))
    return run(CFG, ENV, out, progress=False)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("resumed"))
    first = run(CFG, ENV, out, progress=False, stop_after=2)  # "killed" after the first chunk
    assert Checkpointer(os.path.join(out, "checkpoints")).latest_step() == 2
    second = run(CFG, ENV, out, progress=False, resume=True)
    return first, second


def test_resume_reproduces_uninterrupted_run(uninterrupted, resumed):
    first, second = resumed
    assert int(first.state.update_step) == 2 and len(first.rows) == 2
    assert int(second.state.update_step) == 4 and [r["update"] for r in second.rows] == [3, 4]
    for a, b in zip(leaves(uninterrupted.state), leaves(second.state)):
        np.testing.assert_array_equal(a, b)
    # The interrupted run's logs continue where they stopped.
    with open(os.path.join(second.out_dir, "metrics.jsonl")) as f:
        assert [json.loads(line)["update"] for line in f] == [1, 2, 3, 4]


def test_logs_and_learning_curve(uninterrupted):
    out = uninterrupted.out_dir
    with open(os.path.join(out, "metrics.csv")) as f:
        lines = f.read().strip().splitlines()
    assert len(lines) == 1 + CFG.updates and "total_loss" in lines[0] and "kl_prior" in lines[0]
    assert os.path.getsize(os.path.join(out, "learning_curve.png")) > 1000
    ck = Checkpointer(uninterrupted.checkpoint_dir)
    assert ck.all_steps() == [2, 4]
    assert ck.restore_config(4) == CFG.to_dict()


def test_half_written_checkpoint_is_ignored(tmp_path, uninterrupted):
    import shutil

    out = str(tmp_path / "run")
    shutil.copytree(uninterrupted.out_dir, out)
    ck_dir = os.path.join(out, "checkpoints")
    # An interrupted Orbax save leaves a temporary directory; a crash during a non-atomic copy
    # could leave a step directory without the commit metadata. Neither counts.
    os.makedirs(os.path.join(ck_dir, "6.orbax-checkpoint-tmp-1234567", "state"))
    os.makedirs(os.path.join(ck_dir, "8", "state"))
    with open(os.path.join(ck_dir, "8", "state", "junk"), "w") as f:
        f.write("partial")
    ck = Checkpointer(ck_dir)
    assert ck.latest_step() == 4
    with pytest.raises(CheckpointError, match="incomplete"):
        ck.restore_config(8)
    # Resuming the finished run from it is a no-op that restores step 4.
    res = run(CFG, ENV, out, progress=False)
    assert int(res.state.update_step) == 4 and res.rows == []


def test_corrupt_checkpoint_is_named_and_resume_falls_back(tmp_path, uninterrupted):
    import shutil

    out = str(tmp_path / "run")
    shutil.copytree(uninterrupted.out_dir, out)
    state_dir = os.path.join(out, "checkpoints", "4", "state")
    for root, _, files in os.walk(state_dir):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"\x00garbage")
    with pytest.raises(CheckpointError, match=r"checkpoints/4"):
        evaluate(out, ENV, episodes=4)
    # Resuming falls back to the newest step that reads back (2), sets the corrupt one aside with
    # a warning naming it, and redoes updates 3-4: the same final state as the uninterrupted run.
    with pytest.warns(UserWarning, match=r"checkpoint step 4 cannot be restored.*checkpoints/4"):
        res = run(CFG, ENV, out, progress=False)
    assert [r["update"] for r in res.rows] == [3, 4]
    for a, b in zip(leaves(uninterrupted.state), leaves(res.state)):
        np.testing.assert_array_equal(a, b)
    assert any(n.startswith("4.corrupt-") for n in os.listdir(os.path.join(out, "checkpoints")))
    with open(os.path.join(out, "metrics.jsonl")) as f:
        assert [json.loads(line)["update"] for line in f] == [1, 2, 3, 4]


def test_unfinished_step_folder_does_not_block_the_run(tmp_path, resumed):
    """A step folder without Orbax's commit marker (a copy cut short) used to make every retry fail
    when the run reached that step; it is set aside with a warning and the run completes."""
    import shutil

    first, _ = resumed
    out = str(tmp_path / "run")
    shutil.copytree(os.path.join(first.out_dir, "checkpoints"), os.path.join(out, "checkpoints"))
    for step in Checkpointer(os.path.join(out, "checkpoints")).all_steps():
        if step > 2:
            shutil.rmtree(os.path.join(out, "checkpoints", str(step)))
    os.makedirs(os.path.join(out, "checkpoints", "4", "state"))
    with pytest.warns(UserWarning, match="incomplete checkpoint folder"):
        res = run(CFG, ENV, out, progress=False)
    assert int(res.state.update_step) == 4 and Checkpointer(os.path.join(out, "checkpoints")).latest_step() == 4


def test_missing_checkpoint_and_config_mismatch(tmp_path, uninterrupted):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="nowhere"):
        evaluate(missing, ENV)
    with pytest.raises(CheckpointError, match="fields.*lr"):
        run(PPOConfig(**dict(CFG.to_dict(), hidden_sizes=(16, 16), lr=1e-3)), ENV, uninterrupted.out_dir, progress=False)
    with pytest.raises(CheckpointError, match="already holds"):
        run(CFG, ENV, uninterrupted.out_dir, progress=False, resume=False)


def test_evaluate_from_checkpoint(uninterrupted):
    got = evaluate(uninterrupted.out_dir, ENV, episodes=8, seed=2)
    want = evaluate_params(CFG, ENV, uninterrupted.state.params, uninterrupted.state.obs_stats, episodes=8, seed=2)
    assert got["step"] == 4
    for k in ("return_mean", "return_std", "success_rate", "length_mean"):
        assert got[k] == pytest.approx(want[k])


class NaNAfter(PointMass):
    """Point mass whose reward turns NaN after ``limit`` env steps (a counter kept in metrics,
    which auto-reset does not clear)."""

    def __init__(self, limit):
        super().__init__(discrete=True)
        self.limit = limit

    def reset(self, key):
        s = super().reset(key)
        return s.replace(metrics=dict(s.metrics, global_t=jnp.zeros((), jnp.float32)))

    def step(self, state, action):
        s = super().step(state, action)
        t = state.metrics["global_t"] + 1.0
        reward = jnp.where(t > self.limit, jnp.nan, s.reward)
        return s.replace(reward=reward, metrics=dict(s.metrics, global_t=t))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    out = str(tmp_path / "nan")
    cfg = PPOConfig(**dict(CFG.to_dict(), hidden_sizes=(16, 16), num_updates=6))
    # Each update takes 8 steps per env: steps 17..24 belong to update 3 (the second chunk).
    with pytest.raises(NonFiniteLossError, match=r"update 3 .*last good checkpoint is step 2"):
        run(cfg, NaNAfter(limit=20), out, progress=False)
    assert Checkpointer(os.path.join(out, "checkpoints")).latest_step() == 2


def test_resume_drops_log_rows_written_after_the_last_checkpoint(tmp_path, resumed):
    """A kill between writing an update's metric rows and saving its checkpoint leaves rows for
    updates the checkpoint does not hold; the resumed run cuts them before appending, so every
    update is logged once (310 rows for 300 updates before this was fixed)."""
    import shutil

    first, _ = resumed
    out = str(tmp_path / "killed")
    os.makedirs(out)
    shutil.copytree(os.path.join(first.out_dir, "checkpoints"), os.path.join(out, "checkpoints"))
    ck = Checkpointer(os.path.join(out, "checkpoints"))
    for step in ck.all_steps():
        if step > 2:
            shutil.rmtree(os.path.join(out, "checkpoints", str(step)))
    # Logs of updates 1-4 (the final two never checkpointed) plus a line cut short by the kill.
    with open(os.path.join(first.out_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f][:2]
    extra = [dict(rows[-1], update=3), dict(rows[-1], update=4)]
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        for r in rows + extra:
            f.write(json.dumps(r) + "\n")
        f.write('{"update": 5, "total_lo')
    with open(os.path.join(first.out_dir, "metrics.csv")) as f:
        header, *body = f.read().strip().splitlines()
    col = header.split(",").index("update")

    def relabel(line, update):
        cells = line.split(",")
        cells[col] = str(update)
        return ",".join(cells)

    with open(os.path.join(out, "metrics.csv"), "w") as f:
        f.write("\n".join([header] + body[:2] + [relabel(body[1], 3), relabel(body[1], 4)]) + "\n")
    res = run(CFG, ENV, out, progress=False)
    assert [r["update"] for r in res.rows] == [3, 4]
    with open(os.path.join(out, "metrics.jsonl")) as f:
        assert [json.loads(line)["update"] for line in f] == [1, 2, 3, 4]
    with open(os.path.join(out, "metrics.csv")) as f:
        lines = f.read().strip().splitlines()
    assert [int(float(line.split(",")[col])) for line in lines[1:]] == [1, 2, 3, 4]


class _LinearPrior:
    """logits = obs @ w (the point mass's 6-d observation, 5 actions); params an argument."""

    def apply(self, prior_params, obs, instruction_id):
        from lago_jax.distributions import Categorical
        return Categorical(obs @ prior_params["w"])


_PRIOR_PARAMS = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(6, 5)), jnp.float32)}


@pytest.mark.parametrize("schedule", ["constant", "linear", "adaptive"])
def test_beta_schedules_run_end_to_end_with_a_resume(tmp_path, schedule, uninterrupted):
    """Every schedule through ``run``: the logged beta follows the schedule, a run stopped after
    one chunk and resumed equals the uninterrupted one bit for bit, and beta = 0 with the prior is
    vanilla PPO bit for bit (the adaptive rule does not lift a zero beta)."""
    import dataclasses
    cfg = dataclasses.replace(CFG, kl_coef=0.5, kl_schedule=schedule, kl_coef_final=0.1, kl_target=0.01)
    prior = _LinearPrior()
    full = run(cfg, ENV, str(tmp_path / "full"), prior, _PRIOR_PARAMS, progress=False)
    run(cfg, ENV, str(tmp_path / "part"), prior, _PRIOR_PARAMS, progress=False, stop_after=2)
    resumed = run(cfg, ENV, str(tmp_path / "part"), prior, _PRIOR_PARAMS, progress=False)
    for a, b in zip(leaves(full.state), leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    betas = [r["beta"] for r in full.rows]
    if schedule == "constant":
        assert betas == [0.5] * 4
    elif schedule == "linear":
        np.testing.assert_allclose(betas, np.linspace(0.5, 0.1, 4), rtol=1e-6)
    else:
        assert betas[0] == 0.5 and all(b2 / b1 in (0.5, 1.0, 2.0) for b1, b2 in zip(betas, betas[1:]))
        assert len(set(betas)) > 1
    assert all(r["kl_prior"] > 0 for r in full.rows)
    zero = dataclasses.replace(cfg, kl_coef=0.0, kl_coef_final=0.0)
    guided0 = run(zero, ENV, str(tmp_path / "zero"), prior, _PRIOR_PARAMS, progress=False)
    assert all(r["beta"] == 0.0 for r in guided0.rows)
    for a, b in zip(leaves(uninterrupted.state.params), leaves(guided0.state.params)):
        np.testing.assert_array_equal(a, b)


def test_schedule_flags_reach_the_ppo_config():
    from lago_jax.experiments import cli, pipeline
    parser = cli.build_parser("point_mass", ("reach",), {})
    args = parser.parse_args(["--schedule", "adaptive", "--beta", "0.3", "--beta-final", "0.05", "--kl-target", "0.2",
                              "--kl-direction", "forward", "--prior-temperature", "2", "--reward-scale", "0.1",
                              "--lr", "1e-3", "--ent-coef", "0.003", "--gamma", "0.9", "--epochs", "8",
                              "--minibatches", "2"])
    import dataclasses
    fields = {f.name for f in dataclasses.fields(pipeline.ExperimentConfig)}
    cfg = pipeline.ExperimentConfig(tasks=("reach",), out_dir="x", **{k: v for k, v in vars(args).items()
                                                                       if k in fields and v is not None and k != "tasks"})
    lago, ppo = cfg.ppo_config("lago", 0), cfg.ppo_config("ppo", 0)
    assert (lago.kl_schedule, lago.kl_coef, lago.kl_coef_final, lago.kl_target, lago.kl_direction) == (
        "adaptive", 0.3, 0.05, 0.2, "forward")
    assert lago.prior_temperature == 2.0 and lago.reward_scale == 0.1
    assert (ppo.lr, ppo.ent_coef, ppo.gamma, ppo.update_epochs, ppo.num_minibatches) == (1e-3, 0.003, 0.9, 8, 2)
    assert ppo.kl_coef == 0.0 and ppo.kl_coef_final == 0.0


class HugeObsAfter(NaNAfter):
    """Observations of 1e20 after ``limit`` env steps: finite, but their squares overflow float32."""

    def step(self, state, action):
        s = PointMass.step(self, state, action)
        t = state.metrics["global_t"] + 1.0
        obs = jnp.where(t > self.limit, jnp.full_like(s.obs, 1e20), s.obs)
        return s.replace(obs=obs, metrics=dict(s.metrics, global_t=t))


def test_overflowing_observations_stop_the_run_before_a_bad_checkpoint(tmp_path):
    out = str(tmp_path / "huge")
    cfg = PPOConfig(**dict(CFG.to_dict(), hidden_sizes=(16, 16), num_updates=6))
    # Update 3 sees the huge observations; the chunk of updates 3-4 is refused as a whole.
    with pytest.raises(NonFiniteLossError, match=r"update [34] .*observation statistics.*last good checkpoint is step 2"):
        run(cfg, HugeObsAfter(limit=20), out, progress=False)
    ck = Checkpointer(os.path.join(out, "checkpoints"))
    assert ck.latest_step() == 2
    from lago_jax.ppo import make_ppo
    abstract = jax.eval_shape(make_ppo(cfg, HugeObsAfter(limit=20)).init, jax.random.PRNGKey(0))
    saved = ck.restore_state(2, abstract)
    assert all(np.isfinite(x).all() for x in leaves(saved.obs_stats))
