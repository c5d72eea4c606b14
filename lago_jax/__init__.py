"""lago-jax: LaGO (Latent Action Guidance for Online RL) in JAX.

Subpackages: ``ppo`` (KL-guided PPO), ``llm`` (Flax Llama port and loaders), ``prior``
(the latent action prior and its distillation), ``experiments`` (entry points).
"""

__version__ = "0.1.0"
