"""The Llama decoder as pure functions of (config, params, inputs).

This file owns the forward computation: token embedding, RMSNorm, rotary embeddings in the
half-split (rotate_half) layout with the default, linear or Llama-3 frequencies, grouped-query
attention (optional q/k/v biases) with causal, padding and sliding-window masks, the SwiGLU MLP,
the final norm and the (tied or untied) lm_head; the cached variants (prefill and decode with
`KVCache`, continuations after a shared `PrefixCache`) and random initialization.

`params` is a plain nested dict of arrays (a pytree), so it can be a jit argument, be frozen
with `jax.lax.stop_gradient`, or be saved with Orbax. Layers are stacked on a leading axis L and
run under `lax.scan`, so compile time does not grow with depth:

    embed            [V, D]
    layers/input_norm     [L, D]        layers/post_attn_norm [L, D]
    layers/q_proj    [L, D, N, H]       layers/k_proj [L, D, K, H]   layers/v_proj [L, D, K, H]
    layers/o_proj    [L, N, H, D]
    layers/q_bias    [L, N, H]          layers/k_bias [L, K, H]      layers/v_bias [L, K, H]
                                        (present only when config.qkv_bias)
    layers/gate_proj [L, D, F]          layers/up_proj [L, D, F]     layers/down_proj [L, F, D]
    final_norm       [D]
    lm_head          [D, V]             (absent when config.tie_word_embeddings)

Letters: B batch, T/K query tokens, S key slots, P prefixes, D width, N query heads, K kv heads
(in einsum strings `k` is the kv-head axis and `g` the query group, N = K * G), H head width,
F MLP width, V vocabulary, L layers.

Numerics follow Hugging Face's LlamaForCausalLM: RMSNorm computes in fp32, casts back to the
activation dtype, then multiplies by its weight; rotary cos/sin are computed in fp32 and cast to
the activation dtype; attention logits are softmaxed in fp32 and cast back. With bf16 params and
activations the logits agree with the fp32 forward to within the tolerance stated in
`BF16_LOGIT_TOLERANCE`.

Sliding window (config.sliding_window = W > 0, in the blocks config.windowed_layers() marks): a
query attends only to keys fewer than W sequence slots behind it, as transformers' Mistral and
Qwen2 count them (slot indices, not rotary positions; the two agree on the real tokens of a
left-padded row). After a cached prefix, the sequence is the prefix's real tokens followed by the
continuation, so a continuation token j of prefix p sits at slot length_p[p] + j.

The forward, KV-cache and prefix-cache plumbing (`forward_arch`, `forward_ids_arch`,
`prefill_prefix_arch`, `continue_prefix`), the common parameter layout (`decoder_param_shapes`)
and random initialization (`random_params`) are shared with the other architecture
(lago_jax.llm.gemma): what differs is passed in as an `Arch` (the decoder blocks, the final norm,
the attention scores, the token embedding and the lm_head).
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np

from lago_jax.llm.cache import KVCache, PrefixCache, init_cache
from lago_jax.llm.config import LlamaConfig

Params = dict[str, Any]

BF16_LOGIT_TOLERANCE = 0.1
"""bf16 vs fp32: max |logit difference| / max |fp32 logit| stays below this (measured on
SmolLM2-135M and on random tiny models; bf16 has an 8-bit mantissa and 30 layers of residual
accumulation). The bf16 top-1 token agrees with fp32 on the tested prompts."""

SCAN_UNROLL: int = 1
"""Layers per lax.scan iteration. 1 compiles once whatever the depth; unrolling all 30 layers of
SmolLM2 was slower on CPU as well as 18x slower to compile (benchmarks/RESULTS_llm.md)."""


# ----------------------------------------------------------------------------- architectures


# ----------------------------------------------------------------------------- shapes and init


def decoder_param_shapes(config: Any) -> Params:
    """The parameter shapes (tuples) every architecture has: the embedding, the input and
    post-attention norms, the q/k/v/o projections, the gated MLP, the final norm and the untied
    lm_head. Each architecture's `param_shapes` adds its own tensors to this dict."""
    d, f, v, n_layers = (config.hidden_size, config.intermediate_size, config.vocab_size,
                         config.num_layers)
    n, k, h = config.num_heads, config.num_kv_heads, config.head_dim
    shapes = {
        "embed": (v, d),
        "layers": {
            "input_norm": (n_layers, d),
            "q_proj": (n_layers, d, n, h),
            "k_proj": (n_layers, d, k, h),
            "v_proj": (n_layers, d, k, h),
            "o_proj": (n_layers, n, h, d),
            "post_attn_norm": (n_layers, d),
            "gate_proj": (n_layers, d, f),
            "up_proj": (n_layers, d, f),
            "down_proj": (n_layers, f, d),
        },
        "final_norm": (d,),
    }
    if not config.tie_word_embeddings:
        shapes["lm_head"] = (d, v)
    return shapes


