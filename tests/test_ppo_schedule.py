"""Beta schedules (constant, linear, adaptive KL) and PPOConfig validation."""

import jax.numpy as jnp
import numpy as np
import pytest

from lago_jax.ppo.config import PPOConfig
from lago_jax.ppo.schedule import BetaSchedule, next_beta


def roll(schedule, kls):
    beta, out = schedule.init(), []
    for i, kl in enumerate(kls):
        out.append(float(beta))
        beta = next_beta(schedule, beta, i, kl)
    return out


def test_constant_and_linear():
    assert roll(BetaSchedule("constant", 0.3), [5.0, 0.0, 1.0]) == pytest.approx([0.3] * 3)
    lin = roll(BetaSchedule("linear", 1.0, 0.2, num_updates=5), [0.0] * 5)
    np.testing.assert_allclose(lin, [1.0, 0.8, 0.6, 0.4, 0.2], rtol=1e-6)


def test_adaptive_doubles_halves_and_clips():
    s = BetaSchedule("adaptive", 1.0, kl_target=0.1, beta_min=0.25, beta_max=4.0)
    # > 1.5 * target doubles; < target / 1.5 halves; in between keeps; clipped to [0.25, 4].
    got = roll(s, [0.2, 0.2, 0.2, 0.2, 0.1, 0.01, 0.01, 0.01, 0.01, 0.01])
    assert got == pytest.approx([1, 2, 4, 4, 4, 4, 2, 1, 0.5, 0.25])
    assert float(next_beta(s, np.float32(0.25), 10, 0.0)) == pytest.approx(0.25)


def test_schedule_validation_names_bad_value():
    with pytest.raises(ValueError, match="'cosine'"):
        BetaSchedule("cosine")
    with pytest.raises(ValueError, match="beta_min"):
        BetaSchedule("adaptive", beta_min=1.0, beta_max=0.5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_envs=0), "num_envs=0"),
        (dict(num_steps=10, num_minibatches=4), "num_minibatches=4"),
        (dict(gamma=1.5), "gamma=1.5"),
        (dict(kl_schedule="cosine"), "kl_schedule='cosine'"),
        (dict(kl_direction="up"), "kl_direction='up'"),
        (dict(activation="swish2"), "activation='swish2'"),
        (dict(lr=0.0), "lr=0.0"),
        (dict(kl_coef=-1.0), "kl_coef=-1.0"),
        (dict(hidden_sizes=()), "hidden_sizes"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PPOConfig(num_updates=1, **kwargs)


def test_config_updates_and_roundtrip():
    with pytest.raises(ValueError, match="num_updates or total_timesteps"):
        PPOConfig()
    c = PPOConfig(num_envs=4, num_steps=8, total_timesteps=100)
    assert c.updates == 3
    with pytest.raises(ValueError, match="num_updates=7 and total_timesteps=100 both set"):
        PPOConfig(num_updates=7, total_timesteps=100)
    assert PPOConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown PPOConfig fields"):
        PPOConfig.from_dict(dict(c.to_dict(), bogus=1))


def test_adaptive_schedule_from_zero_stays_zero():
    """beta_init = 0 is vanilla PPO under every schedule: the adaptive rule does not lift it to
    beta_min whatever KL it measures."""
    s = BetaSchedule("adaptive", 0.0, kl_target=0.01, beta_min=1e-4, beta_max=10.0)
    beta = s.init()
    for kl in (0.0, 1.0, 100.0, 1e-6):
        beta = next_beta(s, beta, jnp.asarray(0), jnp.asarray(kl, jnp.float32))
        assert float(beta) == 0.0
