"""Tests of the perceptron losses and the pairwise margin ranking loss.

References are numpy expressions of the definitions (Rosenblatt 1958; Collins 2002; torch's
documented ``margin_ranking_loss``) and optax's ``multiclass_perceptron_loss``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads

import jaxloss

N, C = 6, 4


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


def _away_from_zero(rng, shape, low=0.1):
    """Values of either sign with |v| ≥ low, so no input sits on a hinge's kink."""
    return rng.uniform(low, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def _binary(seed):
    rng = np.random.default_rng(seed)
    return (_away_from_zero(rng, (N,)),), rng.choice([-1, 1], size=N)


def _multiclass(seed):
    rng = np.random.default_rng(seed)
    # Distinct scores at least 0.1 apart, so the max is never tied.
    scores = np.stack([rng.permutation(C) * 0.5 + rng.uniform(0, 0.1, C) for _ in range(N)])
    return (scores,), rng.integers(0, C, size=N)


def _ranking(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=N)
    labels = rng.choice([-1, 1], size=N)
    # a − b chosen so that margin − y(a − b) is never within 0.1 of the kink (margin 0.5).
    b = a - labels * (0.5 - _away_from_zero(rng, (N,)))
    return (a, b), labels


CASES = {
    "perceptron_loss": (
        jaxloss.perceptron_loss, _binary, lambda s, y: np.maximum(0.0, -y * s), {}
    ),
    "multiclass_perceptron_loss": (
        jaxloss.multiclass_perceptron_loss, _multiclass,
        lambda s, y: s.max(-1) - np.take_along_axis(s, y[:, None], -1)[:, 0], {},
    ),
    "margin_ranking_loss": (
        jaxloss.margin_ranking_loss, _ranking,
        lambda a, b, y: np.maximum(0.0, 0.5 - y * (a - b)), {"margin": 0.5},
    ),
}


def _call(name, scores, labels, **kw):
    fn, _, _, options = CASES[name]
    return fn(*scores, labels, **{**options, **kw})


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name", CASES)
def test_matches_reference_in_every_reduction(name, reduction):
    _, make, ref, _ = CASES[name]
    scores, labels = make(0)
    rng = np.random.default_rng(1)
    where, weights = rng.random(N) < 0.7, rng.uniform(0.1, 2.0, N)
    where[0] = True
    got = _call(name, scores, labels, where=where, weights=weights, reduction=reduction)
    expected = np_reduce(ref(*scores, labels), reduction, where, weights)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
    assert np.any(ref(*scores, labels) > 0)  # the test is not all zeros


@pytest.mark.parametrize("name", CASES)
def test_check_grads(name):
    _, make, _, _ = CASES[name]
    scores, labels = make(2)
    with jax.disable_jit():  # op by op: far fewer compilations
        check_grads(
            lambda *s: _call(name, s, labels), scores, order=2, modes=("fwd", "rev")
        )


@pytest.mark.parametrize("name", CASES)
def test_masked_nan_and_empty_mask(name):
    _, make, ref, _ = CASES[name]
    scores, labels = make(3)
    where = np.arange(N) % 2 == 0
    expand = where if scores[0].ndim == 1 else where[:, None]
    bad = tuple(np.where(expand, s, np.nan) for s in scores)
    value, grads = jax.value_and_grad(
        lambda *s: _call(name, s, labels, where=where), argnums=tuple(range(len(scores)))
    )(*bad)
    np.testing.assert_allclose(value, np_reduce(ref(*scores, labels), "mean", where), rtol=1e-13)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g)[~where] == 0)
    value, grads = jax.value_and_grad(
        lambda *s: _call(name, s, labels, where=np.zeros(N, bool)),
        argnums=tuple(range(len(scores))),
    )(*scores)
    assert float(value) == 0.0 and all(np.all(np.asarray(g) == 0) for g in grads)


@pytest.mark.parametrize("name", CASES)
def test_jit_vmap_and_dtypes(name):
    _, make, ref, _ = CASES[name]
    scores, labels = make(4)
    eager = _call(name, scores, labels, reduction="none")
    jitted = jax.jit(lambda *s: _call(name, s, labels, reduction="none"))(*scores)
    np.testing.assert_array_equal(jitted, eager)
    rows = jax.vmap(lambda l, *s: _call(name, s, l, reduction="sum"))(labels, *scores)
    np.testing.assert_allclose(rows, eager, rtol=1e-13)
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64):
        sd = tuple(jnp.asarray(s, dtype) for s in scores)
        got = _call(name, sd, labels)
        assert got.dtype == (jnp.float64 if dtype == jnp.float64 else jnp.float32)
        exact = np.mean(ref(*(np.asarray(s, np.float64) for s in sd), labels))
        np.testing.assert_allclose(got, exact, rtol=1e-12 if dtype == jnp.float64 else 1e-6)