def param_shapes(config: LlamaConfig) -> Params:
    """Nested dict of the parameter shapes (tuples) for `config`."""
    shapes = decoder_param_shapes(config)
    if config.qkv_bias:
        n_layers, h = config.num_layers, config.head_dim
        shapes["layers"].update(q_bias=(n_layers, config.num_heads, h),
                                k_bias=(n_layers, config.num_kv_heads, h),
                                v_bias=(n_layers, config.num_kv_heads, h))
    return shapes


def random_params(config: Any, shapes: Params, key: jax.Array,
                  constant: Callable[[str], Optional[float]]) -> Params:
    """Random weights of the layout `shapes` in the config dtype: the leaf called `name` is filled
    with `constant(name)` unless that is None, else drawn from normal(0, initializer_range) (in
    float32, then cast) with its own split of `key` (leaves in jax's sorted tree order)."""
    flat, treedef = jax.tree.flatten_with_path(shapes, is_leaf=lambda x: isinstance(x, tuple))
    keys = jax.random.split(key, len(flat))
    leaves = []
    for (path, shape), leaf_key in zip(flat, keys):
        value = constant(path[-1].key)
        if value is not None:
            leaves.append(jnp.full(shape, value, config.jnp_dtype))
        else:
            w = config.initializer_range * jax.random.normal(leaf_key, shape, jnp.float32)
            leaves.append(w.astype(config.jnp_dtype))
    return jax.tree.unflatten(treedef, leaves)


def _llama_init_constant(name: str) -> Optional[float]:
    if name.endswith("norm"):
        return 1.0
    return 0.0 if name.endswith("bias") else None


def init_params(config: LlamaConfig, key: jax.Array) -> Params:
    """Random weights: normal(0, initializer_range) matrices, unit norm weights, zero biases, in
    config dtype."""
    return random_params(config, param_shapes(config), key, _llama_init_constant)


def check_params(config: LlamaConfig, params: Params) -> None:
    """Raises ValueError naming the first parameter whose shape disagrees with `config`."""
    check_shapes(param_shapes(config), params)


def check_shapes(expected: Params, params: Params) -> None:
    """Raises ValueError unless `params` has exactly the keys and shapes of `expected` (a nested
    dict of shape tuples, as `param_shapes` returns)."""
    exp_flat = dict(jax.tree.flatten_with_path(expected, is_leaf=lambda x: isinstance(x, tuple))[0])
    got_flat = dict(jax.tree.flatten_with_path(params)[0])
    names = lambda d: {jax.tree_util.keystr(p) for p in d}
    if names(exp_flat) != names(got_flat):
        raise ValueError(f"params keys {sorted(names(got_flat))} differ from the expected "
                         f"{sorted(names(exp_flat))}")
    for path, shape in exp_flat.items():
        if tuple(got_flat[path].shape) != tuple(shape):
            raise ValueError(f"param {jax.tree_util.keystr(path)}: expected shape {tuple(shape)}, "
                             f"found {tuple(got_flat[path].shape)}")


def cast_params(params: Params, dtype) -> Params:
    return jax.tree.map(lambda x: x.astype(dtype), params)


# ----------------------------------------------------------------------------- building blocks


