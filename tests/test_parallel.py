"""Data parallelism: 4 forced CPU devices x 4 envs == 1 device x 16 envs for the same seed, with a
linear prior and with an LLM prior in the update.

The check runs in a subprocess because the device count is fixed when jax starts
(``--xla_force_host_platform_device_count=4``). The seed layout makes the two runs the same
computation (see :mod:`lago_jax.parallel`): per-env keys are folded from global env ids and
every minibatch takes the same number of steps from every env, so the mean of the per-device
gradient means is the global gradient. Only float summation order differs. The child also runs the checkpointed host loop on the
mesh (stop after one chunk, resume) and compares with an uninterrupted run.
"""

import json
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPDATES = 3


def child() -> None:
    sys.path.insert(0, ROOT)
    from lago_jax import runtime

    runtime.set_xla_flags(("--xla_force_host_platform_device_count=4",))
    runtime.enable_compilation_cache(os.environ.get("LAGO_JAX_CACHE_DIR", os.path.join(ROOT, ".jax_cache")))
    import jax
    import jax.numpy as jnp
    import numpy as np

    from envs.point_mass import PointMass
    from lago_jax import parallel
    from lago_jax.distributions import DiagGaussian
    from lago_jax.ppo import PPOConfig, make_train

    class Prior:
        def apply(self, prior_params, obs, instruction_id):
            mean = obs[:, :2] @ prior_params["w"]
            return DiagGaussian(mean, jnp.broadcast_to(prior_params["log_std"], mean.shape))

    assert jax.device_count() == 4, jax.devices()
    cfg = PPOConfig(num_envs=16, num_steps=8, num_updates=UPDATES, num_minibatches=2, update_epochs=2,
                    hidden_sizes=(16, 16), kl_coef=0.1, episode_length=10,
                    prior_chunk=12)  # the prior in padded chunks: 11 on one device, 3 per device on four
    env = PointMass(discrete=False)
    prior_params = {"w": jnp.eye(2) * 0.5, "log_std": jnp.full((2,), -0.5)}
    key = jax.random.PRNGKey(42)
    one = make_train(cfg, env, Prior())(key, prior_params)
    mesh = parallel.make_mesh()
    four = make_train(cfg, env, Prior(), mesh=mesh)(key, prior_params)
    p1, p4 = jax.tree.leaves(one.state.params), jax.tree.leaves(four.state.params)
    param_diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(p1, p4))
    obs_diff = float(np.max(np.abs(np.asarray(one.state.env_state.obs) - np.asarray(four.state.env_state.obs))))
    stats_diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                     for a, b in zip(jax.tree.leaves(one.state.obs_stats), jax.tree.leaves(four.state.obs_stats)))
    loss_diff = float(np.max(np.abs(np.asarray(one.metrics["total_loss"]) - np.asarray(four.metrics["total_loss"]))))
    kl_diff = float(np.max(np.abs(np.asarray(one.metrics["kl_prior"]) - np.asarray(four.metrics["kl_prior"]))))
    sharding = str(four.state.env_state.obs.sharding)
    changed = max(float(np.max(np.abs(np.asarray(a)))) for a in p1)

    # The LLM prior (tiny random Llama, prefix cache) inside the update, on one device and four.
    from lago_jax.llm import load_pretrained
    from lago_jax.prior import LLMPrior

    llm_config, llm_params, tokenizer = load_pretrained("random:test-tiny:0")
    llm_prior = LLMPrior.from_instructions(llm_config, tokenizer, env.instructions, env.observation_size,
                                           env.action_space, backbone="random:test-tiny:0")
    llm_prior_params = llm_prior.init(jax.random.PRNGKey(3), llm_params)
    llm_one = make_train(cfg, env, llm_prior)(key, llm_prior_params)
    llm_four = make_train(cfg, env, llm_prior, mesh=mesh)(key, llm_prior_params)
    llm_param_diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                         for a, b in zip(jax.tree.leaves(llm_one.state.params), jax.tree.leaves(llm_four.state.params)))
    llm_kl_diff = float(np.max(np.abs(np.asarray(llm_one.metrics["kl_prior"]) - np.asarray(llm_four.metrics["kl_prior"]))))
    llm_kl = float(np.min(np.asarray(llm_one.metrics["kl_prior"])))

    # Checkpointed host loop on the mesh: stop after one chunk, resume, compare.
    import tempfile

    from lago_jax.ppo import run

    small = PPOConfig(num_envs=8, num_steps=8, num_updates=4, checkpoint_every=2, num_minibatches=2, update_epochs=1,
                      hidden_sizes=(16,), episode_length=10)
    tmp = tempfile.mkdtemp()
    full = run(small, env, os.path.join(tmp, "a"), mesh=mesh, progress=False)
    run(small, env, os.path.join(tmp, "b"), mesh=mesh, progress=False, stop_after=2)
    resumed = run(small, env, os.path.join(tmp, "b"), mesh=mesh, progress=False)
    resume_equal = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(jax.device_get(full.state)),
                                                           jax.tree.leaves(jax.device_get(resumed.state))))
    print("RESULT " + json.dumps(dict(param_diff=param_diff, obs_diff=obs_diff, stats_diff=stats_diff,
                                      loss_diff=loss_diff, kl_diff=kl_diff, sharding=sharding,
                                      num_devices=len(four.state.env_state.obs.sharding.device_set),
                                      param_scale=changed, resume_equal=resume_equal, llm_param_diff=llm_param_diff,
                                      llm_kl_diff=llm_kl_diff, llm_kl=llm_kl)))


def test_four_devices_match_one_device():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    r = json.loads(lines[-1][len("RESULT "):])
    print(r)
    assert r["num_devices"] == 4
    # Measured 2026-11-30: params, obs, statistics 6e-8, loss 8e-8, KL 2.4e-7 (float summation order).
    assert r["param_diff"] < 1e-6
    assert r["obs_diff"] < 1e-6
    assert r["stats_diff"] < 1e-6
    assert r["loss_diff"] < 1e-6 and r["kl_diff"] < 1e-6
    assert r["resume_equal"], "a resumed checkpointed run on the mesh must equal the uninterrupted one"
    # The LLM prior in the update (padded chunks on every device): same KL and parameters
    # (measured 2026-11-30: parameters 1.2e-7, KL 3.7e-9).
    assert r["llm_kl"] > 0
    assert r["llm_kl_diff"] < 1e-6 and r["llm_param_diff"] < 1e-6


if __name__ == "__main__" and "--child" in sys.argv:
    child()
