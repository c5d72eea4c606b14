"""The latent action prior ``p_phi(a | s, g)``: the LLM prior, the MLP ablation and their heads.

This file owns the stage-1 model of LaGO (DESIGN.md section 1):

* ``LLMPrior``: the instruction ``g`` is tokenized once on the host; an observation projection
  ``E_phi`` (MLP ``obs_dim -> 512 -> k * d_model``, ReLU) maps the normalised observation to ``k``
  soft tokens; the frozen LLM runs over ``[instruction tokens ; soft tokens]``; the final hidden
  state at the last soft token is the latent action ``z`` ``[B, D]``; an action head maps ``z`` to
  a distribution. The instruction prefix is identical for every step of a task, so its keys and
  values are computed once per instruction (``init``) and ``apply`` runs only the ``k`` soft
  tokens against the cached prefix chosen by ``instruction_id``. ``apply_uncached`` runs the full
  sequence and is the reference the cached path is tested against.
* ``MLPPrior``: the same heads and ``apply`` signature without an LLM (normalised observation
  concatenated with a learned instruction-id embedding -> MLP -> head), for the ablation that
  isolates what the LLM adds.

Both satisfy the PPO ``Prior`` protocol: ``apply(prior_params, obs [B, obs_dim] float32 raw,
instruction_id [B] int32) -> Categorical | DiagGaussian``; pure and jittable, with the (possibly
135M-parameter) ``prior_params`` a traced argument rather than a constant.

``PriorParams`` keeps ``trainable`` (projection or MLP, head, optional LoRA adapters on the
LLM's q/v projections; what the optimizer sees) apart from ``frozen`` (LLM weights, prefix
caches, observation-normalisation statistics; never trained). LoRA is off by default; with it,
distillation runs the full [instruction ; soft tokens] sequence (``training_apply``) so that
gradients reach the adapters, and the prefix caches are rebuilt once afterwards. Parameters are
plain nested dicts of arrays.

Shape letters: B batch, O observation width, D LLM width, k soft tokens, A action width /
number of actions, G instructions in the bank, T instruction tokens.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Optional, Sequence, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from lago_jax.distributions import Categorical, DiagGaussian, Distribution
from lago_jax import llm as llm_fns  # dispatches on the config's architecture (Llama, Gemma-3)
from lago_jax.llm import LLMConfig
from lago_jax.llm.cache import PrefixCache
from lago_jax.normalization import ObsNorm, identity_obs_norm

Params = dict[str, Any]

HEAD_KINDS = ("categorical", "gaussian")

LOG_STD_MIN = -5.0
"""Lower end of the Gaussian head's log-std (std >= 6.7e-3)."""
LOG_STD_MAX = 2.0
"""Upper end of the Gaussian head's log-std (std <= 7.4). The head squashes its raw output
smoothly into [LOG_STD_MIN, LOG_STD_MAX] with a tanh, so gradients never vanish at a hard clip."""

DEFAULT_PROMPT_TEMPLATE = "Task: {instruction}\nState:"
"""How an instruction is turned into the prefix text; the soft tokens follow it. The fixed
words keep the prefix non-empty for environments whose instruction is the empty string."""


# ----------------------------------------------------------------------------- parameter pytrees


@struct.dataclass
class PriorParams:
    """Parameters of a prior.

    Attributes:
      trainable: the only part the optimizer sees. LLMPrior: {"proj": ..., "head": ...};
        MLPPrior: {"instruction_embed": [G, E], "mlp": [...], "head": ...}.
      frozen: never trained. Always {"obs_norm": ObsNorm, ...}; the LLMPrior adds
        {"llm": LLM params, "prefix_cache": PrefixCache of the instruction bank,
        "soft_token_scale": scalar RMS of the LLM's token embeddings}.
    """

    trainable: Params
    frozen: Params

    @property
    def obs_norm(self) -> ObsNorm:
        return self.frozen["obs_norm"]

    def with_obs_norm(self, obs_norm: ObsNorm) -> "PriorParams":
        return self.replace(frozen={**self.frozen, "obs_norm": obs_norm})

    def with_trainable(self, trainable: Params) -> "PriorParams":
        return self.replace(trainable=trainable)


# ----------------------------------------------------------------------------- dense layers, heads


def _dense_init(key: jax.Array, d_in: int, d_out: int, scale: float = 1.0) -> Params:
    """He-normal weights times `scale`, zero bias."""
    w = jax.random.normal(key, (d_in, d_out), jnp.float32) * (scale * math.sqrt(2.0 / d_in))
    return {"w": w, "b": jnp.zeros((d_out,), jnp.float32)}


def _dense(p: Params, x: jax.Array) -> jax.Array:
    return x @ p["w"] + p["b"]


def _mlp(layers: Sequence[Params], x: jax.Array) -> jax.Array:
    """Dense layers with ReLU between them (none after the last)."""
    for i, layer in enumerate(layers):
        x = _dense(layer, x)
        if i < len(layers) - 1:
            x = jax.nn.relu(x)
    return x