def rms_norm(x_btd: jax.Array, weight_d: jax.Array, eps: float) -> jax.Array:
    """RMSNorm in Hugging Face's cast order: normalize in fp32, cast back, times weight."""
    x32 = x_btd.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    normed = (x32 * jax.lax.rsqrt(var + eps)).astype(x_btd.dtype)
    return weight_d.astype(x_btd.dtype) * normed


def rope_inv_freq(config: LlamaConfig) -> np.ndarray:
    """The H/2 rotary inverse frequencies (float32, host), computed in the same float32 operations
    and order as transformers' rope initializers for config.rope_type.

    The power theta ** (2i / H) is the correctly rounded float32 value; torch's float32 power is
    within one unit in the last place of it (its vectorized and scalar paths differ by as much).
    """
    inv_freq = default_inv_freq(config.rope_theta, config.head_dim)
    if config.rope_type == "linear":
        inv_freq = inv_freq / config.rope_factor
    elif config.rope_type == "llama3":
        factor, low, high = config.rope_factor, config.rope_low_freq_factor, config.rope_high_freq_factor
        old_context = config.rope_original_max_position_embeddings
        low_freq_wavelen, high_freq_wavelen = old_context / low, old_context / high
        # torch evaluates scalar / tensor as reciprocal(tensor) * scalar.
        wavelen = np.reciprocal(inv_freq) * np.float32(2 * math.pi)
        scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth = (np.reciprocal(wavelen) * np.float32(old_context) - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
        inv_freq = np.where(medium, smoothed, scaled)
    assert inv_freq.dtype == np.float32, inv_freq.dtype
    return inv_freq


def default_inv_freq(theta: float, dim: int) -> np.ndarray:
    """1 / theta ** (2i / dim) for i < dim / 2 (float32, host), as transformers' default rope
    initializer computes it (see `rope_inv_freq` for the power)."""
    exponent = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim
    power = (np.float64(theta) ** exponent.astype(np.float64)).astype(np.float32)
    return np.float32(1.0) / power


def rope_cos_sin(positions_bt: jax.Array, inv_freq: np.ndarray, dtype):
    """cos and sin tables, each [B, T, H], half-split layout (the H/2 frequencies twice)."""
    angles_btf = positions_bt.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)
    angles_bth = jnp.concatenate([angles_btf, angles_btf], axis=-1)
    return jnp.cos(angles_bth).astype(dtype), jnp.sin(angles_bth).astype(dtype)


def apply_rope(x_btnh: jax.Array, cos_bth: jax.Array, sin_bth: jax.Array) -> jax.Array:
    """Rotary embedding, half-split layout: x * cos + rotate_half(x) * sin."""
    half = x_btnh.shape[-1] // 2
    rotated = jnp.concatenate([-x_btnh[..., half:], x_btnh[..., :half]], axis=-1)
    return x_btnh * cos_bth[:, :, None, :] + rotated * sin_bth[:, :, None, :]


def attend(q_btkgh: jax.Array, parts: Sequence[tuple[jax.Array, jax.Array, jax.Array]],
           scale: float, softcap: Optional[float] = None) -> jax.Array:
    """Softmax attention over several blocks of keys, normalized jointly.

    Each part is (keys, values, mask). Keys/values are [B, S, K, H], or [S, K, H] when shared by
    every batch row (broadcast without copying). The mask is bool and broadcastable to [B, T, S].
    softcap: if set, scaled logits s become softcap * tanh(s / softcap) before masking.
    Returns [B, T, K, G, H].
    """
    scores = []
    for k, _, mask in parts:
        if k.ndim == 3:
            s = jnp.einsum("btkgh,skh->btkgs", q_btkgh, k)
        else:
            s = jnp.einsum("btkgh,bskh->btkgs", q_btkgh, k)
        s = s.astype(jnp.float32) * scale
        if softcap is not None:
            s = jnp.tanh(s / softcap) * softcap
        mask_bts = jnp.broadcast_to(mask, (s.shape[0], s.shape[1], s.shape[-1]))
        scores.append(jnp.where(mask_bts[:, :, None, None, :], s, jnp.finfo(jnp.float32).min))
    probs = jax.nn.softmax(jnp.concatenate(scores, axis=-1), axis=-1).astype(q_btkgh.dtype)
    out, start = 0, 0
    for k, v, _ in parts:
        p = probs[..., start:start + k.shape[-3]]
        start += k.shape[-3]
        if v.ndim == 3:
            out = out + jnp.einsum("btkgs,skh->btkgh", p, v)
        else:
            out = out + jnp.einsum("btkgs,bskh->btkgh", p, v)
    return out


