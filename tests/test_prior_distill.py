"""Stage-1 distillation: learning, frozen LLM, checkpoints and resume, errors, data parallelism."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lago_jax.errors import CheckpointError
from lago_jax.prior import DistillConfig, LLMPrior, NonFiniteLossError, distill, load_prior
from lago_jax.prior.distill import demo_arrays, split_by_episode
from tests.prior_testing import mlp_prior, synthetic_demos, tiny_llm, tiny_llm_prior

FAST = DistillConfig(lr=3e-3, batch_size=64, max_steps=300, eval_every=50, patience=0,
                     val_fraction=0.15, progress=False)


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _assert_learned(head, result, margin):
    assert result.num_val > 0 and result.val_nll
    if head == "categorical":
        assert result.baseline_nll == pytest.approx(np.log(5))
    assert result.best_val_nll < result.baseline_nll - margin, (result.best_val_nll,
                                                                result.baseline_nll)
    assert result.train_nll[-1][1] < result.train_nll[0][1]


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
def test_mlp_prior_learns_instruction_conditioned_demos(head):
    prior = mlp_prior(head)
    demos = synthetic_demos(head)
    params, result = distill(prior, prior.init(jax.random.key(0)), demos, FAST)
    _assert_learned(head, result, margin=1.0)
    assert result.backbone == "mlp" and result.best_step > 0


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
def test_llm_prior_learns_and_llm_stays_frozen(head):
    prior = tiny_llm_prior(head)
    _, llm_params, _ = tiny_llm()
    llm_copy = jax.tree.map(np.array, llm_params)
    init = prior.init(jax.random.key(0), llm_params)
    cache_copy = jax.tree.map(np.array, init.frozen["prefix_cache"])
    demos = synthetic_demos(head, instruction_dependent=False)
    config = dataclasses.replace(FAST, max_steps=200)
    params, result = distill(prior, init, demos, config)
    _assert_learned(head, result, margin=1.0)
    # The LLM weights and the instruction caches come back bit-identical; the trainable part moved.
    assert _leaves_equal(params.frozen["llm"], llm_copy)
    assert _leaves_equal(llm_params, llm_copy)
    assert _leaves_equal(params.frozen["prefix_cache"], cache_copy)
    assert not _leaves_equal(params.trainable, init.trainable)
    assert result.backbone == "random:test-tiny:0"


@pytest.mark.slow
def test_lora_distillation_keeps_base_llm_and_refreshes_cache(tmp_path):
    prior = tiny_llm_prior("categorical", lora_rank=2)
    _, llm_params, _ = tiny_llm()
    llm_copy = jax.tree.map(np.array, llm_params)
    init = prior.init(jax.random.key(0), llm_params)
    demos = synthetic_demos("categorical", instruction_dependent=False)
    cfg = dataclasses.replace(FAST, max_steps=20, eval_every=10)
    params, result = distill(prior, init, demos, cfg, str(tmp_path))
    assert result.best_val_nll < result.baseline_nll
    assert _leaves_equal(params.frozen["llm"], llm_copy)
    assert float(jnp.abs(params.trainable["lora"]["q_b"]).max()) > 0
    data = demo_arrays(prior, demos)
    obs, iid = jnp.asarray(data.obs[:8]), jnp.asarray(data.instruction_id[:8])
    for p in (params, load_prior(str(tmp_path), prior, init)):
        np.testing.assert_allclose(jax.jit(prior.latent)(p, obs, iid),
                                   jax.jit(prior.latent_uncached)(p, obs, iid), atol=2e-5, rtol=2e-5)


def test_checkpoint_resume_continues_the_same_run(tmp_path):
    prior = mlp_prior("categorical")
    demos = synthetic_demos("categorical")
    init = prior.init(jax.random.key(0))
    # The first call stops at 40 of the 60 steps (an interruption); the cosine spans all 60 in both.
    cfg = dataclasses.replace(FAST, max_steps=60, eval_every=20, patience=0, lr_decay_steps=60)
    straight, res_straight = distill(prior, init, demos, cfg, str(tmp_path / "straight"))
    first, res_first = distill(prior, init, demos, dataclasses.replace(cfg, max_steps=40),
                               str(tmp_path / "resumed"))
    assert res_first.final_step == 40
    resumed, res_resumed = distill(prior, init, demos, cfg, str(tmp_path / "resumed"))
    assert res_resumed.final_step == 60
    # Same minibatches and restored Adam state: the resumed run equals the uninterrupted one.
    for a, b in zip(jax.tree.leaves(resumed.trainable), jax.tree.leaves(straight.trainable)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert [s for s, _ in res_resumed.val_nll] == [0, 20, 40, 60]  # step 0: the initial parameters
    np.testing.assert_allclose([v for _, v in res_resumed.val_nll],
                               [v for _, v in res_straight.val_nll], rtol=1e-4)
    # A finished run resumes as done and returns the best parameters; load_prior agrees.
    again, res_again = distill(prior, init, demos, cfg, str(tmp_path / "resumed"))
    assert res_again.stop_reason == "already_done" and res_again.final_step == 60
    loaded = load_prior(str(tmp_path / "resumed"), prior, init.frozen)
    assert _leaves_equal(loaded.trainable, resumed.trainable)
    assert _leaves_equal(loaded.trainable, again.trainable)
    np.testing.assert_array_equal(loaded.obs_norm.mean, resumed.obs_norm.mean)
    assert res_resumed.best_step in (20, 40, 60)
    # resume=False starts over.
    _, res_fresh = distill(prior, init, demos, dataclasses.replace(cfg, max_steps=20),
                           str(tmp_path / "fresh"), resume=False)
    assert res_fresh.final_step == 20
    with pytest.warns(UserWarning, match="removing the earlier prior checkpoints"):
        restarted, res_restarted = distill(prior, init, demos, dataclasses.replace(cfg, max_steps=20),
                                           str(tmp_path / "resumed"), resume=False)
    assert res_restarted.final_step == 20
    assert _leaves_equal(load_prior(str(tmp_path / "resumed"), prior, init).trainable,
                         restarted.trainable)


def test_early_stopping_keeps_best(tmp_path):
    prior = mlp_prior("categorical")
    demos = synthetic_demos("categorical", num_episodes=6)  # overfits quickly
    cfg = dataclasses.replace(FAST, lr=1e-2, max_steps=3000, eval_every=10, patience=3,
                              val_fraction=0.34)
    params, result = distill(prior, prior.init(jax.random.key(0)), demos, cfg, str(tmp_path))
    assert result.stop_reason == "early_stopping"
    assert result.final_step < 3000
    vals = dict(result.val_nll)
    assert result.best_val_nll == pytest.approx(min(vals.values()))
    assert vals[result.best_step] == pytest.approx(result.best_val_nll)
    loaded = load_prior(str(tmp_path), prior, params)
    assert _leaves_equal(loaded.trainable, params.trainable)


def test_missing_or_corrupt_prior_checkpoint_is_a_clear_error(tmp_path):
    prior = mlp_prior("categorical")
    init = prior.init(jax.random.key(0))
    with pytest.raises(CheckpointError, match=f"no prior checkpoint under {tmp_path / 'empty'}"):
        load_prior(str(tmp_path / "empty"), prior, init)
    demos = synthetic_demos("categorical")
    distill(prior, init, demos, dataclasses.replace(FAST, max_steps=4, eval_every=2), str(tmp_path / "run"))
    best = tmp_path / "run" / "checkpoints" / "4" / "best"
    for root, _, files in os.walk(best):  # truncate every array file of the best parameters
        for name in files:
            if name not in ("_METADATA", "_sharding", "commit_success.txt"):
                open(os.path.join(root, name), "wb").close()
    with pytest.raises(CheckpointError, match=r"checkpoints/4 is corrupt"):
        load_prior(str(tmp_path / "run"), prior, init)


def test_half_written_prior_step_is_set_aside_and_the_run_resumes(tmp_path):
    prior = mlp_prior("categorical")
    init = prior.init(jax.random.key(0))
    demos = synthetic_demos("categorical")
    cfg = dataclasses.replace(FAST, max_steps=4, eval_every=2)
    distill(prior, init, demos, cfg, str(tmp_path))
    ckpts = tmp_path / "checkpoints"
    os.makedirs(ckpts / "6" / "best")  # a step folder cut short: no metadata, items missing
    step4 = os.stat(ckpts / "4" / "meta").st_mtime_ns
    with pytest.warns(UserWarning, match=r"set aside an incomplete prior checkpoint folder .*checkpoints/6\.incomplete-0"):
        _, result = distill(prior, init, demos, dataclasses.replace(cfg, max_steps=6), str(tmp_path))
    assert result.final_step == 6 and (ckpts / "6" / "meta").is_dir()
    assert os.stat(ckpts / "4" / "meta").st_mtime_ns == step4  # resumed from step 4, not rewritten


def test_mismatched_d_model_restore_is_a_clear_error(tmp_path):
    prior = tiny_llm_prior("categorical")
    _, llm_params, _ = tiny_llm()
    init = prior.init(jax.random.key(0), llm_params)
    demos = synthetic_demos("categorical", instruction_dependent=False)
    distill(prior, init, demos, dataclasses.replace(FAST, max_steps=2, eval_every=2), str(tmp_path))
    d_model = prior.d_model
    wider = LLMPrior(prior.llm_config.replace(hidden_size=d_model + 4), prior.instruction_token_ids,
                     prior.obs_dim, prior.head, prior.action_dim, backbone="random:wider",
                     instructions=prior.instructions)
    path = os.path.join(str(tmp_path), "checkpoints")
    message = f"prior checkpoint at {path} was trained with d_model={d_model} but the LLM has d_model={d_model + 4}"
    with pytest.raises(ValueError, match=message):
        load_prior(str(tmp_path), wider, {})
    with pytest.raises(ValueError, match=f"was trained with d_model={d_model}"):
        distill(wider, init, demos, FAST, str(tmp_path))
    wrong_head = mlp_prior("categorical")
    with pytest.raises(ValueError, match="holds an llm prior .* but the prior given is an mlp prior"):
        load_prior(str(tmp_path), wrong_head, {})


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    prior = mlp_prior("gaussian")
    demos = synthetic_demos("gaussian")
    action = demos.action.copy()
    action[:] = 3e38  # finite, but its square overflows float32 in the NLL
    bad = dataclasses.replace(demos, action=action)
    init = prior.init(jax.random.key(0))
    with pytest.raises(NonFiniteLossError, match=r"loss is (inf|nan) at step 1 .*checkpointed"):
        distill(prior, init, bad, FAST, str(tmp_path))
    loaded = load_prior(str(tmp_path), prior, init)
    assert _leaves_equal(loaded.trainable, init.trainable)


def test_malformed_demonstrations_are_named():
    prior = mlp_prior("categorical")
    demos = synthetic_demos("categorical")
    n = demos.obs.shape[0]
    with pytest.raises(ValueError, match="empty"):
        demo_arrays(prior, dataclasses.replace(demos, obs=demos.obs[:0], action=demos.action[:0]))
    with pytest.raises(ValueError, match=r"obs have shape \(384, 3\); the prior expects \[N, 4\]"):
        demo_arrays(prior, dataclasses.replace(demos, obs=demos.obs[:, :3]))
    with pytest.raises(ValueError, match=r"actions span \[7, 7\]; the prior has 5 actions \[0, 5\)"):
        demo_arrays(prior, dataclasses.replace(demos, action=np.full(n, 7, np.int32)))
    with pytest.raises(ValueError, match="expects \\[N\\]"):
        demo_arrays(prior, dataclasses.replace(demos, action=np.zeros((n, 2), np.float32)))
    with pytest.raises(ValueError, match="NaN"):
        obs = demos.obs.copy()
        obs[3, 1] = np.nan
        demo_arrays(prior, dataclasses.replace(demos, obs=obs))
    with pytest.raises(ValueError, match="instruction ids span"):
        demo_arrays(prior, dataclasses.replace(demos, instruction_id=np.full(n, 3, np.int32)))
    with pytest.raises(ValueError, match="instructions differ"):
        demo_arrays(prior, dataclasses.replace(demos, instructions=("a", "b", "c")))
    with pytest.raises(ValueError, match="lack the arrays"):
        demo_arrays(prior, object())
    gaussian = mlp_prior("gaussian")
    with pytest.raises(ValueError, match=r"Gaussian prior expects \[N, A\]"):
        demo_arrays(gaussian, demos)
    one_episode = dataclasses.replace(demos, episode_id=np.zeros(n, np.int32))
    with pytest.raises(ValueError, match="at least 2 episodes"):
        distill(prior, prior.init(jax.random.key(0)), one_episode, FAST)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DistillConfig(batch_size=0)


def test_learning_rate_schedules():
    cos = DistillConfig(lr=1e-3, max_steps=100)
    sched = cos.learning_rate()
    np.testing.assert_allclose([sched(0), sched(50), sched(100), sched(500)], [1e-3, 5.5e-4, 1e-4, 1e-4], rtol=1e-5)
    assert DistillConfig(lr=1e-3, lr_schedule="constant").learning_rate() == 1e-3
    with pytest.raises(ValueError, match="'linear'"):
        DistillConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="lr_final_fraction"):
        DistillConfig(lr_final_fraction=2.0)


def test_split_is_by_episode_and_deterministic():
    prior = mlp_prior("categorical")
    data = demo_arrays(prior, synthetic_demos("categorical", num_episodes=20))
    train, val = split_by_episode(data, 0.25, seed=3)
    assert set(np.unique(val.episode_id)).isdisjoint(np.unique(train.episode_id))
    assert np.unique(val.episode_id).size == 5 and train.size + val.size == data.size
    train2, val2 = split_by_episode(data, 0.25, seed=3)
    np.testing.assert_array_equal(val.episode_id, val2.episode_id)
    _, val_other = split_by_episode(data, 0.25, seed=4)
    assert not np.array_equal(np.unique(val.episode_id), np.unique(val_other.episode_id))
    train0, val0 = split_by_episode(data, 0.0, seed=3)
    assert val0.size == 0 and train0.size == data.size


_DATA_PARALLEL_SCRIPT = textwrap.dedent("""
    import dataclasses, json, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    from lago_jax import runtime
    runtime.configure({cache!r})
    import jax
    from lago_jax.prior import DistillConfig, distill
    from tests.prior_testing import mlp_prior, synthetic_demos, tiny_llm, tiny_llm_prior
    prior = {prior}
    config = DistillConfig(**json.loads({config!r}))
    params, result = distill(prior, {init}, synthetic_demos("categorical"), config)
    np.savez({out!r}, n=jax.local_device_count(), val=np.asarray([v for _, v in result.val_nll]),
             *[np.asarray(x) for x in jax.tree.leaves(params.trainable)])