def _gaussian_log_std_bias() -> float:
    """Raw bias that makes the squashed log-std exactly 0 (std 1) at initialisation."""
    return float(np.arctanh(2.0 * (0.0 - LOG_STD_MIN) / (LOG_STD_MAX - LOG_STD_MIN) - 1.0))


def init_head(key: jax.Array, d_in: int, head: str, action_dim: int) -> Params:
    """Action head: [d_in] -> logits [A] (categorical) or mean [A] and raw log-std [A] (gaussian).

    Weights start small (scale 0.01), so a fresh prior is close to uniform / standard normal.
    """
    if head == "categorical":
        return _dense_init(key, d_in, action_dim, scale=0.01)
    if head == "gaussian":
        p = _dense_init(key, d_in, 2 * action_dim, scale=0.01)
        p["b"] = p["b"].at[action_dim:].set(_gaussian_log_std_bias())
        return p
    raise ValueError(f"unknown head {head!r}; expected one of {HEAD_KINDS}")


def apply_head(params: Params, head: str, action_dim: int, z_bd: jax.Array) -> Distribution:
    """z [B, d_in] -> Categorical(logits [B, A]) or DiagGaussian(mean, log_std [B, A]).

    The Gaussian log-std is LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN) * (tanh(raw) + 1) / 2.
    """
    out = _dense(params, z_bd.astype(jnp.float32))
    if head == "categorical":
        return Categorical(logits=out)
    mean, raw = out[..., :action_dim], out[..., action_dim:]
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw) + 1.0)
    return DiagGaussian(mean=mean, log_std=log_std)


def head_for_action_space(space: Any) -> tuple[str, int]:
    """("categorical", n) for a Discrete(n) space, ("gaussian", dim) for a Box space."""
    if hasattr(space, "n"):
        return "categorical", int(space.n)
    if hasattr(space, "low"):
        return "gaussian", int(np.asarray(space.low).reshape(-1).shape[0])
    raise TypeError(f"cannot build an action head for {space!r}: expected Discrete(n) or Box")


def _check_head(head: str, action_dim: int) -> None:
    if head not in HEAD_KINDS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEAD_KINDS}")
    if not isinstance(action_dim, int) or action_dim < 1:
        raise ValueError(f"action_dim must be a positive int, got {action_dim!r}")


def check_obs_keep(obs_keep: Optional[tuple[int, ...]], obs_dim: int) -> Optional[tuple[int, ...]]:
    """Validated ``obs_keep`` (sorted distinct indices in ``[0, obs_dim)``, at least one) or None."""
    if obs_keep is None:
        return None
    keep = tuple(int(i) for i in obs_keep)
    if not keep or len(set(keep)) != len(keep) or any(not 0 <= i < obs_dim for i in keep):
        raise ValueError(f"obs_keep must name distinct observation entries in [0, {obs_dim}), at least one; "
                         f"got {list(keep)}")
    return tuple(sorted(keep))


def prior_input(obs_norm: ObsNorm, obs_keep: Optional[tuple[int, ...]], obs_bo: jax.Array) -> jax.Array:
    """The normalised observation entries a prior reads: [B, O] raw -> [B, len(obs_keep) or O].

    Statistics cover the whole observation; entries outside ``obs_keep`` (e.g. the goal's one-hots
    under the language protocol, where the goal reaches the prior through its instruction alone)
    are dropped after normalising, and no gradient flows into the observation."""
    x = obs_norm.normalize(obs_bo)
    if obs_keep is not None:
        x = x[:, jnp.asarray(obs_keep, jnp.int32)]
    return jax.lax.stop_gradient(x)


def negative_log_likelihood(dist: Distribution, action: jax.Array) -> jax.Array:
    """-log p(a): action [B] int (categorical) or [B, A] float (gaussian) -> [B]."""
    return -dist.log_prob(action)


# ----------------------------------------------------------------------------- LLM prior


