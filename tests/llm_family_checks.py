"""Checks shared by the architecture test modules (test_llm_families.py for the Llama family,
test_llm_gemma.py for Gemma-3): tiny random transformers models saved with `save_pretrained` and
loaded by both sides from the same directory, and the parity checks every family runs against
transformers (logits and hidden states unpadded and left-padded, KV-cache decoding, the prefix
cache against the uncached forward).

A test module lists its `Family` entries, builds its `built` and `family` fixtures with
`family_fixtures`, and calls the `check_*` functions from its own tests with its own
tolerances."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
import pytest

from lago_jax import llm

from llm_fixtures import hf_forward, rel_err

TOL = 1e-5
"""Relative logit/hidden error allowed against transformers (measured: about 1e-6 on every
family)."""
T = 11
"""Test sequence length; every window of the families is shorter."""
VOCAB = 263
ROPE_MAX_ULP = 1
"""transformers' float32 `theta ** x` is within one unit in the last place of the correctly
rounded power that `rope_inv_freq` uses (torch's vectorized and scalar-tail paths differ from
each other by as much); every later operation is the same float32 operation in the same order."""


@dataclasses.dataclass(frozen=True)
class Family:
    """A tiny transformers model of one family, the config.json edits applied after saving it, and
    the config fields expected from that directory."""

    name: str
    hf_kwargs: dict[str, Any]
    expect: dict[str, Any]
    rewrite: Optional[Callable[[dict[str, Any]], dict[str, Any]]] = None
    arch: str = ""
    """transformers' class-name prefix of a Llama-family model (<arch>ForCausalLM built from
    <arch>Config); Gemma-3 families leave it empty."""


def save_and_reload(model, directory: str, rewrite=None):
    """Saves a transformers model to `directory`, applies `rewrite` to its config.json, and
    returns transformers' reading of the saved directory (float32, eager attention)."""
    import torch
    import transformers

    model.save_pretrained(directory, safe_serialization=True)
    if rewrite is not None:
        path = os.path.join(directory, "config.json")
        with open(path) as f:
            cfg = rewrite(json.load(f))
        with open(path, "w") as f:
            json.dump(cfg, f)
    return transformers.AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, attn_implementation="eager").eval()


def family_fixtures(families: Sequence[Family], make_model: Callable[[Family], Any]):
    """The fixtures `built` (module scope: name -> (family, transformers model, config, params,
    directory), each built once from `make_model(family)`, saved and loaded by both sides) and
    `family` (one test per entry of `families`). Assign them to module names `built` and
    `family`."""
    by_name = {f.name: f for f in families}

    @pytest.fixture(scope="module")
    def built(tmp_path_factory):
        cache = {}

        def get(name):
            if name not in cache:
                fam = by_name[name]
                directory = str(tmp_path_factory.mktemp(name))
                ref = save_and_reload(make_model(fam), directory, fam.rewrite)
                config, params, _ = llm.load_pretrained(directory)
                cache[name] = fam, ref, config, params, directory
            return cache[name]

        return get

    @pytest.fixture(params=[f.name for f in families])
    def family(request, built):  # pylint: disable=redefined-outer-name
        return built(request.param)

    return built, family


@functools.partial(jax.jit, static_argnums=0)
def forward_all(config, params, ids, positions, mask):
    """(logits, hidden_states [L + 1, B, T, D]) of `llm.forward_ids`."""
    return llm.forward_ids(config, params, ids, positions, mask, return_hidden_states=True)[:2]


@functools.partial(jax.jit, static_argnums=0)
def final_hidden(config, params, ids, positions, mask):
    """Final-normed hidden states of the whole sequence (no cache)."""
    return llm.forward_embeds(config, params, llm.embed_tokens(config, params, ids), positions,
                              mask)[0]


step = jax.jit(llm.forward_ids, static_argnums=0)
with_prefix = jax.jit(llm.forward_with_prefix, static_argnums=0)


def random_ids(shape, seed, vocab=VOCAB):
    """Token ids from 3 up (below the specials' ids 0..2)."""
    return np.random.default_rng(seed).integers(3, vocab, size=shape).astype(np.int32)


def left_padded(mask):
    """Positions of a left-padded batch: real tokens count from 0, padding sits at 0."""
    return np.clip(np.cumsum(mask, -1) - 1, 0, None).astype(np.int32)


def check_config_and_parameter_count(entry, config_class) -> None:
    """The expected config fields, the parameter count of transformers' model and of the params,
    and a JSON round trip of the config."""
    fam, ref, config, params, _ = entry
    assert isinstance(config, config_class)
    for field, value in fam.expect.items():
        assert getattr(config, field) == value, (field, getattr(config, field), value)
    n_ref = sum(p.numel() for p in ref.parameters())  # a tied head is one shared tensor
    assert config.num_params() == n_ref == sum(x.size for x in jax.tree.leaves(params))
    assert config_class.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def check_logits_and_hidden_states(entry) -> None:
    """Unpadded and left-padded batches: every layer's hidden states and the logits."""
    _, ref, config, params, _ = entry
    b = 3
    ids = random_ids((b, T), seed=0)
    mask = np.ones((b, T), np.int32)
    mask[1, :4] = 0
    mask[2, :1] = 0
    for m in (np.ones_like(mask), mask):
        positions = left_padded(m)
        ref_logits, ref_hidden = hf_forward(ref, ids, attention_mask=m, position_ids=positions)
        logits, hidden = forward_all(config, params, ids, positions, m)
        real = m.astype(bool)
        logits = np.asarray(logits)
        assert rel_err(logits[real], ref_logits[real]) < TOL
        np.testing.assert_array_equal(logits[real].argmax(-1), ref_logits[real].argmax(-1))
        for layer in range(config.num_layers + 1):
            assert rel_err(np.asarray(hidden[layer])[real], ref_hidden[layer][real]) < TOL, layer


