"""The prior model: cached prefix == full forward, heads, gradients, protocol, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lago_jax.distributions import Categorical, DiagGaussian
from lago_jax.llm import get_preset, init_params
from lago_jax.prior import (LOG_STD_MAX, LOG_STD_MIN, LLMPrior, MLPPrior, PriorParams,
                            compute_obs_norm, head_for_action_space)
from lago_jax.prior.model import apply_head, init_head
from tests.prior_testing import (INSTRUCTIONS, NUM_INSTRUCTIONS, OBS_DIM, mlp_prior,
                                 synthetic_demos, tiny_llm, tiny_llm_prior)


def _batch(b=7, seed=0):
    rng = np.random.default_rng(seed)
    obs = (3.0 + 2.0 * rng.normal(size=(b, OBS_DIM))).astype(np.float32)
    iid = (np.arange(b) % NUM_INSTRUCTIONS).astype(np.int32)
    return jnp.asarray(obs), jnp.asarray(iid)


def _params(prior, seed=1):
    _, llm_params, _ = tiny_llm()
    demos = synthetic_demos(prior.head)
    return prior.init(jax.random.key(seed), llm_params, compute_obs_norm(demos.obs))


@pytest.mark.parametrize("head,k", [("categorical", 1), ("gaussian", 3)])
def test_cached_prefix_equals_full_forward(head, k):
    prior = tiny_llm_prior(head, num_soft_tokens=k)
    params = _params(prior)
    obs, iid = _batch()
    # Instructions of different lengths, so the cached prefixes are padded to a common width.
    assert len({len(t) for t in prior.instruction_token_ids}) == NUM_INSTRUCTIONS
    z_cached = jax.jit(prior.latent)(params, obs, iid)
    z_full = jax.jit(prior.latent_uncached)(params, obs, iid)
    assert z_cached.shape == (obs.shape[0], prior.d_model)
    assert float(jnp.max(jnp.abs(z_full))) > 0.1
    np.testing.assert_allclose(z_cached, z_full, atol=2e-5, rtol=2e-5)
    d_cached = jax.jit(prior.apply)(params, obs, iid)
    d_full = jax.jit(prior.apply_uncached)(params, obs, iid)
    for a, b in zip(jax.tree.leaves(d_cached), jax.tree.leaves(d_full)):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)


def test_full_forward_oracle_per_example():
    """The uncached path equals running each row's unpadded [instruction ; soft] alone."""
    from lago_jax.llm import embed_tokens, forward_embeds
    prior = tiny_llm_prior("categorical", num_soft_tokens=2)
    params = _params(prior)
    obs, iid = _batch(b=4)
    z = jax.jit(prior.latent_uncached)(params, obs, iid)
    soft = jax.jit(prior.soft_tokens)(params, obs)
    llm = params.frozen["llm"]

    @jax.jit
    def last_hidden(ids, soft_1kd):
        emb = jnp.concatenate([embed_tokens(prior.llm_config, llm, ids), soft_1kd], axis=1)
        return forward_embeds(prior.llm_config, llm, emb)[0][0, -1]

    for b in range(obs.shape[0]):
        ids = jnp.asarray(prior.instruction_token_ids[int(iid[b])], jnp.int32)[None]
        np.testing.assert_allclose(z[b], last_hidden(ids, soft[b:b + 1]), atol=2e-5, rtol=2e-5)


def test_instruction_changes_the_distribution():
    prior = tiny_llm_prior("categorical")
    params = _params(prior)
    obs, _ = _batch(b=1)
    latent = jax.jit(prior.latent)
    z = [latent(params, obs, jnp.asarray([g], jnp.int32)) for g in range(3)]
    assert not np.allclose(z[0], z[1]) and not np.allclose(z[1], z[2])


def test_gradients_reach_only_trainable():
    prior = tiny_llm_prior("gaussian")
    params = _params(prior)
    obs, iid = _batch()
    action = jnp.zeros((obs.shape[0], 2))

    def loss(p: PriorParams):
        return -jnp.mean(prior.apply(p, obs, iid).log_prob(action))

    grads = jax.jit(jax.grad(loss, allow_int=True))(params)
    frozen_leaves = [g for g in jax.tree.leaves(grads.frozen) if g.dtype != jax.dtypes.float0]
    assert len(frozen_leaves) >= 11  # LLM weights, cached keys/values, obs statistics
    for leaf in frozen_leaves:
        assert not np.any(np.asarray(leaf, np.float32)), "a frozen parameter received a gradient"
    trainable_norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads.trainable)]
    assert all(n > 0 for n in trainable_norms)


