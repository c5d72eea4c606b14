"""Llama-family checkpoints beyond Llama-2 against transformers (torch, CPU, fp32): Llama-3 rope
scaling (`rope_parameters` and the older `rope_scaling` form), linear rope, Qwen2 (q/k/v biases,
tied or untied, sliding window from `max_window_layers` on) and Mistral (sliding window in every
block). Each model is a tiny random transformers model with odd sizes, saved with
`save_pretrained` and loaded by both sides from the same directory; windows are shorter than the
test sequences, so a missing window shows. Paths checked: logits and hidden states (unpadded and
left-padded), KV-cache decoding, and the prefix cache (`prefill_prefix` + `forward_with_prefix`)
against the uncached forward as the LaGO prior runs both. Refusals are one line naming the
setting."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from lago_jax import llm
from lago_jax.llm import gguf as gguf_io
from lago_jax.llm import model as llm_model

from llm_family_checks import (ROPE_MAX_ULP, VOCAB, Family, check_config_and_parameter_count,
                               check_configs_change_logits, check_converted_round_trip,
                               check_kv_cache_decoding, check_logits_and_hidden_states,
                               check_prefix_cache, check_refused_in_one_line, family_fixtures)
from llm_fixtures import randomize_norms

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _legacy_linear(cfg):
    """Older config.json form: rope_scaling {"type": ...} and a top-level rope_theta."""
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope["rope_theta"]
    cfg["rope_scaling"] = {"type": "linear", "factor": rope["factor"]}
    return cfg


def _qwen25_hub_style(cfg):
    """A Qwen2.5 config.json as published: sliding_window set but use_sliding_window off, no
    layer_types, top-level rope_theta."""
    cfg.pop("layer_types", None)
    cfg["rope_theta"] = cfg.pop("rope_parameters")["rope_theta"]
    cfg.update(use_sliding_window=False, sliding_window=3, max_window_layers=1)
    return cfg


FAMILIES = [
    # Three frequency bands: wavelengths 2*pi (kept), ~190 (between 256/4 and 256: interpolated)
    # and longer (divided by 8).
    Family("llama3",
           dict(hidden_size=45, intermediate_size=53, num_hidden_layers=3, num_attention_heads=9,
                num_key_value_heads=3, head_dim=10, max_position_embeddings=1024,
                tie_word_embeddings=False,
                rope_parameters=dict(rope_type="llama3", rope_theta=5e5, factor=8.0,
                                     low_freq_factor=1.0, high_freq_factor=4.0,
                                     original_max_position_embeddings=256)),
           expect=dict(rope_type="llama3", rope_factor=8.0, rope_low_freq_factor=1.0,
                       rope_high_freq_factor=4.0, rope_original_max_position_embeddings=256,
                       rope_theta=5e5, qkv_bias=False, sliding_window=0),
           arch="Llama"),
    Family("llama_linear_legacy",
           dict(hidden_size=42, intermediate_size=67, num_hidden_layers=2, num_attention_heads=3,
                num_key_value_heads=3, head_dim=14, tie_word_embeddings=True,
                rope_parameters=dict(rope_type="linear", rope_theta=1e5, factor=2.5)),
           expect=dict(rope_type="linear", rope_factor=2.5, rope_theta=1e5, tie_word_embeddings=True),
           rewrite=_legacy_linear, arch="Llama"),
    Family("qwen2_window",
           dict(hidden_size=54, intermediate_size=59, num_hidden_layers=3, num_attention_heads=9,
                num_key_value_heads=3, tie_word_embeddings=False, use_sliding_window=True,
                sliding_window=4, max_window_layers=1, rope_parameters=dict(rope_theta=1e6)),
           expect=dict(qkv_bias=True, sliding_window=4, full_attention_layers=1, head_dim=6,
                       rope_theta=1e6, tie_word_embeddings=False),
           arch="Qwen2"),
    Family("qwen2_tied_hub",
           dict(hidden_size=42, intermediate_size=47, num_hidden_layers=2, num_attention_heads=3,
                num_key_value_heads=1, tie_word_embeddings=True,
                rope_parameters=dict(rope_theta=1e6)),
           expect=dict(qkv_bias=True, sliding_window=0, full_attention_layers=0, head_dim=14,
                       tie_word_embeddings=True, num_kv_heads=1),
           rewrite=_qwen25_hub_style, arch="Qwen2"),
    Family("mistral",
           dict(hidden_size=47, intermediate_size=61, num_hidden_layers=3, num_attention_heads=6,
                num_key_value_heads=2, head_dim=8, sliding_window=4, tie_word_embeddings=False),
           expect=dict(qkv_bias=False, sliding_window=4, full_attention_layers=0, head_dim=8,
                       rope_type="default"),
           arch="Mistral"),
]


def _make_model(family: Family, seed: int = 0):
    """A random transformers <arch>ForCausalLM of `family`."""
    torch.manual_seed(seed)
    hf_config = getattr(transformers, f"{family.arch}Config")(
        vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0, **family.hf_kwargs)
    model = getattr(transformers, f"{family.arch}ForCausalLM")(hf_config).eval().float()
    # Random biases too: transformers initializes them to zero.
    return randomize_norms(model, mean=1.0, scale=0.2, bias_scale=0.3)


built, family = family_fixtures(FAMILIES, _make_model)
WINDOWED = [f.name for f in FAMILIES if f.expect.get("sliding_window")]


# ----------------------------------------------------------------------------- config


def test_config_and_parameter_count(family):
    check_config_and_parameter_count(family, llm.LlamaConfig)
    _, _, config, params, _ = family
    assert ("q_bias" in params["layers"]) == config.qkv_bias


def test_rope_inverse_frequencies_equal_transformers(family):
    _, ref, config, _, _ = family
    np.testing.assert_array_max_ulp(llm_model.rope_inv_freq(config),
                                    ref.model.rotary_emb.inv_freq.numpy(), maxulp=ROPE_MAX_ULP)


@pytest.mark.parametrize("rope", [
    dict(rope_type="llama3", rope_theta=5e5, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
         original_max_position_embeddings=8192),  # Llama-3.1
    dict(rope_type="llama3", rope_theta=5e5, factor=32.0, low_freq_factor=1.0,
         high_freq_factor=4.0, original_max_position_embeddings=8192),  # Llama-3.2
    dict(rope_type="linear", rope_theta=1e4, factor=4.0),
    dict(rope_type="default", rope_theta=1e6),
], ids=["llama3.1", "llama3.2", "linear", "default"])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_rope_inverse_frequencies_at_real_sizes(rope, head_dim):
    """transformers' rotary initializers at the head widths of released models."""
    hf_config = transformers.LlamaConfig(hidden_size=head_dim * 4, num_attention_heads=4,
                                         head_dim=head_dim, max_position_embeddings=131072,
                                         rope_parameters=dict(rope))
    theirs = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(hf_config).inv_freq
    ours = llm_model.rope_inv_freq(llm.LlamaConfig.from_hf_config(hf_config.to_dict()))
    np.testing.assert_array_max_ulp(ours, theirs.numpy(), maxulp=ROPE_MAX_ULP)
    if rope["rope_type"] == "llama3":  # all three bands occur
        default = llm_model.rope_inv_freq(llm.LlamaConfig.from_hf_config(
            dict(hf_config.to_dict(), rope_parameters={"rope_theta": rope["rope_theta"]})))
        ratio = ours / default
        assert np.any(ratio == 1) and np.any(np.isclose(ratio, 1 / rope["factor"]))
        assert np.any((ratio > 1 / rope["factor"] + 1e-3) & (ratio < 1 - 1e-3))