def _near(config: LlamaConfig, query_slot: jax.Array, key_slot: jax.Array) -> Optional[jax.Array]:
    """Sliding-window mask: key_slot > query_slot - W (broadcast), or None without a window."""
    if not config.sliding_window:
        return None
    return key_slot > query_slot - config.sliding_window


def _windowed(mask: jax.Array, near: Optional[jax.Array], windowed: Optional[jax.Array]) -> jax.Array:
    """`mask`, restricted to the `near` keys in a block that uses the sliding window."""
    if near is None:
        return mask
    return mask & (near | ~windowed)


# AttentionFn(q_btkgh, k_btkh, v_btkh, layer_state, windowed) -> (out_btkgh, new_layer_state);
# windowed is this block's bool scalar from config.windowed_layers(), None without a window.
AttentionFn = Callable[[jax.Array, jax.Array, jax.Array, Any, Optional[jax.Array]],
                       tuple[jax.Array, Any]]


def _run_layers(config: LlamaConfig, layers: Params, x_btd: jax.Array, positions_bt: jax.Array,
                attention_fn: AttentionFn, layer_states: Any, collect_hidden: bool):
    """Runs the L decoder blocks under lax.scan.

    Returns (x_btd after the last block, new per-layer states stacked on L, and the input of every
    block stacked [L, B, T, D] when collect_hidden, else None).
    """
    dtype = x_btd.dtype
    cos, sin = rope_cos_sin(positions_bt, rope_inv_freq(config), dtype)
    b, t = x_btd.shape[:2]
    kv, g, h = config.num_kv_heads, config.num_groups, config.head_dim
    windowed_l = jnp.asarray(config.windowed_layers()) if config.sliding_window else None

    def block(x, inputs):
        p, state, windowed = inputs
        p = jax.tree.map(lambda w: w.astype(dtype), p)
        hid = rms_norm(x, p["input_norm"], config.rms_norm_eps)
        q = jnp.einsum("btd,dnh->btnh", hid, p["q_proj"])
        k = jnp.einsum("btd,dkh->btkh", hid, p["k_proj"])
        v = jnp.einsum("btd,dkh->btkh", hid, p["v_proj"])
        if config.qkv_bias:
            q, k, v = q + p["q_bias"], k + p["k_bias"], v + p["v_bias"]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out, new_state = attention_fn(q.reshape(b, t, kv, g, h), k, v, state, windowed)
        x_in = x
        x = x + jnp.einsum("btnh,nhd->btd", out.reshape(b, t, kv * g, h), p["o_proj"])
        hid = rms_norm(x, p["post_attn_norm"], config.rms_norm_eps)
        gate = jnp.einsum("btd,df->btf", hid, p["gate_proj"])
        up = jnp.einsum("btd,df->btf", hid, p["up_proj"])
        x = x + jnp.einsum("btf,fd->btd", jax.nn.silu(gate) * up, p["down_proj"])
        return x, (new_state, x_in if collect_hidden else None)

    x_btd, (new_states, inputs_lbtd) = jax.lax.scan(block, x_btd,
                                                     (layers, layer_states, windowed_l),
                                                     unroll=SCAN_UNROLL)
    return x_btd, new_states, inputs_lbtd


def _scale(config: LlamaConfig) -> float:
    return config.head_dim ** -0.5


