"""softmax_cross_entropy and brier_score: the seed's numbers, numpy and torch references,
gradients, masking, -inf logits and invalid labels."""

import math

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import jaxloss

FAMILY = "classification"
CASES = helpers.cases(FAMILY)
PROPERTY_CASES = helpers.property_cases(FAMILY)
C = helpers.NUM_CLASSES


# ---- the seed note's worked example --------------------------------------------------


@pytest.mark.parametrize("model", ["X", "Y"])
@pytest.mark.parametrize("form", ["index", "one-hot"])
def test_seed_average_cross_entropy(model, form):
    outputs, _, ace, _ = helpers.SEED_MODELS[model]
    labels = np.array(helpers.SEED_LABELS)
    if form == "one-hot":
        labels = np.eye(3)[labels]
    # The note's ACE is −(1/3)Σ ln q(label); its outputs are probabilities, so the logits
    # are their logarithms (softmax(log p) = p because each row sums to 1).
    got = float(jaxloss.softmax_cross_entropy(jnp.log(jnp.array(outputs)), labels))
    assert round(got, 2) == helpers.SEED_ROUNDED[model][2]
    assert abs(got - ace) < 1e-6


@pytest.mark.parametrize("model", ["X", "Y"])
@pytest.mark.parametrize("form", ["index", "one-hot"])
def test_seed_brier_score(model, form):
    outputs, _, _, brier = helpers.SEED_MODELS[model]
    labels = np.array(helpers.SEED_LABELS)
    if form == "one-hot":
        labels = np.eye(3)[labels]
    got = float(jaxloss.brier_score(jnp.array(outputs), labels))
    assert round(got, 2) == helpers.SEED_ROUNDED[model][3]
    assert abs(got - brier) < 1e-6


# ---- against the numpy references, and the transformations ----------------------------


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


@pytest.mark.parametrize("axis", [0, -2])
def test_other_class_axes_match_moving_the_axis_last(axis):
    # The family tests use axis=1; here the first axis, and a negative axis.
    (case,) = [c for c in CASES if c.id == "softmax_cross_entropy-index-options"]
    helpers.check_axis_matches_last(case, axis)


def test_array_hyperparameters_equal_python_numbers():
    # label_smoothing and z_loss given as arrays stay traced (a different code path).
    (case,) = [c for c in CASES if c.id == "softmax_cross_entropy-index-options"]
    arrays, options, where, weights = helpers.draw(case)
    static = jaxloss.softmax_cross_entropy(*arrays, where=where, weights=weights, **options)
    traced = dict(options, label_smoothing=jnp.asarray(0.15), z_loss=jnp.asarray(0.01))
    helpers.assert_close(
        jaxloss.softmax_cross_entropy(*arrays, where=where, weights=weights, **traced), static
    )


# ---- torch.nn.functional.cross_entropy semantics --------------------------------------

# (id, logits shape (N, C, d1, ...), target form, class weights?, ignore_index, smoothing)
TORCH_CASES = [
    ("index", (6, C), "index", False, -100, 0.0),
    ("index-class_weights-ignored-smoothing", (6, C), "index-ignored", True, -100, 0.1),
    ("index-ignore-a-real-class", (8, C), "index", True, 1, 0.2),
    ("index-spatial", (3, C, 2, 4), "index-ignored", True, -100, 0.3),
    ("probs", (6, C), "probs", False, -100, 0.0),
    ("probs-spatial-class_weights-smoothing", (3, C, 4), "probs", True, -100, 0.1),
]


def torch_inputs(case):
    _, shape, form, weighted, ignore_index, smoothing = case
    r = helpers.rng(7)
    logits = helpers.normal(r, shape, 2.0)
    example_shape = shape[:1] + shape[2:]
    if form == "probs":
        labels = np.moveaxis(helpers.probabilities(r, example_shape + (C,)), -1, 1)
    else:
        labels = helpers.index_labels(r, example_shape, C)
        labels.flat[0] = 1  # the "ignore a real class" case ignores at least one example
        if form == "index-ignored":
            labels.flat[1] = labels.flat[-1] = -100
    class_weights = r.uniform(0.5, 2.0, C) if weighted else None
    options = dict(class_weights=class_weights, ignore_index=ignore_index,
                   label_smoothing=smoothing)
    return logits, labels, options


