"""Tests of the Jensen–Shannon and generalised KL divergences, and scipy parity of the family.

References: ``scipy.special.rel_entr`` (x log(x/y)), ``scipy.special.kl_div``
(x log(x/y) − x + y), ``scipy.special.entr`` (−x log x), ``scipy.stats.entropy`` and
``scipy.spatial.distance.jensenshannon`` (the square root of JS).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads
from scipy import special, stats
from scipy.spatial import distance

import jaxloss

N, C = 4, 5


def np_reduce(values, reduction, where=None, weights=None):
    """The contract's rule: w·ℓ, Σ w·ℓ, Σ w·ℓ / Σ w (0 if nothing counts)."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.ones(values.shape, bool) if where is None else where
    w = np.ones(values.shape) if weights is None else weights
    w = np.where(mask, w, 0.0)
    weighted = np.where(mask, w * np.where(mask, values, 0.0), 0.0)
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / w.sum() if w.sum() != 0 else 0.0


def np_js(logits, p):
    q = special.softmax(logits, axis=-1)
    m = (p + q) / 2
    return 0.5 * special.rel_entr(p, m).sum(-1) + 0.5 * special.rel_entr(q, m).sum(-1)


def np_generalized_kl(log_y, t):
    return special.kl_div(t, np.exp(log_y)).sum(-1)


def _inputs(seed, zeros=False):
    rng = np.random.default_rng(seed)
    logits = 2 * rng.normal(size=(N, C))
    p = special.softmax(rng.normal(size=(N, C)), axis=-1)
    if zeros:
        p[0, 1] = p[2, 3] = 0.0
        p = p / p.sum(-1, keepdims=True)
    return logits, p


def _measures(seed, zeros=False):
    rng = np.random.default_rng(seed)
    log_y = rng.normal(size=(N, C))
    t = rng.uniform(0.0, 3.0, size=(N, C))
    if zeros:
        t[1, 2] = t[3, 0] = 0.0
    return log_y, t


CASES = {
    "js_divergence": (jaxloss.js_divergence, _inputs, np_js),
    "generalized_kl_divergence": (jaxloss.generalized_kl_divergence, _measures, np_generalized_kl),
}


def _mask_and_weights(seed=1):
    rng = np.random.default_rng(seed)
    where = rng.random(N) < 0.7
    where[0] = True
    return where, rng.uniform(0.1, 2.0, size=N)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name", CASES)
def test_matches_scipy_in_every_reduction(name, reduction):
    fn, make, ref = CASES[name]
    x, y = make(0, zeros=True)
    where, weights = _mask_and_weights()
    got = fn(x, y, where=where, weights=weights, reduction=reduction)
    np.testing.assert_allclose(got, np_reduce(ref(x, y), reduction, where, weights),
                               rtol=1e-12, atol=1e-15)
    if reduction == "mean":
        np.testing.assert_allclose(fn(x, y), np.mean(ref(x, y)), rtol=1e-12)


def test_js_matches_scipy_jensenshannon_and_its_properties():
    logits, p = _inputs(2)
    q = special.softmax(logits, axis=-1)
    js = jaxloss.js_divergence(logits, p, reduction="none")
    # scipy returns the distance, the square root of the divergence (natural log by default).
    np.testing.assert_allclose(js, distance.jensenshannon(p, q, axis=-1) ** 2, rtol=1e-10)
    # symmetric, zero on equal arguments, log 2 on disjoint supports
    np.testing.assert_allclose(
        jaxloss.js_divergence(np.log(p), q, reduction="none"), js, rtol=1e-12
    )
    np.testing.assert_allclose(jaxloss.js_divergence(np.log(p), p, reduction="none"), 0.0,
                               atol=1e-15)
    disjoint = jaxloss.js_divergence(
        jnp.array([[0.0, 0.0, -jnp.inf, -jnp.inf]]), jnp.array([[0.0, 0.0, 0.5, 0.5]])
    )
    np.testing.assert_allclose(disjoint, np.log(2.0), rtol=1e-15)
    big = jaxloss.js_divergence(jnp.array([[0.0, 800.0]]), jnp.array([[1.0, 0.0]]))
    assert 0 < float(big) <= np.log(2.0)


