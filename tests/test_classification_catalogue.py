"""Tests of the binary, multi-label, focal and Poly-1 losses of the catalogue.

References are independent numpy/scipy expressions of the published formulas (Lin et al. 2017
for focal losses, Leng et al. 2022 for Poly-1, torch's documented clamp for BCE on
probabilities), ``scipy.special.log_softmax`` for softmax, and optax's implementations where
optax has the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads
from scipy import special

import jaxloss

SHAPE = (4, 5)
C = 5


def np_reduce(values, reduction, where=None, weights=None, count=None):
    """The contract's rule: w·ℓ, Σ w·ℓ, Σ w·ℓ / Σ w over entries that count (0 if none)."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.ones(values.shape, bool) if where is None else np.broadcast_to(where, values.shape)
    if count is not None:
        mask = mask & count
    w = np.ones(values.shape) if weights is None else np.broadcast_to(weights, values.shape)
    w = np.where(mask, w, 0.0)
    weighted = np.where(mask, w * np.where(mask, values, 0.0), 0.0)
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / w.sum() if w.sum() != 0 else 0.0


def np_softplus(x):
    return np.logaddexp(0.0, x)


def np_sigmoid_bce(x, y, pos_weight=1.0):
    # −[w₊ y log σ(x) + (1 − y) log(1 − σ(x))], with log σ(x) = −log(1 + e^{−x}).
    return pos_weight * y * np_softplus(-x) + (1 - y) * np_softplus(x)


def np_bce(p, y):
    # torch's documented definition: each log clamped at −100.
    with np.errstate(divide="ignore"):
        return -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))


def np_sigmoid_focal(x, y, gamma, alpha=None):
    # Lin et al. 2017, eq. (5), with torchvision's p_t for soft labels.
    p = 1 / (1 + np.exp(-x))
    p_t = p * y + (1 - p) * (1 - y)
    loss = (1 - p_t) ** gamma * np_sigmoid_bce(x, y)
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


def np_softmax_focal(z, labels, gamma, alpha=None, axis=-1):
    log_q = np.moveaxis(special.log_softmax(z, axis=axis), axis, -1)
    q = np.exp(log_q)
    a = np.ones(log_q.shape[-1]) if alpha is None else np.broadcast_to(alpha, log_q.shape[-1])
    if np.issubdtype(labels.dtype, np.integer):
        safe = np.clip(labels, 0, log_q.shape[-1] - 1)
        pick = lambda v: np.take_along_axis(v, safe[..., None], -1)[..., 0]  # noqa: E731
        return -a[safe] * (1 - pick(q)) ** gamma * pick(log_q)
    p = np.moveaxis(labels, axis, -1)
    return -np.sum(a * p * (1 - q) ** gamma * log_q, axis=-1)


def np_poly1(z, labels, epsilon, axis=-1):
    log_q = np.moveaxis(special.log_softmax(z, axis=axis), axis, -1)
    q = np.exp(log_q)
    if np.issubdtype(labels.dtype, np.integer):
        safe = np.clip(labels, 0, log_q.shape[-1] - 1)
        pick = lambda v: np.take_along_axis(v, safe[..., None], -1)[..., 0]  # noqa: E731
        return -pick(log_q) + epsilon * (1 - pick(q))
    p = np.moveaxis(labels, axis, -1)
    return -np.sum(p * log_q, -1) + epsilon * np.sum(p * (1 - q), -1)


def _binary_labels(rng, shape, soft):
    return rng.uniform(0, 1, shape) if soft else rng.integers(0, 2, shape)


@dataclass
class Case:
    name: str
    fn: Callable[..., Any]
    make: Callable[..., tuple]  # rng -> (predictions, labels)
    ref: Callable[..., np.ndarray]
    kwargs: dict = field(default_factory=dict)
    per_example: tuple = SHAPE  # the per-example shape
    differentiable_labels: bool = False

    def __call__(self, *arrays, **kw):
        return self.fn(*arrays, **{**self.kwargs, **kw})

    def __repr__(self):
        return self.name