def torch_reference(logits, labels, options, reduction):
    return helpers.np_torch_cross_entropy(
        logits, labels, weight=options["class_weights"], ignore_index=options["ignore_index"],
        reduction=reduction, label_smoothing=options["label_smoothing"],
    )


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c[0])
@pytest.mark.parametrize("reduction", helpers.REDUCTIONS)
def test_matches_torch_semantics_in_numpy(case, reduction):
    logits, labels, options = torch_inputs(case)
    got = jaxloss.softmax_cross_entropy(logits, labels, axis=1, reduction=reduction, **options)
    want = torch_reference(logits, labels, options, reduction)
    assert got.shape == np.shape(want)
    helpers.assert_close(got, want)


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c[0])
def test_matches_torch_in_value_and_gradient(case):
    torch = pytest.importorskip("torch")
    logits, labels, options = torch_inputs(case)
    probs = np.issubdtype(labels.dtype, np.floating)
    weight = options["class_weights"]

    def torch_loss(reduction):
        x = torch.tensor(logits, requires_grad=True)
        t = torch.tensor(labels, requires_grad=probs)
        out = torch.nn.functional.cross_entropy(
            x, t, weight=None if weight is None else torch.tensor(weight),
            ignore_index=options["ignore_index"], reduction=reduction,
            label_smoothing=options["label_smoothing"],
        )
        return x, t, out

    def f(lg, lb, reduction="mean"):
        return jaxloss.softmax_cross_entropy(lg, lb, axis=1, reduction=reduction, **options)

    for reduction in helpers.REDUCTIONS:
        _, _, out = torch_loss(reduction)
        helpers.assert_close(f(logits, labels, reduction), out.detach().numpy())
        # The numpy re-implementation of torch's semantics is pinned to torch itself.
        helpers.assert_close(
            torch_reference(logits, labels, options, reduction), out.detach().numpy()
        )
    # Gradients of the mean: each row is that example's gradient over torch's denominator.
    x, t, out = torch_loss("mean")
    out.backward()
    grads = jax.grad(f, argnums=(0, 1) if probs else 0)(logits, labels)
    if probs:
        grads, grad_labels = grads
        helpers.assert_close(grad_labels, t.grad.numpy())
    helpers.assert_close(grads, x.grad.numpy())


def test_weighted_mean_denominator_by_hand():
    # Two examples, C = 2: q(0) = 1/2 for the first, q(1) = 3/4 for the second. With class
    # weights (2, 1) torch divides by the weights of the labels, 2 + 1, not by 2 examples.
    logits = jnp.array([[0.0, 0.0], [0.0, math.log(3.0)]])
    labels = jnp.array([0, 1])
    got = jaxloss.softmax_cross_entropy(logits, labels, class_weights=jnp.array([2.0, 1.0]))
    want = (2 * math.log(2.0) + 1 * math.log(4 / 3)) / (2 + 1)
    assert math.isclose(float(got), want, rel_tol=1e-12)
    # Sample weights multiply in: the denominator is Σ s_i c_{y_i} = 3·2 + 1·1.
    got = jaxloss.softmax_cross_entropy(
        logits, labels, class_weights=jnp.array([2.0, 1.0]), weights=jnp.array([3.0, 1.0])
    )
    want = (3 * 2 * math.log(2.0) + 1 * 1 * math.log(4 / 3)) / (3 * 2 + 1 * 1)
    assert math.isclose(float(got), want, rel_tol=1e-12)


# ---- the gradient identity -----------------------------------------------------------


@pytest.mark.parametrize("form", ["index", "probs"])
def test_gradient_is_softmax_minus_target(form):
    r = helpers.rng(3)
    logits = helpers.normal(r, (6, C), 2.0)
    if form == "index":
        labels = helpers.index_labels(r, (6,), C)
        target = np.eye(C)[labels]
    else:
        labels = target = helpers.probabilities(r, (6, C))
    grad = jax.grad(jaxloss.softmax_cross_entropy)(logits, labels, axis=1)
    # The mean over 6 examples divides the per-example gradient softmax(l) − p by 6.
    helpers.assert_close(grad, (special.softmax(logits, axis=-1) - target) / 6)


# ---- -inf logits, ignored examples, invalid labels ------------------------------------