class Arch(NamedTuple):
    """The architecture-specific pieces that the shared forward, cache and prefix plumbing below
    calls: this module's Llama blocks (`LLAMA`), or another architecture's (lago_jax.llm.gemma).
    Hashable, so it can be a static argument of jit."""

    run_layers: Callable
    """(config, layers, x_btd, positions_bt, attention_fn, layer_states, collect_hidden) ->
    (x_btd, new_states, block inputs [L, B, T, D] or None); see `_run_layers`."""
    final_norm: Callable[[Any, Params, jax.Array], jax.Array]
    """(config, params, x_btd) -> the final-normed hidden states."""
    attend: Callable[[Any, jax.Array, Sequence], jax.Array]
    """(config, q_btkgh, parts) -> attention output [B, T, K, G, H]; see `attend`."""
    embed_tokens: Callable[[Any, Params, jax.Array], jax.Array]
    """(config, params, ids) -> the embeddings the first block receives; see `embed_tokens`."""
    lm_logits: Callable[[Any, Params, jax.Array], jax.Array]
    """(config, params, final-normed hidden) -> logits; see `lm_logits`."""


def _llama_final_norm(config: LlamaConfig, params: Params, x_btd: jax.Array) -> jax.Array:
    return rms_norm(x_btd, params["final_norm"], config.rms_norm_eps)


def _llama_attend(config: LlamaConfig, q_btkgh: jax.Array, parts) -> jax.Array:
    return attend(q_btkgh, parts, _scale(config))



# ----------------------------------------------------------------------------- public functions


def embed_tokens(config: LlamaConfig, params: Params, ids: jax.Array) -> jax.Array:
    """Token embeddings: ids [...] int -> [..., D] in the config dtype."""
    del config
    return jnp.take(params["embed"], ids, axis=0)


def lm_logits(config: LlamaConfig, params: Params, hidden_btd: jax.Array) -> jax.Array:
    """Final-normed hidden states [B, T, D] -> logits [B, T, V] (tied or untied head)."""
    if config.tie_word_embeddings:
        return jnp.einsum("btd,vd->btv", hidden_btd, params["embed"].astype(hidden_btd.dtype))
    return jnp.einsum("btd,dv->btv", hidden_btd, params["lm_head"].astype(hidden_btd.dtype))


def token_embedding_rms(config: LlamaConfig, params: Params) -> jax.Array:
    """RMS over the whole table of the token embeddings as `embed_tokens` returns them (float32
    scalar): the scale of real inputs to the first block."""
    del config
    return jnp.sqrt(jnp.mean(jnp.square(params["embed"].astype(jnp.float32))))


LLAMA = Arch(run_layers=_run_layers, final_norm=_llama_final_norm, attend=_llama_attend,
             embed_tokens=embed_tokens, lm_logits=lm_logits)


def _default_positions(b: int, t: int, start) -> jax.Array:
    return jnp.broadcast_to(start + jnp.arange(t, dtype=jnp.int32)[None, :], (b, t))


