"""squared_error against numpy, under the reduction rule, masks, transformations and grads."""

import math

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

FAMILY = "regression"
CASES = helpers.cases(FAMILY)
PROPERTY_CASES = helpers.property_cases(FAMILY)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("reduction", helpers.REDUCTIONS)
def test_matches_numpy_reference_with_where_and_weights(case, reduction):
    helpers.check_matches_reference(case, reduction, "where+weights")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_numpy_reference_without_where_and_weights(case):
    helpers.check_matches_reference(case, "none", "plain")


@pytest.mark.parametrize("case", helpers.grad_cases(FAMILY), ids=str)
def test_gradients(case):
    helpers.check_gradients(case)


@pytest.mark.parametrize("case", PROPERTY_CASES, ids=str)
def test_jit_matches_eager(case):
    helpers.check_jit_matches_eager(case, "mean")


@pytest.mark.parametrize("case", PROPERTY_CASES, ids=str)
def test_vmap_matches_batched(case):
    helpers.check_vmap_matches_batched(case)

@pytest.mark.parametrize("case", PROPERTY_CASES, ids=str)
@pytest.mark.parametrize("how", ["where", "zero-weights"])
def test_nothing_counts_gives_zero_and_zero_gradient(case, how):
    helpers.check_all_masked(case, how)


@pytest.mark.parametrize("case", PROPERTY_CASES, ids=str)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_masked_nan_or_inf_reaches_neither_value_nor_gradient(case, value):
    helpers.check_masked_entries_do_not_leak(case, "mean", value)


def test_seed_stock_price_example():
    # The seed note's regression example: true price 100,000, prediction 95,000.
    price, guess = jnp.array([100_000.0]), jnp.array([95_000.0])
    assert float(jaxloss.squared_error(guess, price)) == 5_000.0**2
    # d/dp (p − t)² = 2(p − t).
    assert float(jax.grad(jaxloss.squared_error)(guess, price)[0]) == 2 * (95_000.0 - 100_000.0)


def test_mse_is_bias_squared_plus_variance():
    # The seed note's claim MSE = bias² + variance, for estimates θ̂_i of a fixed θ, with the
    # bias and the (population) variance computed by numpy.
    estimates = helpers.rng().normal(loc=3.2, scale=0.7, size=1000)
    theta = 3.0
    mse = jaxloss.squared_error(jnp.asarray(estimates), jnp.full(estimates.shape, theta))
    bias = np.mean(estimates) - theta
    helpers.assert_close(mse, bias**2 + np.var(estimates))
    assert math.isclose(float(mse), np.mean((estimates - theta) ** 2), rel_tol=1e-12)


def test_checks_is_accepted_and_changes_nothing():
    r = helpers.rng()
    p, t = r.normal(size=5), r.normal(size=5)
    helpers.assert_close(
        jaxloss.squared_error(p, t, checks=True), np.mean((p - t) ** 2)
    )
