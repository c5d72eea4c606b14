"""Tokenizers for the Llama port, built from local files only.

This file owns `Tokenizer`, a small wrapper around a `tokenizers.Tokenizer` with bos/eos ids and
an optional chat template, and its constructors:
- `from_gguf_metadata`: byte-level BPE (`tokenizer.ggml.model == "gpt2"`, as SmolLM2 uses) from
  the vocabulary and merges stored in GGUF metadata; tokens the file marks as control become
  special tokens so `<|im_start|>` stays whole. For `tokenizer.ggml.pre == "smollm"` digits are
  split one by one before the byte-level split, as llama.cpp and SmolLM2's own tokenizer.json do.
  SentencePiece vocabularies (`tokenizer.ggml.model == "llama"`, as Gemma-3 uses) are built by
  transformers' GGUF tokenizer conversion (`transformers.integrations.gguf.convert_gguf_tokenizer`,
  which knows each architecture's quirks, e.g. Gemma's merges rebuilt from the vocabulary order)
  into a `tokenizers.Tokenizer`; `save` stores it as tokenizer.json, so a converted checkpoint
  reloads without transformers.
- `from_hf_dir`: `tokenizer.json` (+ `tokenizer_config.json` for specials and chat template).
- `byte_fallback`: a 256-byte vocabulary (plus specials) for random models without a tokenizer.
Tokenizing happens on the host, once, outside jitted code.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Sequence

from tokenizers import AddedToken, Tokenizer as BackendTokenizer, decoders, pre_tokenizers
from tokenizers import processors
from tokenizers.models import BPE

_CONTROL = 3
_USER_DEFINED = 4


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


class Tokenizer:
    """Text <-> token ids.

    Attributes:
      backend: the `tokenizers.Tokenizer`.
      bos_id, eos_id, pad_id: special token ids (pad may be None).
      add_bos: whether `encode` prepends bos by default.
      chat_template: Jinja chat template string or None.
    """

    def __init__(self, backend: BackendTokenizer, bos_id: Optional[int], eos_id: Optional[int],
                 pad_id: Optional[int] = None, add_bos: bool = False,
                 chat_template: Optional[str] = None):
        self.backend = backend
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.add_bos = add_bos
        self.chat_template = chat_template

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_bos: Optional[bool] = None) -> list[int]:
        """Token ids of `text`; prepends bos when add_bos (default: the tokenizer's setting)."""
        ids = self.backend.encode(text, add_special_tokens=False).ids
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            ids = [self.bos_id] + ids
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: Sequence[Mapping[str, str]],
                            add_generation_prompt: bool = True) -> str:
        """Renders a chat (list of {"role", "content"}) with the stored Jinja template."""
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template")
        from jinja2.sandbox import ImmutableSandboxedEnvironment  # pylint: disable=import-outside-toplevel
        # A template comes from a model file: render it sandboxed (no attribute access to Python
        # internals, no mutation), as transformers does.
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = lambda msg: (_ for _ in ()).throw(ValueError(msg))
        bos = self.backend.id_to_token(self.bos_id) if self.bos_id is not None else ""
        eos = self.backend.id_to_token(self.eos_id) if self.eos_id is not None else ""
        return env.from_string(self.chat_template).render(
            messages=list(messages), add_generation_prompt=add_generation_prompt,
            bos_token=bos, eos_token=eos)

    # --------------------------------------------------------------------------- persistence

    def save(self, directory: str) -> None:
        """Writes tokenizer.json and lago_tokenizer.json (special ids, template) to `directory`."""
        os.makedirs(directory, exist_ok=True)
        self.backend.save(os.path.join(directory, "tokenizer.json"))
        with open(os.path.join(directory, "lago_tokenizer.json"), "w") as f:
            json.dump({"bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id,
                       "add_bos": self.add_bos, "chat_template": self.chat_template}, f)

    @classmethod
    def load(cls, directory: str) -> "Tokenizer":
        """Reads what `save` wrote."""
        backend = BackendTokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        with open(os.path.join(directory, "lago_tokenizer.json")) as f:
            meta = json.load(f)
        return cls(backend, **meta)

    # --------------------------------------------------------------------------- constructors

    @classmethod
    def from_gguf_metadata(cls, meta: Mapping[str, Any]) -> "Tokenizer":
        """From `tokenizer.ggml.*` metadata: byte-level BPE ("gpt2") built here, SentencePiece
        ("llama") through transformers' GGUF conversion; ValueError for other tokenizer kinds."""
        kind = meta.get("tokenizer.ggml.model")
        if kind == "llama":
            return cls._from_gguf_sentencepiece(meta)
        if kind != "gpt2":
            raise ValueError(f"GGUF tokenizer.ggml.model={kind!r}: only byte-level BPE ('gpt2') and "
                             "SentencePiece ('llama') tokenizers can be built from GGUF metadata; "
                             "load the model from a Hugging Face directory with tokenizer.json "
                             "instead")
        tokens = list(meta["tokenizer.ggml.tokens"])
        types = list(meta.get("tokenizer.ggml.token_type") or [1] * len(tokens))
        merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
        alphabet = set(_bytes_to_unicode().values())
        vocab = {tok: i for i, tok in enumerate(tokens)}
        backend = BackendTokenizer(BPE(vocab=vocab, merges=merges, dropout=None,
                                       continuing_subword_prefix="", end_of_word_suffix="",
                                       fuse_unk=False))
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        if meta.get("tokenizer.ggml.pre") == "smollm":
            backend.pre_tokenizer = pre_tokenizers.Sequence(
                [pre_tokenizers.Digits(individual_digits=True), byte_level])
        else:
            backend.pre_tokenizer = byte_level
        backend.decoder = decoders.ByteLevel()
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
        specials = [AddedToken(t, special=True, normalized=False)
                    for t, ty in zip(tokens, types) if ty == _CONTROL and set(t) <= alphabet]
        backend.add_special_tokens(specials)
        user = [AddedToken(t, special=False, normalized=False)
                for t, ty in zip(tokens, types) if ty == _USER_DEFINED]
        if user:
            backend.add_tokens(user)
        pad = meta.get("tokenizer.ggml.padding_token_id")
        return cls(backend, bos_id=meta.get("tokenizer.ggml.bos_token_id"),
                   eos_id=meta.get("tokenizer.ggml.eos_token_id"), pad_id=pad,
                   add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
                   chat_template=meta.get("tokenizer.chat_template"))

    @classmethod
    def _from_gguf_sentencepiece(cls, meta: Mapping[str, Any]) -> "Tokenizer":
        """SentencePiece vocabulary -> `tokenizers.Tokenizer` with transformers' converter, fed
        the metadata already read (its own GGUF reader is not needed)."""
        # pylint: disable=import-outside-toplevel
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (
            GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer)
        tokenizer_dict = {name: meta[f"tokenizer.{key}"]
                          for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
                          if f"tokenizer.{key}" in meta}
        backend, _ = convert_gguf_tokenizer(meta.get("general.architecture"), tokenizer_dict)
        # llama.cpp adds bos to a SentencePiece vocabulary unless the file says otherwise.
        add_bos = meta.get("tokenizer.ggml.add_bos_token", True)
        return cls(backend, bos_id=meta.get("tokenizer.ggml.bos_token_id"),
                   eos_id=meta.get("tokenizer.ggml.eos_token_id"),
                   pad_id=meta.get("tokenizer.ggml.padding_token_id"), add_bos=bool(add_bos),
                   chat_template=meta.get("tokenizer.chat_template"))

    @classmethod
    def from_hf_dir(cls, directory: str) -> "Tokenizer":
        """From tokenizer.json (and tokenizer_config.json when present) in a local directory.

        Specials that tokenizer.json's post-processor would add (e.g. Llama's bos) are added by
        `encode` through `add_bos` instead, so encoding is explicit.
        """
        path = os.path.join(directory, "tokenizer.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no tokenizer.json in {directory!r}")
        backend = BackendTokenizer.from_file(path)
        cfg = {}
        cfg_path = os.path.join(directory, "tokenizer_config.json")
        if os.path.isfile(cfg_path):
            with open(cfg_path) as f:
                cfg = json.load(f)

        def token_id(key):
            tok = cfg.get(key)
            if isinstance(tok, dict):
                tok = tok.get("content")
            return backend.token_to_id(tok) if tok else None

        with_specials = backend.encode("a", add_special_tokens=True).ids
        plain = backend.encode("a", add_special_tokens=False).ids
        bos = token_id("bos_token")
        add_bos = cfg.get("add_bos_token", len(with_specials) > len(plain) and bos is not None)
        template = cfg.get("chat_template")
        template_path = os.path.join(directory, "chat_template.jinja")
        if template is None and os.path.isfile(template_path):
            with open(template_path) as f:
                template = f.read()
        return cls(backend, bos_id=bos, eos_id=token_id("eos_token"), pad_id=token_id("pad_token"),
                   add_bos=bool(add_bos), chat_template=template)

    @classmethod
    def byte_fallback(cls, vocab_size: int) -> "Tokenizer":
        """Bytes as tokens (ids 0..255 as GPT-2's byte alphabet), then <s> and </s> if they fit.

        For random-weight models that come without a tokenizer; needs vocab_size >= 256.
        """
        if vocab_size < 256:
            raise ValueError(f"byte_fallback needs vocab_size >= 256, got {vocab_size}")
        byte_chars = _bytes_to_unicode()
        vocab = {byte_chars[b]: b for b in range(256)}
        backend = BackendTokenizer(BPE(vocab=vocab, merges=[], fuse_unk=False))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        backend.decoder = decoders.ByteLevel()
        bos = eos = None
        if vocab_size >= 258:
            backend.add_special_tokens([AddedToken("<s>", special=True), AddedToken("</s>", special=True)])
            bos, eos = 256, 257
        return cls(backend, bos_id=bos, eos_id=eos, add_bos=False)