@dataclasses.dataclass(frozen=True)
class LLMPrior:
    """Static description of the LLM prior (hashable; safe to close over inside jit).

    Soft tokens are ``soft_token_scale * MLP(normalised obs)``, where the fixed scale is the RMS of
    the LLM's token embeddings: a unit-scale MLP output then lands at the scale of real token
    embeddings, so instruction tokens and soft tokens meet on equal
    footing inside the LLM, while the optimizer works on unit-scale weights.

    Build it with ``LLMPrior.from_instructions`` (tokenizes the instruction bank on the host), then
    ``init`` its parameters from the LLM's weights.
    """

    llm_config: LLMConfig
    """Shape of the frozen backbone (its hidden_size is d_model)."""
    instruction_token_ids: tuple[tuple[int, ...], ...]
    """The prefix tokens of every instruction in the env's bank, indexed by instruction_id."""
    obs_dim: int
    """Width O of the raw observation."""
    head: str
    """"categorical" (Discrete actions) or "gaussian" (Box actions)."""
    action_dim: int
    """Number of actions (categorical) or action width (gaussian)."""
    num_soft_tokens: int = 1
    """k: soft tokens the observation projection produces."""
    proj_hidden: int = 512
    """Hidden width of the observation projection E_phi."""
    lora_rank: int = 0
    """Rank r of LoRA adapters on every layer's q and v projections; 0 (default) keeps the LLM
    entirely frozen. With r > 0 the adapters are trainable; the base weights stay frozen."""
    lora_alpha: float = 16.0
    """LoRA scale numerator: the update is (lora_alpha / lora_rank) * A @ B."""
    backbone: str = "unknown"
    """Which LLM weights this prior runs on, e.g. "smollm2-135m", "random:smollm2-135m", a path."""
    instructions: tuple[str, ...] = ()
    """The instruction texts (for the record); same order as instruction_token_ids."""
    obs_keep: Optional[tuple[int, ...]] = None
    """Observation entries the projection reads (None: all). The language protocol leaves the
    goal's features out, so the goal reaches the prior through the instruction alone."""
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    """How an instruction becomes the prefix text (``with_instructions`` re-tokenizes with it)."""

    def __post_init__(self):
        _check_head(self.head, self.action_dim)
        object.__setattr__(self, "obs_keep", check_obs_keep(self.obs_keep, self.obs_dim))
        if not self.instruction_token_ids:
            raise ValueError("LLMPrior needs at least one instruction in its bank")
        for i, ids in enumerate(self.instruction_token_ids):
            if len(ids) == 0:
                raise ValueError(f"instruction {i} has no tokens; every prefix needs at least one")
            bad = [t for t in ids if not 0 <= t < self.llm_config.vocab_size]
            if bad:
                raise ValueError(f"instruction {i} has token ids {bad[:5]} outside the LLM vocabulary "
                                 f"[0, {self.llm_config.vocab_size})")
        if self.instructions and len(self.instructions) != len(self.instruction_token_ids):
            raise ValueError(f"{len(self.instructions)} instruction texts but "
                             f"{len(self.instruction_token_ids)} token sequences")
        if self.num_soft_tokens < 1:
            raise ValueError(f"num_soft_tokens must be >= 1, got {self.num_soft_tokens}")
        if self.obs_dim < 1:
            raise ValueError(f"obs_dim must be >= 1, got {self.obs_dim}")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, got {self.lora_rank}")
        if self.lora_rank and not self.lora_alpha > 0:
            raise ValueError(f"lora_alpha must be > 0, got {self.lora_alpha}")
        longest = max(len(ids) for ids in self.instruction_token_ids) + self.num_soft_tokens
        if longest > self.llm_config.max_position_embeddings:
            raise ValueError(f"longest instruction plus soft tokens is {longest} tokens, more than the "
                             f"LLM's max_position_embeddings={self.llm_config.max_position_embeddings}")

    @classmethod
    def from_instructions(cls, llm_config: LLMConfig, tokenizer: Any, instructions: Sequence[str],
                          obs_dim: int, action_space: Any = None, *, head: Optional[str] = None,
                          action_dim: Optional[int] = None,
                          prompt_template: str = DEFAULT_PROMPT_TEMPLATE, **kwargs) -> "LLMPrior":
        """Tokenizes ``prompt_template.format(instruction=g)`` for every g in the bank (host).

        Args:
          tokenizer: anything with ``encode(text) -> list[int]``.
          action_space: Discrete(n) or Box; or give ``head`` and ``action_dim`` instead.
          kwargs: the other LLMPrior fields (num_soft_tokens, proj_hidden, backbone, ...).
        """
        if action_space is not None:
            head, action_dim = head_for_action_space(action_space)
        if head is None or action_dim is None:
            raise ValueError("give either action_space or both head and action_dim")
        texts = tuple(str(g) for g in instructions)
        token_ids = tuple(tuple(int(t) for t in tokenizer.encode(prompt_template.format(instruction=g)))
                          for g in texts)
        return cls(llm_config=llm_config, instruction_token_ids=token_ids, obs_dim=int(obs_dim),
                   head=head, action_dim=int(action_dim), instructions=texts,
                   prompt_template=prompt_template, **kwargs)

    def with_instructions(self, tokenizer: Any, instructions: Sequence[str],
                          prior_params: PriorParams) -> tuple["LLMPrior", PriorParams]:
        """The same prior (trained weights unchanged) over another instruction bank, e.g. phrasings
        or goals it never saw: the bank is re-tokenized and its prefix caches rebuilt."""
        texts = tuple(str(g) for g in instructions)
        ids = tuple(tuple(int(t) for t in tokenizer.encode(self.prompt_template.format(instruction=g)))
                    for g in texts)
        prior = dataclasses.replace(self, instruction_token_ids=ids, instructions=texts)
        llm = self.llm_weights(prior_params) if self.lora_rank else prior_params.frozen["llm"]
        cache = _prefill(prior.llm_config, llm, *map(jnp.asarray, prior.padded_instruction_ids("right")))
        return prior, prior_params.replace(frozen={**prior_params.frozen, "prefix_cache": cache})

    # --- static properties

    @property
    def d_model(self) -> int:
        return self.llm_config.hidden_size

    @property
    def num_instructions(self) -> int:
        return len(self.instruction_token_ids)

    @property
    def input_dim(self) -> int:
        """Width of the observation the projection reads (``len(obs_keep)`` or ``obs_dim``)."""
        return self.obs_dim if self.obs_keep is None else len(self.obs_keep)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary, stored next to checkpoints and in experiment outputs."""
        return {
            "kind": "llm", "backbone": self.backbone, "d_model": self.d_model,
            "llm_config": self.llm_config.to_dict(), "obs_dim": self.obs_dim, "head": self.head,
            "action_dim": self.action_dim, "num_soft_tokens": self.num_soft_tokens,
            "proj_hidden": self.proj_hidden, "lora_rank": self.lora_rank,
            "lora_alpha": self.lora_alpha if self.lora_rank else None,
            "num_instructions": self.num_instructions,
            "obs_keep": None if self.obs_keep is None else list(self.obs_keep),
        }

    # --- parameters

    def padded_instruction_ids(self, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
        """Instruction bank as ids [G, T] int32 and mask [G, T] bool, padded on ``side``."""
        g, t = self.num_instructions, max(len(x) for x in self.instruction_token_ids)
        ids = np.zeros((g, t), np.int32)
        mask = np.zeros((g, t), bool)
        for i, seq in enumerate(self.instruction_token_ids):
            sl = slice(0, len(seq)) if side == "right" else slice(t - len(seq), t)
            ids[i, sl] = seq
            mask[i, sl] = True
        return ids, mask

    def build_prefix_cache(self, llm_params: Params) -> PrefixCache:
        """Keys and values of every instruction prefix, [L, G, T, K, H] (one jitted prefill).

        Cost grows with the bank: G * T tokens through the LLM once, and 2 * L * G * T * K * H
        numbers of memory (SmolLM2-135M in float32: about 45 KiB per prefix token, so a 40-instruction
        bank of 22-token prefixes takes 39 MiB).

        ``llm_params`` are the weights the prior runs (with LoRA: base weights plus the update,
        see ``llm_weights``).
        """
        ids, mask = self.padded_instruction_ids("right")
        return _prefill(self.llm_config, llm_params, jnp.asarray(ids), jnp.asarray(mask))

    def refresh_prefix_cache(self, prior_params: PriorParams) -> PriorParams:
        """Recomputes the bank's prefix caches from the current weights (needed after the LoRA
        adapters change; ``distill`` and ``load_prior`` call it). Without LoRA the cache never goes
        stale and the params are returned unchanged."""
        if not self.lora_rank:
            return prior_params
        cache = self.build_prefix_cache(_merge_lora_jit(self, prior_params.frozen["llm"],
                                                        prior_params.trainable["lora"]))
        return prior_params.replace(frozen={**prior_params.frozen, "prefix_cache": cache})

    def merge_lora(self, llm_params: Params, lora: Params) -> Params:
        """Base weights plus (lora_alpha / r) * A @ B on every layer's q_proj and v_proj."""
        scale = self.lora_alpha / self.lora_rank
        layers = dict(llm_params["layers"])
        q, v = layers["q_proj"], layers["v_proj"]
        delta_q = scale * jnp.einsum("ldr,lrnh->ldnh", lora["q_a"], lora["q_b"])
        delta_v = scale * jnp.einsum("ldr,lrkh->ldkh", lora["v_a"], lora["v_b"])
        layers["q_proj"] = q + delta_q.astype(q.dtype)
        layers["v_proj"] = v + delta_v.astype(v.dtype)
        return {**llm_params, "layers": layers}

    def llm_weights(self, prior_params: PriorParams) -> Params:
        """The LLM weights the prior runs: the frozen base (no gradient) plus the LoRA update."""
        llm = jax.lax.stop_gradient(prior_params.frozen["llm"])
        if not self.lora_rank:
            return llm
        return self.merge_lora(llm, prior_params.trainable["lora"])

    def init_trainable(self, key: jax.Array) -> Params:
        """Fresh observation projection E_phi, action head and (lora_rank > 0) LoRA adapters."""
        k_proj_hidden, k_proj_out, k_head, k_q, k_v = jax.random.split(key, 5)
        trainable = {
            "proj": [
                _dense_init(k_proj_hidden, self.input_dim, self.proj_hidden),
                _dense_init(k_proj_out, self.proj_hidden, self.num_soft_tokens * self.d_model),
            ],
            "head": init_head(k_head, self.d_model, self.head, self.action_dim),
        }
        if self.lora_rank:
            # A ~ N(0, 1/D), B = 0: the adapted LLM starts exactly equal to the base.
            c, r = self.llm_config, self.lora_rank
            a_scale = 1.0 / math.sqrt(c.hidden_size)
            trainable["lora"] = {
                "q_a": a_scale * jax.random.normal(k_q, (c.num_layers, c.hidden_size, r), jnp.float32),
                "q_b": jnp.zeros((c.num_layers, r, c.num_heads, c.head_dim), jnp.float32),
                "v_a": a_scale * jax.random.normal(k_v, (c.num_layers, c.hidden_size, r), jnp.float32),
                "v_b": jnp.zeros((c.num_layers, r, c.num_kv_heads, c.head_dim), jnp.float32),
            }
        return trainable

    def init(self, key: jax.Array, llm_params: Params,
             obs_norm: Optional[ObsNorm] = None) -> PriorParams:
        """Fresh projection and head; the LLM weights and the bank's prefix caches as frozen params.

        ``obs_norm`` defaults to the identity; ``distill`` sets it from the demonstrations.
        """
        llm_fns.check_params(self.llm_config, llm_params)
        trainable = self.init_trainable(key)
        frozen = {
            "llm": llm_params,
            "prefix_cache": self.build_prefix_cache(llm_params),
            "soft_token_scale": llm_fns.token_embedding_rms(self.llm_config, llm_params),
            "obs_norm": obs_norm if obs_norm is not None else identity_obs_norm(self.obs_dim),
        }
        return PriorParams(trainable=trainable, frozen=frozen)

    # --- forward

    def soft_tokens(self, prior_params: PriorParams, obs_bo: jax.Array) -> jax.Array:
        """E_phi: raw obs [B, O] -> soft tokens [B, k, D] (float32)."""
        chex.assert_rank(obs_bo, 2)
        chex.assert_axis_dimension(obs_bo, 1, self.obs_dim)
        x = prior_input(prior_params.obs_norm, self.obs_keep, obs_bo)
        scale = jax.lax.stop_gradient(prior_params.frozen["soft_token_scale"])
        out = scale * _mlp(prior_params.trainable["proj"], x)
        return out.reshape(obs_bo.shape[0], self.num_soft_tokens, self.d_model)

    def latent(self, prior_params: PriorParams, obs_bo: jax.Array,
               instruction_id_b: jax.Array) -> jax.Array:
        """Latent action z [B, D] (float32): last soft token's final hidden state, cached prefix.

        Out-of-range instruction ids are clamped by the gather (no check inside jit). With LoRA
        the cache holds the keys and values of the adapters it was built with (see
        ``refresh_prefix_cache``) and no gradient flows through it: train with ``training_apply``.
        """
        prefix_cache = jax.lax.stop_gradient(prior_params.frozen["prefix_cache"])
        soft_bkd = self.soft_tokens(prior_params, obs_bo)
        chex.assert_shape(instruction_id_b, (obs_bo.shape[0],))
        hidden_bkd = llm_fns.forward_with_prefix(self.llm_config, self.llm_weights(prior_params),
                                                 prefix_cache, soft_bkd,
                                                 instruction_id_b.astype(jnp.int32))
        return hidden_bkd[:, -1].astype(jnp.float32)

    def latent_uncached(self, prior_params: PriorParams, obs_bo: jax.Array,
                        instruction_id_b: jax.Array) -> jax.Array:
        """Same as ``latent`` by running the whole [instruction ; soft tokens] sequence.

        Instructions are left-padded (masked, positions counted over real tokens only), so every
        row's soft tokens sit right after its own instruction, as in the cached path.
        """
        llm = self.llm_weights(prior_params)
        soft_bkd = self.soft_tokens(prior_params, obs_bo)
        ids_gt, mask_gt = self.padded_instruction_ids("left")
        iid = instruction_id_b.astype(jnp.int32)
        ids_bt = jnp.asarray(ids_gt)[iid]
        b = obs_bo.shape[0]
        mask_bt = jnp.concatenate(
            [jnp.asarray(mask_gt)[iid], jnp.ones((b, self.num_soft_tokens), bool)], axis=1)
        embeds = jnp.concatenate(
            [llm_fns.embed_tokens(self.llm_config, llm, ids_bt),
             soft_bkd.astype(self.llm_config.jnp_dtype)], axis=1)
        positions_bt = jnp.maximum(jnp.cumsum(mask_bt.astype(jnp.int32), axis=1) - 1, 0)
        hidden_btd, _ = llm_fns.forward_embeds(self.llm_config, llm, embeds, positions_bt, mask_bt)
        return hidden_btd[:, -1].astype(jnp.float32)

    def apply(self, prior_params: PriorParams, obs_bo: jax.Array,
              instruction_id_b: jax.Array) -> Distribution:
        """The PPO Prior protocol: raw obs [B, O] float32, instruction_id [B] int32 -> p(a | s, g)."""
        z = self.latent(prior_params, obs_bo, instruction_id_b)
        return apply_head(prior_params.trainable["head"], self.head, self.action_dim, z)

    def apply_uncached(self, prior_params: PriorParams, obs_bo: jax.Array,
                       instruction_id_b: jax.Array) -> Distribution:
        """``apply`` without the prefix cache (reference path; recomputes the instruction)."""
        z = self.latent_uncached(prior_params, obs_bo, instruction_id_b)
        return apply_head(prior_params.trainable["head"], self.head, self.action_dim, z)

    def training_apply(self, prior_params: PriorParams, obs_bo: jax.Array,
                       instruction_id_b: jax.Array) -> Distribution:
        """What distillation differentiates: ``apply`` (cached prefix) without LoRA; with LoRA the
        full forward, so gradients reach the adapters through the instruction's keys and values."""
        if self.lora_rank:
            return self.apply_uncached(prior_params, obs_bo, instruction_id_b)
        return self.apply(prior_params, obs_bo, instruction_id_b)


