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

import dataclasses
import functools
import json
import os
from typing import Any, Callable, Optional

import jax
import numpy as np
import pytest

from lago_jax import llm
from lago_jax.llm import gguf as gguf_io
from lago_jax.llm import model as llm_model

from llm_fixtures import hf_forward, rel_err

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOL = 1e-5
"""Relative logit/hidden error allowed against transformers (measured: below 1e-6)."""
T = 11
"""Test sequence length; every window below is shorter."""


@dataclasses.dataclass(frozen=True)
class Family:
    """A tiny transformers model of one family, the config.json edits applied after saving it, and
    the LlamaConfig fields expected from that directory."""

    name: str
    model_class: str
    config_class: str
    hf_kwargs: dict[str, Any]
    expect: dict[str, Any]
    rewrite: Optional[Callable[[dict[str, Any]], dict[str, Any]]] = None


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
    Family("llama3", "LlamaForCausalLM", "LlamaConfig",
           dict(hidden_size=45, intermediate_size=53, num_hidden_layers=3, num_attention_heads=9,
                num_key_value_heads=3, head_dim=10, max_position_embeddings=1024,
                tie_word_embeddings=False,
                rope_parameters=dict(rope_type="llama3", rope_theta=5e5, factor=8.0,
                                     low_freq_factor=1.0, high_freq_factor=4.0,
                                     original_max_position_embeddings=256)),
           expect=dict(rope_type="llama3", rope_factor=8.0, rope_low_freq_factor=1.0,
                       rope_high_freq_factor=4.0, rope_original_max_position_embeddings=256,
                       rope_theta=5e5, qkv_bias=False, sliding_window=0)),
    Family("llama_linear_legacy", "LlamaForCausalLM", "LlamaConfig",
           dict(hidden_size=42, intermediate_size=67, num_hidden_layers=2, num_attention_heads=3,
                num_key_value_heads=3, head_dim=14, tie_word_embeddings=True,
                rope_parameters=dict(rope_type="linear", rope_theta=1e5, factor=2.5)),
           expect=dict(rope_type="linear", rope_factor=2.5, rope_theta=1e5, tie_word_embeddings=True),
           rewrite=_legacy_linear),
    Family("qwen2_window", "Qwen2ForCausalLM", "Qwen2Config",
           dict(hidden_size=54, intermediate_size=59, num_hidden_layers=3, num_attention_heads=9,
                num_key_value_heads=3, tie_word_embeddings=False, use_sliding_window=True,
                sliding_window=4, max_window_layers=1, rope_parameters=dict(rope_theta=1e6)),
           expect=dict(qkv_bias=True, sliding_window=4, full_attention_layers=1, head_dim=6,
                       rope_theta=1e6, tie_word_embeddings=False)),
    Family("qwen2_tied_hub", "Qwen2ForCausalLM", "Qwen2Config",
           dict(hidden_size=42, intermediate_size=47, num_hidden_layers=2, num_attention_heads=3,
                num_key_value_heads=1, tie_word_embeddings=True,
                rope_parameters=dict(rope_theta=1e6)),
           expect=dict(qkv_bias=True, sliding_window=0, full_attention_layers=0, head_dim=14,
                       tie_word_embeddings=True, num_kv_heads=1),
           rewrite=_qwen25_hub_style),
    Family("mistral", "MistralForCausalLM", "MistralConfig",
           dict(hidden_size=47, intermediate_size=61, num_hidden_layers=3, num_attention_heads=6,
                num_key_value_heads=2, head_dim=8, sliding_window=4, tie_word_embeddings=False),
           expect=dict(qkv_bias=False, sliding_window=4, full_attention_layers=0, head_dim=8,
                       rope_type="default")),
]
VOCAB = 263