def test_legacy_rope_scaling_form_reads_the_same(family):
    """config.json with `rope_scaling` (and a top-level rope_theta) gives the same config as the
    `rope_parameters` form; `rope_scaling` wins when both are present, as in transformers."""
    _, _, config, _, directory = family
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    rope = dict(cfg.pop("rope_parameters", None) or cfg.pop("rope_scaling", None) or {})
    theta = rope.pop("rope_theta", cfg.pop("rope_theta", None))
    if "rope_type" in rope:
        rope["type"] = rope.pop("rope_type")
    legacy = dict(cfg, rope_theta=theta, rope_scaling=rope or None)
    assert llm.LlamaConfig.from_hf_config(legacy) == config
    both = dict(legacy, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1.0})
    if rope and rope.get("type") != "default":
        assert llm.LlamaConfig.from_hf_config(both) == config


# ----------------------------------------------------------------------------- forward


def test_logits_and_hidden_states_match_transformers(family):
    """Unpadded and left-padded batches: every layer's hidden states and the logits."""
    check_logits_and_hidden_states(family)


@pytest.mark.parametrize("name", WINDOWED)
def test_the_sliding_window_is_applied(built, name):
    """With the window switched off (or moved to other blocks) the same weights give other logits,
    so the parity tests would catch a window that is not applied."""
    config = built(name)[2]
    variants = [config.replace(sliding_window=0, full_attention_layers=0)]
    if config.full_attention_layers:
        variants.append(config.replace(full_attention_layers=0))
    check_configs_change_logits(built(name), variants, min_rel_err=1e-2)