@pytest.mark.parametrize("name", ["perceptron_loss", "margin_ranking_loss"])
def test_labels_that_are_not_plus_minus_one_give_nan(name):
    _, make, _, _ = CASES[name]
    scores, _ = make(5)
    labels = np.array([1, -1, 0, 2, 1, -1])
    per = np.asarray(_call(name, scores, labels, reduction="none"))
    assert np.all(np.isnan(per[2:4])) and np.all(np.isfinite(per[[0, 1, 4, 5]]))
    float_labels = np.array([1.0, -1.0, 0.5, 1.0, 1.0, -1.0])
    per = np.asarray(_call(name, scores, float_labels, reduction="none"))
    assert np.isnan(per[2]) and np.isfinite(per[3])
    err, _ = checkify.checkify(lambda *s: _call(name, s, labels, checks=True))(*scores)
    assert "labels must be -1 or +1" in err.get()


def test_multiclass_labels_out_of_range_give_nan():
    (scores,), _ = _multiclass(6)
    labels = np.array([0, 4, -1, 3, 2, 1])
    per = np.asarray(jaxloss.multiclass_perceptron_loss(scores, labels, reduction="none"))
    assert np.isnan(per[1]) and np.isnan(per[2]) and np.all(np.isfinite(per[[0, 3, 4, 5]]))
    err, _ = checkify.checkify(
        lambda s: jaxloss.multiclass_perceptron_loss(s, labels, checks=True)
    )(scores)
    assert "class indices in [0, 4)" in err.get()
    with pytest.raises(TypeError, match="integer array of class indices"):
        jaxloss.multiclass_perceptron_loss(scores, np.eye(C)[[0, 1, 2, 3, 0, 1]])


def test_relations_to_hinge_losses_and_optax():
    scores, labels = _binary(7)
    np.testing.assert_allclose(
        jaxloss.perceptron_loss(*scores, labels, reduction="none"),
        jaxloss.hinge_loss(*scores, labels, margin=0.0, reduction="none"), rtol=1e-15,
    )
    np.testing.assert_allclose(
        jaxloss.perceptron_loss(*scores, labels, reduction="none"),
        optax.losses.perceptron_loss(*scores, labels), rtol=1e-15,
    )
    (multi,), idx = _multiclass(8)
    np.testing.assert_allclose(
        jaxloss.multiclass_perceptron_loss(multi, idx, reduction="none"),
        jaxloss.multiclass_hinge_loss(multi, idx, margin=0.0, reduction="none"), rtol=1e-15,
    )
    np.testing.assert_allclose(
        jaxloss.multiclass_perceptron_loss(multi, idx, reduction="none"),
        optax.losses.multiclass_perceptron_loss(multi, idx), rtol=1e-15,
    )
    np.testing.assert_allclose(
        jaxloss.multiclass_perceptron_loss(multi.T, idx, axis=0, reduction="none"),
        jaxloss.multiclass_perceptron_loss(multi, idx, reduction="none"), rtol=1e-15,
    )


def test_margin_ranking_shape_mistakes_and_traced_margin():
    (a, b), y = _ranking(9)
    with pytest.raises(ValueError, match=r"scores_b must have the shape of scores_a"):
        jaxloss.margin_ranking_loss(a, b[:3], y)
    with pytest.raises(ValueError, match=r"labels must have the shape of scores_a"):
        jaxloss.margin_ranking_loss(a, b, y[:3])
    with pytest.raises(TypeError, match="keyword-only"):
        jaxloss.margin_ranking_loss(a, b, y, 0.5)
    static = jaxloss.margin_ranking_loss(a, b, y, margin=0.5)
    traced = jax.jit(lambda m: jaxloss.margin_ranking_loss(a, b, y, margin=m))(0.5)
    np.testing.assert_allclose(traced, static, rtol=1e-15)
    d_margin = jax.grad(lambda m: jaxloss.margin_ranking_loss(a, b, y, margin=m))(0.5)
    active = 0.5 - y * (a - b) > 0
    np.testing.assert_allclose(d_margin, active.mean(), rtol=1e-15)
