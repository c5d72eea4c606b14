"""Content digests of pytrees: what checkpoints and the converted-weights cache record when they
write arrays and check when they read them back (a flipped bit is an error, not other weights)."""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np


def tree_digest(tree: Any) -> str:
    """SHA-256 (hex) over every leaf's path, dtype, shape and bytes, in the order of the leaves'
    paths (so a dict's insertion order does not matter). Leaves are copied to the host."""
    digest = hashlib.sha256()
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    for key_path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
        arr = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(key_path)}|{arr.dtype}|{arr.shape}|".encode())
        digest.update(arr.reshape(-1).view(np.uint8) if arr.size else b"")
    return digest.hexdigest()
