"""GGUF (llama.cpp) files: read a Llama model's config, weights and tokenizer; write tiny ones.

Gemma-3 files (architecture "gemma3") are dispatched to lago_jax.llm.gemma's config reader and
key table from `load_gguf`; the metadata reading and dequantization here serve both.

This file owns everything GGUF-specific:
- metadata decoding (`read_metadata`) and `LlamaConfig.from_gguf_metadata`;
- the GGUF key table (`GGUF_KEY_TABLE`): llama.cpp tensor names -> params, with the two
  storage traps undone: GGUF lists tensor dims in reverse (fastest-varying first), and
  llama.cpp's converter permutes the rows of attn_q / attn_k for its interleaved rotary layout
  (`permute_qk`); `unpermute_qk` restores the half-split layout used here and by Hugging Face;
- dequantization with `gguf.quants.dequantize`;
- `write_gguf`, which writes a Llama model the way llama.cpp's converter does (used by tests),
  from `new_writer` and `write_tensors`, which gemma.write_gguf uses as well.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Optional

import numpy as np

from lago_jax.llm.config import LlamaConfig
from lago_jax.llm.convert import HF_KEY_TABLE, KeyRule, assemble_params, params_to_hf_tensors
from lago_jax.llm.model import Params


def _gguf():
    import gguf  # pylint: disable=import-outside-toplevel
    return gguf


# ----------------------------------------------------------------------------- q/k row order


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter permutation of q/k rows: half-split -> interleaved rotary pairs.

    w: [n_head * H, ...]. Within each head, row i of the first half and row i of the second half
    become adjacent rows 2i, 2i + 1.
    """
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of `permute_qk`: interleaved rotary pairs -> half-split rows."""
    rows = w.shape[0]
    return (w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


# ----------------------------------------------------------------------------- key table


_HF = {r.param: r for r in HF_KEY_TABLE}

GGUF_KEY_TABLE: tuple[KeyRule, ...] = (
    _HF["embed"].renamed(r"token_embd\.weight"),
    _HF["final_norm"].renamed(r"output_norm\.weight"),
    _HF["lm_head"].renamed(r"output\.weight"),
    _HF["layers/input_norm"].renamed(r"blk\.(\d+)\.attn_norm\.weight"),
    _HF["layers/q_proj"].renamed(r"blk\.(\d+)\.attn_q\.weight",
                                 pre=lambda w, c: unpermute_qk(w, c.num_heads)),
    _HF["layers/k_proj"].renamed(r"blk\.(\d+)\.attn_k\.weight",
                                 pre=lambda w, c: unpermute_qk(w, c.num_kv_heads)),
    _HF["layers/v_proj"].renamed(r"blk\.(\d+)\.attn_v\.weight"),
    _HF["layers/o_proj"].renamed(r"blk\.(\d+)\.attn_output\.weight"),
    _HF["layers/post_attn_norm"].renamed(r"blk\.(\d+)\.ffn_norm\.weight"),
    _HF["layers/gate_proj"].renamed(r"blk\.(\d+)\.ffn_gate\.weight"),
    _HF["layers/up_proj"].renamed(r"blk\.(\d+)\.ffn_up\.weight"),
    _HF["layers/down_proj"].renamed(r"blk\.(\d+)\.ffn_down\.weight"),
)
"""llama.cpp tensor names -> params. Shapes are in numpy order (GGUF dims reversed), which for
Llama equals the Hugging Face [out, in] layout; q/k rows are un-permuted first."""

_HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


# ----------------------------------------------------------------------------- reading


def _reader(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GGUF file not found: {path!r} (expected a llama.cpp .gguf file)")
    return _gguf().GGUFReader(path)


def read_metadata(path_or_reader: Any) -> dict[str, Any]:
    """All key/value metadata of a GGUF file, decoded to Python values (strings, numbers, lists)."""
    reader = _reader(path_or_reader) if isinstance(path_or_reader, str) else path_or_reader
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = field.contents()
        if isinstance(value, np.generic):
            value = value.item()
        meta[key] = value
    return meta


def _dequantized_tensors(reader) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 array in numpy order) for every tensor in the file."""
    dequantize = _gguf().quants.dequantize
    for tensor in reader.tensors:
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))  # GGUF dims are reversed
        array = dequantize(tensor.data, tensor.tensor_type)
        yield tensor.name, np.asarray(array, np.float32).reshape(shape)


