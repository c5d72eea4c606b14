"""Hugging Face checkpoint directories: config.json plus single or sharded *.safetensors.

This file owns reading a local checkpoint directory of a Llama, Qwen2, Mistral or Gemma-3 text
model (nothing is downloaded): `config.json` -> `LlamaConfig.from_hf_config`, or
`gemma.GemmaConfig.from_hf_config` for model types starting with "gemma" (ValueError for other
architectures and unimplemented features), tensors via
the `safetensors` numpy API (bf16 tensors, which numpy cannot name, are read from the file's
raw bytes as `ml_dtypes.bfloat16`), and the architecture's key table (`convert.HF_KEY_TABLE`,
`gemma.HF_KEY_TABLE`) to build the params.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Iterator

import ml_dtypes
import numpy as np

from lago_jax.llm.config import LlamaConfig
from lago_jax.llm.convert import HF_IGNORED, HF_KEY_TABLE, assemble_params
from lago_jax.llm.model import Params

_RAW_DTYPES = {"BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32}


def read_hf_config(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config.json in {directory!r} (expected a Hugging Face "
                                "checkpoint directory with config.json and *.safetensors)")
    with open(path) as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON ({err})") from None


def safetensors_files(directory: str) -> list[str]:
    """The weight files of a checkpoint: from model.safetensors.index.json if present."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted(set(weight_map.values()))
        # The names are checked, not where they resolve: the Hugging Face hub cache keeps every shard
        # as a symlink into ../../blobs, and that layout is a user's usual local checkpoint.
        root = os.path.abspath(directory)
        for name in files:
            target = os.path.normpath(os.path.join(root, name))
            if os.path.isabs(name) or os.path.commonpath([root, target]) != root:
                raise ValueError(f"{index} lists shard {name!r}, which lies outside the model directory "
                                 f"{directory!r}; shard names must be files inside it")
            if not os.path.isfile(os.path.join(directory, name)):
                raise FileNotFoundError(f"{index} lists shard {name!r}, which is missing from "
                                        f"{directory!r}")
        return [os.path.join(directory, n) for n in files]
    single = os.path.join(directory, "model.safetensors")
    if os.path.isfile(single):
        return [single]
    found = sorted(n for n in os.listdir(directory) if n.endswith(".safetensors"))
    if not found:
        raise FileNotFoundError(f"no *.safetensors weights in {directory!r} (expected "
                                "model.safetensors or shards listed in model.safetensors.index.json)")
    return [os.path.join(directory, n) for n in found]


def _raw_tensor(path: str, name: str) -> np.ndarray:
    """Reads one tensor from the raw safetensors layout (8-byte header size, JSON, bytes)."""
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_size))
        info = header[name]
        if info["dtype"] not in _RAW_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        f.seek(8 + header_size + start)
        data = f.read(end - start)
    return np.frombuffer(data, _RAW_DTYPES[info["dtype"]]).reshape(info["shape"])


def iter_safetensors(paths: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 numpy array) for every tensor in the files."""
    from safetensors import safe_open  # pylint: disable=import-outside-toplevel
    for path in paths:
        with safe_open(path, framework="np") as f:
            for name in f.keys():
                try:
                    array = f.get_tensor(name)
                except TypeError:  # bfloat16: not a numpy dtype
                    array = _raw_tensor(path, name)
                yield name, np.asarray(array, np.float32)


def load_hf_dir(directory: str, dtype: Any = None) -> tuple[Any, Params]:
    """Reads a local Hugging Face Llama/Qwen2/Mistral/Gemma-3-text checkpoint directory ->
    (config, params): a `LlamaConfig`, or a `gemma.GemmaConfig` for model types "gemma*".

    dtype: parameter dtype; default float32 (bf16 checkpoints are upcast unless dtype="bfloat16").
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"checkpoint directory not found: {directory!r} (expected a Hugging "
                                "Face directory with config.json and *.safetensors)")
    hf_config = read_hf_config(directory)
    if str(hf_config.get("model_type", "")).startswith("gemma"):
        from lago_jax.llm import gemma  # pylint: disable=import-outside-toplevel
        config = gemma.GemmaConfig.from_hf_config(hf_config, dtype=dtype or "float32")
        table, shapes = gemma.HF_KEY_TABLE, gemma.param_shapes(config)
    else:
        config = LlamaConfig.from_hf_config(hf_config, dtype=dtype or "float32")
        table, shapes = HF_KEY_TABLE, None
    params = assemble_params(config, iter_safetensors(safetensors_files(directory)), table,
                             ignored=HF_IGNORED, source=directory, shapes=shapes)
    return config, params