def test_prior_params_are_traced_not_constants():
    """apply jits with params as an argument: new params do not recompile."""
    prior = tiny_llm_prior("categorical")
    params = _params(prior)
    obs, iid = _batch()
    traces = []

    @jax.jit
    def f(p, o, i):
        traces.append(1)
        return prior.apply(p, o, i).logits

    a = f(params, obs, iid)
    params2 = params.with_trainable(jax.tree.map(lambda x: x * 1.5, params.trainable))
    b = f(params2, obs, iid)
    assert len(traces) == 1
    assert not np.allclose(a, b)
    jaxpr = jax.make_jaxpr(lambda p: prior.apply(p, obs, iid).logits)(params)
    big = [c for c in jaxpr.consts if np.size(c) >= params.frozen["llm"]["embed"].size]
    assert not big, "LLM weights were captured as constants"


def test_gaussian_head_log_std_range_and_init():
    key = jax.random.key(0)
    head = init_head(key, 8, "gaussian", 3)
    z = jnp.zeros((2, 8))
    dist = apply_head(head, "gaussian", 3, z)
    assert isinstance(dist, DiagGaussian)
    np.testing.assert_allclose(dist.log_std, 0.0, atol=1e-6)  # std 1 at initialisation
    big = {"w": head["w"] * 1e4, "b": jnp.zeros_like(head["b"])}
    zz = jax.random.normal(key, (64, 8))
    ls = apply_head(big, "gaussian", 3, zz).log_std
    assert float(ls.min()) >= LOG_STD_MIN and float(ls.max()) <= LOG_STD_MAX
    assert float(ls.min()) < LOG_STD_MIN + 0.5 and float(ls.max()) > LOG_STD_MAX - 0.5
    cat = apply_head(init_head(key, 8, "categorical", 4), "categorical", 4, zz)
    assert isinstance(cat, Categorical) and cat.logits.shape == (64, 4)


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
def test_mlp_prior_protocol(head):
    prior = mlp_prior(head)
    params = prior.init(jax.random.key(0))
    assert set(params.frozen) == {"obs_norm"}
    obs, iid = _batch()
    dist = jax.jit(prior.apply)(params, obs, iid)
    assert jax.tree.leaves(dist)[0].shape[0] == obs.shape[0]
    assert prior.describe()["backbone"] == "mlp"
    d0 = prior.apply(params, obs, jnp.zeros_like(iid))
    d1 = prior.apply(params, obs, jnp.ones_like(iid))
    assert not np.allclose(jax.tree.leaves(d0)[0], jax.tree.leaves(d1)[0])


def test_obs_norm_is_applied():
    prior = mlp_prior("categorical")
    demos = synthetic_demos("categorical")
    norm = compute_obs_norm(demos.obs)
    np.testing.assert_allclose(norm.mean, demos.obs.mean(0), rtol=1e-4)
    z = norm.normalize(jnp.asarray(demos.obs))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)
    const = compute_obs_norm(np.ones((5, 2), np.float32))
    np.testing.assert_array_equal(const.std, 1.0)
    p0 = prior.init(jax.random.key(0))
    p1 = prior.init(jax.random.key(0), norm)
    obs, iid = _batch()
    assert not np.allclose(prior.apply(p0, obs, iid).logits, prior.apply(p1, obs, iid).logits)


def test_describe_and_backbone():
    prior = tiny_llm_prior("categorical")
    d = prior.describe()
    assert d["backbone"] == "random:test-tiny:0"
    assert d["d_model"] == get_preset("test-tiny").hidden_size
    assert d["num_instructions"] == 3 and prior.instructions == INSTRUCTIONS
    # Every instruction, even the empty one, gets a non-empty prefix from the template.
    assert all(len(t) > 0 for t in prior.instruction_token_ids)
    hash(prior)  # static: usable as a jit closure / static argument


def test_errors():
    config = get_preset("test-tiny")
    with pytest.raises(ValueError, match="lora_rank must be >= 0"):
        LLMPrior(config, ((1, 2),), obs_dim=3, head="categorical", action_dim=2, lora_rank=-1)
    with pytest.raises(ValueError, match="instruction 0 has no tokens"):
        LLMPrior(config, ((),), obs_dim=3, head="categorical", action_dim=2)
    with pytest.raises(ValueError, match="outside the LLM vocabulary"):
        LLMPrior(config, ((1, 999),), obs_dim=3, head="categorical", action_dim=2)
    with pytest.raises(ValueError, match="unknown head"):
        MLPPrior(obs_dim=3, head="beta", action_dim=2)
    prior = LLMPrior(config, ((1, 2),), obs_dim=3, head="categorical", action_dim=2)
    wrong_config = config.replace(hidden_size=config.hidden_size + 4)
    wrong = jax.eval_shape(lambda key: init_params(wrong_config, key), jax.random.key(0))
    with pytest.raises(ValueError, match="expected shape"):
        prior.init(jax.random.key(0), wrong)


