"""Which architecture a config or a GGUF file belongs to: the one place that knows both the
Llama family (lago_jax.llm.model) and Gemma-3 (lago_jax.llm.gemma), so that neither imports the
other's dispatch."""

from __future__ import annotations

from typing import Any

from lago_jax.llm import gemma
from lago_jax.llm import gguf as gguf_io
from lago_jax.llm import model
from lago_jax.llm.config import LlamaConfig
from lago_jax.llm.model import Params


def functions_for(config: Any):
    """The module of pure functions (embed_tokens, forward_embeds, forward_ids, lm_logits,
    prefill_prefix, forward_with_prefix, param_shapes, init_params, check_params,
    token_embedding_rms) for `config`'s architecture: lago_jax.llm.model for a `LlamaConfig`,
    lago_jax.llm.gemma for a `GemmaConfig`. TypeError for anything else."""
    if isinstance(config, LlamaConfig):
        return model
    if isinstance(config, gemma.GemmaConfig):
        return gemma
    raise TypeError(f"no LLM architecture for a config of type {type(config).__name__}; expected "
                    "LlamaConfig or GemmaConfig")


def load_gguf(path: str, dtype: Any = None) -> tuple[Any, Params, dict[str, Any]]:
    """Reads a Llama ("llama") or Gemma-3 ("gemma3") GGUF file -> (config, params, metadata);
    the config is a `LlamaConfig` or a `gemma.GemmaConfig` (see `gguf.load_gguf` and
    `gemma.load_gguf` for what each checks)."""
    if gguf_io.read_metadata(path).get("general.architecture") == gemma.GGUF_ARCHITECTURE:
        return gemma.load_gguf(path, dtype)
    return gguf_io.load_gguf(path, dtype)