def forward_arch(config, params, embeds_btd, positions_bt, attention_mask_bt, cache, collect_hidden,
                 arch: Arch = LLAMA):
    """`forward_embeds` for the architecture `arch` -> (final-normed hidden, block inputs
    [L, B, T, D] when collect_hidden else None, updated cache or None)."""
    chex.assert_rank(embeds_btd, 3)
    chex.assert_axis_dimension(embeds_btd, 2, config.hidden_size)
    b, t, _ = embeds_btd.shape
    x = embeds_btd.astype(config.jnp_dtype)
    if attention_mask_bt is None:
        mask_bt = jnp.ones((b, t), bool)
    else:
        chex.assert_shape(attention_mask_bt, (b, t))
        mask_bt = attention_mask_bt.astype(bool)

    if cache is None:
        if positions_bt is None:
            positions_bt = _default_positions(b, t, 0)
        causal_tt = jnp.tril(jnp.ones((t, t), bool))
        mask_bts = causal_tt[None] & mask_bt[:, None, :]
        slots_t = jnp.arange(t)
        near_tt = _near(config, slots_t[:, None], slots_t[None, :])

        def attention_fn(q, k, v, state, windowed):
            return arch.attend(config, q, [(k, v, _windowed(mask_bts, near_tt, windowed))]), state

        x, _, inputs = arch.run_layers(config, params["layers"], x, positions_bt, attention_fn, None,
                                       collect_hidden)
        new_cache = None
    else:
        chex.assert_shape(cache.key_mask_bs, (b, None))
        index = cache.index
        if positions_bt is None:
            positions_bt = _default_positions(b, t, index)
        key_mask_bs = jax.lax.dynamic_update_slice_in_dim(cache.key_mask_bs, mask_bt, index, axis=1)
        slots_s = jnp.arange(cache.capacity)
        query_slots_t = index + jnp.arange(t)
        causal_ts = slots_s[None, :] <= query_slots_t[:, None]
        mask_bts = causal_ts[None] & key_mask_bs[:, None, :]
        near_ts = _near(config, query_slots_t[:, None], slots_s[None, :])

        def attention_fn(q, k, v, state, windowed):
            k_cache, v_cache = state
            k_cache = jax.lax.dynamic_update_slice_in_dim(k_cache, k.astype(k_cache.dtype), index, 1)
            v_cache = jax.lax.dynamic_update_slice_in_dim(v_cache, v.astype(v_cache.dtype), index, 1)
            out = arch.attend(config, q, [(k_cache.astype(q.dtype), v_cache.astype(q.dtype),
                                           _windowed(mask_bts, near_ts, windowed))])
            return out, (k_cache, v_cache)

        x, (k_new, v_new), inputs = arch.run_layers(config, params["layers"], x, positions_bt,
                                                    attention_fn, (cache.k_lbskh, cache.v_lbskh),
                                                    collect_hidden)
        new_cache = KVCache(k_lbskh=k_new, v_lbskh=v_new, key_mask_bs=key_mask_bs, index=index + t)
    hidden = arch.final_norm(config, params, x)
    return hidden, inputs, new_cache


def forward_embeds(config: LlamaConfig, params: Params, embeds_btd: jax.Array,
                   positions_bt: Optional[jax.Array] = None,
                   attention_mask_bt: Optional[jax.Array] = None,
                   cache: Optional[KVCache] = None) -> tuple[jax.Array, Optional[KVCache]]:
    """Input embeddings (e.g. soft tokens) -> final-normed hidden states.

    Args:
      embeds_btd: [B, T, D] input embeddings (cast to the config dtype).
      positions_bt: [B, T] int rotary positions; default 0..T-1, or cache.index + 0..T-1 with a
        cache. With left padding pass the positions of the real tokens (cumsum(mask) - 1).
      attention_mask_bt: [B, T] 1/True for real tokens, 0/False for padding (masked as keys).
      cache: optional KVCache; the T new keys/values are written at slots cache.index onwards
        and every query attends to all valid cached slots up to its own slot (within the
        sliding window, if the config has one).
    Returns:
      (hidden_btd [B, T, D] after the final RMSNorm, the updated cache or None).
    """
    hidden, _, new_cache = forward_arch(config, params, embeds_btd, positions_bt, attention_mask_bt,
                                        cache, collect_hidden=False)
    return hidden, new_cache


def forward_ids(config: LlamaConfig, params: Params, ids_bt: jax.Array,
                positions_bt: Optional[jax.Array] = None,
                attention_mask_bt: Optional[jax.Array] = None,
                cache: Optional[KVCache] = None,
                return_hidden_states: bool = False):
    """Token ids [B, T] -> (logits [B, T, V], hidden_states or None, cache or None).

    hidden_states, when requested, is [L + 1, B, T, D] in Hugging Face's convention: entry 0 is
    the embeddings, entry l (1 <= l < L) the output of block l, and entry L the final-normed
    output of the last block. Other arguments as in `forward_embeds`.
    """
    return forward_ids_arch(config, params, ids_bt, positions_bt, attention_mask_bt, cache,
                            return_hidden_states)


def forward_ids_arch(config, params: Params, ids_bt: jax.Array, positions_bt: Optional[jax.Array],
                     attention_mask_bt: Optional[jax.Array], cache: Optional[KVCache],
                     return_hidden_states: bool, arch: Arch = LLAMA):
    """`forward_ids` for the architecture `arch` (entry 0 of hidden_states is what
    `arch.embed_tokens` returns)."""
    chex.assert_rank(ids_bt, 2)
    embeds = arch.embed_tokens(config, params, ids_bt)
    hidden, inputs, new_cache = forward_arch(config, params, embeds, positions_bt,
                                             attention_mask_bt, cache,
                                             collect_hidden=return_hidden_states, arch=arch)
    hidden_states = None
    if return_hidden_states:
        hidden_states = jnp.concatenate([inputs, hidden[None]], axis=0)
    return arch.lm_logits(config, params, hidden), hidden_states, new_cache


