"""KL-guided PPO (LaGO stage 2) in the purejaxrl/brax shape.

Files: ``config.py`` (``PPOConfig``), ``networks.py`` (actor-critic, observation normaliser),
``rollout.py`` (``Transition``, the rollout scan), ``gae.py``, ``loss.py`` (PPO + beta * KL),
``schedule.py`` (beta over training), ``protocol.py`` (the ``Prior`` protocol), ``acting.py`` (the
env stack and the rollout half of an update), ``guidance.py`` (the prior over visited states),
``train.py`` (``TrainState``, ``make_learn``, ``make_ppo``, ``make_train``), ``runner.py`` (``run``,
the checkpointed host loop), ``evaluate.py``. Importing this package does not load the LLM stack
(``lago_jax.llm``, ``lago_jax.prior``, transformers, tokenizers): priors come in as objects.

Entry points::

    train = make_train(config, env, prior=None, mesh=None)    # jitted
    out = train(jax.random.PRNGKey(0), prior_params)            # TrainOutput(state, metrics)
    outs = jax.vmap(train, in_axes=(0, None))(keys, prior_params)   # several seeds
    result = run(config, env, out_dir, prior, prior_params)     # host loop, checkpoints, logs
    stats = evaluate(out_dir, env, episodes=64, seed=0)          # from the latest checkpoint

The prior contract (what an LLM or MLP prior must implement)
------------------------------------------------------------
A prior is any object with a method::

    prior.apply(prior_params, obs, instruction_id) -> Distribution

* ``prior_params``: any pytree (e.g. 135M parameters). It is passed to ``train(key,
  prior_params)`` / ``run(..., prior_params=...)`` as an *argument*, never closed over, and is
  replicated across devices under data parallelism. ``prior`` itself is a static Python
  object closed over by the jitted functions: keep arrays that should be traced in
  ``prior_params``, not on the object.
* ``obs``: ``[B, obs_dim]`` float32 **raw** (un-normalised) observations, exactly what the env
  returned; rows are independent states.
* ``instruction_id``: ``[B]`` int32, ``state.info["instruction_id"]`` of each env (an index into
  ``env.instructions``; host-side tokenisation is the prior's business).
* returns a :class:`lago_jax.distributions.Categorical` with ``logits [B, n]`` for a
  ``Discrete(n)`` env, or a :class:`lago_jax.distributions.DiagGaussian` with ``mean, log_std
  [B, dim]`` for a ``Box(dim)`` env: the same family and shape as the policy. Gaussian priors
  live in the same unclipped action space as the policy's samples.
* It must be pure and jittable: inside the jitted update, right after the env rollout, it is
  called on all ``T x B`` visited states of the rollout, flattened and split into chunks of
  ``config.prior_chunk`` rows (``lax.map`` over the chunks; ``B`` above is then the chunk size,
  which fills the hardware far better than the rollout's env batch), wrapped in ``stop_gradient``; its output is stored on
  ``Transition.prior_dist`` and reused by every epoch of the update. (Keeping the prior out of
  the env-stepping scan lets :func:`run` compile one rollout program for every variant.)

The loss then adds ``beta * mean(kl_divergence(pi, prior_dist, config.kl_direction))``
(``"reverse"``: KL(pi || prior), ``"forward"``: KL(prior || pi)); beta follows
``config.kl_schedule`` (:mod:`lago_jax.ppo.schedule`). Without a prior, or with beta = 0,
the update is exactly PPO; a beta that stays 0 (``not config.kl_active``) skips the prior
altogether, and a positive one without a prior is refused. Metrics carry ``kl_prior`` (per
minibatch) and ``beta`` (per update).
"""

from lago_jax.errors import NonFiniteLossError
from lago_jax.logging import metrics_to_rows
from lago_jax.normalization import ObsNormStats
from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.evaluate import evaluate, evaluate_params, evaluate_policy, evaluate_prior, evaluate_random
from lago_jax.ppo.networks import ActorCritic
from lago_jax.ppo.protocol import Prior
from lago_jax.ppo.rollout import Transition
from lago_jax.ppo.runner import RunResult, run
from lago_jax.ppo.train import PPO, TrainOutput, TrainState, make_ppo, make_train

__all__ = [
    "ActorCritic",
    "NonFiniteLossError",
    "ObsNormStats",
    "PPO",
    "PPOConfig",
    "Prior",
    "RunResult",
    "TrainOutput",
    "TrainState",
    "Transition",
    "evaluate",
    "evaluate_params",
    "evaluate_policy",
    "evaluate_prior",
    "evaluate_random",
    "make_ppo",
    "make_train",
    "metrics_to_rows",
    "run",
]