def test_kv_cache_decoding_matches_transformers(family):
    """Left-padded prompts prefilled into a KVCache, then one token at a time, past the window."""
    check_kv_cache_decoding(family)


def test_prefix_cache_equals_uncached_forward(family):
    """The LaGO prior's two paths: cached prefixes + continuation vs the whole sequence (one
    prefix broadcast; two right-padded prefixes chosen per row vs left-padded full sequences),
    and both vs transformers. Prefix plus continuation is longer than any window."""
    check_prefix_cache(family, atol=2e-5)


def test_converted_round_trip_keeps_biases_and_window(built, tmp_path):
    _, _, config, params, _ = built("qwen2_window")
    check_converted_round_trip(str(tmp_path / "conv"), config, params)


# ----------------------------------------------------------------------------- refusals


def _hf_dict(model_type="llama", **changes):
    base = dict(model_type=model_type, vocab_size=VOCAB, hidden_size=45, intermediate_size=53,
                num_hidden_layers=3, num_attention_heads=9, num_key_value_heads=3, head_dim=10,
                max_position_embeddings=1024, rope_parameters={"rope_type": "default",
                                                               "rope_theta": 1e4})
    base.update(changes)
    return base


@pytest.mark.parametrize("hf, match", [
    (_hf_dict("mixtral", num_local_experts=8), r"mixture-of-experts.*num_local_experts"),
    (_hf_dict("qwen2_moe", num_experts=4), r"mixture-of-experts.*num_experts"),
    (_hf_dict("gemma3_text"), r"model_type='gemma3_text'"),
    (_hf_dict(rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}),
     r"rope_parameters with rope_type='yarn'"),
    (_hf_dict(rope_scaling={"type": "dynamic", "factor": 2.0}), r"rope_scaling with rope_type='dynamic'"),
    (_hf_dict(rope_scaling={"rope_type": "longrope", "factor": 2.0}), r"rope_type='longrope'"),
    (_hf_dict(rope_parameters={"rope_type": "llama3", "factor": 8.0, "rope_theta": 5e5}),
     r"rope_type='llama3' but no \['low_freq_factor', 'high_freq_factor'\]"),
    (_hf_dict(rope_scaling={"type": "linear"}), r"rope_type='linear' but no 'factor'"),
    (_hf_dict(partial_rotary_factor=0.5), r"partial_rotary_factor=0.5"),
    (_hf_dict(attention_bias=True), r"attention_bias"),
    (_hf_dict("qwen2", use_sliding_window=True, sliding_window=4, max_window_layers=1,
              layer_types=["sliding_attention", "full_attention", "sliding_attention"]),
     r"layer_types=.*only full-attention layers followed by sliding-window layers"),
    (_hf_dict("qwen2", layer_types=["full_attention", "sliding_attention", "sliding_attention"]),
     r"'sliding_attention' but no active sliding_window"),
    (_hf_dict("mistral", sliding_window=4,
              layer_types=["full_attention", "sliding_attention", "sliding_attention"]),
     r"model_type='mistral'.*layer_types"),
    (_hf_dict("mistral", sliding_window=0), r"sliding_window=0"),
], ids=["mixtral", "qwen2_moe", "gemma3", "yarn", "dynamic_legacy", "longrope", "llama3_incomplete",
        "linear_no_factor", "partial_rotary", "llama_attention_bias", "qwen2_alternating",
        "qwen2_window_off", "mistral_layer_types", "mistral_zero_window"])