@pytest.mark.parametrize(
    "form", ["index", "index-class_weights", "index-traced-zero-smoothing", "probs"]
)
def test_neg_inf_logit_on_unused_class(form):
    # Class 2 has logit −inf and no target mass: the loss is that of the other four classes,
    # finite, and its gradient at class 2 is exactly 0.
    r = helpers.rng(4)
    logits = helpers.normal(r, (6, C), 2.0)
    logits[:, 2] = -np.inf
    keep = [0, 1, 3, 4]
    options = {}
    if form == "index-class_weights":
        options["class_weights"] = r.uniform(0.5, 2.0, C)
    if form == "index-traced-zero-smoothing":
        # A traced smoothing of 0 must be exactly the unsmoothed loss, not inf·0.
        options["label_smoothing"] = jnp.asarray(0.0)
    if form.startswith("index"):
        labels = np.array(keep)[helpers.index_labels(r, (6,), 4)]
        reduced_labels = np.searchsorted(keep, labels)
        target = np.eye(4)[reduced_labels]
    else:
        reduced_labels = target = helpers.probabilities(r, (6, 4))
        labels = np.insert(target, 2, 0.0, axis=1)
    value, grad = jax.value_and_grad(jaxloss.softmax_cross_entropy)(
        logits, labels, axis=1, reduction="sum", **options
    )
    cw = options.get("class_weights")
    want = helpers.np_softmax_cross_entropy(
        logits[:, keep], reduced_labels, class_weights=None if cw is None else cw[keep]
    ).values.sum()
    helpers.assert_close(value, want)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[:, 2], np.zeros(6))
    if cw is None:
        helpers.assert_close(grad[:, keep], special.softmax(logits[:, keep], axis=-1) - target)


IGNORE_CASE = TORCH_CASES[1]  # (6, C), class weights, smoothing 0.1, ignore_index -100


def test_all_ignored_gives_zero_and_zero_gradient():
    logits, labels, options = torch_inputs(IGNORE_CASE)
    labels = np.full_like(labels, -100)

    def f(lg, reduction="mean"):
        return jaxloss.softmax_cross_entropy(lg, labels, axis=1, reduction=reduction, **options)

    for reduction in helpers.REDUCTIONS:
        out = f(logits, reduction)
        np.testing.assert_array_equal(out, np.zeros(out.shape))
    value, grad = jax.value_and_grad(f)(logits)
    assert float(value) == 0.0
    np.testing.assert_array_equal(grad, np.zeros(grad.shape))


def test_ignored_rows_get_exactly_zero_gradient():
    logits, labels, options = torch_inputs(IGNORE_CASE)
    ignored = labels == -100
    assert 0 < ignored.sum() < len(labels)
    grad = np.asarray(jax.grad(
        lambda lg: jaxloss.softmax_cross_entropy(lg, labels, axis=1, **options)
    )(logits))
    np.testing.assert_array_equal(grad[ignored], np.zeros((ignored.sum(), C)))
    assert np.all(grad[~ignored] != 0)


@pytest.mark.parametrize("loss", [jaxloss.softmax_cross_entropy, jaxloss.brier_score])
@pytest.mark.parametrize("bad", [C, -1, 1000, -101])
def test_out_of_range_label_gives_nan(loss, bad):
    inputs = helpers.probabilities(helpers.rng(), (3, C))
    out = np.asarray(loss(inputs, np.array([0, bad, 2]), reduction="none"))
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
    assert np.isnan(loss(inputs, np.array([0, bad, 2])))


def test_unsigned_label_that_wraps_to_ignore_index_is_not_ignored():
    # −100 wraps to 156 in uint8; a uint8 label 156 is out of range for C = 5, not ignored.
    logits = helpers.normal(helpers.rng(), (3, C))
    out = np.asarray(jaxloss.softmax_cross_entropy(
        logits, np.array([0, 156, 2], np.uint8), reduction="none"
    ))
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
    # A representable ignore_index still works for unsigned labels (e.g. 255 in uint8 masks).
    out = jaxloss.softmax_cross_entropy(
        logits, np.array([0, 255, 2], np.uint8), ignore_index=255, reduction="none"
    )
    assert float(out[1]) == 0.0


@pytest.mark.parametrize("loss", [jaxloss.softmax_cross_entropy, jaxloss.brier_score])
def test_negative_probability_gives_nan(loss):
    targets = helpers.probabilities(helpers.rng(), (3, C))
    targets[1, 0] = -0.25
    inputs = helpers.probabilities(helpers.rng(1), (3, C))
    out = np.asarray(loss(inputs, targets, reduction="none"))
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