def prefill_prefix(config: LlamaConfig, params: Params,
                   prefix: Union[jax.Array, np.ndarray, Sequence[Sequence[int]]],
                   prefix_mask: Optional[jax.Array] = None) -> PrefixCache:
    """Runs one or more fixed prefixes once and returns their keys and values.

    Args:
      prefix: token ids [T] (one prefix) or [P, T]; embeddings [T, D] or [P, T, D]; or a Python
        list of P token-id lists of different lengths (right-padded here).
      prefix_mask: [P, T] (or [T]) 1 for real tokens; prefixes must be right-padded (real tokens
        first). Default: all real.
    Returns:
      PrefixCache with P prefixes and S = T slots.
    """
    return prefill_prefix_arch(config, params, prefix, prefix_mask, LLAMA)


def prefill_prefix_arch(config, params: Params, prefix, prefix_mask: Optional[jax.Array],
                        arch: Arch) -> PrefixCache:
    """`prefill_prefix` for the architecture `arch` (token ids embedded with
    `arch.embed_tokens`)."""
    embeds_ptd, mask_pt = prefix_embeds(config, params, prefix, prefix_mask, arch.embed_tokens)
    return prefill_arch(config, params, embeds_ptd, mask_pt, arch)


def prefix_embeds(config, params: Params, prefix, prefix_mask, embed_fn: Callable):
    """The inputs of `prefill_prefix` -> (embeds [P, T, D], mask [P, T] bool); token ids are
    embedded with `embed_fn(config, params, ids)`."""
    if isinstance(prefix, (list, tuple)) and prefix and isinstance(prefix[0], (list, tuple)):
        if prefix_mask is not None:
            raise ValueError("prefix_mask must be None when prefixes are given as lists of ids")
        lengths = [len(p) for p in prefix]
        if min(lengths) == 0:
            raise ValueError("every prefix needs at least one token")
        ids = np.zeros((len(prefix), max(lengths)), np.int32)
        mask = np.zeros(ids.shape, bool)
        for i, p in enumerate(prefix):
            ids[i, :len(p)] = p
            mask[i, :len(p)] = True
        prefix, prefix_mask = jnp.asarray(ids), jnp.asarray(mask)
    prefix = jnp.asarray(prefix)
    if jnp.issubdtype(prefix.dtype, jnp.integer):
        if prefix.ndim == 1:
            prefix = prefix[None]
        chex.assert_rank(prefix, 2)
        embeds_ptd = embed_fn(config, params, prefix)
    else:
        if prefix.ndim == 2:
            prefix = prefix[None]
        chex.assert_rank(prefix, 3)
        embeds_ptd = prefix
    num_p, t = embeds_ptd.shape[:2]
    if prefix_mask is None:
        mask_pt = jnp.ones((num_p, t), bool)
    else:
        mask_pt = jnp.asarray(prefix_mask).astype(bool).reshape(num_p, t)
    return embeds_ptd, mask_pt


@functools.partial(jax.jit, static_argnums=(0, 4))
def prefill_arch(config: LlamaConfig, params: Params, embeds_ptd: jax.Array,
                 mask_pt: jax.Array, arch: Arch) -> PrefixCache:
    """`prefill_prefix` on embeddings [P, T, D] and mask [P, T] for the architecture `arch`."""
    num_p, t = mask_pt.shape
    cache = init_cache(config, num_p, t)
    positions = _default_positions(num_p, t, 0)
    _, _, cache = forward_arch(config, params, embeds_ptd, positions, mask_pt, cache,
                               collect_hidden=False, arch=arch)
    return PrefixCache(k_lpskh=cache.k_lbskh, v_lpskh=cache.v_lbskh, key_mask_ps=mask_pt,
                       length_p=mask_pt.sum(-1).astype(jnp.int32))


