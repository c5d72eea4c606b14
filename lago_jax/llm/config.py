"""Llama-family architecture configuration.

This file owns `LlamaConfig` (a frozen, validated dataclass), the named presets, and the
constructors that read a configuration from a Hugging Face `config.json` dictionary (model types
"llama", "qwen2" and "mistral") or from GGUF metadata. `DecoderConfig`, the base of `LlamaConfig`
and of gemma.GemmaConfig, holds what every architecture's config shares, and the `hf_*` and
`gguf_*` helpers read the settings both architectures read the same way. Nothing here touches
weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

ROPE_TYPES = ("default", "linear", "llama3")
"""Rotary frequency schemes implemented (named as in Hugging Face's `rope_type`)."""

HF_MODEL_TYPES = ("llama", "qwen2", "mistral")
"""Hugging Face `model_type`s read by `LlamaConfig.from_hf_config`."""


def dtype_name(dtype: Any) -> str:
    """Canonical name ("float32" or "bfloat16") of a dtype given as a string or numpy/jax dtype."""
    name = jnp.dtype(dtype).name if not isinstance(dtype, str) else dtype
    name = {"fp32": "float32", "f32": "float32", "bf16": "bfloat16"}.get(name, name)
    if name not in _DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}: expected one of {sorted(_DTYPES)}")
    return name


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """What the configs of every architecture (`LlamaConfig` here, gemma.GemmaConfig) share: the
    leading shape fields, their checks, and the parameter count of the common layout (embedding,
    grouped-query attention, gated MLP, final norm, tied or untied lm_head).

    A subclass declares its own fields after these, among them `head_dim`,
    `max_position_embeddings`, `tie_word_embeddings` and `dtype`, and calls `_check_shape` from
    its `__post_init__`.
    """

    vocab_size: int
    """Number of rows of the token embedding table (and columns of the lm_head)."""
    hidden_size: int
    """Model width D: size of the residual stream and of each token embedding."""
    intermediate_size: int
    """Width F of the gated MLP's gate and up projections (SwiGLU in Llama, GeGLU in Gemma-3)."""
    num_layers: int
    """Number of decoder blocks L."""
    num_heads: int
    """Number of query heads N."""
    num_kv_heads: int
    """Number of key/value heads K (grouped-query attention when K < N; N must be a multiple of K)."""

    def _check_shape(self) -> None:
        """Canonicalizes `dtype`; ValueError unless the sizes are positive ints, N is a multiple
        of K and the head width is even."""
        object.__setattr__(self, "dtype", dtype_name(self.dtype))
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
                     "num_kv_heads", "head_dim", "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{type(self).__name__}.{name} must be a positive int, got "
                                 f"{value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} must be a multiple of "
                             f"num_kv_heads={self.num_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for rotary embeddings")

    @property
    def jnp_dtype(self):
        """The jax dtype named by `dtype`."""
        return _DTYPES[self.dtype]

    @property
    def num_groups(self) -> int:
        """Query heads per key/value head, G = N // K."""
        return self.num_heads // self.num_kv_heads

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def _extra_layer_params(self) -> int:
        """Parameters per block beyond the common layout's projections (norms, biases)."""
        raise NotImplementedError

    def num_params(self) -> int:
        """Number of parameters (a tied lm_head counted once)."""
        d, f, v = self.hidden_size, self.intermediate_size, self.vocab_size
        nh = self.num_heads * self.head_dim
        kvh = self.num_kv_heads * self.head_dim
        per_layer = d * nh + 2 * d * kvh + nh * d + 3 * d * f + self._extra_layer_params()
        return v * d + self.num_layers * per_layer + d + (0 if self.tie_word_embeddings else d * v)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        return cls(**dict(d))


