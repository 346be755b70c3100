"""accuracy and classification_error: the seed's numbers, numpy reference, ties, weights,
no gradient, invalid labels."""

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import jaxloss

FAMILY = "metrics"
CASES = helpers.cases(FAMILY)
PROPERTY_CASES = helpers.property_cases(FAMILY)
C = helpers.NUM_CLASSES


@pytest.mark.parametrize("model", ["X", "Y"])
@pytest.mark.parametrize("form", ["probs", "logits"])
def test_seed_error_and_accuracy(model, form):
    outputs, error, _, _ = helpers.SEED_MODELS[model]
    predictions = np.array(outputs)
    if form == "logits":
        predictions = np.log(predictions)  # the argmax is the same
    labels = np.array(helpers.SEED_LABELS)
    err = float(jaxloss.classification_error(predictions, labels))
    acc = float(jaxloss.accuracy(predictions, labels))
    assert (round(err, 2), round(acc, 2)) == helpers.SEED_ROUNDED[model][:2]
    assert abs(err - error) < 1e-6 and abs(acc - (1 - error)) < 1e-6


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("reduction", helpers.REDUCTIONS)
def test_matches_numpy_reference_with_where_and_weights(case, reduction):
    helpers.check_matches_reference(case, reduction, "where+weights")

@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_numpy_reference_without_where_and_weights(case):
    helpers.check_matches_reference(case, "none", "plain")

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


def test_logits_and_probabilities_give_the_same_accuracy():
    r = helpers.rng(31)
    logits = helpers.normal(r, helpers.CLASS_SHAPE)
    labels = helpers.index_labels(r, helpers.EXAMPLE_SHAPE, C)
    helpers.assert_close(
        jaxloss.accuracy(logits, labels, reduction="none"),
        jaxloss.accuracy(special.softmax(logits, axis=-1), labels, reduction="none"),
    )


def test_ties_go_to_the_lowest_index():
    predictions = np.array([[0.4, 0.4, 0.2], [0.1, 0.45, 0.45], [0.1, 0.45, 0.45]])
    labels = np.array([0, 1, 2])
    helpers.assert_close(jaxloss.accuracy(predictions, labels, reduction="none"), [1, 1, 0])


def test_error_plus_accuracy_is_one_under_where_and_weights():
    (case,) = [c for c in CASES if c.id == "accuracy-index"]
    arrays, _, where, weights = helpers.draw(case)
    acc = jaxloss.accuracy(*arrays, where=where, weights=weights)
    err = jaxloss.classification_error(*arrays, where=where, weights=weights)
    helpers.assert_close(acc + err, 1.0)
    # Per example: w·[right] + w·[wrong] = w where the example counts, 0 elsewhere.
    both = jaxloss.accuracy(*arrays, where=where, weights=weights, reduction="none") + (
        jaxloss.classification_error(*arrays, where=where, weights=weights, reduction="none")
    )
    helpers.assert_close(both, np.where(where, weights, 0.0))


@pytest.mark.parametrize("loss", [jaxloss.accuracy, jaxloss.classification_error])
def test_no_gradient_flows_through_the_argmax(loss):
    r = helpers.rng(32)
    logits = helpers.normal(r, (6, C))
    grad = jax.grad(loss)(jnp.asarray(logits), helpers.index_labels(r, (6,), C))
    np.testing.assert_array_equal(grad, np.zeros((6, C)))


@pytest.mark.parametrize("loss", [jaxloss.accuracy, jaxloss.classification_error])
@pytest.mark.parametrize("form", ["out-of-range", "negative-probability"])
def test_invalid_labels_give_nan(loss, form):
    predictions = helpers.probabilities(helpers.rng(), (3, C))
    if form == "out-of-range":
        labels = np.array([0, C, 1])
    else:
        labels = helpers.probabilities(helpers.rng(1), (3, C))
        labels[1, 2] = -0.5
    out = np.asarray(loss(predictions, labels, reduction="none"))
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