def load_gguf(path: str, dtype: Any = None) -> tuple[Any, Params, dict[str, Any]]:
    """Reads a Llama-family ("llama") GGUF file -> (config, params, metadata). Gemma-3 files:
    `gemma.load_gguf`; either: `arch.load_gguf`.

    Raises FileNotFoundError for a missing file, ValueError for another architecture or a
    tensor whose shape disagrees with the metadata (naming the tensor, expected and found shape).
    """
    reader = _reader(path)
    meta = read_metadata(reader)
    names = {t.name for t in reader.tensors}
    if meta.get("general.architecture") == "gemma3":
        raise ValueError(f"{path}: a Gemma-3 GGUF file; read it with lago_jax.llm.gemma.load_gguf "
                         "(or lago_jax.llm.load_pretrained)")
    if "rope_freqs.weight" in names:
        raise ValueError(f"{path}: tensor 'rope_freqs.weight' (Llama-3 rotary scaling as llama.cpp "
                         "stores it) is not read from GGUF; load the Hugging Face directory instead")
    config = LlamaConfig.from_gguf_metadata(meta, tie_word_embeddings="output.weight" not in names,
                                            dtype=dtype or "float32")
    if int(meta.get("llama.rope.dimension_count", config.head_dim)) != config.head_dim:
        raise ValueError(f"{path}: partial rotary (llama.rope.dimension_count="
                         f"{meta['llama.rope.dimension_count']}, head_dim={config.head_dim}) is not "
                         "supported")
    params = assemble_params(config, _dequantized_tensors(reader), GGUF_KEY_TABLE, source=path)
    return config, params, meta


# ----------------------------------------------------------------------------- writing


def write_gguf(path: str, config: LlamaConfig, hf_tensors: Optional[dict[str, np.ndarray]] = None,
               params: Optional[Params] = None,
               tokenizer_metadata: Optional[dict[str, Any]] = None) -> None:
    """Writes a float32 Llama GGUF file the way llama.cpp's converter lays it out.

    Give either Hugging Face-named tensors ([out, in] layout) or our params. q/k rows are permuted
    with `permute_qk`, names are mapped to llama.cpp's, and the writer stores dims reversed.
    tokenizer_metadata: optional {"tokens": [...], "merges": [...], "token_type": [...],
    "bos_token_id": int, "eos_token_id": int, "model": "gpt2", "pre": str}.
    """
    unwritten = {name: getattr(config, name) for name in ("rope_type", "qkv_bias", "sliding_window")
                 if getattr(config, name) != getattr(LlamaConfig, name)}
    if unwritten:
        raise ValueError(f"write_gguf writes plain Llama files only; this config has {unwritten}")
    gguf = _gguf()
    if hf_tensors is None:
        hf_tensors = params_to_hf_tensors(config, params)
    writer = new_writer(path, "llama", config)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if tokenizer_metadata:
        tm = tokenizer_metadata
        writer.add_tokenizer_model(tm.get("model", "gpt2"))
        if "pre" in tm:
            writer.add_tokenizer_pre(tm["pre"])
        writer.add_token_list(tm["tokens"])
        if "token_type" in tm:
            writer.add_token_types(tm["token_type"])
        if "merges" in tm:
            writer.add_token_merges(tm["merges"])
        if "bos_token_id" in tm:
            writer.add_bos_token_id(tm["bos_token_id"])
        if "eos_token_id" in tm:
            writer.add_eos_token_id(tm["eos_token_id"])
        writer.add_add_bos_token(bool(tm.get("add_bos_token", False)))

    def to_gguf(name, w):
        if name.startswith("model.layers."):
            layer, rest = name[len("model.layers."):].split(".", 1)
            if rest == "self_attn.q_proj.weight":
                w = permute_qk(w, config.num_heads)
            elif rest == "self_attn.k_proj.weight":
                w = permute_qk(w, config.num_kv_heads)
            return f"blk.{layer}.{_HF_TO_GGUF[rest]}", w
        return _HF_TO_GGUF[name], w

    write_tensors(writer, config, hf_tensors, to_gguf)


def new_writer(path: str, arch: str, config: Any):
    """A gguf.GGUFWriter for `arch` holding the model name "lago-jax-<arch>" and the shape keys
    both architectures write (context, width, depth, MLP width, heads, kv heads, key and value
    widths); the caller adds the rest of the metadata."""
    writer = _gguf().GGUFWriter(path, arch)
    writer.add_name(f"lago-jax-{arch}")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_heads)
    writer.add_head_count_kv(config.num_kv_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    return writer


def write_tensors(writer, config: Any, hf_tensors: dict[str, np.ndarray],
                  to_gguf: Callable[[str, np.ndarray], tuple[str, np.ndarray]]) -> None:
    """Adds the Hugging Face-named tensors (a tied lm_head skipped) as float32 under the names and
    in the layouts `to_gguf(name, w)` gives, then writes the file and closes `writer`."""
    for name, w in hf_tensors.items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        gguf_name, w = to_gguf(name, np.asarray(w, np.float32))
        writer.add_tensor(gguf_name, np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