""")


@pytest.mark.parametrize("kind", ["mlp", "llm"])
def test_data_parallel_step_matches_single_device(tmp_path, kind):
    """Two host devices (shard_map + pmean) give the same parameters as one device, for the MLP
    prior and for the LLM prior (frozen tiny LLM, prefix cache replicated)."""
    if kind == "mlp":
        prior_expr, init_expr = 'mlp_prior("categorical")', "prior.init(jax.random.key(0))"
        prior = mlp_prior("categorical")
        init = prior.init(jax.random.key(0))
    else:
        prior_expr, init_expr = 'tiny_llm_prior("categorical")', "prior.init(jax.random.key(0), tiny_llm()[1])"
        prior = tiny_llm_prior("categorical")
        init = prior.init(jax.random.key(0), tiny_llm()[1])
    # The LLM prior: one step. Its longer reductions are summed in another order on two devices
    # (gradients differ by ~1e-7), and Adam, dividing each gradient element by its own running
    # scale, amplifies that over steps wherever an element's gradient is near zero (after 10
    # steps: validation NLL within 3e-4 relative, some parameters 7% of their movement apart).
    # One step keeps the check sharp: measured 8e-7; a wrong batch or a missing pmean changes
    # the sign of many elements' first Adam step (2 x lr = 6e-3 apart).
    steps = 10 if kind == "mlp" else 1
    config = dataclasses.replace(FAST, max_steps=steps, eval_every=min(5, steps))
    params, result = distill(prior, init, synthetic_demos("categorical"), config)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = str(tmp_path / "two_devices.npz")
    script = _DATA_PARALLEL_SCRIPT.format(
        root=root, cache=jax.config.jax_compilation_cache_dir or None,
        config=json.dumps(config.to_dict()), out=out, prior=prior_expr, init=init_expr)
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(out)
    assert int(got["n"]) == 2
    leaves = jax.tree.leaves(params.trainable)
    val = np.asarray([v for _, v in result.val_nll])
    for i, leaf in enumerate(leaves):
        np.testing.assert_allclose(got[f"arr_{i}"], leaf, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["val"], val, rtol=1e-5)