POS_WEIGHT = np.array([0.5, 1.0, 2.0, 3.0, 1.5])
ALPHA = np.array([0.1, 0.2, 0.3, 0.25, 0.15])

BINARY = [
    Case("sigmoid_bce_int", jaxloss.sigmoid_binary_cross_entropy,
         lambda r: (3 * r.normal(size=SHAPE), _binary_labels(r, SHAPE, False)), np_sigmoid_bce),
    Case("sigmoid_bce_soft_pos_weight_smoothing", jaxloss.sigmoid_binary_cross_entropy,
         lambda r: (3 * r.normal(size=SHAPE), _binary_labels(r, SHAPE, True)),
         lambda x, y: np_sigmoid_bce(x, y * 0.9 + 0.05, POS_WEIGHT),
         {"pos_weight": POS_WEIGHT, "label_smoothing": 0.1}, differentiable_labels=True),
    Case("bce_probs", jaxloss.binary_cross_entropy,
         lambda r: (r.uniform(0.02, 0.98, SHAPE), _binary_labels(r, SHAPE, True)), np_bce,
         differentiable_labels=True),
    Case("sigmoid_focal_int", jaxloss.sigmoid_focal_loss,
         lambda r: (3 * r.normal(size=SHAPE), _binary_labels(r, SHAPE, False)),
         lambda x, y: np_sigmoid_focal(x, y, 2.0)),
    Case("sigmoid_focal_soft_alpha_gamma_half", jaxloss.sigmoid_focal_loss,
         lambda r: (3 * r.normal(size=SHAPE), _binary_labels(r, SHAPE, True)),
         lambda x, y: np_sigmoid_focal(x, y, 0.5, 0.25), {"gamma": 0.5, "alpha": 0.25},
         differentiable_labels=True),
]


def _class_inputs(soft):
    def make(r):
        z = 2 * r.normal(size=(4, C))
        if soft:
            return z, special.softmax(r.normal(size=(4, C)), axis=-1)
        return z, r.integers(0, C, size=4)

    return make


CLASS = [
    Case("softmax_focal_index", jaxloss.softmax_focal_loss, _class_inputs(False),
         lambda z, y: np_softmax_focal(z, y, 2.0), per_example=(4,)),
    Case("softmax_focal_index_alpha", jaxloss.softmax_focal_loss, _class_inputs(False),
         lambda z, y: np_softmax_focal(z, y, 0.5, ALPHA), {"gamma": 0.5, "alpha": ALPHA},
         per_example=(4,)),
    Case("softmax_focal_soft", jaxloss.softmax_focal_loss, _class_inputs(True),
         lambda z, y: np_softmax_focal(z, y, 1.5, 0.3), {"gamma": 1.5, "alpha": 0.3},
         per_example=(4,), differentiable_labels=True),
    Case("poly1_index", jaxloss.poly1_cross_entropy, _class_inputs(False),
         lambda z, y: np_poly1(z, y, 1.0), per_example=(4,)),
    Case("poly1_soft", jaxloss.poly1_cross_entropy, _class_inputs(True),
         lambda z, y: np_poly1(z, y, -0.5), {"epsilon": -0.5}, per_example=(4,),
         differentiable_labels=True),
]

CASES = BINARY + CLASS


def _inputs(case, seed=0):
    x, y = case.make(np.random.default_rng(seed))
    return np.asarray(x, np.float64), (y if y.dtype.kind == "i" else np.asarray(y, np.float64))


def _mask_and_weights(shape, seed=1):
    rng = np.random.default_rng(seed)
    where = rng.random(shape) < 0.7
    where.flat[0] = True
    return where, rng.uniform(0.1, 2.0, size=shape)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_matches_reference_in_every_reduction(case, reduction):
    x, y = _inputs(case)
    where, weights = _mask_and_weights(case.per_example)
    per_example = case.ref(x, y)
    got = case(x, y, where=where, weights=weights, reduction=reduction)
    np.testing.assert_allclose(got, np_reduce(per_example, reduction, where, weights),
                               rtol=1e-12, atol=1e-13)
    if reduction == "mean":
        np.testing.assert_allclose(case(x, y), np.mean(per_example), rtol=1e-12)


