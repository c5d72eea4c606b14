"""PPO options that could take no effect are refused by name, or do what they say.

* a KL weight without a prior is an error (``kl_coef``, or a linear schedule's ``kl_coef_final``);
* a prior under a beta that stays 0 is never evaluated, and the run is vanilla PPO bit for bit;
* ``num_updates`` and ``total_timesteps`` together are an error, not one silently winning;
* ``make_train``'s ``train()`` without a key starts from ``config.seed``, as ``run`` does.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.point_mass import PointMass
from lago_jax.distributions import Categorical
from lago_jax.ppo import PPOConfig, make_ppo, make_train, run

ENV = PointMass(discrete=True)
PRIOR_PARAMS = {"b": jnp.array([3.0, 0.0, 0.0, 0.0, 0.0])}


def config(**kw):
    return PPOConfig(**{**dict(num_envs=4, num_steps=8, num_updates=2, update_epochs=1, num_minibatches=2,
                                hidden_sizes=(16, 16), episode_length=10), **kw})


class CountingPrior:
    """A constant categorical prior that counts how often the update traces it."""

    def __init__(self):
        self.calls = 0

    def apply(self, prior_params, obs, instruction_id):
        self.calls += 1
        return Categorical(jnp.broadcast_to(prior_params["b"], (obs.shape[0], 5)))


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.mark.parametrize("kw,name", [
    (dict(kl_coef=0.5), "PPOConfig.kl_coef=0.5"),
    (dict(kl_coef=0.5, kl_schedule="adaptive"), "PPOConfig.kl_coef=0.5"),
    (dict(kl_schedule="linear", kl_coef_final=0.2), "PPOConfig.kl_coef_final=0.2"),
])
def test_kl_weight_without_a_prior_is_refused(kw, name, tmp_path):
    cfg = config(**kw)
    assert cfg.kl_active
    for build in (lambda: make_ppo(cfg, ENV), lambda: make_train(cfg, ENV),
                  lambda: run(cfg, ENV, str(tmp_path), progress=False)):
        with pytest.raises(ValueError, match=name + " weights a KL penalty toward a prior, but no prior"):
            build()


@pytest.mark.parametrize("kw", [dict(), dict(kl_schedule="adaptive"), dict(kl_schedule="linear")])
def test_beta_that_stays_zero_needs_no_prior(kw):
    cfg = config(**kw)
    assert not cfg.kl_active
    make_ppo(cfg, ENV)  # vanilla PPO under every schedule: no error


def test_prior_under_zero_beta_is_not_evaluated_and_trains_vanilla_ppo(tmp_path):
    cfg = config(seed=1)
    key = jax.random.PRNGKey(1)
    vanilla = make_train(cfg, ENV)(key)
    prior = CountingPrior()
    guided0 = make_train(cfg, ENV, prior)(key, PRIOR_PARAMS)
    assert prior.calls == 0
    for a, b in zip(leaves(vanilla.state), leaves(guided0.state)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(guided0.metrics["kl_prior"]), 0.0)
    split = run(cfg, ENV, str(tmp_path / "zero"), prior, PRIOR_PARAMS, progress=False)  # the host loop too
    assert prior.calls == 0 and all(r["kl_prior"] == 0.0 for r in split.rows)
    with pytest.raises(ValueError, match="prior_params is None"):  # the prior's contract is unchanged
        make_train(cfg, ENV, prior)(key)
    # A positive beta does evaluate it.
    guided = make_train(config(seed=1, kl_coef=0.5), ENV, prior)(key, PRIOR_PARAMS)
    assert prior.calls > 0 and float(np.min(np.asarray(guided.metrics["kl_prior"]))) > 0


def test_two_training_lengths_are_refused():
    with pytest.raises(ValueError, match=r"PPOConfig.num_updates=3 and total_timesteps=96 both set the training length"):
        PPOConfig(num_updates=3, total_timesteps=96)
    assert PPOConfig(num_envs=4, num_steps=8, total_timesteps=96).updates == 3


def test_train_without_a_key_starts_from_the_config_seed():
    """``train()`` uses ``PRNGKey(config.seed)``; ``checkpoint_every`` (``run``'s chunking) does not
    change a ``make_train`` run."""
    three = make_train(config(seed=3), ENV)()
    keyed = make_train(config(seed=0), ENV)(jax.random.PRNGKey(3))
    for a, b in zip(leaves(three.state), leaves(keyed.state)):
        np.testing.assert_array_equal(a, b)
    other = make_train(config(seed=4, checkpoint_every=1), ENV)()
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(three.state.params), leaves(other.state.params)))
    chunked = make_train(config(seed=3, checkpoint_every=1), ENV)()
    for a, b in zip(leaves(three.state), leaves(chunked.state)):
        np.testing.assert_array_equal(a, b)