def build_llm_prior(backbone: str, instructions: Sequence[str], obs_dim: int, action_space: Any,
                    key: jax.Array, *, dtype: Any = jnp.float32, cache_dir: Optional[str] = None,
                    **kwargs) -> tuple[LLMPrior, PriorParams]:
    """Loads the LLM (``lago_jax.llm.load_pretrained``), tokenizes the bank, inits the prior.

    Args:
      backbone: "smollm2-135m", "random:<preset>[:<seed>]", a Hugging Face directory or .gguf.
      kwargs: other LLMPrior fields (num_soft_tokens, proj_hidden, prompt_template, ...).
    Returns:
      (prior, prior_params) with identity observation statistics (``distill`` sets them).
    """
    from lago_jax.llm import load_pretrained  # pylint: disable=import-outside-toplevel
    llm_config, llm_params, tokenizer = load_pretrained(backbone, dtype=dtype, cache_dir=cache_dir)
    if tokenizer is None:
        raise ValueError(f"the LLM at {backbone!r} comes without a tokenizer; the prior needs one to "
                         "tokenize its instructions")
    prior = LLMPrior.from_instructions(llm_config, tokenizer, instructions, obs_dim, action_space,
                                       backbone=backbone, **kwargs)
    return prior, prior.init(key, llm_params)