# One case per code path (the integer-label binary cases are the soft ones at 0 and 1).
GRAD_CASES = [c for c in CASES if c.differentiable_labels or c.name.startswith(
    ("softmax_focal_index_alpha", "poly1_index"))]


@pytest.mark.parametrize("case", GRAD_CASES, ids=repr)
def test_check_grads(case):
    x, y = _inputs(case, seed=2)
    x, y = x[:2], y[:2]
    with jax.disable_jit():  # op by op: far fewer compilations
        if case.differentiable_labels:
            check_grads(lambda x, y: case(x, y), (x, y), order=2, modes=("fwd", "rev"))
        else:
            check_grads(lambda x: case(x, y), (x,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_masked_nan_reaches_neither_value_nor_gradient(case):
    x, y = _inputs(case, seed=3)
    where, weights = _mask_and_weights(case.per_example, seed=4)
    expand = where if x.shape == where.shape else where[:, None]
    x_bad = np.where(expand, x, np.nan)
    y_bad = y if y.dtype.kind == "i" else np.where(np.broadcast_to(expand, y.shape), y, np.nan)
    argnums = (0, 1) if case.differentiable_labels else (0,)
    value, grads = jax.value_and_grad(
        lambda x, y: case(x, y, where=where, weights=weights), argnums=argnums
    )(x_bad, y_bad)
    np.testing.assert_allclose(value, np_reduce(case.ref(x, y), "mean", where, weights),
                               rtol=1e-12)
    for g in grads:
        g = np.asarray(g)
        assert np.all(np.isfinite(g))
        assert np.all(g[~np.broadcast_to(expand, g.shape)] == 0)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_nothing_counts_gives_zero_and_zero_gradient(case):
    x, y = _inputs(case, seed=5)
    _, weights = _mask_and_weights(case.per_example, seed=4)
    argnums = (0, 1) if case.differentiable_labels else (0,)
    # The same call signature as the masked-NaN test, so the compiled programs are reused.
    value, grads = jax.value_and_grad(
        lambda x, y: case(x, y, where=np.zeros(case.per_example, bool), weights=weights),
        argnums=argnums,
    )(x, y)
    assert float(value) == 0.0 and all(np.all(np.asarray(g) == 0) for g in grads)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_jit_equals_eager_and_vmap_equals_batched(case):
    x, y = _inputs(case, seed=6)
    eager = case(x, y, reduction="none")
    np.testing.assert_array_equal(jax.jit(lambda x, y: case(x, y, reduction="none"))(x, y), eager)
    rows = jax.vmap(lambda x, y: case(x, y, reduction="sum"))(x, y)
    expected = eager if eager.ndim == 1 else np.sum(eager, axis=1)
    np.testing.assert_allclose(rows, expected, rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_dtypes(case):
    x, y = _inputs(case, seed=7)
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64):
        xd = jnp.asarray(x, dtype)
        yd = y if y.dtype.kind == "i" else jnp.asarray(y, dtype)
        got = case(xd, yd)
        assert got.dtype == (jnp.float64 if dtype == jnp.float64 else jnp.float32)
        # The reference sees the same rounded inputs, so only the arithmetic differs.
        exact = np.mean(case.ref(np.asarray(xd, np.float64), np.asarray(yd).astype(y.dtype)))
        np.testing.assert_allclose(got, exact, rtol=1e-12 if dtype == jnp.float64 else 1e-5)
    grad = jax.grad(lambda x: case(x, y))(jnp.asarray(x, jnp.bfloat16))
    assert grad.dtype == jnp.bfloat16


@pytest.mark.parametrize("case", CLASS, ids=repr)
def test_axis_equals_moving_the_axis_last(case):
    rng = np.random.default_rng(8)
    z = rng.normal(size=(2, C, 3))
    if case.differentiable_labels:
        y = special.softmax(rng.normal(size=(2, C, 3)), axis=1)
        y_last = np.moveaxis(y, 1, -1)
    else:
        y = y_last = rng.integers(0, C, size=(2, 3))
    np.testing.assert_allclose(
        case(z, y, axis=1, reduction="none"),
        case(np.moveaxis(z, 1, -1), y_last, reduction="none"),
        rtol=1e-13,
    )


@pytest.mark.parametrize("case", [c for c in CLASS if not c.differentiable_labels], ids=repr)
def test_index_labels_equal_one_hot_targets(case):
    z, y = _inputs(case, seed=9)
    np.testing.assert_allclose(
        case(z, y, reduction="none"), case(z, np.eye(C)[y], reduction="none"), rtol=1e-13
    )


@pytest.mark.parametrize("fn", [jaxloss.softmax_focal_loss, jaxloss.poly1_cross_entropy])
def test_ignore_index_and_invalid_labels(fn):
    z = np.random.default_rng(10).normal(size=(4, C))
    labels = np.array([1, -100, 3, 0])
    per = np.asarray(fn(z, labels, reduction="none"))
    assert per[1] == 0.0
    mean = fn(z, labels)
    np.testing.assert_allclose(mean, per[[0, 2, 3]].mean(), rtol=1e-13)
    grad = jax.grad(lambda z: fn(z, labels))(z)
    assert np.all(np.asarray(grad)[1] == 0)
    all_ignored = jax.value_and_grad(lambda z: fn(z, np.full(4, -100)))(z)
    assert float(all_ignored[0]) == 0.0 and np.all(np.asarray(all_ignored[1]) == 0)
    bad = np.asarray(fn(z, np.array([1, 7, -1, 0]), reduction="none"))
    assert np.isnan(bad[1]) and np.isnan(bad[2]) and np.all(np.isfinite(bad[[0, 3]]))
    err, _ = checkify.checkify(lambda z: fn(z, np.array([1, 7, 0, 0]), checks=True))(z)
    assert "class indices in [0, 5)" in err.get() and "7" in err.get()
    err, _ = checkify.checkify(lambda z: fn(z, labels, checks=True))(z)
    assert err.get() is None


@pytest.mark.parametrize(
    "fn", [jaxloss.sigmoid_binary_cross_entropy, jaxloss.binary_cross_entropy,
           jaxloss.sigmoid_focal_loss]
)
def test_binary_labels_outside_zero_one_give_nan_and_are_reported(fn):
    x = np.array([0.3, 0.6, 0.2, 0.9])
    per = np.asarray(fn(x, np.array([0, 1, 2, -1]), reduction="none"))
    assert np.all(np.isfinite(per[:2])) and np.all(np.isnan(per[2:]))
    soft = np.asarray(fn(x, np.array([0.0, 0.5, 1.5, -0.1]), reduction="none"))
    assert np.all(np.isfinite(soft[:2])) and np.all(np.isnan(soft[2:]))
    err, _ = checkify.checkify(lambda x: fn(x, np.array([0, 1, 2, 1]), checks=True))(x)
    assert "labels must be 0 or 1" in err.get() and "2" in err.get()
    assert not jax.make_jaxpr(lambda x: fn(x, np.array([0, 1, 1, 0])))(x).effects


@pytest.mark.parametrize("x", [jnp.inf, -jnp.inf, 1e4, -1e4, 1000.0, -1000.0])
@pytest.mark.parametrize("y", [0, 1])
def test_sigmoid_bce_is_exact_at_any_magnitude(x, y):
    x = jnp.float64(x)
    value, grad = jax.value_and_grad(
        lambda x: jaxloss.sigmoid_binary_cross_entropy(x[None], jnp.array([y]))
    )(x)
    wrong = (x > 0) != (y == 1)
    # Exact: −log σ(x) for y = 1 is log(1 + e^{−x}) = |x| when x ≪ 0 (and 0 when x ≫ 0).
    expected = abs(float(x)) if wrong else 0.0
    assert float(value) == expected
    assert float(grad) == float(special.expit(np.float64(x))) - y  # σ(x) − y


def test_sigmoid_bce_matches_optax_and_label_smoothing():
    rng = np.random.default_rng(11)
    x, y = 4 * rng.normal(size=SHAPE), rng.uniform(size=SHAPE)
    np.testing.assert_allclose(
        jaxloss.sigmoid_binary_cross_entropy(x, y, reduction="none"),
        optax.sigmoid_binary_cross_entropy(x, y), rtol=1e-12,
    )
    smoothed = optax.sigmoid_binary_cross_entropy(x, optax.smooth_labels(
        np.stack([1 - y, y], -1), 0.2)[..., 1])
    np.testing.assert_allclose(
        jaxloss.sigmoid_binary_cross_entropy(x, y, label_smoothing=0.2, reduction="none"),
        smoothed, rtol=1e-12,
    )


def test_sigmoid_bce_newton_step_from_zero_logits():
    # Logistic regression by Newton's method (IRLS) starts from w = 0, where every logit is
    # exactly 0 and the kinks of max(x, 0) and |x| sit. Closed forms: the gradient is
    # Xᵀ((a + b)σ(Xw) − a)/n and the Hessian Xᵀ diag((a + b)σ'(Xw)) X/n, with a = w₊y and
    # b = 1 − y, σ(0) = ½ and σ'(0) = ¼.
    rng = np.random.default_rng(12)
    features = rng.normal(size=(20, 3))
    y = rng.uniform(size=20)
    pw = 2.0

    def loss(w):
        return jaxloss.sigmoid_binary_cross_entropy(features @ w, y, pos_weight=pw)

    w0 = jnp.zeros(3)
    a, b = pw * y, 1 - y
    np.testing.assert_allclose(
        jax.grad(loss)(w0), features.T @ ((a + b) / 2 - a) / 20, rtol=1e-12, atol=1e-15
    )
    expected = features.T @ (((a + b) / 4)[:, None] * features) / 20
    np.testing.assert_allclose(jax.hessian(loss)(w0), expected, rtol=1e-12)
    np.testing.assert_allclose(jax.jacfwd(jax.grad(loss))(w0), expected, rtol=1e-12)


def test_sigmoid_bce_gradients_in_labels_and_pos_weight():
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0, 40.0])
    y = np.array([0.1, 0.9, 0.5, 0.3, 1.0, 0.0])
    pw = np.array([1.5, 0.5, 2.0, 1.0, 3.0, 1.0])

    def total(y, pw):
        return jaxloss.sigmoid_binary_cross_entropy(x, y, pos_weight=pw, reduction="sum")

    # ∂/∂y = w₊·softplus(−x) − softplus(x); ∂/∂w₊ = y·softplus(−x) (numpy's logaddexp).
    sp_neg, sp_pos = np.logaddexp(0, -x), np.logaddexp(0, x)
    d_y, d_pw = jax.grad(total, argnums=(0, 1))(y, pw)
    np.testing.assert_allclose(d_y, pw * sp_neg - sp_pos, rtol=1e-12)
    np.testing.assert_allclose(d_pw, y * sp_neg, rtol=1e-12)
    # Forward mode agrees with reverse mode.
    np.testing.assert_allclose(jax.jacfwd(total)(y, pw), d_y, rtol=1e-12)


