"""Parity of the Flax Llama port with transformers on tiny random models (fp32), and the cache,
prefix-cache, gradient and bf16 paths. Models load through our Hugging Face directory loader."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lago_jax import llm
from lago_jax.llm import model as llm_model

from llm_family_checks import forward_all
from llm_fixtures import (GQA_UNTIED_SHARDED, MHA_TIED, hf_forward, make_hf_model, rel_err,
                          save_hf_model)

torch = pytest.importorskip("torch")

SPECS = [GQA_UNTIED_SHARDED, MHA_TIED]
TOL = 1e-5


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: s.name)
def tiny(request, tmp_path_factory):
    spec = request.param
    hf_model = make_hf_model(spec)
    directory = save_hf_model(hf_model, str(tmp_path_factory.mktemp(spec.name)), spec)
    config, params, _ = llm.load_pretrained(directory)
    return spec, hf_model, config, params, directory


def _ids(spec, shape, seed=0):
    return np.random.default_rng(seed).integers(3, spec.vocab_size, size=shape).astype(np.int32)


def test_loaded_config_matches(tiny):
    spec, _, config, _, directory = tiny
    assert config.num_kv_heads == spec.num_kv_heads and config.head_dim == spec.head_dim
    assert config.tie_word_embeddings == spec.tie_word_embeddings
    assert config.rope_theta == spec.rope_theta and config.rms_norm_eps == spec.rms_norm_eps
    sharded = os.path.isfile(os.path.join(directory, "model.safetensors.index.json"))
    assert sharded == (spec.max_shard_size is not None)


def test_logits_and_hidden_states_match_transformers(tiny):
    """Logits and every layer's hidden states, unpadded and left-padded, rel. error < 1e-5."""
    spec, hf_model, config, params, _ = tiny
    b, t = 3, 11
    ids = _ids(spec, (b, t))
    mask = np.ones((b, t), np.int32)
    mask[1, :4] = 0  # left padding
    mask[2, :1] = 0
    positions = np.clip(np.cumsum(mask, -1) - 1, 0, None).astype(np.int32)

    ref_logits, ref_hidden = hf_forward(hf_model, ids)
    logits, hidden = forward_all(config, params, ids, np.broadcast_to(np.arange(t), (b, t)),
                                 np.ones((b, t), np.int32))
    assert hidden.shape == (config.num_layers + 1, b, t, config.hidden_size)
    assert rel_err(logits, ref_logits) < TOL
    for layer in range(config.num_layers + 1):
        assert rel_err(hidden[layer], ref_hidden[layer]) < TOL, layer

    ref_logits, ref_hidden = hf_forward(hf_model, ids, attention_mask=mask, position_ids=positions)
    logits, hidden = forward_all(config, params, ids, positions, mask)
    real = mask.astype(bool)
    assert rel_err(np.asarray(logits)[real], ref_logits[real]) < TOL
    for layer in range(config.num_layers + 1):
        assert rel_err(np.asarray(hidden[layer])[real], ref_hidden[layer][real]) < TOL, layer
    # The padded row's real tokens equal the same tokens run alone.
    alone, _ = forward_all(config, params, ids[1:2, 4:], np.arange(t - 4)[None],
                           np.ones((1, t - 4), np.int32))
    np.testing.assert_allclose(np.asarray(logits)[1, 4:], np.asarray(alone)[0], atol=1e-5, rtol=0)


def test_cached_decoding_equals_full_forward(tiny):
    spec, hf_model, config, params, _ = tiny
    b, t0, steps = 2, 5, 4
    ids = _ids(spec, (b, t0 + steps), seed=1)
    ref_logits, _ = hf_forward(hf_model, ids)

    step = jax.jit(llm.forward_ids, static_argnums=0)
    cache = llm.init_cache(config, b, t0 + steps)
    logits, _, cache = step(config, params, ids[:, :t0], cache=cache)
    got = [logits]
    for i in range(steps):
        logits, _, cache = step(config, params, ids[:, t0 + i:t0 + i + 1], cache=cache)
        got.append(logits)
    got = np.concatenate([np.asarray(g) for g in got], axis=1)
    assert rel_err(got[:, :t0 + steps], ref_logits) < TOL
    assert int(cache.index) == t0 + steps