def _save_family(family: Family, directory: str, seed: int = 0):
    """Saves a random model of `family` to `directory`; returns transformers' reading of it."""
    torch.manual_seed(seed)
    hf_config = getattr(transformers, family.config_class)(
        vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0, **family.hf_kwargs)
    model = getattr(transformers, family.model_class)(hf_config).eval().float()
    # Random norm weights and biases (transformers initializes biases to zero), so a missing or
    # misplaced bias or norm shows up.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn_like(p))
    model.save_pretrained(directory, safe_serialization=True)
    if family.rewrite is not None:
        path = os.path.join(directory, "config.json")
        with open(path) as f:
            cfg = family.rewrite(json.load(f))
        with open(path, "w") as f:
            json.dump(cfg, f)
    return transformers.AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, attn_implementation="eager").eval()


FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
WINDOWED = [f.name for f in FAMILIES if f.expect.get("sliding_window")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> (family, transformers model, config, params, directory), each built once."""
    cache = {}

    def get(name):
        if name not in cache:
            fam = FAMILY_BY_NAME[name]
            directory = str(tmp_path_factory.mktemp(name))
            ref = _save_family(fam, directory)
            config, params, _ = llm.load_pretrained(directory)
            cache[name] = fam, ref, config, params, directory
        return cache[name]

    return get


@pytest.fixture(params=[f.name for f in FAMILIES])
def family(request, built):
    return built(request.param)


@functools.partial(jax.jit, static_argnums=0)
def _forward_all(config, params, ids, positions, mask):
    return llm.forward_ids(config, params, ids, positions, mask, return_hidden_states=True)[:2]


@functools.partial(jax.jit, static_argnums=0)
def _final_hidden(config, params, ids, positions, mask):
    return llm.forward_embeds(config, params, llm.embed_tokens(config, params, ids), positions,
                              mask)[0]


_step = jax.jit(llm.forward_ids, static_argnums=0)
_with_prefix = jax.jit(llm.forward_with_prefix, static_argnums=0)


def _ids(shape, seed):
    return np.random.default_rng(seed).integers(3, VOCAB, size=shape).astype(np.int32)


def _left_padded(mask):
    """Positions of a left-padded batch: real tokens count from 0, padding sits at 0."""
    return np.clip(np.cumsum(mask, -1) - 1, 0, None).astype(np.int32)


# ----------------------------------------------------------------------------- config


def test_config_and_parameter_count(family):
    fam, ref, config, params, _ = family
    for field, value in fam.expect.items():
        assert getattr(config, field) == value, (field, getattr(config, field), value)
    n_ref = sum(p.numel() for p in ref.parameters())  # a tied head is one shared tensor
    assert config.num_params() == n_ref == sum(x.size for x in jax.tree.leaves(params))
    assert ("q_bias" in params["layers"]) == config.qkv_bias
    assert llm.LlamaConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


ROPE_MAX_ULP = 1
"""transformers' float32 `theta ** x` is within one unit in the last place of the correctly
rounded power that `rope_inv_freq` uses (torch's vectorized and scalar-tail paths differ from
each other by as much); every later operation is the same float32 operation in the same order."""


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
    _, ref, config, params, _ = family
    b = 3
    ids = _ids((b, T), seed=0)
    mask = np.ones((b, T), np.int32)
    mask[1, :4] = 0
    mask[2, :1] = 0
    for m in (np.ones_like(mask), mask):
        positions = _left_padded(m)
        ref_logits, ref_hidden = hf_forward(ref, ids, attention_mask=m, position_ids=positions)
        logits, hidden = _forward_all(config, params, ids, positions, m)
        real = m.astype(bool)
        logits = np.asarray(logits)
        assert rel_err(logits[real], ref_logits[real]) < TOL
        np.testing.assert_array_equal(logits[real].argmax(-1), ref_logits[real].argmax(-1))
        for layer in range(config.num_layers + 1):
            assert rel_err(np.asarray(hidden[layer])[real], ref_hidden[layer][real]) < TOL, layer


@pytest.mark.parametrize("name", WINDOWED)
def test_the_sliding_window_is_applied(built, name):
    """With the window switched off (or moved to other blocks) the same weights give other logits,
    so the parity tests would catch a window that is not applied."""
    _, ref, config, params, _ = built(name)
    ids = _ids((1, T), seed=1)
    ones = np.ones((1, T), np.int32)
    ref_logits, _ = hf_forward(ref, ids)
    variants = [config.replace(sliding_window=0, full_attention_layers=0)]
    if config.full_attention_layers:
        variants.append(config.replace(full_attention_layers=0))
    for variant in variants:
        logits, _ = _forward_all(variant, params, ids, _left_padded(ones), ones)
        assert rel_err(logits, ref_logits) > 1e-2, variant


def test_kv_cache_decoding_matches_transformers(family):
    """Left-padded prompts prefilled into a KVCache, then one token at a time, past the window."""
    _, ref, config, params, _ = family
    b, t0 = 2, 5
    ids = _ids((b, T), seed=2)
    mask = np.ones((b, T), np.int32)
    mask[1, :2] = 0
    positions = _left_padded(mask)
    ref_logits, _ = hf_forward(ref, ids, attention_mask=mask, position_ids=positions)
    cache = llm.init_cache(config, b, T)
    logits, _, cache = _step(config, params, ids[:, :t0], positions[:, :t0], mask[:, :t0],
                             cache=cache)
    got = [np.asarray(logits)]
    for i in range(t0, T):
        logits, _, cache = _step(config, params, ids[:, i:i + 1], positions[:, i:i + 1],
                                 mask[:, i:i + 1], cache=cache)
        got.append(np.asarray(logits))
    got = np.concatenate(got, axis=1)
    real = mask.astype(bool)
    assert rel_err(got[real], ref_logits[real]) < TOL
    assert int(cache.index) == T


def test_prefix_cache_equals_uncached_forward(family):
    """The LaGO prior's two paths: cached prefixes + continuation vs the whole sequence (one
    prefix broadcast; two right-padded prefixes chosen per row vs left-padded full sequences),
    and both vs transformers. Prefix plus continuation is longer than any window."""
    _, ref, config, params, _ = family
    k, b = 3, 4
    prefixes = [_ids((7,), seed=3), _ids((4,), seed=4)]
    cont_ids = _ids((b, k), seed=5)
    cont = llm.embed_tokens(config, params, cont_ids)
    width = max(len(p) for p in prefixes)

    shared = llm.prefill_prefix(config, params, prefixes[0])
    hidden = np.asarray(_with_prefix(config, params, shared, cont))
    ids = np.concatenate([np.broadcast_to(prefixes[0], (b, 7)), cont_ids], axis=1)
    ones = np.ones(ids.shape, np.int32)
    full = np.asarray(_final_hidden(config, params, ids, _left_padded(ones), ones))[:, -k:]
    np.testing.assert_allclose(hidden, full, atol=2e-5, rtol=0)
    _, ref_hidden = hf_forward(ref, ids)
    assert rel_err(hidden, ref_hidden[-1][:, -k:]) < TOL

    stacked = llm.prefill_prefix(config, params, [list(p) for p in prefixes])
    index = np.array([1, 0, 1, 1], np.int32)
    hidden = np.asarray(_with_prefix(config, params, stacked, cont, index))
    ids = np.zeros((b, width + k), np.int32)
    mask = np.zeros(ids.shape, np.int32)
    for row, p in enumerate(index):
        ids[row, width - len(prefixes[p]):width] = prefixes[p]
        mask[row, width - len(prefixes[p]):] = 1
    ids[:, width:] = cont_ids
    positions = _left_padded(mask)
    full = np.asarray(_final_hidden(config, params, ids, positions, mask))[:, -k:]
    np.testing.assert_allclose(hidden, full, atol=2e-5, rtol=0)
    _, ref_hidden = hf_forward(ref, ids, attention_mask=mask, position_ids=positions)
    assert rel_err(hidden, ref_hidden[-1][:, -k:]) < TOL


def test_converted_round_trip_keeps_biases_and_window(built, tmp_path):
    _, _, config, params, _ = built("qwen2_window")
    llm.save_converted(str(tmp_path / "conv"), config, params)
    config2, params2, _ = llm.load_converted(str(tmp_path / "conv"))
    assert config2 == config
    jax.tree.map(np.testing.assert_array_equal, params2, params)


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
    with pytest.raises(ValueError, match=match) as info:
        llm.LlamaConfig.from_hf_config(hf)
    assert "\n" not in str(info.value)


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
