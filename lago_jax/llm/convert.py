"""Checkpoint tensors -> the stacked `params` pytree, driven by a key table.

This file owns the shared machinery of the loaders: a `KeyRule` says which checkpoint tensor
names (a regex; group 1, when present, is the layer number) fill which parameter, what shape
the checkpoint tensor must have, and how to transform it into the parameter layout.
`assemble_params` applies a table to a stream of (name, array) pairs, checks every shape,
reports missing and unexpected tensors by name, and stacks the per-layer tensors along L.
The Hugging Face table lives here too (the GGUF table in gguf.py and Gemma-3's tables in gemma.py
reuse its rules through `KeyRule.renamed`), with its inverse `params_to_hf_tensors`, built from
`hf_tensors` and the per-block pieces that gemma.py's inverse uses as well.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Callable, Iterable, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from lago_jax.llm.config import LlamaConfig
from lago_jax.llm.model import Params, param_shapes


@dataclasses.dataclass(frozen=True)
class KeyRule:
    """One row of a key table."""

    pattern: str
    """Regex matched against the full checkpoint tensor name; group 1 is the layer index."""
    param: str
    """Target: a top-level key ("embed", "final_norm", "lm_head") or "layers/<name>"."""
    shape: Callable[[LlamaConfig], tuple[int, ...]]
    """Shape the checkpoint tensor must have (after undoing any storage-order reversal)."""
    transform: Callable[[np.ndarray, LlamaConfig], np.ndarray]
    """Checkpoint layout -> parameter layout (one layer's slice for layer parameters)."""

    def renamed(self, pattern: str, pre: Optional[Callable] = None) -> "KeyRule":
        """The same parameter, shape and transform for tensors named by `pattern` (another
        checkpoint format's name); `pre(w, config)`, if given, runs before the transform."""
        transform = self.transform
        if pre is not None:
            transform = lambda w, c, t=self.transform: t(pre(w, c), c)
        return KeyRule(pattern, self.param, self.shape, transform)


def _identity(w, c):
    return w


def _linear_to_dnh(heads: Callable[[LlamaConfig], int]):
    """torch Linear weight [heads*H, D] -> [D, heads, H]."""
    return lambda w, c: w.T.reshape(c.hidden_size, heads(c), c.head_dim)


def _o_to_nhd(w, c):
    """o_proj weight [D, N*H] -> [N, H, D]."""
    return w.T.reshape(c.num_heads, c.head_dim, c.hidden_size)


def _transpose(w, c):
    return w.T


def _bias_to_nh(heads: Callable[[LlamaConfig], int]):
    """torch Linear bias [heads*H] -> [heads, H]."""
    return lambda b, c: b.reshape(heads(c), c.head_dim)


_d = lambda c: (c.hidden_size,)
_q_shape = lambda c: (c.num_heads * c.head_dim, c.hidden_size)
_kv_shape = lambda c: (c.num_kv_heads * c.head_dim, c.hidden_size)
_o_shape = lambda c: (c.hidden_size, c.num_heads * c.head_dim)
_ff_in_shape = lambda c: (c.intermediate_size, c.hidden_size)
_ff_out_shape = lambda c: (c.hidden_size, c.intermediate_size)
_vocab_shape = lambda c: (c.vocab_size, c.hidden_size)
_q_to_dnh = _linear_to_dnh(lambda c: c.num_heads)
_kv_to_dkh = _linear_to_dnh(lambda c: c.num_kv_heads)
_q_bias_shape = lambda c: (c.num_heads * c.head_dim,)
_kv_bias_shape = lambda c: (c.num_kv_heads * c.head_dim,)
_q_bias_to_nh = _bias_to_nh(lambda c: c.num_heads)
_kv_bias_to_kh = _bias_to_nh(lambda c: c.num_kv_heads)

HF_KEY_TABLE: tuple[KeyRule, ...] = (
    KeyRule(r"model\.embed_tokens\.weight", "embed", _vocab_shape, _identity),
    KeyRule(r"model\.norm\.weight", "final_norm", _d, _identity),
    KeyRule(r"lm_head\.weight", "lm_head", _vocab_shape, _transpose),
    KeyRule(r"model\.layers\.(\d+)\.input_layernorm\.weight", "layers/input_norm", _d, _identity),
    KeyRule(r"model\.layers\.(\d+)\.self_attn\.q_proj\.weight", "layers/q_proj", _q_shape,
            _q_to_dnh),
    KeyRule(r"model\.layers\.(\d+)\.self_attn\.k_proj\.weight", "layers/k_proj", _kv_shape,
            _kv_to_dkh),
    KeyRule(r"model\.layers\.(\d+)\.self_attn\.v_proj\.weight", "layers/v_proj", _kv_shape,
            _kv_to_dkh),
    KeyRule(r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", "layers/o_proj", _o_shape,
            _o_to_nhd),
    KeyRule(r"model\.layers\.(\d+)\.self_attn\.q_proj\.bias", "layers/q_bias", _q_bias_shape,
            _q_bias_to_nh),
    KeyRule(r"model\.layers\.(\d+)\.self_attn\.k_proj\.bias", "layers/k_bias", _kv_bias_shape,
            _kv_bias_to_kh),
    KeyRule(r"model\.layers\.(\d+)\.self_attn\.v_proj\.bias", "layers/v_bias", _kv_bias_shape,
            _kv_bias_to_kh),
    KeyRule(r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", "layers/post_attn_norm",
            _d, _identity),
    KeyRule(r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight", "layers/gate_proj", _ff_in_shape,
            _transpose),
    KeyRule(r"model\.layers\.(\d+)\.mlp\.up_proj\.weight", "layers/up_proj", _ff_in_shape,
            _transpose),
    KeyRule(r"model\.layers\.(\d+)\.mlp\.down_proj\.weight", "layers/down_proj", _ff_out_shape,
            _transpose),
)
"""Hugging Face LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM state-dict names ->
params (the q/k/v biases only in configs with qkv_bias)."""

HF_IGNORED = (r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq", r"model\.rotary_emb\..*")


def assemble_params(config: LlamaConfig, tensors: Iterable[tuple[str, np.ndarray]],
                    table: Sequence[KeyRule], ignored: Sequence[str] = (),
                    source: str = "checkpoint", dtype=None, shapes: Params = None) -> Params:
    """Fills the params pytree from (name, array) pairs according to `table`.

    Raises ValueError naming the tensor on an unexpected name, a wrong shape, a layer index out of
    range, a missing tensor or a non-finite value (NaN or inf). When the config ties embeddings a
    stored lm_head is skipped. Nothing of the config's size is allocated before every tensor has
    been read and matched: a config that promises more layers than the file holds is refused by
    name (the missing layers), not by running out of memory.
    Returns jax arrays in `dtype` (default the config's). `shapes`: the parameter shapes of the
    config's architecture (default: the Llama layout of model.param_shapes).
    """
    dtype = dtype or config.jnp_dtype
    shapes = shapes if shapes is not None else param_shapes(config)
    compiled = [(re.compile(rule.pattern), rule) for rule in table]
    ignored_re = [re.compile(p) for p in ignored]
    top: dict[str, np.ndarray] = {}
    layers: dict[str, dict[int, np.ndarray]] = {}
    for name, array in tensors:
        for regex, rule in compiled:
            match = regex.fullmatch(name)
            if match:
                break
        else:
            if any(r.fullmatch(name) for r in ignored_re):
                continue
            raise ValueError(f"{source}: unexpected tensor {name!r} (shape {tuple(array.shape)}); "
                             f"not part of a {type(config).__name__} model")
        if rule.param == "lm_head" and config.tie_word_embeddings:
            continue
        key = rule.param.split("/", 1)[-1]
        if key not in (shapes["layers"] if rule.param.startswith("layers/") else shapes):
            raise ValueError(f"{source}: unexpected tensor {name!r}: this config has no {key} "
                             + ("parameter (qkv_bias is off)" if key.endswith("bias") else "parameter"))
        expected = tuple(rule.shape(config))
        if tuple(array.shape) != expected:
            raise ValueError(f"{source}: tensor {name!r} has shape {tuple(array.shape)}, expected "
                             f"{expected} for this config")
        value = np.asarray(rule.transform(np.asarray(array, np.float32), config))
        if not np.isfinite(value).all():
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
            raise ValueError(f"{source}: tensor {name!r} holds {bad} non-finite values (NaN or inf); "
                             "the model file is damaged")
        if rule.param.startswith("layers/"):
            layer = int(match.group(1))
            if not 0 <= layer < config.num_layers:
                raise ValueError(f"{source}: tensor {name!r} names layer {layer}, but the config has "
                                 f"{config.num_layers} layers")
            layers.setdefault(key, {})[layer] = value
        else:
            top[rule.param] = value
    missing = [k for k in shapes if k != "layers" and k not in top]
    for key in shapes["layers"]:
        found = layers.get(key, {})
        if len(found) < config.num_layers:
            absent = list(itertools.islice((i for i in range(config.num_layers) if i not in found), 8))
            more = config.num_layers - len(found) - len(absent)
            missing.append(f"layers/{key} (layers {absent}{f' and {more} more' if more else ''})")
    if missing:
        raise ValueError(f"{source}: missing tensors for {missing}")
    params = {k: jnp.asarray(v, dtype) for k, v in top.items()}
    params["layers"] = {k: jnp.asarray(np.stack([found[i] for i in range(config.num_layers)]), dtype)
                        for k, found in layers.items()}
    return params


def hf_tensors(config, params: Params,
               layer_tensors: Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]]
               ) -> dict[str, np.ndarray]:
    """params -> Hugging Face state-dict names and layouts (float32 numpy), for any architecture:
    the embedding, the final norm and an untied lm_head here, then block i's tensors as
    `layer_tensors(layers, i)` names and orders them (names after "model.layers.{i}."; `layers`
    holds the float32 numpy arrays stacked on L)."""
    p = {k: np.asarray(v, np.float32) for k, v in params.items() if k != "layers"}
    lp = {k: np.asarray(v, np.float32) for k, v in params["layers"].items()}
    out = {"model.embed_tokens.weight": p["embed"], "model.norm.weight": p["final_norm"]}
    if not config.tie_word_embeddings:
        out["lm_head.weight"] = p["lm_head"].T
    for i in range(config.num_layers):
        for name, value in layer_tensors(lp, i).items():
            out[f"model.layers.{i}.{name}"] = value
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def attention_hf_tensors(config, layers: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Block i's q, k, v and o projections in Hugging Face's names and [out, in] layout."""
    d = config.hidden_size
    out = {f"self_attn.{name}_proj.weight": layers[f"{name}_proj"][i].reshape(d, -1).T
           for name in ("q", "k", "v")}
    out["self_attn.o_proj.weight"] = layers["o_proj"][i].reshape(-1, d).T
    return out


def mlp_hf_tensors(layers: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Block i's gate, up and down projections in Hugging Face's names and [out, in] layout."""
    return {f"mlp.{name}_proj.weight": layers[f"{name}_proj"][i].T
            for name in ("gate", "up", "down")}


def params_to_hf_tensors(config: LlamaConfig, params: Params) -> dict[str, np.ndarray]:
    """The inverse of the HF table: params -> HF state-dict names and layouts (float32 numpy)."""

    def layer_tensors(lp, i):
        out = {"input_layernorm.weight": lp["input_norm"][i],
               "post_attention_layernorm.weight": lp["post_attn_norm"][i],
               **attention_hf_tensors(config, lp, i)}
        if config.qkv_bias:
            for name in ("q", "k", "v"):
                out[f"self_attn.{name}_proj.bias"] = lp[f"{name}_bias"][i].reshape(-1)
        out.update(mlp_hf_tensors(lp, i))
        return out

    return hf_tensors(config, params, layer_tensors)