def test_pos_weight_scales_the_positive_term_only():
    x = np.array([[0.5, -1.0], [2.0, 0.0]])
    y = np.array([[1, 0], [1, 1]])
    pw = np.array([3.0, 0.5])
    got = jaxloss.sigmoid_binary_cross_entropy(x, y, pos_weight=pw, reduction="none")
    np.testing.assert_allclose(got, np_sigmoid_bce(x, y, pw), rtol=1e-13)
    scalar = jaxloss.sigmoid_binary_cross_entropy(x, y, pos_weight=2.0, reduction="none")
    np.testing.assert_allclose(scalar, np_sigmoid_bce(x, y, 2.0), rtol=1e-13)
    with pytest.raises(ValueError, match=r"pos_weight must broadcast to the per-example shape"):
        jaxloss.sigmoid_binary_cross_entropy(x, y, pos_weight=np.ones(3))


def test_bce_clamps_each_log_at_minus_100():
    p = jnp.array([0.0, 1.0, 0.0, 1.0, 1e-50])
    y = jnp.array([1, 0, 0, 1, 1])
    values, grad = jax.value_and_grad(
        lambda p: jaxloss.binary_cross_entropy(p, y, reduction="sum")
    )(p)
    per = jaxloss.binary_cross_entropy(p, y, reduction="none")
    np.testing.assert_array_equal(per, [100.0, 100.0, 0.0, 0.0, 100.0])
    assert np.all(np.isfinite(np.asarray(grad)))
    bad = np.asarray(jaxloss.binary_cross_entropy(jnp.array([-0.1, 1.1, 0.5]),
                                                  jnp.array([1, 0, 1]), reduction="none"))
    assert np.isnan(bad[0]) and np.isnan(bad[1]) and np.isfinite(bad[2])


