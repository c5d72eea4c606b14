"""GAE scan against a plain Python loop, on odd sizes with terminations and truncations."""

import numpy as np
import pytest

from lago_jax.ppo.gae import compute_gae


def gae_loop(r, v, nv, term, done, gamma, lam):
    T, B = r.shape
    adv = np.zeros((T, B), np.float64)
    for b in range(B):
        running = 0.0
        for t in reversed(range(T)):
            delta = r[t, b] + gamma * nv[t, b] * (1.0 - term[t, b]) - v[t, b]
            running = delta + gamma * lam * (1.0 - done[t, b]) * running
            adv[t, b] = running
    return adv, adv + v


@pytest.mark.parametrize("T,B", [(7, 3), (13, 5), (1, 1)])
def test_gae_matches_python_loop(T, B):
    rng = np.random.default_rng(T * 100 + B)
    r, v, nv = (rng.normal(size=(T, B)).astype(np.float32) for _ in range(3))
    term = (rng.random((T, B)) < 0.15).astype(np.float32)
    trunc = ((rng.random((T, B)) < 0.15) & (term == 0)).astype(np.float32)
    done = np.maximum(term, trunc)
    adv, tgt = compute_gae(r, v, nv, term, done, 0.97, 0.9)
    want_adv, want_tgt = gae_loop(r, v, nv, term, done, 0.97, 0.9)
    np.testing.assert_allclose(np.asarray(adv), want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(tgt), want_tgt, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_and_termination_does_not():
    # One env, 2 steps. Step 0 ends the episode. Truncated: bootstrap V(final_obs)=5; terminated: 0.
    r = np.array([[1.0], [0.0]], np.float32)
    v = np.zeros((2, 1), np.float32)
    nv = np.array([[5.0], [0.0]], np.float32)
    done = np.array([[1.0], [0.0]], np.float32)
    adv_trunc, _ = compute_gae(r, v, nv, np.zeros_like(done), done, 0.5, 1.0)
    adv_term, _ = compute_gae(r, v, nv, done, done, 0.5, 1.0)
    assert float(adv_trunc[0, 0]) == pytest.approx(1.0 + 0.5 * 5.0)
    assert float(adv_term[0, 0]) == pytest.approx(1.0)