def check_configs_change_logits(entry, configs, min_rel_err: float) -> None:
    """Each of `configs` (the entry's config with a feature changed) gives logits of the same
    weights that differ from transformers' by more than `min_rel_err`: the parity checks would
    catch that feature applied wrongly."""
    _, ref, _, params, _ = entry
    ids = random_ids((1, T), seed=1)
    ones = np.ones((1, T), np.int32)
    ref_logits, _ = hf_forward(ref, ids)
    for config in configs:
        logits, _ = forward_all(config, params, ids, left_padded(ones), ones)
        assert rel_err(logits, ref_logits) > min_rel_err, config


def check_kv_cache_decoding(entry) -> None:
    """Left-padded prompts prefilled into a KVCache, then one token at a time, past the window."""
    _, ref, config, params, _ = entry
    b, t0 = 2, 5
    ids = random_ids((b, T), seed=2)
    mask = np.ones((b, T), np.int32)
    mask[1, :2] = 0
    positions = left_padded(mask)
    ref_logits, _ = hf_forward(ref, ids, attention_mask=mask, position_ids=positions)
    cache = llm.init_cache(config, b, T)
    logits, _, cache = step(config, params, ids[:, :t0], positions[:, :t0], mask[:, :t0],
                            cache=cache)
    got = [np.asarray(logits)]
    for i in range(t0, T):
        logits, _, cache = step(config, params, ids[:, i:i + 1], positions[:, i:i + 1],
                                mask[:, i:i + 1], cache=cache)
        got.append(np.asarray(logits))
    got = np.concatenate(got, axis=1)
    real = mask.astype(bool)
    assert rel_err(got[real], ref_logits[real]) < TOL
    assert int(cache.index) == T


def check_prefix_cache(entry, atol: float, relative_to_max: bool = False) -> None:
    """The LaGO prior's two paths: cached prefixes + continuation vs the whole sequence (one
    prefix broadcast; two right-padded prefixes chosen per row vs left-padded full sequences),
    within `atol` (times max |uncached hidden| when `relative_to_max`), and both vs
    transformers."""
    _, ref, config, params, _ = entry
    k, b = 3, 4
    prefixes = [random_ids((7,), seed=3), random_ids((4,), seed=4)]
    cont_ids = random_ids((b, k), seed=5)
    cont = llm.embed_tokens(config, params, cont_ids)
    width = max(len(p) for p in prefixes)

    def assert_close(hidden, full):
        bound = atol * np.abs(full).max() if relative_to_max else atol
        np.testing.assert_allclose(hidden, full, atol=bound, rtol=0)

    shared = llm.prefill_prefix(config, params, prefixes[0])
    hidden = np.asarray(with_prefix(config, params, shared, cont))
    ids = np.concatenate([np.broadcast_to(prefixes[0], (b, 7)), cont_ids], axis=1)
    ones = np.ones(ids.shape, np.int32)
    full = np.asarray(final_hidden(config, params, ids, left_padded(ones), ones))[:, -k:]
    assert_close(hidden, full)
    _, ref_hidden = hf_forward(ref, ids)
    assert rel_err(hidden, ref_hidden[-1][:, -k:]) < TOL

    stacked = llm.prefill_prefix(config, params, [list(p) for p in prefixes])
    index = np.array([1, 0, 1, 1], np.int32)
    hidden = np.asarray(with_prefix(config, params, stacked, cont, index))
    ids = np.zeros((b, width + k), np.int32)
    mask = np.zeros(ids.shape, np.int32)
    for row, p in enumerate(index):
        ids[row, width - len(prefixes[p]):width] = prefixes[p]
        mask[row, width - len(prefixes[p]):] = 1
    ids[:, width:] = cont_ids
    positions = left_padded(mask)
    full = np.asarray(final_hidden(config, params, ids, positions, mask))[:, -k:]
    assert_close(hidden, full)
    _, ref_hidden = hf_forward(ref, ids, attention_mask=mask, position_ids=positions)
    assert rel_err(hidden, ref_hidden[-1][:, -k:]) < TOL


def check_refused_in_one_line(read: Callable[[], Any], match: str) -> None:
    """`read()` raises ValueError matching `match`, in one line."""
    with pytest.raises(ValueError, match=match) as info:
        read()
    assert "\n" not in str(info.value)


def check_converted_round_trip(path: str, config, params, tokenizer=None):
    """save_converted then load_converted gives back the config and the params bit for bit;
    returns the tokenizer read back."""
    llm.save_converted(path, config, params, tokenizer)
    config2, params2, tokenizer2 = llm.load_converted(path)
    assert config2 == config and type(config2) is type(config)
    jax.tree.map(np.testing.assert_array_equal, params2, params)
    return tokenizer2