GAMMAS = [0.0, 0.25, 0.5, 1.0, 2.0, 5.0]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_focal_losses_are_finite_to_second_order_at_logits_of_1000(dtype):
    x = jnp.array([1000.0, -1000.0, 1000.0, -1000.0, 0.0], dtype)
    hard = jnp.array([1, 1, 0, 0, 1])
    soft = jnp.array([0.3, 0.7, 1.0, 0.0, 0.5], dtype)
    z = jnp.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0], [0.0, 0.0, -1000.0]], dtype)
    index = jnp.array([0, 0, 2])
    dist = jnp.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]], dtype)
    # gamma is traced, so each loss compiles once for all of them.
    gammas = jnp.asarray(GAMMAS, dtype)

    def derivatives(fn, inputs, labels):
        def one(gamma):
            f = lambda v: fn(v, labels, gamma=gamma, reduction="sum")  # noqa: E731
            return f(inputs), jax.grad(f)(inputs), jax.hessian(f)(inputs)

        return jax.jit(jax.vmap(one))(gammas)

    for fn, inputs, labels in [
        (jaxloss.sigmoid_focal_loss, x, hard),
        (jaxloss.sigmoid_focal_loss, x, soft),
        (jaxloss.softmax_focal_loss, z, index),
        (jaxloss.softmax_focal_loss, z, dist),
    ]:
        for out in derivatives(fn, inputs, labels):
            finite = np.isfinite(np.asarray(out, np.float64))
            assert np.all(finite), (fn.__name__, labels, np.asarray(GAMMAS)[~finite.all(
                axis=tuple(range(1, finite.ndim)))])


