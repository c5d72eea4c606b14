"""Gemma-3 (text) as pure functions of (config, params, inputs): the second architecture beside
the Llama family of model.py, with the same function API, so the LaGO prior runs either backbone.

This file owns `GemmaConfig` (a frozen, validated dataclass; read from a Hugging Face
`config.json` of model_type "gemma3_text" or from GGUF metadata of llama.cpp's "gemma3"
architecture), the Gemma-3 decoder block, the key tables of both checkpoint formats, and the
Gemma-3 presets. The forward, KV-cache and prefix-cache plumbing is model.py's, called with this
file's `GEMMA` hooks, so masks, padding, caches and sliding windows work the same way.

What differs from the Llama blocks (numerics follow transformers' Gemma3ForCausalLM):
- token embeddings are multiplied by sqrt(D), a float32 constant cast to the model dtype, in the
  model dtype (`embed_tokens`; inputs given to `forward_embeds` are not scaled, as transformers'
  `inputs_embeds`);
- RMSNorm computes in float32 and multiplies by (1 + w) before casting back; the stored weight w
  is zero-centred (a random init has w = 0);
- four norms per block: before attention (input_norm), on the attention output (post_attn_norm),
  before the MLP (pre_mlp_norm) and on the MLP output (post_mlp_norm); the residual adds the
  normed outputs;
- RMSNorm over the head width on queries and keys (q_norm, k_norm), before the rotary embedding;
- GeGLU MLP: down(gelu_tanh(gate(x)) * up(x));
- attention scores scaled by query_pre_attn_scalar ** -0.5, optionally soft-capped
  (attn_logit_softcapping), and final logits optionally soft-capped (final_logit_softcapping).
  Gemma-3 checkpoints have neither. transformers' Gemma3ForCausalLM applies a configured
  final_logit_softcapping but never the attention one (its attention passes no softcap to the
  score function), and llama.cpp's gemma3 graph neither: so checkpoints are read with
  attn_logit_softcapping=None whatever their config says, and the field serves configs built
  directly (it caps as transformers' eager attention does when given a softcap);
- local layers ("sliding_attention") attend to the `sliding_window` most recent sequence slots and
  use the rotary base `rope_local_base_freq`; global layers ("full_attention") attend to all
  earlier slots and use `rope_theta`, optionally with linear rope scaling.

Params (layers stacked on L, as in model.py; letters as there):

    embed            [V, D]
    layers/input_norm [L, D]   layers/post_attn_norm [L, D]
    layers/pre_mlp_norm [L, D] layers/post_mlp_norm [L, D]
    layers/q_proj    [L, D, N, H]   layers/k_proj [L, D, K, H]   layers/v_proj [L, D, K, H]
    layers/o_proj    [L, N, H, D]
    layers/q_norm    [L, H]         layers/k_norm [L, H]
    layers/gate_proj [L, D, F]      layers/up_proj [L, D, F]     layers/down_proj [L, F, D]
    final_norm       [D]
    lm_head          [D, V]         (absent when config.tie_word_embeddings, Gemma-3's default)

GGUF: llama.cpp's converter stores every norm weight as 1 + w (transformers' GGUF loader
subtracts 1 again; so does `GGUF_KEY_TABLE`), does not permute q/k rows for Gemma (its rotary is
the half-split kind), and writes neither the layer pattern, the local rotary base nor
query_pre_attn_scalar: llama.cpp fixes them for the gemma3 architecture (every sixth layer global,
local base 10000, scale head_dim ** -0.5 except the 62-layer 27B model's (D / N) ** -0.5), and
`GemmaConfig.from_gguf_metadata` does the same, reading the keys when a file has them.
(transformers' GGUF loader instead takes its Gemma3TextConfig default query_pre_attn_scalar=256,
which agrees with llama.cpp on every released Gemma-3 but the 27B.)
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, ClassVar, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lago_jax.llm import convert
from lago_jax.llm import gguf as gguf_io
from lago_jax.llm import model as llama
from lago_jax.llm.cache import KVCache, PrefixCache
from lago_jax.llm.config import (DecoderConfig, check_full_rotary, gguf_vocab_size, hf_dtype,
                                  hf_rope_type)
from lago_jax.llm.convert import KeyRule

Params = dict[str, Any]

LAYER_TYPES = ("sliding_attention", "full_attention")
"""Per-layer attention kinds, named as transformers' `layer_types`."""

GLOBAL_ROPE_TYPES = ("default", "linear")
"""Rotary schemes of the global layers implemented (local layers use "default")."""

HF_MODEL_TYPE = "gemma3_text"
"""The Hugging Face `model_type` read by `GemmaConfig.from_hf_config` (Gemma3ForCausalLM)."""