def test_prefix_cache_reuse_equals_full_forward(tiny):
    """One prefix broadcast over a batch, and several padded prefixes chosen by index."""
    spec, _, config, params, _ = tiny
    k, b = 3, 4
    prefixes = [list(_ids(spec, (7,), seed=2)), list(_ids(spec, (4,), seed=3))]
    cont_ids = _ids(spec, (b, k), seed=4)
    cont = llm.embed_tokens(config, params, cont_ids)

    @jax.jit
    def full_forward(ids):
        hidden, _ = llm.forward_embeds(config, params, llm.embed_tokens(config, params, ids))
        return hidden[:, -k:]

    def full(prefix, rows):
        """Hidden states of the continuation tokens, prefix and continuation run together."""
        ids = np.concatenate([np.broadcast_to(np.asarray(prefix, np.int32), (len(rows), len(prefix))),
                              cont_ids[rows]], axis=1)
        return np.asarray(full_forward(ids))

    shared = llm.prefill_prefix(config, params, np.asarray(prefixes[0], np.int32))
    fwp = jax.jit(llm.forward_with_prefix, static_argnums=0)
    hidden = np.asarray(fwp(config, params, shared, cont))
    assert hidden.shape == (b, k, config.hidden_size)
    np.testing.assert_allclose(hidden, full(prefixes[0], np.arange(b)), atol=2e-5, rtol=0)

    stacked = llm.prefill_prefix(config, params, prefixes)  # right-padded to length 7
    assert stacked.k_lpskh.shape[1:3] == (2, 7)
    index = np.array([1, 0, 1, 1], np.int32)
    hidden = np.asarray(fwp(config, params, stacked, cont, index))
    for p in (0, 1):
        rows = np.flatnonzero(index == p)
        np.testing.assert_allclose(hidden[rows], full(prefixes[p], rows), atol=2e-5, rtol=0)
    # Prefix given as embeddings instead of ids: same cache.
    from_embeds = llm.prefill_prefix(
        config, params, llm.embed_tokens(config, params, np.asarray(prefixes[0], np.int32)))
    np.testing.assert_allclose(from_embeds.k_lpskh, shared.k_lpskh, atol=1e-6, rtol=0)


def test_gradient_through_frozen_llm_to_soft_tokens(tiny):
    """d(hidden of last soft token)/d(soft tokens): prefix path == full forward path."""
    spec, _, config, params, _ = tiny
    prefix = _ids(spec, (5,), seed=5)
    soft = 0.1 * jax.random.normal(jax.random.key(0), (2, 2, config.hidden_size))
    cache = llm.prefill_prefix(config, params, prefix)

    def loss_prefix(s):
        frozen = jax.lax.stop_gradient(params)
        return jnp.sum(jnp.sin(llm.forward_with_prefix(config, frozen, cache, s)[:, -1]))

    def loss_full(s):
        pre = jnp.broadcast_to(llm.embed_tokens(config, params, prefix), (2, 5, config.hidden_size))
        hidden, _ = llm.forward_embeds(config, params, jnp.concatenate([pre, s], axis=1))
        return jnp.sum(jnp.sin(hidden[:, -1]))

    g1 = jax.jit(jax.grad(loss_prefix))(soft)
    g2 = jax.jit(jax.grad(loss_full))(soft)
    assert np.all(np.isfinite(g1)) and np.abs(g1).max() > 0
    np.testing.assert_allclose(g1, g2, atol=1e-5, rtol=1e-4)


def test_bf16_forward_close_to_fp32(tiny):
    """bf16 params and compute vs fp32: rel. error below BF16_LOGIT_TOLERANCE."""
    spec, _, config, params, _ = tiny
    ids = _ids(spec, (2, 9), seed=6)
    forward = jax.jit(llm.forward_ids, static_argnums=0)
    logits32, _, _ = forward(config, params, ids)
    config16 = config.replace(dtype="bfloat16")
    params16 = llm_model.cast_params(params, jnp.bfloat16)
    logits16, _, _ = forward(config16, params16, ids)
    assert logits16.dtype == jnp.bfloat16
    assert rel_err(logits16.astype(jnp.float32), logits32) < llm.BF16_LOGIT_TOLERANCE


def test_random_preset_and_config_validation():
    config, params, tok = llm.load_pretrained("random:test-tiny:3")
    _, params_again, _ = llm.load_pretrained("random:test-tiny:3")
    _, params_other, _ = llm.load_pretrained("random:test-tiny:4")
    np.testing.assert_array_equal(params["embed"], params_again["embed"])
    assert not np.array_equal(params["embed"], params_other["embed"])
    assert config.num_params() == sum(x.size for x in jax.tree.leaves(params))
    assert tok.decode(tok.encode("hello")) == "hello"
    for preset in ("smollm2-135m", "tinyllama-1.1b", "llama-2-7b"):
        shapes = llm.param_shapes(llm.get_preset(preset))
        assert shapes["layers"]["q_proj"][0] == llm.get_preset(preset).num_layers
    assert llm.get_preset("smollm2-135m").num_params() == 134_515_008
    with pytest.raises(ValueError, match="num_kv_heads"):
        llm.LlamaConfig(vocab_size=10, hidden_size=9, intermediate_size=8, num_layers=1,
                        num_heads=3, num_kv_heads=2)
    with pytest.raises(ValueError, match="unknown LlamaConfig preset"):
        llm.load_pretrained("random:nope")
