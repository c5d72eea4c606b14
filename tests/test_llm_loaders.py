"""Loaders: GGUF (q/k permutation, reversed dims, tokenizer metadata), Hugging Face directories
(fp32 and bf16 safetensors), error messages, and Orbax save/load of converted params."""

import json
import os

import jax
import numpy as np
import pytest

from lago_jax import llm
from lago_jax.llm import gguf as gguf_io
from lago_jax.llm import hf

from llm_fixtures import (GQA_UNTIED_SHARDED, MHA_TIED, byte_level_tokenizer_metadata,
                          gguf_reference_tokenizer, hf_forward, hf_state, make_hf_model, rel_err,
                          save_hf_model)

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def gqa_model():
    return make_hf_model(GQA_UNTIED_SHARDED, seed=1)


@pytest.fixture(scope="module")
def tiny_gguf(gqa_model, tmp_path_factory):
    """A float32 GGUF written like llama.cpp's converter, with a byte-level tokenizer."""
    path = str(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    config = llm.LlamaConfig.from_hf_config(gqa_model.config.to_dict())
    gguf_io.write_gguf(path, config, hf_tensors=hf_state(gqa_model),
                       tokenizer_metadata=byte_level_tokenizer_metadata(config.vocab_size))
    return path


def _forward(config, params, ids):
    return jax.jit(llm.forward_ids, static_argnums=0)(config, params, ids)[0]


def test_permute_qk_is_llama_cpp_layout_and_inverse():
    n_head, head_dim, cols = 3, 6, 5
    w = np.random.default_rng(0).normal(size=(n_head * head_dim, cols))
    permuted = gguf_io.permute_qk(w, n_head)
    # Within a head, half-split rows (i, i + H/2) become the adjacent pair (2i, 2i + 1).
    for head in range(n_head):
        for i in range(head_dim // 2):
            np.testing.assert_array_equal(permuted[head * head_dim + 2 * i], w[head * head_dim + i])
            np.testing.assert_array_equal(permuted[head * head_dim + 2 * i + 1],
                                          w[head * head_dim + head_dim // 2 + i])
    np.testing.assert_array_equal(gguf_io.unpermute_qk(permuted, n_head), w)
    np.testing.assert_array_equal(gguf_io.permute_qk(gguf_io.unpermute_qk(w, n_head), n_head), w)
    assert not np.array_equal(permuted, w)


def test_gguf_file_layout(tiny_gguf):
    """The writer stores reversed dims and permuted q rows, as llama.cpp files do."""
    import gguf
    reader = gguf.GGUFReader(tiny_gguf)
    tensors = {t.name: t for t in reader.tensors}
    c = GQA_UNTIED_SHARDED
    assert list(tensors["blk.0.attn_q.weight"].shape) == [c.hidden_size, c.num_heads * c.head_dim]
    assert list(tensors["token_embd.weight"].shape) == [c.hidden_size, c.vocab_size]
    assert list(tensors["blk.0.ffn_down.weight"].shape) == [c.intermediate_size, c.hidden_size]


def test_gguf_loader_matches_transformers(gqa_model, tiny_gguf):
    config, params, tokenizer = llm.load_pretrained(tiny_gguf)
    assert config.num_kv_heads == GQA_UNTIED_SHARDED.num_kv_heads
    assert not config.tie_word_embeddings
    ids = np.random.default_rng(0).integers(3, config.vocab_size, (2, 9)).astype(np.int32)
    ref_logits, _ = hf_forward(gqa_model, ids)
    assert rel_err(_forward(config, params, ids), ref_logits) < 1e-5
    assert tokenizer is not None and tokenizer.bos_id == 1 and tokenizer.eos_id == 2


def test_transformers_reads_our_gguf_the_same_way(gqa_model, tiny_gguf):
    """An independent reader (transformers' GGUF loader, which undoes llama.cpp's permutation
    itself) recovers the original weights from the file we wrote."""
    import transformers
    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(tiny_gguf), gguf_file=os.path.basename(tiny_gguf), dtype=torch.float32)
    ours, theirs = hf_state(gqa_model), hf_state(model)
    for name in ("model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
                 "model.layers.0.mlp.down_proj.weight", "lm_head.weight"):
        np.testing.assert_array_equal(theirs[name], ours[name], err_msg=name)


def test_gguf_tokenizer_matches_transformers(tiny_gguf):
    ref = gguf_reference_tokenizer(tiny_gguf)
    tok = llm.Tokenizer.from_gguf_metadata(gguf_io.read_metadata(tiny_gguf))
    for text in ["the bin is red", "Hello, world!", "<|im_start|>user\nthe red ball<|im_end|>",
                 "tabs\tand\nnewlines  here", "héllo ☃"]:
        ids = tok.encode(text)
        assert ids == ref.encode(text, add_special_tokens=False), text
        assert tok.decode(ids) == text
    assert tok.encode("<|im_start|>") == [1]


def test_gguf_non_llama_architecture_rejected(tmp_path):
    import gguf
    path = str(tmp_path / "gpt2.gguf")
    writer = gguf.GGUFWriter(path, "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 3), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="general.architecture='gpt2'"):
        llm.load_pretrained(path)


def test_gguf_shape_mismatch_names_tensor(gqa_model, tmp_path):
    config = llm.LlamaConfig.from_hf_config(gqa_model.config.to_dict())
    tensors = hf_state(gqa_model)
    tensors["model.layers.1.mlp.up_proj.weight"] = tensors["model.layers.1.mlp.up_proj.weight"][:-1]
    path = str(tmp_path / "bad.gguf")
    gguf_io.write_gguf(path, config, hf_tensors=tensors)
    with pytest.raises(ValueError, match=r"blk\.1\.ffn_up\.weight.*\(52, 45\).*\(53, 45\)"):
        llm.load_pretrained(path)


def test_hf_bf16_checkpoint_loads(tmp_path):
    """bf16 safetensors (not a numpy dtype) load; fp32 forward matches the bf16 weights exactly."""
    model = make_hf_model(MHA_TIED, seed=2)
    directory = save_hf_model(model, str(tmp_path / "bf16"), MHA_TIED, dtype=torch.bfloat16)
    config, params, _ = llm.load_pretrained(directory)
    assert config.dtype == "float32"
    expected = model.model.embed_tokens.weight.detach().to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(np.asarray(params["embed"]), expected)
    config16, params16, _ = llm.load_pretrained(directory, dtype="bfloat16")
    assert config16.dtype == "bfloat16" and params16["embed"].dtype == np.dtype("bfloat16")


def test_missing_paths_and_wrong_architecture(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        llm.load_pretrained(str(tmp_path / "no_such_dir"))
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        llm.load_pretrained(str(tmp_path / "missing.gguf"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        llm.load_pretrained(str(empty))
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8}))
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        llm.load_pretrained(str(gpt2))
    with pytest.raises(ValueError, match="random:<preset>"):
        llm.load_pretrained("random:")


def test_hf_shape_mismatch_names_tensor(gqa_model, tmp_path):
    directory = save_hf_model(gqa_model, str(tmp_path / "hf"), MHA_TIED)  # one file
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    cfg["intermediate_size"] += 2
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg, f)
    with pytest.raises(ValueError, match=(r"tensor 'model\.layers\.\d\.mlp\.\w+_proj\.weight' has shape "
                                           r"\((53, 45|45, 53)\), expected \((55, 45|45, 55)\)")):
        hf.load_hf_dir(directory)


def test_orbax_round_trip_and_cache_dir(gqa_model, tiny_gguf, tmp_path):
    config, params, tokenizer = llm.load_pretrained(tiny_gguf)
    llm.save_converted(str(tmp_path / "conv"), config, params, tokenizer)
    config2, params2, tokenizer2 = llm.load_converted(str(tmp_path / "conv"))
    assert config2 == config
    jax.tree.map(np.testing.assert_array_equal, params2, params)
    assert tokenizer2.encode("the red bin") == tokenizer.encode("the red bin")
    # load_pretrained on the converted directory, and through a cache dir.
    config3, params3, _ = llm.load_pretrained(str(tmp_path / "conv"), dtype="bfloat16")
    assert config3.dtype == "bfloat16" and params3["embed"].dtype == np.dtype("bfloat16")
    cache_dir = str(tmp_path / "cache")
    llm.load_pretrained(tiny_gguf, cache_dir=cache_dir)
    (entry,) = os.listdir(cache_dir)
    assert entry == f"tiny-{llm.checkpoint.source_fingerprint(tiny_gguf)}-float32"
    _, params4, _ = llm.load_pretrained(tiny_gguf, cache_dir=cache_dir)
    jax.tree.map(np.testing.assert_array_equal, params4, params)


def test_converted_cache_is_keyed_by_the_source_not_its_name(tiny_gguf, tmp_path):
    """Two different models in folders of the same name, and a model replaced in place, do not
    share a cache entry (before, the entry was named after the folder's base name only)."""
    import shutil
    config, params, tokenizer = llm.load_pretrained(tiny_gguf)
    a, b = tmp_path / "a" / "model", tmp_path / "b" / "model"
    llm.save_converted(str(a), config, params, tokenizer)
    other = jax.tree.map(lambda x: x + 1.0, params)
    llm.save_converted(str(b), config, other, tokenizer)
    cache_dir = str(tmp_path / "cache")
    _, pa, _ = llm.load_pretrained(str(a), cache_dir=cache_dir)
    _, pb, _ = llm.load_pretrained(str(b), cache_dir=cache_dir)
    jax.tree.map(np.testing.assert_array_equal, pa, params)
    jax.tree.map(np.testing.assert_array_equal, pb, other)
    assert len(os.listdir(cache_dir)) == 2
    # Replace a's weights in place: the cache must not keep serving the old ones.
    shutil.rmtree(a)
    llm.save_converted(str(a), config, other, tokenizer)
    _, pa2, _ = llm.load_pretrained(str(a), cache_dir=cache_dir)
    jax.tree.map(np.testing.assert_array_equal, pa2, other)


def test_hf_directory_tokenizer(tiny_gguf, tmp_path):
    """tokenizer.json + tokenizer_config.json in a checkpoint directory, as transformers saves them."""
    import transformers
    model = make_hf_model(MHA_TIED, seed=3)
    directory = save_hf_model(model, str(tmp_path / "hf_tok"), MHA_TIED)
    ours = llm.Tokenizer.from_gguf_metadata(gguf_io.read_metadata(tiny_gguf))
    ref = transformers.PreTrainedTokenizerFast(
        tokenizer_object=ours.backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
        add_bos_token=True)
    ref.save_pretrained(directory)
    _, _, tokenizer = llm.load_pretrained(directory)
    assert tokenizer.bos_id == 1 and tokenizer.eos_id == 2 and tokenizer.add_bos
    text = "the red ball is in the bin"
    assert tokenizer.encode(text) == [1] + ours.encode(text)
    assert tokenizer.decode(tokenizer.encode(text, add_bos=False)) == text


def test_hf_config_refuses_computation_the_port_does_not_implement(gqa_model):
    base = gqa_model.config.to_dict()
    assert llm.LlamaConfig.from_hf_config(dict(base, hidden_act="silu")).hidden_size == base["hidden_size"]
    with pytest.raises(ValueError, match="hidden_act='gelu'"):
        llm.LlamaConfig.from_hf_config(dict(base, hidden_act="gelu"))
    with pytest.raises(ValueError, match="pretraining_tp=2"):
        llm.LlamaConfig.from_hf_config(dict(base, pretraining_tp=2))


def test_shard_names_must_stay_inside_the_model_directory(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (tmp_path / "outside.safetensors").write_bytes(b"")
    for name in ("../outside.safetensors", str(tmp_path / "outside.safetensors")):
        (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": name}}))
        with pytest.raises(ValueError, match="outside the model directory"):
            hf.safetensors_files(str(model))
    (model / "shard-1.safetensors").write_bytes(b"")
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "shard-1.safetensors"}}))
    assert hf.safetensors_files(str(model)) == [os.path.join(str(model), "shard-1.safetensors")]


def test_chat_template_from_a_model_file_is_sandboxed():
    from jinja2.exceptions import SecurityError
    from lago_jax.llm.tokenizer import Tokenizer
    ok = Tokenizer(None, None, None, chat_template="{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
    assert ok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=False) == "<user>hi"
    # The classic escape: reach os through a Python object's attributes.
    evil = ("{{ messages.__class__.__mro__[1].__subclasses__() }}")
    bad = Tokenizer(None, None, None, chat_template=evil)
    with pytest.raises(SecurityError):
        bad.apply_chat_template([{"role": "user", "content": "hi"}])
    mutate = Tokenizer(None, None, None, chat_template="{{ messages.append(1) }}")
    with pytest.raises(SecurityError):
        mutate.apply_chat_template([{"role": "user", "content": "hi"}])


def test_damaged_model_files_give_one_error_naming_the_file(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x00" * 7)
    with pytest.raises(ValueError, match="junk.gguf"):
        llm.load_pretrained(str(junk))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{not json")
    import re
    with pytest.raises(ValueError, match=re.escape(str(model))):
        llm.load_pretrained(str(model))


def test_sharded_model_in_hub_cache_layout_loads(gqa_model, tmp_path):
    """The Hugging Face hub cache keeps each shard as a symlink into ../../blobs: loads, same weights."""
    import hashlib
    import shutil

    plain = save_hf_model(gqa_model, str(tmp_path / "plain"), GQA_UNTIED_SHARDED)
    assert os.path.exists(os.path.join(plain, "model.safetensors.index.json"))
    repo = tmp_path / "hub" / "models--org--tiny"
    snap, blobs = repo / "snapshots" / "abc123", repo / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    for name in os.listdir(plain):
        data = open(os.path.join(plain, name), "rb").read()
        blob = blobs / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.join("..", "..", "blobs", blob.name), snap / name)
    shards = hf.safetensors_files(str(snap))
    assert len(shards) > 1 and all(os.path.islink(s) for s in shards)
    config_a, params_a, _ = llm.load_pretrained(plain)
    config_b, params_b, _ = llm.load_pretrained(str(snap))
    assert config_a == config_b
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    shutil.rmtree(tmp_path / "hub")


def test_config_json_that_is_not_json_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        hf.read_hf_config(str(tmp_path))
