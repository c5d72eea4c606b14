"""``--dtype bfloat16``: the backbone in bfloat16 through distillation, PPO and evaluation."""

import json

import jax
import jax.numpy as jnp
import numpy as np

from lago_jax import distributions
from lago_jax.experiments import pipeline
from lago_jax.experiments.pipeline import ExperimentConfig
from test_experiments import point_mass_suite


def test_bfloat16_backbone_end_to_end(tmp_path):
    cfg = ExperimentConfig(
        tasks=("reach",), out_dir=str(tmp_path), seeds=(0,), variants=("lago",), num_envs=8, num_steps=8,
        num_updates=2, checkpoint_every=2, demo_episodes=8, demo_batch=8, distill_steps=10, distill_batch=16,
        distill_eval_every=5, llm="random:test-tiny", eval_episodes=4, progress=False, dtype="bfloat16",
    )
    suite = point_mass_suite()
    result = pipeline.run_pipeline(cfg, suite)
    with open(result["json"]) as f:
        data = json.load(f)
    assert np.isfinite(data["priors"]["reach/llm"]["best_val_nll"])
    lago = next(r for r in data["rows"] if r["method"] == "lago")
    assert 0.0 <= lago["success_mean"] <= 1.0
    prior, params = pipeline.build_prior(cfg, "llm", suite.make_env("reach"))
    assert prior.llm_config.dtype == "bfloat16"
    assert {x.dtype for x in jax.tree.leaves(params.frozen["llm"])} == {jnp.dtype(jnp.bfloat16)}
    # the same prior in float32 gives nearly the same distribution
    p32, pp32 = pipeline.build_prior(dataclasses_replace(cfg, dtype="float32"), "llm", suite.make_env("reach"))
    obs = jax.random.normal(jax.random.key(0), (16, p32.obs_dim))
    iid = jnp.zeros(16, jnp.int32)
    pp16 = params.replace(trainable=pp32.trainable)
    kl = distributions.kl(prior.apply(pp16, obs, iid), p32.apply(pp32, obs, iid))
    assert float(jnp.max(kl)) < 1e-2


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)