def test_js_gradient_matches_the_hand_derivative():
    logits, p = _inputs(3, zeros=True)
    q = special.softmax(logits, axis=-1)
    m = (p + q) / 2
    # ∂JS/∂q_k = ½ log(q_k/m_k); through softmax, g_z = q ⊙ (g_q − Σ q g_q).
    g_q = 0.5 * np.log(q / m)
    g_z = q * (g_q - np.sum(q * g_q, axis=-1, keepdims=True))
    # ∂JS/∂p_k = ½ log(p_k/m_k); where p_k = 0, with d(p log p)/dp taken as 0 as for KL,
    # it is ½(−log m_k − q_k/(p_k + q_k)) = −½(log m_k + 1).
    with np.errstate(divide="ignore"):
        g_p = np.where(p > 0, 0.5 * np.log(p / m), -0.5 * (np.log(m) + 1))
    got_z, got_p = jax.grad(
        lambda z, p: jaxloss.js_divergence(z, p, reduction="sum"), argnums=(0, 1)
    )(logits, p)
    np.testing.assert_allclose(got_z, g_z, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got_p, g_p, rtol=1e-10, atol=1e-14)


def test_generalized_kl_gradients_and_normalised_case():
    log_y, t = _measures(4)
    g_log_y, g_t = jax.grad(
        lambda a, b: jaxloss.generalized_kl_divergence(a, b, reduction="sum"), argnums=(0, 1)
    )(log_y, t)
    # ∂/∂log y = y − t, ∂/∂t = log t − log y
    np.testing.assert_allclose(g_log_y, np.exp(log_y) - t, rtol=1e-12)
    np.testing.assert_allclose(g_t, np.log(t) - log_y, rtol=1e-12, atol=1e-14)
    logits, p = _inputs(5)
    log_q = special.log_softmax(logits, axis=-1)
    np.testing.assert_allclose(
        jaxloss.generalized_kl_divergence(log_q, p, reduction="none"),
        jaxloss.kl_divergence(log_q, p, reduction="none"), rtol=1e-11, atol=1e-15,
    )
    np.testing.assert_allclose(
        jaxloss.generalized_kl_divergence(log_y, t, reduction="none"),
        optax.losses.generalized_kl_divergence(log_y, t), rtol=1e-12,
    )


def test_zero_targets_and_minus_inf_predictions():
    log_y = jnp.array([[0.0, -jnp.inf, 1.0]])
    t = jnp.array([[1.0, 0.0, 0.0]])
    value, grads = jax.value_and_grad(
        jaxloss.generalized_kl_divergence, argnums=(0, 1)
    )(log_y, t)
    np.testing.assert_allclose(value, np.e, rtol=1e-15)  # 1·log 1 − 1 + 1, 0, 0 − 0 + e
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    logits, p = _inputs(6, zeros=True)
    grads = jax.grad(jaxloss.js_divergence, argnums=(0, 1))(logits, p)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


@pytest.mark.parametrize("name", CASES)
def test_check_grads_both_arguments(name):
    fn, _, _ = CASES[name]
    rng = np.random.default_rng(7)
    # Moderate inputs (every probability or mass ≥ about 0.1): finite differences of
    # x log x lose accuracy near 0, where its higher derivatives grow like 1/x².
    x = 0.5 * rng.normal(size=(2, C))
    y = special.softmax(0.3 * rng.normal(size=(2, C)), axis=-1) + 0.1
    with jax.disable_jit():  # op by op: far fewer compilations
        check_grads(lambda a, b: fn(a, b), (x, y), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", CASES)
def test_masked_nan_and_empty_mask(name):
    fn, make, ref = CASES[name]
    x, y = make(8)
    where, weights = _mask_and_weights(9)
    x_bad = np.where(where[:, None], x, np.nan)
    y_bad = np.where(where[:, None], y, np.nan)
    value, grads = jax.value_and_grad(
        lambda a, b: fn(a, b, where=where, weights=weights), argnums=(0, 1)
    )(x_bad, y_bad)
    np.testing.assert_allclose(value, np_reduce(ref(x, y), "mean", where, weights), rtol=1e-12)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g)[~where] == 0)
    value, grads = jax.value_and_grad(
        lambda a, b: fn(a, b, where=np.zeros(N, bool), weights=weights), argnums=(0, 1)
    )(x, y)
    assert float(value) == 0.0 and all(np.all(np.asarray(g) == 0) for g in grads)