GGUF_ARCHITECTURE = "gemma3"
"""llama.cpp's `general.architecture` for Gemma-3 text models."""

DEFAULT_SLIDING_WINDOW_PATTERN = 6
"""Gemma-3's layer pattern when a checkpoint gives no other: five local layers, then a global."""


def pattern_layer_types(num_layers: int, pattern: int) -> tuple[str, ...]:
    """Layer kinds of the periodic pattern: layer i is global when (i + 1) % pattern == 0."""
    return tuple("full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
                 for i in range(num_layers))


@dataclasses.dataclass(frozen=True)
class GemmaConfig(DecoderConfig):
    """Shape and numerics of a Gemma-3 text decoder (the fields of `config.DecoderConfig` first;
    field names shared with `LlamaConfig` mean the same thing)."""

    architecture: ClassVar[str] = "gemma3"

    head_dim: int = 256
    """Width H of one attention head (even)."""
    rms_norm_eps: float = 1e-6
    """Epsilon inside every RMSNorm's square root."""
    rope_theta: float = 1_000_000.0
    """Rotary base of the global ("full_attention") layers."""
    rope_local_base_freq: float = 10_000.0
    """Rotary base of the local ("sliding_attention") layers (never scaled)."""
    rope_type: str = "default"
    """Rotary scheme of the global layers: "default" or "linear" (frequencies / rope_factor)."""
    rope_factor: float = 1.0
    """Linear scaling factor of the global layers' rotary frequencies; 1.0 for "default"."""
    query_pre_attn_scalar: float = 256.0
    """Attention scores are scaled by query_pre_attn_scalar ** -0.5."""
    sliding_window: int = 4096
    """W: a query of a local layer attends only to the W most recent sequence slots, itself
    included (counted as in model.py). 0 only when no layer is local."""
    layer_types: tuple[str, ...] = ()
    """Per layer "sliding_attention" (local) or "full_attention" (global); () means Gemma-3's
    default pattern (`DEFAULT_SLIDING_WINDOW_PATTERN`)."""
    attn_logit_softcapping: Optional[float] = None
    """If set, attention scores s become c * tanh(s / c) (after scaling, before masking). The
    checkpoint readers leave it None: Gemma-3 implementations never apply it (module docstring)."""
    final_logit_softcapping: Optional[float] = None
    """If set, logits become c * tanh(logits / c)."""
    max_position_embeddings: int = 131_072
    """Longest sequence the checkpoint was trained for."""
    tie_word_embeddings: bool = True
    """If True the lm_head reuses the (unscaled) embedding table."""
    dtype: str = "float32"
    """Dtype of parameters and activations: "float32" or "bfloat16" (norms and softmax in fp32)."""
    initializer_range: float = 0.02
    """Standard deviation of the normal init used for random weights."""

    def __post_init__(self):
        self._check_shape()
        for name in ("rms_norm_eps", "rope_theta", "rope_local_base_freq", "query_pre_attn_scalar",
                     "rope_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GemmaConfig.{name} must be positive, got {getattr(self, name)!r}")
        if self.rope_type not in GLOBAL_ROPE_TYPES:
            raise ValueError(f"GemmaConfig.rope_type={self.rope_type!r}: expected one of "
                             f"{GLOBAL_ROPE_TYPES}")
        if self.rope_type == "default" and self.rope_factor != 1.0:
            raise ValueError(f"GemmaConfig.rope_factor={self.rope_factor} has no effect with "
                             "rope_type='default'; set rope_type='linear', or 1.0")
        for name in ("attn_logit_softcapping", "final_logit_softcapping"):
            value = getattr(self, name)
            if value is not None:
                if not value > 0:
                    raise ValueError(f"GemmaConfig.{name} must be positive or None, got {value!r}")
                object.__setattr__(self, name, float(value))
        layer_types = tuple(self.layer_types) or pattern_layer_types(
            self.num_layers, DEFAULT_SLIDING_WINDOW_PATTERN)
        if len(layer_types) != self.num_layers or not set(layer_types) <= set(LAYER_TYPES):
            raise ValueError(f"GemmaConfig.layer_types={layer_types!r}: expected {self.num_layers} "
                             f"entries from {LAYER_TYPES}")
        object.__setattr__(self, "layer_types", layer_types)
        window = self.sliding_window
        if not isinstance(window, int) or isinstance(window, bool) or window < 0:
            raise ValueError(f"GemmaConfig.sliding_window must be a non-negative int, got {window!r}")
        if "sliding_attention" in layer_types and window == 0:
            raise ValueError("GemmaConfig has 'sliding_attention' layers but sliding_window=0")
        object.__setattr__(self, "rms_norm_eps", float(self.rms_norm_eps))
        object.__setattr__(self, "query_pre_attn_scalar", float(self.query_pre_attn_scalar))

    @property
    def embed_scale(self) -> float:
        """sqrt(D) as the float32 constant transformers multiplies token embeddings by."""
        return float(np.float32(math.sqrt(self.hidden_size)))

    def windowed_layers(self) -> tuple[bool, ...]:
        """Per block (L entries): True for local (sliding-window) layers."""
        return tuple(t == "sliding_attention" for t in self.layer_types)

    def _extra_layer_params(self) -> int:
        """Four norms of width D and the q/k norms of width H per block."""
        return 4 * self.hidden_size + 2 * self.head_dim

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["layer_types"] = list(self.layer_types)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GemmaConfig":
        d = dict(d)
        d["layer_types"] = tuple(d.get("layer_types") or ())
        return cls(**d)

    # --------------------------------------------------------------------------- readers

    @classmethod
    def from_hf_config(cls, hf: Mapping[str, Any], dtype: Any = None) -> "GemmaConfig":
        """Reads a Hugging Face `config.json` dictionary of model_type "gemma3_text".

        Both forms of the rotary settings are read: transformers 5's per-layer-type
        `rope_parameters` ({"sliding_attention": {...}, "full_attention": {...}}) and the older
        `rope_theta`, `rope_local_base_freq` and `rope_scaling` (which applies to the global
        layers and wins over `rope_parameters`, as in transformers). The layer kinds come from
        `layer_types`, else from `sliding_window_pattern` (default 6). `attn_logit_softcapping`
        is not read (Gemma3ForCausalLM ignores it; see the module docstring). Raises ValueError,
        in one line naming the setting, for other model types (the multimodal "gemma3"
        included) and for features this port does not implement.
        """
        model_type = hf.get("model_type")
        if model_type == "gemma3":
            raise ValueError("config.json has model_type='gemma3' (Gemma3ForConditionalGeneration, "
                             "text and vision, with a text_config); only the text-only model "
                             "'gemma3_text' (Gemma3ForCausalLM) is implemented")
        if model_type != HF_MODEL_TYPE:
            raise ValueError(f"config.json has model_type={model_type!r}; GemmaConfig reads "
                             f"{HF_MODEL_TYPE!r} (Gemma3ForCausalLM) only")
        act = hf.get("hidden_activation", hf.get("hidden_act", "gelu_pytorch_tanh"))
        if act not in ("gelu_pytorch_tanh",):
            raise ValueError(f"config.json has hidden_activation={act!r}; this port implements "
                             "GeGLU with 'gelu_pytorch_tanh' only")
        if hf.get("attention_bias"):
            raise ValueError("config.json enables attention_bias, which this port does not implement")
        if hf.get("use_bidirectional_attention"):
            raise ValueError("config.json enables use_bidirectional_attention; only causal "
                             "attention is implemented")
        num_layers = int(hf["num_hidden_layers"])
        num_heads = int(hf["num_attention_heads"])
        layer_types = hf.get("layer_types")
        if not layer_types:
            pattern = hf.get("sliding_window_pattern", hf.get("_sliding_window_pattern"))
            layer_types = pattern_layer_types(num_layers, int(pattern or DEFAULT_SLIDING_WINDOW_PATTERN))
        window = hf.get("sliding_window")
        if window is None and "sliding_attention" in layer_types:
            raise ValueError("config.json has 'sliding_attention' layers but sliding_window=None")
        return cls(
            vocab_size=int(hf["vocab_size"]),
            hidden_size=int(hf["hidden_size"]),
            intermediate_size=int(hf["intermediate_size"]),
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=int(hf.get("num_key_value_heads") or num_heads),
            head_dim=int(hf.get("head_dim") or 256),
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            query_pre_attn_scalar=float(hf.get("query_pre_attn_scalar", 256)),
            sliding_window=int(window or 0),
            layer_types=tuple(layer_types),
            final_logit_softcapping=hf.get("final_logit_softcapping"),
            max_position_embeddings=int(hf.get("max_position_embeddings", 131_072)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
            dtype=hf_dtype(hf) if dtype is None else dtype,
            initializer_range=float(hf.get("initializer_range", 0.02)),
            **_hf_rope_fields(hf),
        )

    @classmethod
    def from_gguf_metadata(cls, meta: Mapping[str, Any], *, tie_word_embeddings: bool,
                           dtype: Any = "float32") -> "GemmaConfig":
        """Reads GGUF metadata of llama.cpp's "gemma3" architecture (decoded by
        gguf.read_metadata); settings the file does not store take llama.cpp's fixed values,
        and a file without a sliding window runs every layer global, as in llama.cpp. The final
        logit cap is read when present (llama.cpp reads it for gemma3; released files have none;
        transformers' GGUF reader ignores it); the attention cap is not (module docstring)."""
        arch = meta.get("general.architecture")
        if arch != GGUF_ARCHITECTURE:
            raise ValueError(f"GGUF general.architecture={arch!r}; GemmaConfig reads "
                             f"{GGUF_ARCHITECTURE!r} only")
        key = lambda name: f"{arch}.{name}"
        num_layers = int(meta[key("block_count")])
        hidden = int(meta[key("embedding_length")])
        num_heads = int(meta[key("attention.head_count")])
        head_dim = int(meta.get(key("attention.key_length"), 256))
        value_dim = int(meta.get(key("attention.value_length"), head_dim))
        if value_dim != head_dim:
            raise ValueError(f"GGUF {key('attention.value_length')}={value_dim} differs from "
                             f"key_length={head_dim}; equal widths are implemented")
        rope_dims = int(meta.get(key("rope.dimension_count"), head_dim))
        if rope_dims != head_dim:
            raise ValueError(f"GGUF partial rotary ({key('rope.dimension_count')}={rope_dims}, "
                             f"head_dim={head_dim}) is not supported")
        pattern = meta.get(key("attention.sliding_window_pattern"))
        window = int(meta.get(key("attention.sliding_window"), 0) or 0)
        if window == 0:  # no window stored: llama.cpp runs every layer global
            layer_types = ("full_attention",) * num_layers
        elif pattern is None:
            layer_types = pattern_layer_types(num_layers, DEFAULT_SLIDING_WINDOW_PATTERN)
        elif isinstance(pattern, (list, tuple)):  # per layer: True where the window applies
            layer_types = tuple("sliding_attention" if p else "full_attention" for p in pattern)
        else:
            layer_types = pattern_layer_types(num_layers, int(pattern))
        scaling = meta.get(key("rope.scaling.type"))
        rope = {}
        if scaling == "linear":
            rope = {"rope_type": "linear", "rope_factor": float(meta[key("rope.scaling.factor")])}
        elif scaling not in (None, "none"):
            raise ValueError(f"GGUF {key('rope.scaling.type')}={scaling!r}; only unscaled or linear "
                             "rotary embeddings are implemented")
        scale = meta.get(key("attention.scale"))
        if scale is not None:
            query_pre_attn_scalar = float(scale) ** -2
        elif num_layers == 62:  # llama.cpp's Gemma-3 27B rule
            query_pre_attn_scalar = float(hidden // num_heads)
        else:
            query_pre_attn_scalar = float(head_dim)
        return cls(
            vocab_size=gguf_vocab_size(meta, arch),
            hidden_size=hidden,
            intermediate_size=int(meta[key("feed_forward_length")]),
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=int(meta.get(key("attention.head_count_kv"), num_heads)),
            head_dim=head_dim,
            rms_norm_eps=float(meta.get(key("attention.layer_norm_rms_epsilon"), 1e-6)),
            rope_theta=float(meta.get(key("rope.freq_base"), 1_000_000.0)),
            rope_local_base_freq=float(meta.get(key("rope.freq_base_swa"), 10_000.0)),
            query_pre_attn_scalar=query_pre_attn_scalar,
            sliding_window=window,
            layer_types=layer_types,
            final_logit_softcapping=meta.get(key("final_logit_softcapping")) or None,
            max_position_embeddings=int(meta.get(key("context_length"), 131_072)),
            tie_word_embeddings=tie_word_embeddings,
            dtype=dtype,
            **rope,
        )


def _hf_rope_fields(hf: Mapping[str, Any]) -> dict[str, Any]:
    """rope_theta, rope_local_base_freq, rope_type and rope_factor of a Gemma-3 config.json."""
    params = hf.get("rope_parameters") or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"config.json has rope_parameters={params!r}; expected a dict")
    if set(params) & set(LAYER_TYPES):
        full = dict(params.get("full_attention") or {})
        local = dict(params.get("sliding_attention") or {})
    else:  # one dict: the global layers'
        full, local = dict(params), {}
    if hf.get("rope_scaling"):
        full.update(hf["rope_scaling"])
    full.setdefault("rope_theta", hf.get("rope_theta", 1_000_000.0))
    local.setdefault("rope_theta", hf.get("rope_local_base_freq", 10_000.0))
    for kind, rope in (("full_attention", full), ("sliding_attention", local)):
        check_full_rotary(rope, hf, f" ({kind})")
    hf_rope_type(local, ("default",), suffix=" for the sliding_attention layers")
    full_type = hf_rope_type(full, GLOBAL_ROPE_TYPES, suffix=" for the full_attention layers")
    fields = {"rope_theta": float(full["rope_theta"]),
              "rope_local_base_freq": float(local["rope_theta"]), "rope_type": full_type}
    if full_type == "linear":
        if "factor" not in full:
            raise ValueError("config.json has rope_type='linear' for the full_attention layers but "
                             "no 'factor'")
        fields["rope_factor"] = float(full["factor"])
    return fields


PRESETS: dict[str, GemmaConfig] = {
    # google/gemma-3-270m (as its GGUF and config.json give it).
    "gemma3-270m": GemmaConfig(
        vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_layers=18, num_heads=4,
        num_kv_heads=1, head_dim=256, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
        rope_local_base_freq=10_000.0, query_pre_attn_scalar=256.0, sliding_window=512,
        max_position_embeddings=32_768, tie_word_embeddings=True),
    # Tiny test shape: odd sizes, GQA, N * H != D, query_pre_attn_scalar != H, a window of 4,
    # local and global layers.
    "gemma3-test-tiny": GemmaConfig(
        vocab_size=263, hidden_size=45, intermediate_size=53, num_layers=3, num_heads=3,
        num_kv_heads=1, head_dim=10, rms_norm_eps=1e-6, rope_theta=1e5, rope_local_base_freq=1e4,
        query_pre_attn_scalar=12.0, sliding_window=4,
        layer_types=("sliding_attention", "full_attention", "sliding_attention"),
        max_position_embeddings=128, tie_word_embeddings=True),
}


def load_gguf(path: str, dtype: Any = None) -> tuple[GemmaConfig, Params, dict[str, Any]]:
    """Reads a llama.cpp "gemma3" GGUF file -> (config, params, metadata), dequantising every
    tensor through gguf.quants; ValueError naming the file for another architecture, and naming
    the tensor for a shape that disagrees with the metadata."""
    reader = gguf_io._reader(path)  # pylint: disable=protected-access
    meta = gguf_io.read_metadata(reader)
    if meta.get("general.architecture") != GGUF_ARCHITECTURE:
        raise ValueError(f"{path}: GGUF architecture {meta.get('general.architecture')!r}; "
                         f"gemma.load_gguf reads {GGUF_ARCHITECTURE!r}")
    names = {t.name for t in reader.tensors}
    config = GemmaConfig.from_gguf_metadata(meta, tie_word_embeddings="output.weight" not in names,
                                            dtype=dtype or "float32")
    params = convert.assemble_params(config, gguf_io._dequantized_tensors(reader),  # pylint: disable=protected-access
                                     GGUF_KEY_TABLE, source=path, shapes=param_shapes(config))
    return config, params, meta


# ----------------------------------------------------------------------------- shapes and init


def param_shapes(config: GemmaConfig) -> Params:
    """Nested dict of the parameter shapes (tuples) for `config`: model.py's common layout plus
    the q/k norms and the norms after attention, before and after the MLP."""
    shapes = llama.decoder_param_shapes(config)
    n_layers, d, h = config.num_layers, config.hidden_size, config.head_dim
    shapes["layers"].update(q_norm=(n_layers, h), k_norm=(n_layers, h),
                            pre_mlp_norm=(n_layers, d), post_mlp_norm=(n_layers, d))
    return shapes


def init_params(config: GemmaConfig, key: jax.Array) -> Params:
    """Random weights: normal(0, initializer_range) matrices and zero norm weights (scale 1), as
    transformers initializes Gemma-3, in the config dtype."""
    return llama.random_params(config, param_shapes(config), key,
                               lambda name: 0.0 if name.endswith("norm") else None)


def check_params(config: GemmaConfig, params: Params) -> None:
    """Raises ValueError naming the first parameter whose shape disagrees with `config`."""
    llama.check_shapes(param_shapes(config), params)


# ----------------------------------------------------------------------------- building blocks


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    """Gemma's RMSNorm: normalize in float32, times (1 + weight) in float32, cast back."""
    x32 = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    normed = x32 * jax.lax.rsqrt(var + eps)
    return (normed * (1.0 + weight.astype(jnp.float32))).astype(x.dtype)


def rope_inv_freq(config: GemmaConfig, local: bool) -> np.ndarray:
    """The H/2 rotary inverse frequencies (float32, host) of the local or the global layers, in
    the float32 operations of transformers' default and linear rope initializers (see
    model.rope_inv_freq for the power)."""
    theta = config.rope_local_base_freq if local else config.rope_theta
    inv_freq = llama.default_inv_freq(theta, config.head_dim)
    if not local and config.rope_type == "linear":
        inv_freq = inv_freq / config.rope_factor
    assert inv_freq.dtype == np.float32, inv_freq.dtype
    return inv_freq


def _run_layers(config: GemmaConfig, layers: Params, x_btd: jax.Array, positions_bt: jax.Array,
                attention_fn: llama.AttentionFn, layer_states: Any, collect_hidden: bool):
    """The L Gemma-3 blocks under lax.scan (contract of model._run_layers)."""
    dtype = x_btd.dtype
    cos_g, sin_g = llama.rope_cos_sin(positions_bt, rope_inv_freq(config, local=False), dtype)
    cos_l, sin_l = llama.rope_cos_sin(positions_bt, rope_inv_freq(config, local=True), dtype)
    b, t = x_btd.shape[:2]
    kv, g, h = config.num_kv_heads, config.num_groups, config.head_dim
    eps = config.rms_norm_eps
    windowed_l = jnp.asarray(config.windowed_layers())

    def block(x, inputs):
        p, state, windowed = inputs
        p = jax.tree.map(lambda w: w.astype(dtype), p)
        cos = jnp.where(windowed, cos_l, cos_g)
        sin = jnp.where(windowed, sin_l, sin_g)
        hid = rms_norm(x, p["input_norm"], eps)
        q = jnp.einsum("btd,dnh->btnh", hid, p["q_proj"])
        k = jnp.einsum("btd,dkh->btkh", hid, p["k_proj"])
        v = jnp.einsum("btd,dkh->btkh", hid, p["v_proj"])
        q, k = rms_norm(q, p["q_norm"], eps), rms_norm(k, p["k_norm"], eps)
        q, k = llama.apply_rope(q, cos, sin), llama.apply_rope(k, cos, sin)
        out, new_state = attention_fn(q.reshape(b, t, kv, g, h), k, v, state, windowed)
        x_in = x
        attn = jnp.einsum("btnh,nhd->btd", out.reshape(b, t, kv * g, h), p["o_proj"])
        x = x + rms_norm(attn, p["post_attn_norm"], eps)
        hid = rms_norm(x, p["pre_mlp_norm"], eps)
        gate = jnp.einsum("btd,df->btf", hid, p["gate_proj"])
        up = jnp.einsum("btd,df->btf", hid, p["up_proj"])
        mlp = jnp.einsum("btf,fd->btd", jax.nn.gelu(gate, approximate=True) * up, p["down_proj"])
        x = x + rms_norm(mlp, p["post_mlp_norm"], eps)
        return x, (new_state, x_in if collect_hidden else None)

    x_btd, (new_states, inputs_lbtd) = jax.lax.scan(block, x_btd,
                                                     (layers, layer_states, windowed_l),
                                                     unroll=llama.SCAN_UNROLL)
    return x_btd, new_states, inputs_lbtd


def _final_norm(config: GemmaConfig, params: Params, x_btd: jax.Array) -> jax.Array:
    return rms_norm(x_btd, params["final_norm"].astype(x_btd.dtype), config.rms_norm_eps)


def _attend(config: GemmaConfig, q_btkgh: jax.Array, parts) -> jax.Array:
    return llama.attend(q_btkgh, parts, config.query_pre_attn_scalar ** -0.5,
                        softcap=config.attn_logit_softcapping)



# ----------------------------------------------------------------------------- public functions


def embed_tokens(config: GemmaConfig, params: Params, ids: jax.Array) -> jax.Array:
    """Token embeddings times sqrt(D) (in the embedding dtype): ids [...] -> [..., D]."""
    embeds = jnp.take(params["embed"], ids, axis=0)
    return embeds * jnp.asarray(config.embed_scale, jnp.float32).astype(embeds.dtype)


def token_embedding_rms(config: GemmaConfig, params: Params) -> jax.Array:
    """RMS over the whole table of the token embeddings as `embed_tokens` returns them (float32
    scalar): the scale of real inputs to the first block."""
    scale = jnp.asarray(config.embed_scale, jnp.float32).astype(params["embed"].dtype)
    return llama.token_embedding_rms(config, params) * scale.astype(jnp.float32)


def lm_logits(config: GemmaConfig, params: Params, hidden_btd: jax.Array) -> jax.Array:
    """Final-normed hidden states [B, T, D] -> logits [B, T, V] (model.lm_logits), soft-capped
    when configured."""
    logits = llama.lm_logits(config, params, hidden_btd)
    cap = config.final_logit_softcapping
    if cap is not None:
        logits = jnp.tanh(logits / cap) * cap
    return logits


GEMMA = llama.Arch(run_layers=_run_layers, final_norm=_final_norm, attend=_attend,
                   embed_tokens=embed_tokens, lm_logits=lm_logits)
"""The Gemma-3 hooks of model.py's shared forward and cache plumbing."""


def forward_embeds(config: GemmaConfig, params: Params, embeds_btd: jax.Array,
                   positions_bt: Optional[jax.Array] = None,
                   attention_mask_bt: Optional[jax.Array] = None,
                   cache: Optional[KVCache] = None) -> tuple[jax.Array, Optional[KVCache]]:
    """Input embeddings (already scaled, e.g. from `embed_tokens`, or soft tokens) -> final-normed
    hidden states; arguments and cache semantics as model.forward_embeds."""
    hidden, _, new_cache = llama.forward_arch(config, params, embeds_btd, positions_bt,
                                              attention_mask_bt, cache, collect_hidden=False,
                                              arch=GEMMA)
    return hidden, new_cache


def forward_ids(config: GemmaConfig, params: Params, ids_bt: jax.Array,
                positions_bt: Optional[jax.Array] = None,
                attention_mask_bt: Optional[jax.Array] = None,
                cache: Optional[KVCache] = None,
                return_hidden_states: bool = False):
    """Token ids [B, T] -> (logits [B, T, V], hidden_states [L + 1, B, T, D] or None, cache or
    None), as model.forward_ids (entry 0 of hidden_states is the scaled embeddings)."""
    return llama.forward_ids_arch(config, params, ids_bt, positions_bt, attention_mask_bt, cache,
                                  return_hidden_states, GEMMA)


def prefill_prefix(config: GemmaConfig, params: Params, prefix: Any,
                   prefix_mask: Optional[jax.Array] = None) -> PrefixCache:
    """Runs one or more fixed prefixes once and returns their keys and values (arguments as
    model.prefill_prefix; token ids are embedded with `embed_tokens`)."""
    return llama.prefill_prefix_arch(config, params, prefix, prefix_mask, GEMMA)


def forward_with_prefix(config: GemmaConfig, params: Params, prefix_cache: PrefixCache,
                        embeds_bkd: jax.Array, prefix_index_b: Optional[jax.Array] = None,
                        attention_mask_bk: Optional[jax.Array] = None) -> jax.Array:
    """Continuations of k tokens after a cached prefix -> final-normed hidden [B, k, D]
    (arguments as model.forward_with_prefix). Local layers apply the sliding window across the
    prefix and the continuation, counted over the prefix's real tokens."""
    return llama.continue_prefix(config, params, prefix_cache, embeds_bkd, prefix_index_b,
                                 attention_mask_bk, GEMMA)


# ----------------------------------------------------------------------------- checkpoint keys


def _minus_one(w, c):
    """GGUF stores Gemma norm weights as 1 + w."""
    return w - np.float32(1.0)


def _norm_rule(pattern: str, param: str, width) -> KeyRule:
    """A Gemma-only norm weight: stored as is, `width(config)` wide."""
    return KeyRule(pattern, param, lambda c: (width(c),), lambda w, c: w)


_LLAMA = {rule.param: rule for rule in convert.HF_KEY_TABLE}
"""Tensors of the common layout keep the Llama table's Hugging Face names, shapes and transforms."""

# (Hugging Face rule, llama.cpp name). post_attention_layernorm fills post_attn_norm in both
# layouts (Gemma's block applies it to the attention output, Llama's before the MLP).
_KEYS = (
    (_LLAMA["embed"], r"token_embd\.weight"),
    (_LLAMA["final_norm"], r"output_norm\.weight"),
    (_LLAMA["lm_head"], r"output\.weight"),
    (_LLAMA["layers/input_norm"], r"blk\.(\d+)\.attn_norm\.weight"),
    (_LLAMA["layers/q_proj"], r"blk\.(\d+)\.attn_q\.weight"),
    (_LLAMA["layers/k_proj"], r"blk\.(\d+)\.attn_k\.weight"),
    (_LLAMA["layers/v_proj"], r"blk\.(\d+)\.attn_v\.weight"),
    (_LLAMA["layers/o_proj"], r"blk\.(\d+)\.attn_output\.weight"),
    (_norm_rule(r"model\.layers\.(\d+)\.self_attn\.q_norm\.weight", "layers/q_norm",
                lambda c: c.head_dim), r"blk\.(\d+)\.attn_q_norm\.weight"),
    (_norm_rule(r"model\.layers\.(\d+)\.self_attn\.k_norm\.weight", "layers/k_norm",
                lambda c: c.head_dim), r"blk\.(\d+)\.attn_k_norm\.weight"),
    (_LLAMA["layers/post_attn_norm"], r"blk\.(\d+)\.post_attention_norm\.weight"),
    (_norm_rule(r"model\.layers\.(\d+)\.pre_feedforward_layernorm\.weight",
                "layers/pre_mlp_norm", lambda c: c.hidden_size),
     r"blk\.(\d+)\.ffn_norm\.weight"),
    (_norm_rule(r"model\.layers\.(\d+)\.post_feedforward_layernorm\.weight",
                "layers/post_mlp_norm", lambda c: c.hidden_size),
     r"blk\.(\d+)\.post_ffw_norm\.weight"),
    (_LLAMA["layers/gate_proj"], r"blk\.(\d+)\.ffn_gate\.weight"),
    (_LLAMA["layers/up_proj"], r"blk\.(\d+)\.ffn_up\.weight"),
    (_LLAMA["layers/down_proj"], r"blk\.(\d+)\.ffn_down\.weight"),
)

HF_KEY_TABLE: tuple[KeyRule, ...] = tuple(rule for rule, _ in _KEYS)
"""Hugging Face Gemma3ForCausalLM state-dict names -> params."""

GGUF_KEY_TABLE: tuple[KeyRule, ...] = tuple(
    rule.renamed(gg, pre=_minus_one if rule.param.endswith("norm") else None) for rule, gg in _KEYS)
"""llama.cpp "gemma3" tensor names -> params: shapes in numpy order (GGUF dims reversed), equal
to the Hugging Face [out, in] layout; no q/k permutation; every norm weight stored as 1 + w."""


def hf_to_gguf_name(name: str) -> str:
    """The llama.cpp name of a Hugging Face Gemma3ForCausalLM tensor name."""
    for rule, gg in _KEYS:
        match = re.fullmatch(rule.pattern, name)
        if match:
            layer = match.group(1) if match.groups() else ""
            return gg.replace(r"(\d+)", layer).replace("\\", "")
    raise KeyError(f"{name!r} is not a Gemma3ForCausalLM tensor name")


_HF_NORMS = {"input_norm": "input_layernorm", "post_attn_norm": "post_attention_layernorm",
             "pre_mlp_norm": "pre_feedforward_layernorm",
             "post_mlp_norm": "post_feedforward_layernorm",
             "q_norm": "self_attn.q_norm", "k_norm": "self_attn.k_norm"}
"""Gemma's per-block norm weights -> their Hugging Face names (without ".weight")."""


def params_to_hf_tensors(config: GemmaConfig, params: Params) -> dict[str, np.ndarray]:
    """params -> Hugging Face Gemma3ForCausalLM names and layouts (float32 numpy)."""

    def layer_tensors(lp, i):
        return {**{f"{theirs}.weight": lp[ours][i] for ours, theirs in _HF_NORMS.items()},
                **convert.attention_hf_tensors(config, lp, i), **convert.mlp_hf_tensors(lp, i)}

    return convert.hf_tensors(config, params, layer_tensors)


def write_gguf(path: str, config: GemmaConfig, hf_tensors: Optional[dict[str, np.ndarray]] = None,
               params: Optional[Params] = None,
               tokenizer_metadata: Optional[dict[str, Any]] = None) -> None:
    """Writes a float32 "gemma3" GGUF file as llama.cpp's converter lays it out: llama.cpp tensor
    names, every norm weight stored as 1 + w, no q/k permutation, dims reversed by the writer,
    and only the metadata llama.cpp writes for Gemma-3 (so the layer pattern, local rotary base
    and attention scale must be llama.cpp's fixed ones to read back the same).

    tokenizer_metadata: optional {"model": "llama", "tokens", "scores", "token_type",
    "bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id", "add_bos_token"}.
    """
    import gguf  # pylint: disable=import-outside-toplevel
    fixed = dict(layer_types=pattern_layer_types(config.num_layers, DEFAULT_SLIDING_WINDOW_PATTERN),
                 rope_local_base_freq=10_000.0, query_pre_attn_scalar=float(config.head_dim),
                 attn_logit_softcapping=None)
    unwritten = {k: getattr(config, k) for k, v in fixed.items() if getattr(config, k) != v}
    if unwritten:
        raise ValueError(f"write_gguf writes llama.cpp's gemma3 layout, which fixes {sorted(fixed)}; "
                         f"this config has {unwritten}")
    if hf_tensors is None:
        hf_tensors = params_to_hf_tensors(config, params)
    writer = gguf_io.new_writer(path, GGUF_ARCHITECTURE, config)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_sliding_window(config.sliding_window)
    if config.final_logit_softcapping is not None:
        writer.add_final_logit_softcapping(config.final_logit_softcapping)
    if config.rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(config.rope_factor)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if tokenizer_metadata:
        tm = tokenizer_metadata
        writer.add_tokenizer_model(tm.get("model", "llama"))
        writer.add_tokenizer_pre(tm.get("pre", "default"))
        writer.add_token_list(tm["tokens"])
        writer.add_token_scores(tm["scores"])
        writer.add_token_types(tm["token_type"])
        for key in ("bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id"):
            if key in tm:
                getattr(writer, f"add_{key.replace('unknown', 'unk').replace('padding', 'pad')}")(tm[key])
        writer.add_add_bos_token(bool(tm.get("add_bos_token", True)))
        writer.add_add_eos_token(False)
        writer.add_add_space_prefix(False)
    gguf_io.write_tensors(writer, config, hf_tensors, lambda name, w: (
        hf_to_gguf_name(name), w + np.float32(1.0) if name.endswith("norm.weight") else w))