def test_unsupported_settings_are_refused_in_one_line(hf, match):
    check_refused_in_one_line(lambda: llm.LlamaConfig.from_hf_config(hf), match)


def test_qwen2_without_window_layers_and_mistral_without_window():
    """Settings that leave every block on full attention give sliding_window=0, as transformers
    runs them (a Qwen2 window starting past the last layer; a Mistral window of null)."""
    qwen = llm.LlamaConfig.from_hf_config(_hf_dict("qwen2", use_sliding_window=True,
                                                   sliding_window=4, max_window_layers=28))
    assert qwen.sliding_window == 0 and qwen.qkv_bias
    mistral = llm.LlamaConfig.from_hf_config(_hf_dict("mistral", sliding_window=None))
    assert mistral.sliding_window == 0 and not mistral.qkv_bias


def test_config_validation_refuses_settings_without_effect():
    base = llm.get_preset("test-tiny")
    for changes, match in [
        (dict(rope_factor=2.0), "rope_factor=2.0 has no effect"),
        (dict(rope_type="yarn"), "rope_type='yarn'"),
        (dict(rope_type="linear", rope_factor=2.0, rope_low_freq_factor=1.0), "apply to rope_type='llama3'"),
        (dict(rope_type="llama3", rope_factor=8.0, rope_low_freq_factor=4.0,
              rope_high_freq_factor=1.0, rope_original_max_position_embeddings=64),
         "rope_low_freq_factor < rope_high_freq_factor"),
        (dict(rope_type="llama3", rope_factor=8.0, rope_low_freq_factor=1.0,
              rope_high_freq_factor=4.0), "rope_original_max_position_embeddings"),
        (dict(full_attention_layers=1), "full_attention_layers=1 has no effect"),
        (dict(sliding_window=4, full_attention_layers=3), "covers all 3 layers"),
        (dict(sliding_window=-1), "sliding_window must be a non-negative int"),
    ]:
        with pytest.raises(ValueError, match=match):
            base.replace(**changes)


def test_loaders_refuse_what_they_cannot_hold(built, tmp_path):
    """q/k/v bias tensors under a config without qkv_bias are named; the GGUF writer refuses
    configs the plain Llama GGUF layout cannot express."""
    _, _, config, params, directory = built("qwen2_window")
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    as_llama = tmp_path / "as_llama"
    as_llama.mkdir()
    for name in os.listdir(directory):
        if name.endswith(".safetensors") or name.endswith(".json"):
            os.symlink(os.path.join(directory, name), as_llama / name)
    os.remove(as_llama / "config.json")
    for key in ("use_sliding_window", "sliding_window", "max_window_layers", "layer_types"):
        cfg.pop(key, None)
    (as_llama / "config.json").write_text(json.dumps(dict(cfg, model_type="llama")))
    with pytest.raises(ValueError, match=r"self_attn\.[qkv]_proj\.bias.*no [qkv]_bias parameter"):
        llm.load_pretrained(str(as_llama))
    with pytest.raises(ValueError, match="write_gguf writes plain Llama files only"):
        gguf_io.write_gguf(str(tmp_path / "x.gguf"), config, params=params)
