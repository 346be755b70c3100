"""Tests of the elementwise regression losses of the catalogue.

References are independent numpy/scipy expressions: the textbook formulas written with numpy,
``scipy.stats.norm.logpdf`` for the Gaussian NLL, ``scipy.stats.poisson.logpmf`` and
``scipy.special.gammaln`` for the Poisson NLL, and hand-derived derivatives for gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads
from scipy import special, stats

import jaxloss

SHAPE = (4, 5)


def np_reduce(values, reduction, where=None, weights=None):
    """The contract's reduction rule, in numpy: w·ℓ, Σ w·ℓ, Σ w·ℓ / Σ w (0 if nothing counts)."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.ones(values.shape, bool) if where is None else np.broadcast_to(where, values.shape)
    w = np.ones(values.shape) if weights is None else np.broadcast_to(weights, values.shape)
    w = np.where(mask, w, 0.0)
    weighted = np.where(mask, w * np.where(mask, values, 0.0), 0.0)
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / w.sum() if w.sum() != 0 else 0.0


def _errors(rng, shape, away_from=(0.0,), gap=0.05):
    """Signed errors whose magnitudes stay ``gap`` away from every kink in ``away_from``."""
    e = rng.uniform(0.1, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    for kink in away_from:
        near = np.abs(np.abs(e) - kink) < gap
        e = np.where(near, np.sign(e) * (kink + 2 * gap), e)
    return e


def _pair(kinks=(0.0,)):
    def make(rng, shape):
        t = rng.normal(size=shape)
        return t + _errors(rng, shape, kinks), t

    return make


def _np_huber(e, delta):
    return np.where(np.abs(e) <= delta, 0.5 * e**2, delta * (np.abs(e) - 0.5 * delta))


def _np_smooth_l1(e, beta):
    return np.where(np.abs(e) < beta, 0.5 * e**2 / beta, np.abs(e) - 0.5 * beta)


def _np_pinball(p, t, tau):
    r = t - p
    return np.where(r >= 0, tau * r, (tau - 1) * r)


def _gaussian_inputs(rng, shape):
    return rng.normal(size=shape), rng.normal(size=shape), rng.uniform(0.2, 2.0, size=shape)


def _poisson_log_inputs(rng, shape):
    return rng.normal(size=shape), rng.poisson(3.0, size=shape).astype(np.float64)


def _poisson_rate_inputs(rng, shape):
    return rng.uniform(0.2, 4.0, size=shape), rng.poisson(3.0, size=shape).astype(np.float64)


def _stirling(t):
    ts = np.where(t > 1, t, 2.0)
    return np.where(t > 1, ts * np.log(ts) - ts + 0.5 * np.log(2 * np.pi * ts), 0.0)


@dataclass
class Case:
    name: str
    fn: Callable[..., Any]
    inputs: Callable[..., tuple]
    ref: Callable[..., np.ndarray]
    kwargs: dict = field(default_factory=dict)
    grad: Callable[..., np.ndarray] | None = None  # d loss / d first input, per element

    def __call__(self, *arrays, **kw):
        return self.fn(*arrays, **{**self.kwargs, **kw})

    def __repr__(self):
        return self.name


CASES = [
    Case(
        "absolute_error", jaxloss.absolute_error, _pair(), lambda p, t: np.abs(p - t),
        grad=lambda p, t: np.sign(p - t),
    ),
    Case(
        "huber_loss", jaxloss.huber_loss, _pair((0.7,)),
        lambda p, t: _np_huber(p - t, 0.7), {"delta": 0.7},
        grad=lambda p, t: np.clip(p - t, -0.7, 0.7),
    ),
    Case(
        "smooth_l1_loss", jaxloss.smooth_l1_loss, _pair((0.6,)),
        lambda p, t: _np_smooth_l1(p - t, 0.6), {"beta": 0.6},
        grad=lambda p, t: np.clip((p - t) / 0.6, -1, 1),
    ),
    Case(
        "log_cosh", jaxloss.log_cosh, _pair(()), lambda p, t: np.log(np.cosh(p - t)),
        grad=lambda p, t: np.tanh(p - t),
    ),
    Case(
        "pinball_loss", jaxloss.pinball_loss, _pair(), lambda p, t: _np_pinball(p, t, 0.3),
        {"quantile": 0.3}, grad=lambda p, t: np.where(t - p > 0, -0.3, 0.7),
    ),
    Case(
        # −log N(t; μ, σ²) from scipy, minus the constant that full=False drops.
        "gaussian_nll_loss", jaxloss.gaussian_nll_loss, _gaussian_inputs,
        lambda m, t, v: -stats.norm.logpdf(t, m, np.sqrt(v)) - 0.5 * np.log(2 * np.pi),
        grad=lambda m, t, v: (m - t) / v,
    ),
    Case(
        "gaussian_nll_loss_full", jaxloss.gaussian_nll_loss, _gaussian_inputs,
        lambda m, t, v: -stats.norm.logpdf(t, m, np.sqrt(v)), {"full": True},
    ),
    Case(
        # −log Poisson(t; e^z) from scipy, minus the log t! that full=False drops.
        "poisson_nll_loss", jaxloss.poisson_nll_loss, _poisson_log_inputs,
        lambda z, t: -stats.poisson.logpmf(t, np.exp(z)) - special.gammaln(t + 1),
        grad=lambda z, t: np.exp(z) - t,
    ),
    Case(
        "poisson_nll_loss_rate_full", jaxloss.poisson_nll_loss, _poisson_rate_inputs,
        lambda r, t: r - t * np.log(r + 1e-8) + _stirling(t), {"log_input": False, "full": True},
    ),
]


def _inputs(case, seed=0, shape=SHAPE):
    return tuple(np.asarray(a, np.float64) for a in case.inputs(np.random.default_rng(seed), shape))


def _mask_and_weights(seed=1, shape=SHAPE):
    rng = np.random.default_rng(seed)
    where = rng.random(shape) < 0.7
    where.flat[0] = True
    return where, rng.uniform(0.1, 2.0, size=shape)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_matches_reference_in_every_reduction(case, reduction):
    arrays = _inputs(case)
    where, weights = _mask_and_weights()
    per_element = case.ref(*arrays)
    got = case(*arrays, where=where, weights=weights, reduction=reduction)
    np.testing.assert_allclose(got, np_reduce(per_element, reduction, where, weights), rtol=1e-12,
                               atol=1e-12)
    if reduction == "mean":
        plain = case(*arrays)
        np.testing.assert_allclose(plain, np.mean(per_element), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.grad is not None], ids=repr)
