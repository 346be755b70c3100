"""kl_divergence and entropy: numpy/scipy references, CE = KL + H, 0·log 0, -inf logits and
finite gradients at zero targets."""

import math

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import jaxloss

FAMILY = "divergence"
CASES = helpers.cases(FAMILY)
PROPERTY_CASES = helpers.property_cases(FAMILY)
C = helpers.NUM_CLASSES


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


@pytest.mark.parametrize("case", [c for c in PROPERTY_CASES if c.class_args], ids=str)
def test_axis_matches_moving_the_axis_last(case):
    helpers.check_axis_matches_last(case, 1)

@pytest.mark.parametrize("case", PROPERTY_CASES, ids=str)
@pytest.mark.parametrize("how", ["where", "zero-weights"])
def test_nothing_counts_gives_zero_and_zero_gradient(case, how):
    helpers.check_all_masked(case, how)


@pytest.mark.parametrize("case", PROPERTY_CASES, ids=str)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_masked_nan_or_inf_reaches_neither_value_nor_gradient(case, value):
    helpers.check_masked_entries_do_not_leak(case, "mean", value)


# ---- identities ----------------------------------------------------------------------


def test_cross_entropy_is_kl_plus_entropy():
    # H(p, q) = KL(p ‖ q) + H(p), per example, with zeros in p (0·log 0 = 0).
    r = helpers.rng(11)
    logits = helpers.normal(r, helpers.CLASS_SHAPE, 2.0)
    p = helpers.probabilities_with_zeros(r, helpers.CLASS_SHAPE)
    ce = jaxloss.softmax_cross_entropy(logits, p, reduction="none")
    kl = jaxloss.kl_divergence(logits, p, reduction="none")
    h = jaxloss.entropy(p, reduction="none")
    helpers.assert_close(ce, kl + h)
    # H(p) does not depend on the logits: the two losses have the same logit gradient.
    grad_ce = jax.grad(jaxloss.softmax_cross_entropy)(logits, p)
    grad_kl = jax.grad(jaxloss.kl_divergence)(logits, p)
    helpers.assert_close(grad_kl, grad_ce)


def test_kl_of_a_distribution_with_itself_is_zero():
    # softmax(log p) = p, so KL(p ‖ softmax(log p)) = 0; log 0 = −inf logits included, and
    # those classes get exactly zero gradient.
    p = helpers.probabilities_with_zeros(helpers.rng(12), (6, C))
    with np.errstate(divide="ignore"):
        logits = np.log(p)
    value, grad = jax.value_and_grad(jaxloss.kl_divergence)(logits, p, reduction="sum")
    assert abs(float(value)) < 1e-12
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(np.asarray(grad)[p == 0], 0.0)


# ---- zero targets, -inf logits, log-targets -----------------------------------------


def test_kl_gradient_wrt_targets_is_finite_at_zero_targets():
    r = helpers.rng(13)
    logits = helpers.normal(r, (6, C), 2.0)
    p = helpers.probabilities_with_zeros(r, (6, C))
    assert np.any(p == 0)
    grad = np.asarray(jax.grad(jaxloss.kl_divergence, argnums=1)(logits, p, reduction="sum"))
    assert np.all(np.isfinite(grad))
    # ∂/∂p_k Σ p (log p − log q) = log p_k + 1 − log q_k for p_k > 0; at p_k = 0 the
    # derivative of p log p is taken as 0 (documented), leaving −log q_k.
    log_q = special.log_softmax(logits, axis=-1)
    with np.errstate(divide="ignore"):
        want = np.where(p > 0, np.log(p) + 1 - log_q, -log_q)
    helpers.assert_close(grad, want)


@pytest.mark.parametrize("log_targets", [False, True])
def test_kl_neg_inf_logit_on_a_class_with_zero_target(log_targets):
    r = helpers.rng(14)
    logits = helpers.normal(r, (6, C), 2.0)
    logits[:, 2] = -np.inf
    keep = [0, 1, 3, 4]
    p_kept = helpers.probabilities(r, (6, 4))
    p = np.insert(p_kept, 2, 0.0, axis=1)
    with np.errstate(divide="ignore"):
        targets = np.log(p) if log_targets else p
    value, (grad_logits, grad_targets) = jax.value_and_grad(
        jaxloss.kl_divergence, argnums=(0, 1)
    )(logits, targets, log_targets=log_targets, reduction="sum")
    want = np.sum(special.rel_entr(p_kept, special.softmax(logits[:, keep], axis=-1)))
    helpers.assert_close(value, want)
    assert np.all(np.isfinite(grad_logits)) and np.all(np.isfinite(grad_targets))
    np.testing.assert_array_equal(grad_logits[:, 2], np.zeros(6))
    # The gradient in the logits is softmax − p on the classes that remain.
    helpers.assert_close(
        grad_logits[:, keep], special.softmax(logits[:, keep], axis=-1) - p_kept
    )


def test_target_mass_on_a_neg_inf_logit_is_infinite():
    logits = np.array([[0.0, -np.inf, 1.0]])
    p = np.array([[0.5, 0.25, 0.25]])
    assert float(jaxloss.kl_divergence(logits, p)) == np.inf
    assert float(jaxloss.softmax_cross_entropy(logits, p)) == np.inf


def test_log_targets_equal_targets_with_zeros():
    r = helpers.rng(15)
    logits = helpers.normal(r, helpers.CLASS_SHAPE, 2.0)
    p = helpers.probabilities_with_zeros(r, helpers.CLASS_SHAPE)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    direct = jax.value_and_grad(jaxloss.kl_divergence)(logits, p)
    logged = jax.value_and_grad(jaxloss.kl_divergence)(logits, log_p, log_targets=True)
    helpers.assert_close(logged[0], direct[0])
    helpers.assert_close(logged[1], direct[1])


# ---- entropy by hand, and invalid inputs ---------------------------------------------


def test_entropy_by_hand():
    # Uniform over 4 of 5 classes: H = log 4. Its gradient −(log p + 1) is finite, and 0 at
    # the empty class by the documented convention.
    p = jnp.array([0.25, 0.25, 0.0, 0.25, 0.25])
    value, grad = jax.value_and_grad(jaxloss.entropy)(p)
    assert math.isclose(float(value), math.log(4), rel_tol=1e-12)
    want = [-(math.log(0.25) + 1)] * 2 + [0.0] + [-(math.log(0.25) + 1)] * 2
    helpers.assert_close(grad, want)


@pytest.mark.parametrize("loss", ["kl_divergence", "entropy"])
def test_negative_probability_gives_nan(loss):
    p = helpers.probabilities(helpers.rng(16), (3, C))
    p[1, 3] = -0.125
    if loss == "entropy":
        out = jaxloss.entropy(p, reduction="none")
    else:
        out = jaxloss.kl_divergence(helpers.normal(helpers.rng(), (3, C)), p, reduction="none")
    out = np.asarray(out)
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