@pytest.mark.parametrize("name", CASES)
def test_jit_vmap_and_axis(name):
    fn, make, _ = CASES[name]
    x, y = make(10)
    eager = fn(x, y, reduction="none")
    np.testing.assert_array_equal(jax.jit(lambda a, b: fn(a, b, reduction="none"))(x, y), eager)
    np.testing.assert_allclose(jax.vmap(lambda a, b: fn(a, b, reduction="sum"))(x, y), eager,
                               rtol=1e-13)
    np.testing.assert_allclose(fn(x.T, y.T, axis=0, reduction="none"), eager, rtol=1e-13)


@pytest.mark.parametrize("name", CASES)
def test_dtypes(name):
    fn, make, ref = CASES[name]
    x, y = make(11)
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64):
        xd, yd = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
        got = fn(xd, yd)
        assert got.dtype == (jnp.float64 if dtype == jnp.float64 else jnp.float32)
        # The reference sees the same rounded inputs, so only the arithmetic differs.
        exact = np.mean(ref(np.asarray(xd, np.float64), np.asarray(yd, np.float64)))
        np.testing.assert_allclose(got, exact, rtol=1e-12 if dtype == jnp.float64 else 1e-5)
    grads = jax.grad(fn, argnums=(0, 1))(jnp.asarray(x, jnp.bfloat16), jnp.asarray(y, jnp.bfloat16))
    assert all(g.dtype == jnp.bfloat16 for g in grads)


@pytest.mark.parametrize("name", CASES)
def test_negative_targets_are_nan_and_reported(name):
    fn, make, _ = CASES[name]
    x, y = make(12)
    y = y.copy()
    y[1, 0] = -0.25
    per = np.asarray(fn(x, y, reduction="none"))
    assert np.isnan(per[1]) and np.all(np.isfinite(per[[0, 2, 3]]))
    err, _ = checkify.checkify(lambda b: fn(x, b, checks=True))(y)
    assert ">= 0" in err.get() and "-0.25" in err.get()
    assert not jax.make_jaxpr(lambda b: fn(x, b))(y).effects


@pytest.mark.parametrize("name", CASES)
def test_shape_mistakes_raise(name):
    fn, make, _ = CASES[name]
    x, y = make(13)
    with pytest.raises(ValueError, match=r"targets \(floating target probabilities"):
        fn(x, y[:, :-1])
    with pytest.raises(TypeError, match="must be a floating-point array"):
        fn(x, y.astype(np.int32))
    with pytest.raises(ValueError, match=r"axis must be in \[-2, 2\)"):
        fn(x, y, axis=2)


def test_kl_divergence_and_entropy_match_scipy():
    logits, p = _inputs(14, zeros=True)
    log_q = special.log_softmax(logits, axis=-1)
    q = np.exp(log_q)
    kl = jaxloss.kl_divergence(logits, p, reduction="none")
    np.testing.assert_allclose(kl, special.rel_entr(p, q).sum(-1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(kl, stats.entropy(p, q, axis=-1), rtol=1e-12, atol=1e-15)
    # torch-style log targets (log 0 = −inf for the zero targets)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    np.testing.assert_allclose(
        jaxloss.kl_divergence(logits, log_p, log_targets=True, reduction="none"),
        special.rel_entr(p, q).sum(-1), rtol=1e-12, atol=1e-15,
    )
    h = jaxloss.entropy(p, reduction="none")
    np.testing.assert_allclose(h, special.entr(p).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(h, stats.entropy(p, axis=-1), rtol=1e-12)
    # CE = KL + H for the cross-entropy too
    np.testing.assert_allclose(
        jaxloss.softmax_cross_entropy(logits, p, reduction="none"), kl + h, rtol=1e-12
    )
