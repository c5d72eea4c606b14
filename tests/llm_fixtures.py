"""Shared helpers for the LLM tests: tiny random transformers Llama models saved to disk.

torch and transformers are the reference here only; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np


@dataclasses.dataclass(frozen=True)
class TinySpec:
    """A tiny Hugging Face Llama configuration with odd sizes."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float
    rms_norm_eps: float
    tie_word_embeddings: bool
    vocab_size: int = 263
    max_shard_size: str | None = None  # e.g. "20KB" to get sharded safetensors


# GQA (3 query heads per kv head), head width not dividing the model width, untied, sharded.
GQA_UNTIED_SHARDED = TinySpec("gqa_untied_sharded", hidden_size=45, intermediate_size=53,
                              num_layers=3, num_heads=9, num_kv_heads=3, head_dim=6,
                              rope_theta=1e4, rms_norm_eps=1e-6, tie_word_embeddings=False,
                              max_shard_size="30KB")
# Multi-head attention (no GQA), tied embeddings, rope theta 1e5, eps 1e-5, one file.
MHA_TIED = TinySpec("mha_tied", hidden_size=42, intermediate_size=67, num_layers=2, num_heads=3,
                    num_kv_heads=3, head_dim=14, rope_theta=1e5, rms_norm_eps=1e-5,
                    tie_word_embeddings=True, vocab_size=271)


def make_hf_model(spec: TinySpec, seed: int = 0):
    """A random transformers LlamaForCausalLM (float32, eager attention) for `spec`."""
    import torch
    import transformers

    torch.manual_seed(seed)
    hf_config = transformers.LlamaConfig(
        vocab_size=spec.vocab_size, hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.head_dim, rope_theta=spec.rope_theta, rms_norm_eps=spec.rms_norm_eps,
        tie_word_embeddings=spec.tie_word_embeddings, max_position_embeddings=128,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, attn_implementation="eager")
    model = transformers.LlamaForCausalLM(hf_config).eval().float()
    # Random norm weights too, so a wrong RMSNorm cast order or a swapped norm shows up.
    return randomize_norms(model, mean=1.0, scale=0.2)


def randomize_norms(model, mean: float, scale: float, bias_scale: float | None = None):
    """Sets every norm weight of a transformers model to mean + scale * normal noise (and, with
    `bias_scale`, every bias to bias_scale * noise), in parameter order from torch's global
    generator, so a norm or bias that is missing, misplaced or applied wrongly shows up.
    Returns the model."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(mean + scale * torch.randn_like(p))
            elif bias_scale is not None and name.endswith("bias"):
                p.copy_(bias_scale * torch.randn_like(p))
    return model


def save_hf_model(model, directory: str, spec: TinySpec, dtype=None) -> str:
    import torch
    os.makedirs(directory, exist_ok=True)
    if dtype is not None:
        model = model.to(dtype)
    kwargs = {"max_shard_size": spec.max_shard_size} if spec.max_shard_size else {}
    model.save_pretrained(directory, safe_serialization=True, **kwargs)
    if dtype is not None:
        model.to(torch.float32)
    return directory


def hf_state(model) -> dict[str, np.ndarray]:
    """The model's state dict as float32 numpy arrays (tied lm_head included)."""
    return {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}


def gguf_reference(path: str):
    """transformers' reading of a GGUF file: (model in float32 with eager attention, tokenizer)."""
    import torch
    import transformers

    directory, name = os.path.dirname(path), os.path.basename(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=name, dtype=torch.float32, attn_implementation="eager").eval()
    return model, transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)


def gguf_reference_tokenizer(path: str):
    """transformers' tokenizer read from a GGUF file."""
    import transformers

    return transformers.AutoTokenizer.from_pretrained(os.path.dirname(path),
                                                      gguf_file=os.path.basename(path))


def hf_forward(model, ids: np.ndarray, attention_mask=None, position_ids=None):
    """(logits, hidden_states [L+1, B, T, D]) from transformers, float32 numpy."""
    import torch
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor(ids, dtype=torch.long),
                    attention_mask=None if attention_mask is None else torch.as_tensor(attention_mask),
                    position_ids=None if position_ids is None else torch.as_tensor(position_ids),
                    output_hidden_states=True)
    return out.logits.numpy(), np.stack([h.numpy() for h in out.hidden_states])


def rel_err(ours, ref) -> float:
    """max |ours - ref| / max |ref|."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def byte_level_tokenizer_metadata(vocab_size: int) -> dict:
    """GGUF tokenizer metadata for a tiny byte-level BPE: 256 bytes, 3 specials, a few merges."""
    from lago_jax.llm.tokenizer import _bytes_to_unicode

    byte_chars = [_bytes_to_unicode()[b] for b in range(256)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merges = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "Ġ b", "r e", "Ġ s", "e d", "Ġ r", "Ġ l", "Ġ c",
              "o n", "a l", "l l", "e r"][:max(0, vocab_size - 259)]
    merged = [m.replace(" ", "") for m in merges]
    tokens = specials + byte_chars + merged
    n_extra = vocab_size - len(tokens)
    assert n_extra >= 0, vocab_size
    tokens += [f"<|unused{i}|>" for i in range(n_extra)]
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))
    return {"model": "gpt2", "pre": "smollm", "tokens": tokens, "token_type": types,
            "merges": merges, "bos_token_id": 1, "eos_token_id": 2}


def make_gemma3_model(seed: int = 0, norm_scale: float = 0.3, **config_kwargs):
    """A random transformers Gemma3ForCausalLM (float32, eager attention) from Gemma3TextConfig
    keyword arguments; norm weights random around 0 (the stored w of the (1 + w) scale) so a
    norm applied as w, or to the wrong tensor, shows up."""
    import torch
    import transformers

    torch.manual_seed(seed)
    kwargs = dict(pad_token_id=0, eos_token_id=1, bos_token_id=2, attn_implementation="eager")
    kwargs.update(config_kwargs)
    model = transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**kwargs)).eval().float()
    return randomize_norms(model, mean=0.0, scale=norm_scale)


SENTENCEPIECE_WORDS = ("▁the", "▁red", "▁ball", "▁blue", "▁push", "▁left", "▁of", "▁to", "the",
                       "ball", "▁b", "▁r", "▁t", "th", "he", "ed", "all", "ue", "in", "  ", "\n")


def sentencepiece_tokenizer_metadata(vocab_size: int) -> dict:
    """GGUF tokenizer metadata of a tiny Gemma-style SentencePiece vocabulary ("llama" model):
    pad/eos/bos/unk and two chat specials, the 256 byte-fallback tokens, single characters and a
    few merged pieces (their order is the merge order Gemma's conversion reads), then unused
    placeholders up to `vocab_size`."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    chars = ["▁"] + list("abcdefghijklmnopqrstuvwxyz.,!")
    pieces = list(SENTENCEPIECE_WORDS)
    tokens = specials + byte_tokens + chars + pieces
    n_extra = vocab_size - len(tokens)
    assert n_extra >= 0, (vocab_size, len(tokens))
    tokens += [f"<unused{i}>" for i in range(n_extra)]
    types = [3] * len(specials) + [6] * 256 + [1] * (len(chars) + len(pieces)) + [3] * n_extra
    scores = [0.0] * len(specials) + [0.0] * 256 + [-float(i) for i in range(len(tokens) - len(specials) - 256)]
    return {"model": "llama", "tokens": tokens, "token_type": types, "scores": scores,
            "bos_token_id": 2, "eos_token_id": 1, "unknown_token_id": 3, "padding_token_id": 0,
            "add_bos_token": True}