@functools.partial(jax.jit, static_argnums=0)
def _merge_lora_jit(prior: LLMPrior, llm_params: Params, lora: Params) -> Params:
    return prior.merge_lora(llm_params, lora)


@functools.partial(jax.jit, static_argnums=0)
def _prefill(config: LLMConfig, llm_params: Params, ids_gt: jax.Array,
             mask_gt: jax.Array) -> PrefixCache:
    return llm_fns.prefill_prefix(config, llm_params, ids_gt, mask_gt)


# ----------------------------------------------------------------------------- MLP prior


@dataclasses.dataclass(frozen=True)
class MLPPrior:
    """The no-LLM ablation: [normalised obs ; instruction features] -> MLP -> the same heads.

    The instruction enters in one of two ways:

    * by id (default): a learned embedding row per instruction of the bank. It cannot take an
      instruction it never saw.
    * as text (``instruction_token_ids`` given, see ``from_instructions(..., tokenizer=...)``):
      the instruction's tokens (the LLM's tokenizer) through a small encoder trained from scratch:
      token and position embeddings, one single-head self-attention block with a ReLU MLP (both
      residual, parameter-free layer norms), mean-pooled over the tokens. Token embeddings start
      at zero, so a token never seen in training adds nothing but its position. This is the fair
      no-LLM prior of the language protocol: it reads any instruction, and differs from the LLM
      priors only in what it knew before the demonstrations (nothing).
    """

    obs_dim: int
    """Width O of the raw observation."""
    head: str
    """"categorical" or "gaussian"."""
    action_dim: int
    """Number of actions (categorical) or action width (gaussian)."""
    num_instructions: int = 1
    """Size G of the instruction bank (rows of the learned instruction embedding)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP (ReLU)."""
    instruction_embed_dim: int = 32
    """Width of the learned instruction-id embedding (id input) or of the text encoder (text input)."""
    backbone: str = "mlp"
    """Recorded in outputs in place of an LLM name."""
    instructions: tuple[str, ...] = ()
    """The instruction texts (for the record; the id input sees ids)."""
    obs_keep: Optional[tuple[int, ...]] = None
    """Observation entries the MLP reads (None: all); see ``LLMPrior.obs_keep``."""
    instruction_token_ids: Optional[tuple[tuple[int, ...], ...]] = None
    """The tokens of every instruction of the bank (text input); None reads instruction ids."""
    vocab_size: int = 0
    """Rows of the token embedding (text input): the tokenizer's vocabulary size."""
    max_tokens: int = 128
    """Longest instruction the text encoder takes (rows of its position embedding)."""

    def __post_init__(self):
        _check_head(self.head, self.action_dim)
        if self.obs_dim < 1 or self.num_instructions < 1:
            raise ValueError(f"obs_dim and num_instructions must be >= 1, got {self.obs_dim}, "
                             f"{self.num_instructions}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "obs_keep", check_obs_keep(self.obs_keep, self.obs_dim))
        if self.instruction_token_ids is not None:
            ids = tuple(tuple(int(t) for t in seq) for seq in self.instruction_token_ids)
            object.__setattr__(self, "instruction_token_ids", ids)
            if len(ids) != self.num_instructions:
                raise ValueError(f"{len(ids)} token sequences for a bank of {self.num_instructions} instructions")
            if self.vocab_size < 1:
                raise ValueError(f"vocab_size must be >= 1 for a text input, got {self.vocab_size}")
            for i, seq in enumerate(ids):
                if not seq or len(seq) > self.max_tokens:
                    raise ValueError(f"instruction {i} has {len(seq)} tokens; the text encoder takes 1 to "
                                     f"max_tokens={self.max_tokens}")
                bad = [t for t in seq if not 0 <= t < self.vocab_size]
                if bad:
                    raise ValueError(f"instruction {i} has token ids {bad[:5]} outside [0, {self.vocab_size})")

    @classmethod
    def from_instructions(cls, instructions: Sequence[str], obs_dim: int, action_space: Any = None,
                          *, head: Optional[str] = None, action_dim: Optional[int] = None,
                          tokenizer: Any = None, **kwargs) -> "MLPPrior":
        """Mirror of ``LLMPrior.from_instructions``. With a ``tokenizer`` (``encode(text) -> ids``
        and ``vocab_size``) the MLP reads the instructions as text; without, by id."""
        if action_space is not None:
            head, action_dim = head_for_action_space(action_space)
        if head is None or action_dim is None:
            raise ValueError("give either action_space or both head and action_dim")
        texts = tuple(str(g) for g in instructions)
        if tokenizer is not None:
            kwargs = dict(kwargs, instruction_token_ids=_encode_texts(tokenizer, texts),
                          vocab_size=_vocab_size(tokenizer))
        return cls(obs_dim=int(obs_dim), head=head, action_dim=int(action_dim),
                   num_instructions=len(texts), instructions=texts, **kwargs)

    def with_instructions(self, tokenizer: Any, instructions: Sequence[str],
                          prior_params: PriorParams) -> tuple["MLPPrior", PriorParams]:
        """The same text prior over another instruction bank (params unchanged). An id-input MLP
        cannot: its embedding has no row for an instruction it never saw."""
        if not self.reads_text:
            raise ValueError("this MLP prior reads instruction ids and cannot take other instructions; "
                             "build it with a tokenizer (text input) to evaluate it on new phrasings or goals")
        texts = tuple(str(g) for g in instructions)
        return dataclasses.replace(self, instruction_token_ids=_encode_texts(tokenizer, texts),
                                   num_instructions=len(texts), instructions=texts), prior_params

    @property
    def reads_text(self) -> bool:
        return self.instruction_token_ids is not None

    @property
    def input_dim(self) -> int:
        return self.obs_dim if self.obs_keep is None else len(self.obs_keep)

    @property
    def d_model(self) -> int:
        """Width of the latent fed to the head (the last hidden layer)."""
        return self.hidden[-1] if self.hidden else self.input_dim + self.instruction_embed_dim

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "mlp", "backbone": self.backbone, "d_model": self.d_model,
            "obs_dim": self.obs_dim, "head": self.head, "action_dim": self.action_dim,
            "hidden": list(self.hidden), "instruction_embed_dim": self.instruction_embed_dim,
            # a text prior's size does not depend on its bank
            "num_instructions": None if self.reads_text else self.num_instructions,
            "obs_keep": None if self.obs_keep is None else list(self.obs_keep),
            "text_input": {"vocab_size": self.vocab_size, "max_tokens": self.max_tokens} if self.reads_text else None,
        }

    def init_trainable(self, key: jax.Array) -> Params:
        """Fresh instruction input (id embedding or text encoder), MLP and action head."""
        keys = jax.random.split(key, len(self.hidden) + 2)
        e = self.instruction_embed_dim
        widths = (self.input_dim + e,) + self.hidden
        if self.reads_text:
            kt = jax.random.split(keys[0], 7)
            instruction = {"text": {
                "token_embed": jnp.zeros((self.vocab_size, e), jnp.float32),
                "pos_embed": 0.02 * jax.random.normal(kt[0], (self.max_tokens, e), jnp.float32),
                "q": _dense_init(kt[1], e, e), "k": _dense_init(kt[2], e, e), "v": _dense_init(kt[3], e, e),
                "o": _dense_init(kt[4], e, e, scale=0.5),
                "mlp": [_dense_init(kt[5], e, 2 * e), _dense_init(kt[6], 2 * e, e, scale=0.5)],
            }}
        else:
            instruction = {"instruction_embed": jax.random.normal(
                keys[0], (self.num_instructions, e), jnp.float32)}
        return {
            **instruction,
            "mlp": [_dense_init(keys[i + 1], widths[i], widths[i + 1]) for i in range(len(self.hidden))],
            "head": init_head(keys[-1], widths[-1], self.head, self.action_dim),
        }

    def init(self, key: jax.Array, obs_norm: Optional[ObsNorm] = None) -> PriorParams:
        """Fresh trainable parameters; identity observation statistics unless given."""
        trainable = self.init_trainable(key)
        frozen = {"obs_norm": obs_norm if obs_norm is not None else identity_obs_norm(self.obs_dim)}
        return PriorParams(trainable=trainable, frozen=frozen)

    def padded_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """The bank's tokens [G, T] int32 and mask [G, T] bool, right-padded (text input)."""
        g, t = self.num_instructions, max(len(x) for x in self.instruction_token_ids)
        ids, mask = np.zeros((g, t), np.int32), np.zeros((g, t), bool)
        for i, seq in enumerate(self.instruction_token_ids):
            ids[i, : len(seq)], mask[i, : len(seq)] = seq, True
        return ids, mask

    def encode_text(self, text_params: Params, ids_bt: jax.Array, mask_bt: jax.Array) -> jax.Array:
        """The text encoder: tokens [B, T] (mask [B, T]) -> instruction features [B, E]."""
        def norm(x):
            return (x - x.mean(-1, keepdims=True)) * jax.lax.rsqrt(x.var(-1, keepdims=True) + 1e-5)

        t = ids_bt.shape[1]
        x_bte = text_params["token_embed"][ids_bt] + text_params["pos_embed"][:t][None]
        h = norm(x_bte)
        q, k, v = (_dense(text_params[n], h) for n in ("q", "k", "v"))
        logits = jnp.einsum("bqe,bke->bqk", q, k) / math.sqrt(q.shape[-1])
        logits = jnp.where(mask_bt[:, None, :], logits, -1e9)
        x_bte = x_bte + _dense(text_params["o"], jnp.einsum("bqk,bke->bqe", jax.nn.softmax(logits, -1), v))
        x_bte = x_bte + _mlp(text_params["mlp"], norm(x_bte))
        m = mask_bt[..., None].astype(jnp.float32)
        return (x_bte * m).sum(1) / jnp.maximum(m.sum(1), 1.0)

    def instruction_features(self, trainable: Params, instruction_id_b: jax.Array) -> jax.Array:
        """[B, E]: the id embedding's rows, or the text encoder over each row's instruction."""
        iid = instruction_id_b.astype(jnp.int32)
        if not self.reads_text:
            return trainable["instruction_embed"][iid]
        ids_gt, mask_gt = self.padded_tokens()
        return self.encode_text(trainable["text"], jnp.asarray(ids_gt)[iid], jnp.asarray(mask_gt)[iid])

    def latent(self, prior_params: PriorParams, obs_bo: jax.Array,
               instruction_id_b: jax.Array) -> jax.Array:
        """Last hidden layer [B, hidden[-1]]."""
        chex.assert_rank(obs_bo, 2)
        chex.assert_axis_dimension(obs_bo, 1, self.obs_dim)
        chex.assert_shape(instruction_id_b, (obs_bo.shape[0],))
        x = prior_input(prior_params.obs_norm, self.obs_keep, obs_bo)
        emb = self.instruction_features(prior_params.trainable, instruction_id_b)
        h = jnp.concatenate([x, emb], axis=-1)
        for layer in prior_params.trainable["mlp"]:
            h = jax.nn.relu(_dense(layer, h))
        return h

    def apply(self, prior_params: PriorParams, obs_bo: jax.Array,
              instruction_id_b: jax.Array) -> Distribution:
        """The PPO Prior protocol: raw obs [B, O] float32, instruction_id [B] int32 -> p(a | s, g)."""
        z = self.latent(prior_params, obs_bo, instruction_id_b)
        return apply_head(prior_params.trainable["head"], self.head, self.action_dim, z)

    training_apply = apply

    def refresh_prefix_cache(self, prior_params: PriorParams) -> PriorParams:
        """No cache to refresh."""
        return prior_params


def _encode_texts(tokenizer: Any, texts: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(t) for t in tokenizer.encode(g)) for g in texts)


def _vocab_size(tokenizer: Any) -> int:
    n = getattr(tokenizer, "vocab_size", None)
    if n is None and hasattr(tokenizer, "get_vocab_size"):
        n = tokenizer.get_vocab_size()
    if not n:
        raise ValueError(f"the tokenizer {type(tokenizer).__name__} does not tell its vocabulary size")
    return int(n)


def with_instructions(prior: Any, prior_params: PriorParams, tokenizer: Any,
                      instructions: Sequence[str]) -> tuple[Any, PriorParams]:
    """A distilled prior over another instruction bank (new phrasings, unseen goals, your own
    words), its trained weights unchanged: ``prior.with_instructions``."""
    return prior.with_instructions(tokenizer, instructions, prior_params)


DistillablePrior = Union[LLMPrior, MLPPrior]
"""The priors :func:`lago_jax.prior.distill` can train (both satisfy :class:`lago_jax.ppo.Prior`)."""