def forward_with_prefix(config: LlamaConfig, params: Params, prefix_cache: PrefixCache,
                        embeds_bkd: jax.Array, prefix_index_b: Optional[jax.Array] = None,
                        attention_mask_bk: Optional[jax.Array] = None) -> jax.Array:
    """Continuations of k tokens (soft tokens) after a cached prefix -> final-normed hidden.

    Args:
      prefix_cache: from `prefill_prefix`, with P prefixes.
      embeds_bkd: [B, k, D] continuation embeddings; row b continues prefix prefix_index_b[b]
        at rotary positions length_p[p] .. length_p[p] + k - 1.
      prefix_index_b: [B] int in [0, P). May be None only when P == 1: then the single prefix's
        keys and values are broadcast across the batch without being copied per row.
      attention_mask_bk: optional [B, k] mask of the continuation tokens.
    Returns:
      hidden_bkd [B, k, D] after the final RMSNorm; hidden_bkd[:, -1] is the last soft token's.
    """
    return continue_prefix(config, params, prefix_cache, embeds_bkd, prefix_index_b,
                           attention_mask_bk, LLAMA)


def continue_prefix(config, params: Params, prefix_cache: PrefixCache, embeds_bkd: jax.Array,
                    prefix_index_b: Optional[jax.Array], attention_mask_bk: Optional[jax.Array],
                    arch: Arch) -> jax.Array:
    """`forward_with_prefix` for the architecture `arch`."""
    prefix_cache.check(config)
    chex.assert_rank(embeds_bkd, 3)
    chex.assert_axis_dimension(embeds_bkd, 2, config.hidden_size)
    b, t, _ = embeds_bkd.shape
    x = embeds_bkd.astype(config.jnp_dtype)
    mask_bt = (jnp.ones((b, t), bool) if attention_mask_bk is None
               else attention_mask_bk.astype(bool))
    shared = prefix_index_b is None
    if shared:
        if prefix_cache.num_prefixes != 1:
            raise ValueError(f"prefix_cache holds {prefix_cache.num_prefixes} prefixes: pass "
                             "prefix_index_b [B] to choose one per row")
        start_b = jnp.broadcast_to(prefix_cache.length_p[0], (b,))
        prefix_mask = prefix_cache.key_mask_ps[0][None, None, :]  # [1, 1, S]
    else:
        chex.assert_shape(prefix_index_b, (b,))
        start_b = prefix_cache.length_p[prefix_index_b]
        prefix_mask = prefix_cache.key_mask_ps[prefix_index_b][:, None, :]  # [B, 1, S]
    positions_bt = start_b[:, None] + jnp.arange(t, dtype=jnp.int32)[None, :]
    self_mask_bts = jnp.tril(jnp.ones((t, t), bool))[None] & mask_bt[:, None, :]
    # Sequence slots: prefix keys at 0 .. S-1 (real ones first), continuation token j at
    # length_p + j, as if the prefix's real tokens and the continuation were one sequence.
    near_prefix_bts = _near(config, positions_bt[:, :, None],
                            jnp.arange(prefix_cache.key_mask_ps.shape[1])[None, None, :])
    slots_t = jnp.arange(t)
    near_self_tt = _near(config, slots_t[:, None], slots_t[None, :])

    def attention_fn(q, k, v, state, windowed):
        pk, pv = state  # [P, S, K, H]
        if shared:
            pk, pv = pk[0], pv[0]  # [S, K, H], broadcast inside the einsum
        else:
            pk, pv = pk[prefix_index_b], pv[prefix_index_b]  # [B, S, K, H]
        parts = [(pk.astype(q.dtype), pv.astype(q.dtype),
                  _windowed(prefix_mask, near_prefix_bts, windowed)),
                 (k, v, _windowed(self_mask_bts, near_self_tt, windowed))]
        return arch.attend(config, q, parts), None

    x, _, _ = arch.run_layers(config, params["layers"], x, positions_bt, attention_fn,
                              (prefix_cache.k_lpskh, prefix_cache.v_lpskh), collect_hidden=False)
    return arch.final_norm(config, params, x)