def test_head_for_action_space():
    from envs.core import Box, Discrete
    assert head_for_action_space(Discrete(40)) == ("categorical", 40)
    assert head_for_action_space(Box(low=(-1.0,) * 4, high=(1.0,) * 4)) == ("gaussian", 4)


def test_lora_adapters_start_at_base_train_and_refresh_the_cache():
    prior = tiny_llm_prior("categorical", num_soft_tokens=2, lora_rank=2)
    params = _params(prior)
    base = params.frozen["llm"]
    merged = prior.llm_weights(params)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(base)))
    obs, iid = _batch()
    action = jnp.arange(obs.shape[0]) % 5

    def loss(p):
        return -jnp.mean(prior.training_apply(p, obs, iid).log_prob(action))

    grads = jax.jit(jax.grad(loss, allow_int=True))(params)
    for name in ("q_b", "v_b"):
        assert float(jnp.linalg.norm(grads.trainable["lora"][name])) > 0
    for leaf in jax.tree.leaves(grads.frozen["llm"]):
        assert not np.any(np.asarray(leaf))
    # Move the adapters: the stale cache disagrees with the full forward until refreshed.
    keys = jax.random.split(jax.random.key(5), 2)
    lora = dict(params.trainable["lora"])
    lora["q_b"] = 0.3 * jax.random.normal(keys[0], lora["q_b"].shape)
    lora["v_b"] = 0.3 * jax.random.normal(keys[1], lora["v_b"].shape)
    moved = params.with_trainable({**params.trainable, "lora": lora})
    full = jax.jit(prior.latent_uncached)(moved, obs, iid)
    stale = jax.jit(prior.latent)(moved, obs, iid)
    assert not np.allclose(stale, full, atol=1e-3)
    fresh = jax.jit(prior.latent)(prior.refresh_prefix_cache(moved), obs, iid)
    np.testing.assert_allclose(fresh, full, atol=2e-5, rtol=2e-5)


def test_build_llm_prior_records_the_backbone():
    from envs.core import Discrete
    from lago_jax.prior import build_llm_prior
    prior, params = build_llm_prior("random:test-tiny:0", INSTRUCTIONS, OBS_DIM, Discrete(5),
                                    jax.random.key(0))
    assert prior.backbone == "random:test-tiny:0" and prior.describe()["backbone"] == prior.backbone
    assert prior.head == "categorical" and prior.action_dim == 5
    _, llm_params, _ = tiny_llm()
    for a, b in zip(jax.tree.leaves(params.frozen["llm"]), jax.tree.leaves(llm_params)):
        np.testing.assert_array_equal(a, b)
    assert params.frozen["prefix_cache"].num_prefixes == len(INSTRUCTIONS)


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
def test_chunked_prior_equals_per_step_evaluation(head):
    """The update evaluates the prior on all T x B visited states in chunks of ``prior_chunk``
    rows; every chunk size (1, one that pads the last chunk, B, larger than T x B) gives the
    distributions of one call per time step (the rollout's own [B] batches)."""
    from lago_jax.ppo.train import prior_distributions
    prior = tiny_llm_prior(head)
    params = _params(prior)
    T, B = 6, 5
    rng = np.random.default_rng(3)
    obs = jnp.asarray((3.0 + 2.0 * rng.normal(size=(T, B, OBS_DIM))).astype(np.float32))
    iid = jnp.asarray(rng.integers(0, NUM_INSTRUCTIONS, (T, B)).astype(np.int32))
    per_step = jax.jit(lambda p, o, i: jax.lax.map(lambda x: prior.apply(p, x[0], x[1]), (o, i)))(params, obs, iid)
    assert len({int(x) for x in np.asarray(iid).ravel()}) == NUM_INSTRUCTIONS
    for chunk in (1, 7, B, 64):
        got = jax.jit(lambda p, o, i, c=chunk: prior_distributions(prior, p, o, i, c))(params, obs, iid)
        for a, b in zip(jax.tree.leaves(per_step), jax.tree.leaves(got)):
            assert a.shape == b.shape == (T, B) + a.shape[2:]
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-5, atol=2e-5, err_msg=f"chunk {chunk}")