@dataclasses.dataclass(frozen=True)
class LlamaConfig(DecoderConfig):
    """Shape and numerics of a Llama-family decoder.

    Covers Llama-2, TinyLlama, SmolLM2 and other GQA variants, Llama-3.x (`rope_type="llama3"`),
    Qwen2/Qwen2.5 (`qkv_bias`, optional sliding window after `full_attention_layers`) and
    Mistral (`sliding_window` in every block).
    """

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
    rope_type: str = "default"
    """Rotary frequency scheme: "default" (theta ** (-2i / H)), "linear" (default frequencies
    divided by `rope_factor`) or "llama3" (Llama-3.1's band-wise scaling: low frequencies divided by
    `rope_factor`, high ones kept, the band between interpolated)."""
    rope_factor: float = 1.0
    """Frequency scaling factor of the "linear" and "llama3" schemes; must be 1.0 for "default"."""
    rope_low_freq_factor: float = 0.0
    """"llama3" only (0.0 otherwise): wavelengths above original_max_position_embeddings /
    rope_low_freq_factor are divided by rope_factor."""
    rope_high_freq_factor: float = 0.0
    """"llama3" only (0.0 otherwise): wavelengths below original_max_position_embeddings /
    rope_high_freq_factor are kept; must exceed rope_low_freq_factor."""
    rope_original_max_position_embeddings: int = 0
    """"llama3" only (0 otherwise): the context length of pretraining before the scaling."""
    qkv_bias: bool = False
    """If True the q, k and v projections carry biases (Qwen2); the output projection never does."""
    sliding_window: int = 0
    """0: every query attends to all earlier keys. W > 0: in the blocks from
    `full_attention_layers` on, a query attends only to the W most recent keys, itself included
    (counted in sequence slots, as Hugging Face's Mistral and Qwen2 do)."""
    full_attention_layers: int = 0
    """Number of leading blocks that attend to all earlier keys although `sliding_window` > 0
    (Qwen2's `max_window_layers`; 0 for Mistral). Must be 0 without a window, and below
    num_layers with one."""

    def __post_init__(self):
        if self.head_dim == 0:
            if self.hidden_size % self.num_heads:
                raise ValueError(
                    f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}; "
                    "set head_dim explicitly")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        self._check_shape()
        if not self.rms_norm_eps > 0 or not self.rope_theta > 0:
            raise ValueError(f"rms_norm_eps and rope_theta must be positive, got {self.rms_norm_eps}, "
                             f"{self.rope_theta}")
        self._check_rope()
        self._check_window()

    def _check_rope(self) -> None:
        if self.rope_type not in ROPE_TYPES:
            raise ValueError(f"LlamaConfig.rope_type={self.rope_type!r}: expected one of {ROPE_TYPES}")
        if self.rope_type == "default" and self.rope_factor != 1.0:
            raise ValueError(f"LlamaConfig.rope_factor={self.rope_factor} has no effect with "
                             "rope_type='default'; set rope_type='linear' or 'llama3', or 1.0")
        if not self.rope_factor > 0:
            raise ValueError(f"LlamaConfig.rope_factor must be positive, got {self.rope_factor}")
        llama3 = (self.rope_low_freq_factor, self.rope_high_freq_factor,
                  self.rope_original_max_position_embeddings)
        if self.rope_type != "llama3":
            if any(llama3):
                raise ValueError(
                    "LlamaConfig.rope_low_freq_factor, rope_high_freq_factor and "
                    f"rope_original_max_position_embeddings ({llama3}) apply to rope_type='llama3' "
                    f"only; rope_type is {self.rope_type!r}")
            return
        if not 0 < self.rope_low_freq_factor < self.rope_high_freq_factor:
            raise ValueError(f"rope_type='llama3' needs 0 < rope_low_freq_factor < "
                             f"rope_high_freq_factor, got {self.rope_low_freq_factor}, "
                             f"{self.rope_high_freq_factor}")
        if (not isinstance(self.rope_original_max_position_embeddings, int)
                or self.rope_original_max_position_embeddings <= 0):
            raise ValueError("rope_type='llama3' needs a positive int "
                             "rope_original_max_position_embeddings, got "
                             f"{self.rope_original_max_position_embeddings!r}")

    def _check_window(self) -> None:
        for name in ("sliding_window", "full_attention_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"LlamaConfig.{name} must be a non-negative int, got {value!r}")
        if self.sliding_window == 0 and self.full_attention_layers:
            raise ValueError(f"LlamaConfig.full_attention_layers={self.full_attention_layers} has no "
                             "effect without a sliding_window")
        if self.sliding_window and self.full_attention_layers >= self.num_layers:
            raise ValueError(f"LlamaConfig.sliding_window={self.sliding_window} has no effect: "
                             f"full_attention_layers={self.full_attention_layers} covers all "
                             f"{self.num_layers} layers; set sliding_window=0")

    def windowed_layers(self) -> tuple[bool, ...]:
        """Per block (L entries): True where the sliding window applies."""
        return tuple(bool(self.sliding_window) and i >= self.full_attention_layers
                     for i in range(self.num_layers))

    def _extra_layer_params(self) -> int:
        """Two norms per block, and the q/k/v biases with `qkv_bias`."""
        extra = 2 * self.hidden_size
        if self.qkv_bias:
            extra += (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        return extra

    @classmethod
    def from_hf_config(cls, hf: Mapping[str, Any], dtype: Any = None) -> "LlamaConfig":
        """Reads a Hugging Face `config.json` dictionary of a Llama, Qwen2 or Mistral model.

        The rotary scheme comes from `rope_parameters` or the older `rope_scaling` (which wins
        when both are present, as in transformers), `rope_theta` from inside it or from the top
        level. Raises ValueError, in one line naming the setting, for other architectures
        (mixture-of-experts included) and for a feature this port does not implement (a rotary
        scheme other than default/linear/llama3, partial rotary, Llama's attention/MLP biases, an
        activation other than SiLU, pretraining tensor parallelism, a sliding-window layout other
        than full blocks followed by windowed ones).
        """
        model_type = hf.get("model_type")
        experts = {k: hf[k] for k in ("num_local_experts", "num_experts", "n_routed_experts")
                   if hf.get(k)}
        if experts:
            raise ValueError(f"config.json (model_type={model_type!r}) describes a mixture-of-experts "
                             f"model ({experts}); only dense MLPs are implemented")
        if model_type not in HF_MODEL_TYPES:
            raise ValueError(f"config.json has model_type={model_type!r}; supported: 'llama' "
                             "(LlamaForCausalLM), 'qwen2' (Qwen2ForCausalLM), 'mistral' "
                             "(MistralForCausalLM)")
        act = hf.get("hidden_act", "silu")
        if act not in ("silu", "swish"):
            raise ValueError(f"config.json has hidden_act={act!r}; this port implements SwiGLU with "
                             "'silu' only")
        if int(hf.get("pretraining_tp", 1) or 1) != 1:
            raise ValueError(f"config.json has pretraining_tp={hf.get('pretraining_tp')!r}; only 1 is "
                             "implemented")
        if hf.get("attention_bias") or hf.get("mlp_bias"):
            raise ValueError(f"config.json (model_type={model_type!r}) enables attention_bias/mlp_bias "
                             "(biases on the output projection or the MLP), which this port does not "
                             "implement")
        num_heads = hf["num_attention_heads"]
        num_layers = hf["num_hidden_layers"]
        return cls(
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"],
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=hf.get("num_key_value_heads") or num_heads,
            head_dim=hf.get("head_dim") or hf["hidden_size"] // num_heads,
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            max_position_embeddings=hf.get("max_position_embeddings", 2048),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            dtype=hf_dtype(hf) if dtype is None else dtype,
            initializer_range=float(hf.get("initializer_range", 0.02)),
            qkv_bias=model_type == "qwen2",
            **_hf_rope_fields(hf),
            **_hf_window_fields(hf, model_type, num_layers),
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
            raise ValueError(f"GGUF general.architecture={arch!r}; supported: 'llama' and 'gemma3'")
        scaling = meta.get("llama.rope.scaling.type")
        if scaling not in (None, "none"):
            raise ValueError(f"GGUF llama.rope.scaling.type={scaling!r}; only unscaled rotary "
                             "embeddings are read from GGUF (load the Hugging Face directory instead)")
        num_heads = int(meta["llama.attention.head_count"])
        hidden = int(meta["llama.embedding_length"])
        return cls(
            vocab_size=gguf_vocab_size(meta, arch),
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


def hf_dtype(hf: Mapping[str, Any]) -> str:
    """The dtype a Hugging Face config.json asks for: "bfloat16" when its torch_dtype (or dtype)
    says so, else "float32"."""
    return "bfloat16" if hf.get("torch_dtype", hf.get("dtype")) == "bfloat16" else "float32"


def hf_rope_type(rope: Mapping[str, Any], implemented: tuple[str, ...], prefix: str = "",
                 suffix: str = "") -> str:
    """The rotary scheme of one config.json rope dict (`rope_type`, or the older `type`);
    ValueError, "config.json has {prefix}rope_type=...{suffix}; implemented: ...", for a scheme
    not in `implemented`."""
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in implemented:
        raise ValueError(f"config.json has {prefix}rope_type={rope_type!r}{suffix}; implemented: "
                         f"{', '.join(implemented)}")
    return rope_type


def check_full_rotary(rope: Mapping[str, Any], hf: Mapping[str, Any], where: str = "") -> None:
    """ValueError unless the rope dict (or else the config.json top level) leaves
    partial_rotary_factor at 1.0; `where` names the layers the rope dict is for."""
    partial = rope.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))
    if partial is not None and float(partial) != 1.0:
        raise ValueError(f"config.json has partial_rotary_factor={partial!r}{where}; only rotary "
                         "embeddings over the whole head (1.0) are implemented")


def gguf_vocab_size(meta: Mapping[str, Any], arch: str) -> int:
    """`<arch>.vocab_size` of GGUF metadata, else the length of the tokenizer's token list."""
    vocab = meta.get(f"{arch}.vocab_size")
    if vocab is None:
        vocab = len(meta["tokenizer.ggml.tokens"])
    return int(vocab)


def _hf_rope_fields(hf: Mapping[str, Any]) -> dict[str, Any]:
    """The rope_* fields of a Hugging Face config.json, read as transformers reads them."""
    rope = hf.get("rope_scaling") or hf.get("rope_parameters") or {}
    key = "rope_scaling" if hf.get("rope_scaling") else "rope_parameters"
    if not isinstance(rope, Mapping) or any(isinstance(v, Mapping) for v in rope.values()):
        raise ValueError(f"config.json has per-layer-type {key}={rope!r}; one rotary scheme for all "
                         "layers is implemented")
    rope_type = hf_rope_type(rope, ROPE_TYPES, prefix=f"{key} with ")
    check_full_rotary(rope, hf)
    fields: dict[str, Any] = {
        "rope_theta": float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        "rope_type": rope_type,
    }
    if rope_type in ("linear", "llama3"):
        if "factor" not in rope:
            raise ValueError(f"config.json has {key} with rope_type={rope_type!r} but no 'factor'")
        fields["rope_factor"] = float(rope["factor"])
    if rope_type == "llama3":
        missing = [k for k in ("low_freq_factor", "high_freq_factor") if k not in rope]
        if missing:
            raise ValueError(f"config.json has {key} with rope_type='llama3' but no {missing}")
        # transformers prefers a top-level original_max_position_embeddings, then the rope dict's,
        # then max_position_embeddings.
        original = hf.get("original_max_position_embeddings",
                          rope.get("original_max_position_embeddings",
                                   hf.get("max_position_embeddings")))
        fields.update(rope_low_freq_factor=float(rope["low_freq_factor"]),
                      rope_high_freq_factor=float(rope["high_freq_factor"]),
                      rope_original_max_position_embeddings=int(original))
    return fields


_WINDOW_LAYER_TYPES = ("full_attention", "sliding_attention")


def _hf_window_fields(hf: Mapping[str, Any], model_type: str, num_layers: int) -> dict[str, int]:
    """sliding_window and full_attention_layers, as transformers' Mistral and Qwen2 set them up.

    Mistral windows every block when `sliding_window` is set. Qwen2 windows only with
    `use_sliding_window`, and only the blocks that `layer_types` marks "sliding_attention"
    (by default those from `max_window_layers` on).
    """
    if model_type == "llama":
        return {}
    if model_type == "mistral":
        window = hf.get("sliding_window")
        default_types = ["sliding_attention" if window else "full_attention"] * num_layers
    else:
        window = hf.get("sliding_window") if hf.get("use_sliding_window") else None
        start = hf.get("max_window_layers", 28)
        default_types = ["sliding_attention" if window and i >= start else "full_attention"
                         for i in range(num_layers)]
    if window is not None and (not isinstance(window, int) or window <= 0):
        raise ValueError(f"config.json has sliding_window={window!r}; expected a positive int or null")
    layer_types = list(hf.get("layer_types") or default_types)
    if len(layer_types) != num_layers or not set(layer_types) <= set(_WINDOW_LAYER_TYPES):
        raise ValueError(f"config.json has layer_types={layer_types!r}; expected {num_layers} entries "
                         f"from {_WINDOW_LAYER_TYPES}")
    if model_type == "mistral" and layer_types != default_types:
        raise ValueError(f"config.json (model_type='mistral', sliding_window={window!r}) has "
                         f"layer_types={layer_types!r}; MistralForCausalLM applies one attention "
                         "kind to every layer, and alternating layers are not implemented")
    if "sliding_attention" in layer_types and not window:
        raise ValueError(f"config.json has layer_types with 'sliding_attention' but no active "
                         f"sliding_window (sliding_window={hf.get('sliding_window')!r}, "
                         f"use_sliding_window={hf.get('use_sliding_window')!r})")
    num_full = layer_types.count("full_attention")
    if layer_types != ["full_attention"] * num_full + ["sliding_attention"] * (num_layers - num_full):
        raise ValueError(f"config.json has layer_types={layer_types!r}; only full-attention layers "
                         "followed by sliding-window layers are implemented")
    if num_full == num_layers:
        return {"sliding_window": 0, "full_attention_layers": 0}
    return {"sliding_window": int(window), "full_attention_layers": num_full}


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
