"""jaxloss.reduce, the one reduction rule, against a numpy implementation of it."""

import helpers
import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

import jaxloss

SHAPE = helpers.EXAMPLE_SHAPE


def draw(offset=0):
    r = helpers.rng(offset)
    return helpers.normal(r, SHAPE), helpers.mask(r, SHAPE), helpers.sample_weights(r, SHAPE)


VARIANTS = {
    # name: (where, weights) as functions of the full-shape draws
    "plain": lambda m, w: (None, None),
    "where": lambda m, w: (m, None),
    "weights": lambda m, w: (None, w),
    "where+weights": lambda m, w: (m, w),
    "broadcast": lambda m, w: (m[:1, :], w[:, :1]),  # (1, 3) mask and (4, 1) weights
    "scalar-weight": lambda m, w: (m, np.float64(2.5)),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reduction", helpers.REDUCTIONS)
def test_matches_numpy_rule(variant, reduction):
    values, m, w = draw()
    where, weights = VARIANTS[variant](m, w)
    got = jaxloss.reduce(values, where=where, weights=weights, reduction=reduction)
    want = helpers.np_reduce(values, where, weights, reduction)
    assert got.shape == want.shape
    helpers.assert_close(got, want)


def test_mean_by_hand():
    values = jnp.array([1.0, 2.0, 3.0, 4.0])
    # (1·1 + 0·2 + 3·3) / (1 + 0 + 3), the last entry masked.
    got = jaxloss.reduce(
        values, weights=jnp.array([1.0, 0.0, 3.0, 5.0]),
        where=jnp.array([True, True, True, False]),
    )
    assert float(got) == 10.0 / 4.0
    # The gradient of the mean in the values is w / Σw.
    grad = jax.grad(jaxloss.reduce)(values, weights=jnp.array([1.0, 0.0, 3.0, 5.0]),
                                    where=jnp.array([True, True, True, False]))
    helpers.assert_close(grad, [0.25, 0.0, 0.75, 0.0])


def test_gradients():
    values, where, weights = draw()
    with jax.disable_jit():
        jax.test_util.check_grads(
            lambda v, w: jaxloss.reduce(v, where=where, weights=w), (values, weights),
            order=2, modes=("fwd", "rev"),
        )


@pytest.mark.parametrize("how", ["where", "zero-weights"])
def test_nothing_counts_gives_zero_and_zero_gradient(how):
    values, where, weights = draw()
    if how == "where":
        where = np.zeros(SHAPE, bool)
    else:
        where, weights = np.ones(SHAPE, bool), np.zeros(SHAPE)
    for reduction in helpers.REDUCTIONS:
        out = jaxloss.reduce(values, where=where, weights=weights, reduction=reduction)
        np.testing.assert_array_equal(out, np.zeros(out.shape))
    value, (grad_values, grad_weights) = jax.value_and_grad(
        lambda v, w: jaxloss.reduce(v, where=where, weights=w), argnums=(0, 1)
    )(values, weights)
    assert float(value) == 0.0
    np.testing.assert_array_equal(grad_values, np.zeros(SHAPE))
    assert np.all(np.isfinite(grad_weights))
    if how == "where":
        np.testing.assert_array_equal(grad_weights, np.zeros(SHAPE))


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_masked_nan_or_inf_reaches_neither_value_nor_gradient(poison):
    values, where, weights = draw()
    bad = np.where(where, values, poison)
    value, (grad_values, grad_weights) = jax.value_and_grad(
        lambda v, w: jaxloss.reduce(v, where=where, weights=w), argnums=(0, 1)
    )(bad, weights)
    helpers.assert_close(value, helpers.np_reduce(values, where, weights, "mean"))
    total = np.sum(weights[where])
    helpers.assert_close(grad_values, np.where(where, weights / total, 0.0))
    assert np.all(np.isfinite(grad_weights))
    np.testing.assert_array_equal(np.asarray(grad_weights)[~where], 0.0)


@pytest.mark.parametrize(
    ("dtype", "out_dtype"),
    [(jnp.bfloat16, jnp.float32), (jnp.float16, jnp.float32), (jnp.float32, jnp.float32),
     (jnp.float64, jnp.float64)],
    ids=["bfloat16", "float16", "float32", "float64"],
)
def test_dtypes(dtype, out_dtype):
    values, where, weights = draw()
    values = jnp.asarray(values, dtype)
    out = jaxloss.reduce(values, where=where, weights=weights)
    assert out.dtype == out_dtype
    # Accumulated in at least float32: float64 numpy on the rounded values agrees.
    helpers.assert_close(
        out, helpers.np_reduce(np.asarray(values, np.float64), where, weights, "mean"),
        rtol=1e-6,
    )
    grad = jax.grad(lambda v: jaxloss.reduce(v, where=where, weights=weights))(values)
    assert grad.dtype == dtype


def test_integer_values_are_rejected():
    with pytest.raises(TypeError, match="values must be a floating-point array"):
        jaxloss.reduce(np.arange(3))


def test_invalid_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction must be one of"):
        jaxloss.reduce(np.zeros(3), reduction="average")
