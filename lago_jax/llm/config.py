"""Llama-family architecture configuration.

This file owns `LlamaConfig` (a frozen, validated dataclass), the named presets, and the
constructors that read a configuration from a Hugging Face `config.json` dictionary or from
GGUF metadata. Nothing here touches weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def dtype_name(dtype: Any) -> str:
    """Canonical name ("float32" or "bfloat16") of a dtype given as a string or numpy/jax dtype."""
    name = jnp.dtype(dtype).name if not isinstance(dtype, str) else dtype
    name = {"fp32": "float32", "f32": "float32", "bf16": "bfloat16"}.get(name, name)
    if name not in _DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}: expected one of {sorted(_DTYPES)}")
    return name


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Shape and numerics of a Llama-family decoder (Llama-2, TinyLlama, SmolLM2, GQA variants)."""

    vocab_size: int
    """Number of rows of the token embedding table (and columns of the lm_head)."""
    hidden_size: int
    """Model width D: size of the residual stream and of each token embedding."""
    intermediate_size: int
    """Width F of the SwiGLU MLP's gate and up projections."""
    num_layers: int
    """Number of decoder blocks L."""
    num_heads: int
    """Number of query heads N."""
    num_kv_heads: int
    """Number of key/value heads K (grouped-query attention when K < N; N must be a multiple of K)."""
    head_dim: int = 0
    """Width H of one attention head; 0 means hidden_size // num_heads. Must be even (rotary)."""
    rms_norm_eps: float = 1e-5
    """Epsilon inside every RMSNorm's square root."""
    rope_theta: float = 10000.0
    """Base of the rotary-embedding frequencies."""
    max_position_embeddings: int = 2048
    """Longest sequence (prefix plus continuation) the checkpoint was trained for."""
    tie_word_embeddings: bool = False
    """If True the lm_head reuses the embedding table (transposed) and has no weights of its own."""
    dtype: str = "float32"
    """Dtype of parameters and activations: "float32" or "bfloat16" (norms and softmax run in fp32)."""
    initializer_range: float = 0.02
    """Standard deviation of the normal init used for random (untrained) weights."""

    def __post_init__(self):
        if self.head_dim == 0:
            if self.hidden_size % self.num_heads:
                raise ValueError(
                    f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}; "
                    "set head_dim explicitly")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        object.__setattr__(self, "dtype", dtype_name(self.dtype))
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
                     "num_kv_heads", "head_dim", "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"LlamaConfig.{name} must be a positive int, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} must be a multiple of "
                             f"num_kv_heads={self.num_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for rotary embeddings")
        if not self.rms_norm_eps > 0 or not self.rope_theta > 0:
            raise ValueError(f"rms_norm_eps and rope_theta must be positive, got {self.rms_norm_eps}, "
                             f"{self.rope_theta}")

    @property
    def jnp_dtype(self):
        """The jax dtype named by `dtype`."""
        return _DTYPES[self.dtype]

    @property
    def num_groups(self) -> int:
        """Query heads per key/value head, G = N // K."""
        return self.num_heads // self.num_kv_heads

    def replace(self, **changes) -> "LlamaConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def num_params(self) -> int:
        """Number of parameters (the tied lm_head counted once)."""
        d, f, v = self.hidden_size, self.intermediate_size, self.vocab_size
        nh = self.num_heads * self.head_dim
        kvh = self.num_kv_heads * self.head_dim
        per_layer = 2 * d + d * nh + 2 * d * kvh + nh * d + 3 * d * f
        return v * d + self.num_layers * per_layer + d + (0 if self.tie_word_embeddings else d * v)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LlamaConfig":
        return cls(**dict(d))

    @classmethod
    def from_hf_config(cls, hf: Mapping[str, Any], dtype: Any = None) -> "LlamaConfig":
        """Reads a Hugging Face `config.json` dictionary of a Llama model.

        Raises ValueError when the model_type is not "llama" or a feature we do not implement
        (attention/MLP biases, rope scaling, an activation other than SiLU, attention dropout at
        inference, pretraining tensor parallelism) is switched on.
        """
        model_type = hf.get("model_type")
        if model_type != "llama":
            raise ValueError(f"config.json has model_type={model_type!r}; only 'llama' "
                             "(LlamaForCausalLM) checkpoints are supported")
        act = hf.get("hidden_act", "silu")
        if act not in ("silu", "swish"):
            raise ValueError(f"config.json has hidden_act={act!r}; this port implements SwiGLU with "
                             "'silu' only")
        if int(hf.get("pretraining_tp", 1) or 1) != 1:
            raise ValueError(f"config.json has pretraining_tp={hf.get('pretraining_tp')!r}; only 1 is "
                             "implemented")
        if hf.get("attention_bias") or hf.get("mlp_bias"):
            raise ValueError("config.json enables attention_bias/mlp_bias, which this port does not "
                             "implement")
        scaling = hf.get("rope_scaling")
        if scaling and (scaling.get("rope_type", scaling.get("type")) not in (None, "default")):
            raise ValueError(f"config.json has rope_scaling={scaling!r}; only the default rotary "
                             "embedding is implemented")
        params = hf.get("rope_parameters") or {}
        rope_type = params.get("rope_type", "default")
        if rope_type != "default":
            raise ValueError(f"config.json has rope_parameters={params!r}; only the default rotary "
                             "embedding is implemented")
        theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
        num_heads = hf["num_attention_heads"]
        if dtype is None:
            dtype = "bfloat16" if hf.get("torch_dtype", hf.get("dtype")) == "bfloat16" else "float32"
        return cls(
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=num_heads,
            num_kv_heads=hf.get("num_key_value_heads") or num_heads,
            head_dim=hf.get("head_dim") or hf["hidden_size"] // num_heads,
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta),
            max_position_embeddings=hf.get("max_position_embeddings", 2048),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            dtype=dtype,
            initializer_range=float(hf.get("initializer_range", 0.02)),
        )

    @classmethod
    def from_gguf_metadata(cls, meta: Mapping[str, Any], *, tie_word_embeddings: bool,
                           dtype: Any = "float32") -> "LlamaConfig":
        """Reads GGUF metadata (already decoded to Python values, see gguf.read_metadata).

        `tie_word_embeddings` is not a metadata key: it is True when the file has no
        `output.weight` tensor.
        """
        arch = meta.get("general.architecture")
        if arch != "llama":
            raise ValueError(f"GGUF general.architecture={arch!r}; only 'llama' is supported")
        num_heads = int(meta["llama.attention.head_count"])
        hidden = int(meta["llama.embedding_length"])
        vocab = meta.get("llama.vocab_size")
        if vocab is None:
            vocab = len(meta["tokenizer.ggml.tokens"])
        return cls(
            vocab_size=int(vocab),
            hidden_size=hidden,
            intermediate_size=int(meta["llama.feed_forward_length"]),
            num_layers=int(meta["llama.block_count"]),
            num_heads=num_heads,
            num_kv_heads=int(meta.get("llama.attention.head_count_kv", num_heads)),
            head_dim=int(meta.get("llama.attention.key_length", hidden // num_heads)),
            rms_norm_eps=float(meta.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
            rope_theta=float(meta.get("llama.rope.freq_base", 10000.0)),
            max_position_embeddings=int(meta.get("llama.context_length", 2048)),
            tie_word_embeddings=tie_word_embeddings,
            dtype=dtype,
        )


PRESETS: dict[str, LlamaConfig] = {
    "smollm2-135m": LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30, num_heads=9,
        num_kv_heads=3, rms_norm_eps=1e-5, rope_theta=1e5, max_position_embeddings=8192,
        tie_word_embeddings=True, initializer_range=0.041666666666666664),
    "tinyllama-1.1b": LlamaConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_layers=22, num_heads=32,
        num_kv_heads=4, rms_norm_eps=1e-5, rope_theta=1e4, max_position_embeddings=2048,
        tie_word_embeddings=False),
    "llama-2-7b": LlamaConfig(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_layers=32, num_heads=32,
        num_kv_heads=32, rms_norm_eps=1e-5, rope_theta=1e4, max_position_embeddings=4096,
        tie_word_embeddings=False),
    # Tiny test shape: prime vocab and MLP sizes, odd width, GQA with 3 query heads per KV head,
    # and N * H != D.
    "test-tiny": LlamaConfig(
        vocab_size=263, hidden_size=45, intermediate_size=53, num_layers=3, num_heads=9,
        num_kv_heads=3, head_dim=6, rms_norm_eps=1e-6, rope_theta=1e4,
        max_position_embeddings=128, tie_word_embeddings=False),
}


def get_preset(name: str, **overrides) -> LlamaConfig:
    """The preset called `name`, with optional field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown LlamaConfig preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