def test_focal_values_at_large_logits():
    # y = 1, x = −1000: p_t = σ(−1000) ≈ 0, so the factor is 1 and the loss is the BCE, 1000;
    # y = 1, x = +1000: the loss is e^{−1000γ}·e^{−1000}, which is 0 in float64.
    x = jnp.array([-1000.0, 1000.0])
    got = jaxloss.sigmoid_focal_loss(x, jnp.array([1, 1]), gamma=0.5, reduction="none")
    np.testing.assert_allclose(got, [1000.0, 0.0], rtol=1e-15)
    # softmax: the label's logit is 1000 below the top: 1 − q_y = 1, loss ≈ 1000 + log 2.
    z = jnp.array([[0.0, 1000.0, 1000.0]])
    got = jaxloss.softmax_focal_loss(z, jnp.array([0]), gamma=0.5)
    np.testing.assert_allclose(got, 1000.0 + np.log(2.0), rtol=1e-15)
    # q_y → 1: log(1 − q_y) = log(2e^{−30}) − log(1 + 2e^{−30}), kept to full precision.
    z = jnp.array([[30.0, 0.0, 0.0]])
    got = jaxloss.softmax_focal_loss(z, jnp.array([0]), gamma=1.0)
    u = 2 * np.exp(-30.0) / (1 + 2 * np.exp(-30.0))
    np.testing.assert_allclose(got, u * np.log1p(2 * np.exp(-30.0)), rtol=1e-12)


