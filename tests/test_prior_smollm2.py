"""The LLM prior on the real SmolLM2-135M-Instruct backbone (slow: loads and runs 135M params)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lago_jax.prior import DistillConfig, LLMPrior, distill

pytestmark = pytest.mark.slow

INSTRUCTIONS = (
    "Push the red ball to the left of the blue ball",
    "Move green behind purple, please.",
    "",
)
OBS_DIM, NUM_ACTIONS = 10, 40


@pytest.fixture(scope="module")
def smollm2():
    from lago_jax.llm import load_pretrained
    return load_pretrained("smollm2-135m")


@pytest.fixture(scope="module")
def prior_and_params(smollm2):
    config, llm_params, tokenizer = smollm2
    prior = LLMPrior.from_instructions(config, tokenizer, INSTRUCTIONS, OBS_DIM, head="categorical",
                                       action_dim=NUM_ACTIONS, num_soft_tokens=2,
                                       backbone="smollm2-135m")
    return prior, prior.init(jax.random.key(0), llm_params)


def test_smollm2_prior_cached_prefix_equals_full_forward(prior_and_params):
    prior, params = prior_and_params
    assert prior.d_model == 576 and prior.describe()["backbone"] == "smollm2-135m"
    # The real tokenizer: instructions of different lengths, all non-empty through the template.
    lengths = [len(t) for t in prior.instruction_token_ids]
    assert len(set(lengths)) == 3 and min(lengths) > 0
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(6, OBS_DIM)), jnp.float32)
    iid = jnp.asarray([0, 1, 2, 2, 1, 0], jnp.int32)
    z_cached = jax.jit(prior.latent)(params, obs, iid)
    z_full = jax.jit(prior.latent_uncached)(params, obs, iid)
    assert np.all(np.isfinite(z_cached))
    scale = float(jnp.max(jnp.abs(z_full)))
    np.testing.assert_allclose(z_cached, z_full, atol=1e-4 * scale, rtol=1e-3)
    dist = jax.jit(prior.apply)(params, obs, iid)
    full = jax.jit(prior.apply_uncached)(params, obs, iid)
    assert dist.logits.shape == (6, NUM_ACTIONS)
    np.testing.assert_allclose(dist.logits, full.logits, atol=1e-4, rtol=1e-3)
    # The instruction reaches the latent action: same observation, other instruction, other z.
    same_obs = jnp.repeat(obs[:1], 3, axis=0)
    z3 = jax.jit(prior.latent)(params, same_obs, jnp.arange(3, dtype=jnp.int32))
    assert float(jnp.linalg.norm(z3[0] - z3[1])) > 1e-2 * float(jnp.linalg.norm(z3[0]))


def test_smollm2_prior_distills_a_few_steps(prior_and_params, smollm2):
    from tests.prior_testing import synthetic_demos
    prior, params = prior_and_params
    demos = synthetic_demos("categorical", num_episodes=8, steps_per_episode=16)
    rng = np.random.default_rng(1)
    demos = dataclasses.replace(
        demos, instructions=INSTRUCTIONS,
        obs=rng.normal(size=(demos.obs.shape[0], OBS_DIM)).astype(np.float32),
        action=rng.integers(0, NUM_ACTIONS, demos.obs.shape[0]).astype(np.int32))
    llm_before = jax.tree.map(np.array, smollm2[1])
    config = DistillConfig(lr=1e-3, batch_size=16, max_steps=4, eval_every=2, val_fraction=0.25,
                           progress=False)
    new, result = distill(prior, params, demos, config)
    # Validation NLL at the start (the untrained head is a candidate too) and every 2 steps.
    assert result.final_step == 4 and [s for s, _ in result.val_nll] == [0, 2, 4]
    assert [s for s, _ in result.train_nll] == [2, 4]
    assert all(np.isfinite(v) for _, v in result.train_nll + result.val_nll)
    for a, b in zip(jax.tree.leaves(new.frozen["llm"]), jax.tree.leaves(llm_before)):
        assert np.array_equal(np.asarray(a), b)
