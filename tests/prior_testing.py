"""Shared helpers for the prior tests: a tiny random LLM and synthetic demonstrations."""

from __future__ import annotations

import functools

import numpy as np

from envs.demos import Demos

OBS_DIM = 4
NUM_INSTRUCTIONS = 3
NUM_ACTIONS = 5
ACTION_DIM = 2
INSTRUCTIONS = ("push the red ball left", "move blue right", "")


@functools.lru_cache(maxsize=None)
def tiny_llm():
    """(config, params, tokenizer) of the LLM package's tiny test preset, random weights."""
    from lago_jax.llm import load_pretrained
    return load_pretrained("random:test-tiny:0")


def synthetic_demos(head: str, num_episodes: int = 24, steps_per_episode: int = 16,
                    seed: int = 0, instruction_dependent: bool = True) -> Demos:
    """Demonstrations whose action is a deterministic function of (obs, instruction).

    With instruction_dependent=False every instruction shares one mapping (W_g = W_0): a frozen
    random LLM passes little instruction information into the last soft token, so the tests that
    distil a prior on a random backbone use the obs-only task.

    categorical: action = argmax_a (W_g @ obs)_a over NUM_ACTIONS actions.
    gaussian: action = tanh(M_g @ obs), ACTION_DIM wide.
    Observations are N(3, 2^2) per feature so normalisation matters.
    """
    rng = np.random.default_rng(seed)
    n = num_episodes * steps_per_episode
    weights = np.random.default_rng(123).normal(
        size=(NUM_INSTRUCTIONS, NUM_ACTIONS if head == "categorical" else ACTION_DIM, OBS_DIM))
    if not instruction_dependent:
        weights = np.broadcast_to(weights[:1], weights.shape)
    episode_id = np.repeat(np.arange(num_episodes, dtype=np.int32), steps_per_episode)
    instruction_id = np.repeat(rng.integers(0, NUM_INSTRUCTIONS, num_episodes), steps_per_episode)
    instruction_id = instruction_id.astype(np.int32)
    obs = (3.0 + 2.0 * rng.normal(size=(n, OBS_DIM))).astype(np.float32)
    scores = np.einsum("nao,no->na", weights[instruction_id], (obs - 3.0) / 2.0)
    if head == "categorical":
        action = np.argmax(scores, axis=-1).astype(np.int32)
        space = {"type": "discrete", "n": NUM_ACTIONS}
    else:
        action = np.tanh(scores).astype(np.float32)
        space = {"type": "box", "low": [-1.0] * ACTION_DIM, "high": [1.0] * ACTION_DIM}
    done = np.zeros(n, np.float32)
    done[steps_per_episode - 1::steps_per_episode] = 1.0
    return Demos(
        obs=obs, action=action, instruction_id=instruction_id, reward=np.zeros(n, np.float32),
        done=done, terminated=done.copy(), success=done.copy(), episode_id=episode_id,
        episode_success=np.ones(num_episodes, np.float32),
        episode_return=np.zeros(num_episodes, np.float32),
        episode_length=np.full(num_episodes, steps_per_episode, np.int32),
        instructions=INSTRUCTIONS, env_name="synthetic", action_space=space)


def head_args(head: str) -> dict:
    return {"head": head, "action_dim": NUM_ACTIONS if head == "categorical" else ACTION_DIM}


def tiny_llm_prior(head: str, num_soft_tokens: int = 1, **kwargs):
    """LLMPrior on the tiny random LLM (byte tokenizer) for the synthetic instruction bank."""
    from lago_jax.prior import LLMPrior
    config, _, tokenizer = tiny_llm()
    return LLMPrior.from_instructions(config, tokenizer, INSTRUCTIONS, OBS_DIM,
                                      num_soft_tokens=num_soft_tokens,
                                      backbone="random:test-tiny:0", **head_args(head), **kwargs)


def mlp_prior(head: str, **kwargs):
    from lago_jax.prior import MLPPrior
    return MLPPrior.from_instructions(INSTRUCTIONS, OBS_DIM, **head_args(head), **kwargs)