def test_gamma_zero_is_cross_entropy():
    rng = np.random.default_rng(12)
    x, y = 3 * rng.normal(size=SHAPE), rng.integers(0, 2, SHAPE)
    np.testing.assert_allclose(
        jaxloss.sigmoid_focal_loss(x, y, gamma=0.0, reduction="none"),
        jaxloss.sigmoid_binary_cross_entropy(x, y, reduction="none"), rtol=1e-14,
    )
    z, labels = 2 * rng.normal(size=(6, C)), rng.integers(0, C, 6)
    np.testing.assert_allclose(
        jaxloss.softmax_focal_loss(z, labels, gamma=0.0, reduction="none"),
        jaxloss.softmax_cross_entropy(z, labels, reduction="none"), rtol=1e-14,
    )


def test_sigmoid_focal_matches_optax():
    rng = np.random.default_rng(13)
    x, y = 3 * rng.normal(size=SHAPE), rng.uniform(size=SHAPE)
    for gamma, alpha in [(2.0, None), (0.5, 0.25), (1.0, 0.75)]:
        np.testing.assert_allclose(
            jaxloss.sigmoid_focal_loss(x, y, gamma=gamma, alpha=alpha, reduction="none"),
            optax.sigmoid_focal_loss(x, y, gamma=gamma, alpha=alpha), rtol=1e-12,
        )


def test_poly1_matches_optax_and_reduces_to_cross_entropy():
    rng = np.random.default_rng(14)
    z, labels = 2 * rng.normal(size=(6, C)), rng.integers(0, C, 6)
    onehot = np.eye(C)[labels]
    np.testing.assert_allclose(
        jaxloss.poly1_cross_entropy(z, labels, epsilon=2.0, reduction="none"),
        optax.losses.poly_loss_cross_entropy(z, onehot, epsilon=2.0), rtol=1e-12,
    )
    np.testing.assert_allclose(
        jaxloss.poly1_cross_entropy(z, labels, epsilon=0.0, reduction="none"),
        jaxloss.softmax_cross_entropy(z, labels, reduction="none"), rtol=1e-14,
    )
    # A traced epsilon equals the static one.
    traced = jax.jit(lambda e: jaxloss.poly1_cross_entropy(z, labels, epsilon=e))(1.5)
    np.testing.assert_allclose(traced, jaxloss.poly1_cross_entropy(z, labels, epsilon=1.5),
                               rtol=1e-14)


def test_softmax_losses_allow_minus_inf_logits_on_unused_classes():
    z = jnp.array([[0.0, -jnp.inf, 1.0], [2.0, 0.0, -jnp.inf]])
    labels = jnp.array([2, 0])
    dist = jnp.array([[0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])
    for fn in (jaxloss.softmax_focal_loss, jaxloss.poly1_cross_entropy):
        for y in (labels, dist):
            value, grad = jax.value_and_grad(lambda z, fn=fn, y=y: fn(z, y))(z)
            assert np.isfinite(float(value))
            assert np.all(np.isfinite(np.asarray(grad)))
    # Every other class at −inf: q_y = 1, so the loss and its gradient are exactly 0.
    lone = jnp.array([[3.0, -jnp.inf, -jnp.inf]])
    value, grad = jax.value_and_grad(lambda z: jaxloss.softmax_focal_loss(z, jnp.array([0])))(lone)
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)


def test_option_and_shape_mistakes_raise():
    x, y = np.zeros(SHAPE), np.zeros(SHAPE, np.int32)
    with pytest.raises(ValueError, match=r"labels must have the shape of logits"):
        jaxloss.sigmoid_binary_cross_entropy(x, y[:, :2])
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        jaxloss.sigmoid_binary_cross_entropy(x, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        jaxloss.sigmoid_focal_loss(x, y, gamma=-1.0)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        jaxloss.sigmoid_focal_loss(x, y, alpha=2.0)
    with pytest.raises(ValueError, match=r"alpha must be a scalar or have shape \(5,\)"):
        jaxloss.softmax_focal_loss(x, y[:, 0], alpha=np.ones(3))
    with pytest.raises(TypeError, match="probs must be a floating-point array"):
        jaxloss.binary_cross_entropy(y, y)
    with pytest.raises(ValueError, match=r"labels \(integer class indices"):
        jaxloss.poly1_cross_entropy(x, y)
    with pytest.raises(TypeError, match="keyword-only"):
        jaxloss.softmax_focal_loss(x, y[:, 0], -1)
