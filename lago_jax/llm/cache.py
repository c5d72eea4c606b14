"""Key/value caches for the LLM ports (Llama family, Gemma-3), as immutable pytrees passed in
and returned.

Two kinds:
- `KVCache`: one cache per batch row, for prefill-then-decode generation. Keys and values are
  written at slot `index` onwards; `key_mask_bs` marks which slots hold real (non-padding) keys.
- `PrefixCache`: the keys and values of one or more fixed prefixes (instructions), computed once
  by `model.prefill_prefix` and shared by any number of continuations. It has no batch axis of
  its own: a batch of continuations either broadcasts a single prefix (P = 1) or picks one of the
  P stacked prefixes per row with an index.

Shape letters: L layers, B batch, P prefixes, S cache slots, K key/value heads, H head width.
Keys are stored after the rotary embedding, so their positions are already baked in.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct

from lago_jax.llm.config import LlamaConfig


@struct.dataclass
class KVCache:
    """Per-row cache for generation.

    Attributes:
      k_lbskh: keys, [L, B, S, K, H], rotary already applied.
      v_lbskh: values, [L, B, S, K, H].
      key_mask_bs: [B, S] bool, True where a slot holds a real key (written and not padding).
      index: int32 scalar, the next slot to write (same for every row).
    """

    k_lbskh: jax.Array
    v_lbskh: jax.Array
    key_mask_bs: jax.Array
    index: jax.Array

    @property
    def capacity(self) -> int:
        """Number of slots S."""
        return self.k_lbskh.shape[2]

    def nbytes(self) -> int:
        return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(self))


def init_cache(config: LlamaConfig, batch_size: int, capacity: int, dtype=None) -> KVCache:
    """An empty KVCache with `capacity` slots per row, in the config's dtype unless given."""
    dtype = dtype or config.jnp_dtype
    shape = (config.num_layers, batch_size, capacity, config.num_kv_heads, config.head_dim)
    return KVCache(
        k_lbskh=jnp.zeros(shape, dtype),
        v_lbskh=jnp.zeros(shape, dtype),
        key_mask_bs=jnp.zeros((batch_size, capacity), bool),
        index=jnp.zeros((), jnp.int32),
    )


@struct.dataclass
class PrefixCache:
    """Keys and values of P prefixes, right-padded to a common length S.

    Attributes:
      k_lpskh: keys, [L, P, S, K, H], rotary applied at positions 0 .. length[p] - 1.
      v_lpskh: values, [L, P, S, K, H].
      key_mask_ps: [P, S] bool, True for the real tokens of each prefix.
      length_p: [P] int32, number of real tokens in each prefix; a continuation of prefix p
        starts at rotary position length_p[p].
    """

    k_lpskh: jax.Array
    v_lpskh: jax.Array
    key_mask_ps: jax.Array
    length_p: jax.Array

    @property
    def num_prefixes(self) -> int:
        return self.k_lpskh.shape[1]

    def nbytes(self) -> int:
        return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(self))

    def check(self, config: LlamaConfig) -> None:
        """Asserts the shapes agree with `config`."""
        num_p, num_s = self.key_mask_ps.shape
        chex.assert_shape([self.k_lpskh, self.v_lpskh],
                          (config.num_layers, num_p, num_s, config.num_kv_heads, config.head_dim))
        chex.assert_shape(self.length_p, (num_p,))