def test_gradient_matches_hand_derivative(case):
    arrays = _inputs(case, seed=2)
    grad = jax.grad(lambda x: case(x, *arrays[1:], reduction="sum"))(arrays[0])
    np.testing.assert_allclose(grad, case.grad(*arrays), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if not c.name.endswith("_full")], ids=repr)
def test_check_grads_every_argument(case):
    arrays = tuple(jnp.asarray(a) for a in _inputs(case, seed=3, shape=(3,)))
    weights = jnp.array([0.5, 1.0, 2.0])

    def loss(*xs):
        return case(*xs, weights=weights)

    with jax.disable_jit():  # op by op: far fewer compilations
        check_grads(loss, arrays, order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_masked_nan_reaches_neither_value_nor_gradient(case):
    arrays = _inputs(case, seed=4)
    where, weights = _mask_and_weights(seed=5)
    poisoned = tuple(np.where(where, a, np.nan) for a in arrays)
    value, grads = jax.value_and_grad(
        lambda *xs: case(*xs, where=where, weights=weights), argnums=tuple(range(len(arrays)))
    )(*poisoned)
    np.testing.assert_allclose(value, np_reduce(case.ref(*arrays), "mean", where, weights),
                               rtol=1e-12)
    for g in grads:
        assert np.all(np.isfinite(g))
        assert np.all(np.asarray(g)[~where] == 0)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_nothing_counts_gives_zero_and_zero_gradient(case):
    arrays = _inputs(case, seed=6)
    _, weights = _mask_and_weights(seed=5)
    # The same call signature as the masked-NaN test, so the compiled programs are reused.
    value, grads = jax.value_and_grad(
        lambda *xs: case(*xs, where=np.zeros(SHAPE, bool), weights=weights),
        argnums=tuple(range(len(arrays))),
    )(*arrays)
    assert float(value) == 0.0
    assert all(np.all(np.asarray(g) == 0) for g in grads)
    zero_weight = case(*arrays, where=np.ones(SHAPE, bool), weights=np.zeros(SHAPE))
    assert float(zero_weight) == 0.0


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_jit_equals_eager_and_vmap_equals_batched(case):
    arrays = _inputs(case, seed=7)
    eager = case(*arrays, reduction="none")
    jitted = jax.jit(lambda *xs: case(*xs, reduction="none"))(*arrays)
    np.testing.assert_array_equal(eager, jitted)
    rows = jax.vmap(lambda *xs: case(*xs, reduction="sum"))(*arrays)
    np.testing.assert_allclose(rows, np.sum(eager, axis=1), rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_dtypes_accumulate_in_float32_at_least(case):
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64):
        arrays = tuple(jnp.asarray(a, dtype) for a in _inputs(case, seed=8))
        got = case(*arrays)
        assert got.dtype == (jnp.float64 if dtype == jnp.float64 else jnp.float32)
        # The reference sees the same rounded inputs, so only the arithmetic differs.
        exact = np.mean(case.ref(*(np.asarray(a, np.float64) for a in arrays)))
        np.testing.assert_allclose(got, exact, rtol=1e-12 if dtype == jnp.float64 else 1e-6)
    for dtype in (jnp.bfloat16, jnp.float64):
        arrays = tuple(jnp.asarray(a, dtype) for a in _inputs(case, seed=8))
        grads = jax.grad(lambda *xs: case(*xs), argnums=tuple(range(len(arrays))))(*arrays)
        assert all(g.dtype == dtype for g in grads)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_shape_and_dtype_mistakes_raise_at_trace_time(case):
    arrays = _inputs(case)
    bad_targets = (arrays[0], arrays[1][:, :-1], *arrays[2:])
    with pytest.raises(ValueError, match=r"targets must have the shape of .* \(4, 5\).*\(4, 4\)"):
        case(*bad_targets)
    ints = (arrays[0].astype(np.int32), *arrays[1:])
    with pytest.raises(TypeError, match="must be a floating-point array.*int32"):
        case(*ints)
    with pytest.raises(ValueError, match="reduction must be one of"):
        case(*arrays, reduction="average")
    with pytest.raises(ValueError, match=r"where must broadcast to the per-example shape"):
        case(*arrays, where=np.ones((3,), bool))


@pytest.mark.parametrize(
    "fn, option, value, message",
    [
        (jaxloss.huber_loss, "delta", 0.0, "delta must be > 0"),
        (jaxloss.smooth_l1_loss, "beta", -1.0, "beta must be >= 0"),
        (jaxloss.pinball_loss, "quantile", 1.5, r"quantile must be in \[0, 1\]"),
        (jaxloss.gaussian_nll_loss, "eps", 0.0, "eps must be > 0"),
    ],
)
def test_option_mistakes_raise(fn, option, value, message):
    p = jnp.zeros(3)
    args = (p, p, jnp.ones(3)) if fn is jaxloss.gaussian_nll_loss else (p, p)
    with pytest.raises(ValueError, match=message):
        fn(*args, **{option: value})


def test_options_are_keyword_only():
    with pytest.raises(TypeError, match="keyword-only"):
        jaxloss.huber_loss(jnp.zeros(2), jnp.zeros(2), 1.0)


def test_traced_hyperparameters_equal_static_ones():
    p, t = _inputs(CASES[1])
    for fn, name, value in [
        (jaxloss.huber_loss, "delta", 0.7),
        (jaxloss.smooth_l1_loss, "beta", 0.6),
        (jaxloss.pinball_loss, "quantile", 0.3),
    ]:
        static = fn(p, t, **{name: value})
        traced = jax.jit(lambda h, fn=fn, name=name: fn(p, t, **{name: h}))(jnp.float64(value))
        np.testing.assert_allclose(traced, static, rtol=1e-14)


def test_smooth_l1_is_huber_over_beta():
    p, t = _inputs(CASES[2], seed=9)
    for beta in (0.25, 1.0, 2.5):
        np.testing.assert_allclose(
            jaxloss.smooth_l1_loss(p, t, beta=beta, reduction="none"),
            jaxloss.huber_loss(p, t, delta=beta, reduction="none") / beta,
            rtol=1e-12,
        )


def test_smooth_l1_with_beta_zero_is_exact_l1_with_finite_gradient():
    p = jnp.array([-2.0, -1e-300, 0.0, 1e-300, 3.0])
    t = jnp.zeros(5)
    got = jaxloss.smooth_l1_loss(p, t, beta=0.0, reduction="none")
    np.testing.assert_array_equal(got, np.abs(np.asarray(p)))
    grad = jax.grad(lambda p: jaxloss.smooth_l1_loss(p, t, beta=0.0, reduction="sum"))(p)
    np.testing.assert_array_equal(grad, [-1.0, -1.0, 0.0, 1.0, 1.0])
    # A traced beta of 0 too, and its gradient: d/dβ (|e| − β/2) = −1/2 where |e| > 0.
    traced = jax.jit(lambda b: jaxloss.smooth_l1_loss(p, t, beta=b, reduction="none"))(0.0)
    np.testing.assert_array_equal(traced, got)
    d_beta = jax.grad(lambda b: jaxloss.smooth_l1_loss(p, t, beta=b, reduction="sum"))(0.0)
    assert np.isfinite(d_beta)


def test_absolute_error_gradient_is_zero_at_zero_error():
    grad = jax.grad(lambda p: jaxloss.absolute_error(p, jnp.zeros(3), reduction="sum"))(
        jnp.array([-1.0, 0.0, 2.0])
    )
    np.testing.assert_array_equal(grad, [-1.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_log_cosh_is_stable_for_errors_in_the_thousands(dtype):
    e = jnp.array([-5000.0, -1000.0, 1000.0, 5000.0], dtype)
    got = jaxloss.log_cosh(e, jnp.zeros(4, dtype), reduction="none")
    # log cosh x = log((e^x + e^-x)/2), evaluated by numpy's independent logaddexp.
    exact = np.logaddexp(np.float64(e), -np.float64(e)) - np.log(2)
    np.testing.assert_allclose(got, exact, rtol=1e-7)
    grad = jax.grad(lambda x: jaxloss.log_cosh(x, jnp.zeros(4, dtype), reduction="sum"))(e)
    np.testing.assert_array_equal(grad, [-1.0, -1.0, 1.0, 1.0])
    hess = jax.vmap(jax.grad(jax.grad(lambda x: jaxloss.log_cosh(x, jnp.zeros((), dtype)))))(e)
    assert np.all(np.isfinite(hess))


def test_log_cosh_keeps_precision_for_tiny_errors():
    e = jnp.array([1e-12, 1e-6, 1e-3, 0.5, 0.999, 1.0, 1.001])
    got = jaxloss.log_cosh(e, jnp.zeros(7), reduction="none")
    x = np.asarray(e)
    # Taylor series x²/2 − x⁴/12 + x⁶/45 where it converges fast, numpy's log(cosh) elsewhere.
    series = x**2 / 2 - x**4 / 12 + x**6 / 45
    exact = np.where(x < 1e-2, series, np.log(np.cosh(x)))
    np.testing.assert_allclose(got, exact, rtol=1e-14)
    second = jax.vmap(jax.grad(jax.grad(lambda x: jaxloss.log_cosh(x, jnp.zeros(())))))(e)
    np.testing.assert_allclose(second, 1 / np.cosh(x) ** 2, rtol=1e-12)


def test_log_cosh_float32_keeps_relative_precision_at_every_scale():
    # Errors from 1e-6 to 80 on both sides, including the range 5..20 where e^{-|e|} is tiny
    # and a formula built on 1 + (e^{-|e|} − 1) would cancel.
    x32 = np.concatenate([np.geomspace(1e-6, 80, 400), -np.geomspace(1e-6, 80, 50)])
    x32 = x32.astype(np.float32)
    got = jaxloss.log_cosh(jnp.asarray(x32), jnp.zeros(x32.size, jnp.float32), reduction="none")
    x = np.abs(x32.astype(np.float64))
    # float64 reference: Taylor series below 1e-2, numpy's log(cosh) above.
    exact = np.where(x < 1e-2, x**2 / 2 - x**4 / 12 + x**6 / 45, np.log(np.cosh(x)))
    np.testing.assert_allclose(np.asarray(got, np.float64), exact, rtol=2e-6)
    grad = jax.grad(
        lambda v: jaxloss.log_cosh(v, jnp.zeros(x32.size, jnp.float32), reduction="sum")
    )(jnp.asarray(x32))
    np.testing.assert_allclose(np.asarray(grad, np.float64), np.tanh(x32.astype(np.float64)),
                               rtol=2e-6)


def test_pinball_minimiser_is_the_quantile():
    targets = jnp.asarray(np.random.default_rng(10).normal(size=2001))
    grid = jnp.linspace(-3.0, 3.0, 6001)
    for tau in (0.1, 0.5, 0.9):
        losses = jax.vmap(
            lambda c, tau=tau: jaxloss.pinball_loss(jnp.full(2001, c), targets, quantile=tau)
        )(grid)
        best = float(grid[jnp.argmin(losses)])
        assert abs(best - np.quantile(np.asarray(targets), tau, method="inverted_cdf")) < 2e-3


@pytest.mark.parametrize(
    "variance_shape", [(4, 5), (4,), (4, 1), (1, 5), ()], ids=str
)
def test_gaussian_nll_variance_shapes(variance_shape):
    rng = np.random.default_rng(11)
    mean, targets = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    variance = rng.uniform(0.5, 2.0, size=variance_shape)
    full = variance if variance_shape != (4,) else variance[:, None]
    expected = 0.5 * (np.log(full) + (targets - mean) ** 2 / full)
    got = jaxloss.gaussian_nll_loss(mean, targets, variance, reduction="none")
    np.testing.assert_allclose(got, np.broadcast_to(expected, (4, 5)), rtol=1e-12)
    assert got.shape == (4, 5)


def test_gaussian_nll_scalar_variance_and_bad_shapes():
    mean = targets = np.zeros((4, 5))
    np.testing.assert_allclose(
        jaxloss.gaussian_nll_loss(mean, targets, 2.0), 0.5 * np.log(2.0), rtol=1e-12
    )
    # A Python number keeps the inputs' dtype (no promotion to float64).
    f32 = np.zeros(3, np.float32)
    assert jaxloss.gaussian_nll_loss(f32, f32, 2.0).dtype == jnp.float32
    with pytest.raises(ValueError, match="variance must be >= 0"):
        jaxloss.gaussian_nll_loss(mean, targets, -1.0)
    for bad in [(5,), (4, 5, 1), (2, 5)]:
        with pytest.raises(ValueError, match=r"variance must have the shape of mean"):
            jaxloss.gaussian_nll_loss(mean, targets, np.ones(bad))


def test_gaussian_nll_clamps_the_value_but_passes_the_gradient():
    # torch clamps var at eps under no_grad: the value uses eps, the gradient is that of the
    # clamped expression, passed to var unchanged.
    mu, t = jnp.array([0.0]), jnp.array([3e-3])
    var = jnp.array([1e-9])
    eps = 1e-6
    value = jaxloss.gaussian_nll_loss(mu, t, var, eps=eps)
    np.testing.assert_allclose(value, 0.5 * (np.log(eps) + 9e-6 / eps), rtol=1e-12)
    d_var = jax.grad(lambda v: jaxloss.gaussian_nll_loss(mu, t, v, eps=eps))(var)
    np.testing.assert_allclose(d_var, [0.5 * (1 / eps - 9e-6 / eps**2)], rtol=1e-12)


def test_gaussian_nll_negative_variance_is_nan_and_reported():
    mu = t = jnp.zeros(3)
    var = jnp.array([1.0, -1.0, 1.0])
    per = jaxloss.gaussian_nll_loss(mu, t, var, reduction="none")
    per = np.asarray(per)
    assert np.isnan(per[1]) and np.all(np.isfinite(per[[0, 2]]))
    err, _ = checkify.checkify(lambda v: jaxloss.gaussian_nll_loss(mu, t, v, checks=True))(var)
    assert "variance must be >= 0" in err.get() and "-1.0" in err.get()
    err, _ = checkify.checkify(lambda v: jaxloss.gaussian_nll_loss(mu, t, v, checks=True))(
        jnp.ones(3)
    )
    assert err.get() is None


def test_poisson_nll_stirling_term_and_invalid_targets():
    z = jnp.zeros(5)
    t = jnp.array([0.0, 1.0, 2.0, 5.0, 10.0])
    full = jaxloss.poisson_nll_loss(z, t, full=True, reduction="none")
    plain = jaxloss.poisson_nll_loss(z, t, reduction="none")
    # Stirling: log t! ≈ t log t − t + ½ log(2πt), added only where t > 1.
    tt = np.asarray(t)
    stirling = np.where(tt > 1, tt * np.log(np.maximum(tt, 1)) - tt
                        + 0.5 * np.log(2 * np.pi * np.maximum(tt, 1)), 0.0)
    np.testing.assert_allclose(full - plain, stirling, rtol=1e-12, atol=1e-15)
    # and it is close to the exact log t! from scipy for large t
    assert abs(float(full[4] - plain[4]) - special.gammaln(11.0)) < 1e-2
    grad = jax.grad(lambda t: jaxloss.poisson_nll_loss(z, t, full=True, reduction="sum"))(t)
    assert np.all(np.isfinite(grad))
    bad = np.asarray(
        jaxloss.poisson_nll_loss(z, jnp.array([1.0, -1.0, 0.0, 0.0, 0.0]), reduction="none")
    )
    assert np.isnan(bad[1]) and not np.any(np.isnan(bad[[0, 2, 3, 4]]))


def test_unchecked_losses_add_nothing_to_the_jaxpr():
    mu = t = jnp.zeros(3)
    jaxpr = jax.make_jaxpr(lambda v: jaxloss.gaussian_nll_loss(mu, t, v))(jnp.ones(3))
    assert not jaxpr.effects


def test_huber_and_smooth_l1_agree_at_the_threshold():
    delta = 0.8
    e = jnp.array([delta - 1e-12, delta, delta + 1e-12])
    values = jaxloss.huber_loss(e, jnp.zeros(3), delta=delta, reduction="none")
    np.testing.assert_allclose(values, 0.5 * delta**2, rtol=1e-10)
    grads = jax.grad(lambda x: jaxloss.huber_loss(x, jnp.zeros(3), delta=delta, reduction="sum"))(e)
    np.testing.assert_allclose(grads, delta, rtol=1e-10)
    assert math.isclose(float(jaxloss.smooth_l1_loss(e[1:2], jnp.zeros(1), beta=delta)),
                        0.5 * delta, rel_tol=1e-12)


def test_repeated_calls_do_not_retrace():
    traces = []

    def listener(name, *_, **__):
        if name.endswith("jaxpr_trace_duration"):
            traces.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    x = jnp.linspace(-2.0, 2.0, 13)  # a shape no other test uses, so first calls trace
    calls = [
        lambda: jaxloss.huber_loss(x, -x, delta=0.5),
        lambda: jaxloss.gaussian_nll_loss(x, -x, jnp.ones(13), full=True),
        lambda: jaxloss.sigmoid_focal_loss(x, (x > 0).astype(jnp.int32), gamma=0.5),
        lambda: jaxloss.js_divergence(x, jax.nn.softmax(-x)),
        lambda: jaxloss.perceptron_loss(x, jnp.where(x > 0, 1, -1)),
    ]
    try:
        for call in calls:
            call()  # the first call traces
            before = len(traces)
            assert before > 0
            call()
            call()
            assert len(traces) == before
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
