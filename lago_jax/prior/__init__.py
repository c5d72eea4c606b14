"""lago_jax.prior: LaGO's latent action prior and its stage-1 distillation.

    prior = LLMPrior.from_instructions(llm_config, tokenizer, env.instructions, obs_dim,
                                       env.action_space, backbone="smollm2-135m")
    prior_params = prior.init(key, llm_params)        # prefix caches of the bank computed here
    prior_params, result = distill(prior, prior_params, demos, DistillConfig(), out_dir)
    dist = prior.apply(prior_params, obs, instruction_id)   # the PPO Prior protocol

``MLPPrior`` is the no-LLM ablation with the same ``apply`` (instruction by id, or as text through
a small encoder trained from scratch). ``with_instructions(prior, params, tokenizer, texts)`` puts a
distilled prior over another instruction bank (held-out phrasings, unseen goals, your own words). ``load_prior(out_dir, prior,
frozen)`` restores distilled parameters. The beta schedules of stage 2 live in
:mod:`lago_jax.ppo.schedule`.
"""

from lago_jax.normalization import ObsNorm, compute_obs_norm
from lago_jax.prior.distill import (DistillConfig, DistillResult, NonFiniteLossError, distill,
                                    load_prior)
from lago_jax.prior.model import (DEFAULT_PROMPT_TEMPLATE, LOG_STD_MAX, LOG_STD_MIN, LLMPrior,
                                  MLPPrior, DistillablePrior, PriorParams, build_llm_prior,
                                  head_for_action_space, with_instructions)

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE", "DistillConfig", "DistillResult", "LLMPrior", "LOG_STD_MAX",
    "LOG_STD_MIN", "MLPPrior", "NonFiniteLossError", "ObsNorm", "DistillablePrior", "PriorParams",
    "build_llm_prior", "compute_obs_norm", "distill", "head_for_action_space", "load_prior", "with_instructions",
]
