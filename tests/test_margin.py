"""hinge_loss, squared_hinge_loss and multiclass_hinge_loss: numpy and torch references,
gradients by hand, invalid labels."""

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

FAMILY = "margin"
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


# ---- by hand -------------------------------------------------------------------------


def test_hinge_by_hand():
    # max(0, 1 − y·s): right with margin, right inside the margin, wrong.
    scores = jnp.array([2.0, 0.25, -0.5, 0.5])
    labels = jnp.array([1, 1, 1, -1])
    helpers.assert_close(
        jaxloss.hinge_loss(scores, labels, reduction="none"), [0.0, 0.75, 1.5, 1.5]
    )
    helpers.assert_close(
        jaxloss.squared_hinge_loss(scores, labels, reduction="none"),
        [0.0, 0.75**2, 1.5**2, 1.5**2],
    )
    # ∂/∂s max(0, m − ys) = −y where the hinge is active, else 0; squared: −2y·max(0, m − ys).
    helpers.assert_close(
        jax.grad(jaxloss.hinge_loss)(scores, labels, reduction="sum"), [0.0, -1.0, -1.0, 1.0]
    )
    helpers.assert_close(
        jax.grad(jaxloss.squared_hinge_loss)(scores, labels, reduction="sum"),
        [0.0, -1.5, -3.0, 3.0],
    )


def test_multiclass_hinge_by_hand():
    scores = jnp.array([[2.0, 1.5, -1.0], [2.0, 1.5, -1.0]])
    labels = jnp.array([0, 2])
    # Crammer–Singer: max(0, 1 + 1.5 − 2) = 0.5; max(0, 1 + 2 − (−1)) = 4.
    helpers.assert_close(
        jaxloss.multiclass_hinge_loss(scores, labels, reduction="none"), [0.5, 4.0]
    )
    # Weston–Watkins: 0.5 + max(0, 1 − 1 − 2) = 0.5; (1 + 2 + 1) + (1 + 1.5 + 1) = 7.5.
    helpers.assert_close(
        jaxloss.multiclass_hinge_loss(scores, labels, kind="weston_watkins", reduction="none"),
        [0.5, 7.5],
    )


def test_array_margin_equals_python_margin():
    arrays, options, where, weights = helpers.draw(CASES[0])
    static = jaxloss.hinge_loss(*arrays, where=where, weights=weights, margin=0.5)
    traced = jaxloss.hinge_loss(*arrays, where=where, weights=weights, margin=jnp.asarray(0.5))
    helpers.assert_close(traced, static)


# ---- torch's multi_margin_loss is Weston–Watkins over C -----------------------------


def np_torch_multi_margin_loss(x, y, margin):
    """torch.nn.functional.multi_margin_loss (p=1) as documented:
    Σ_{i≠y} max(0, margin − x[y] + x[i]) / C per example, then the mean."""
    per_example = [
        sum(max(0.0, margin - row[t] + row[i]) for i in range(len(row)) if i != t) / len(row)
        for row, t in zip(x, y, strict=True)
    ]
    return np.mean(per_example)


@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_weston_watkins_over_classes_is_torch_multi_margin_loss(margin):
    r = helpers.rng(21)
    scores = helpers.class_scores(r, (6, C))
    labels = helpers.index_labels(r, (6,), C)
    ww = jaxloss.multiclass_hinge_loss(scores, labels, kind="weston_watkins", margin=margin)
    helpers.assert_close(ww / C, np_torch_multi_margin_loss(scores, labels, margin))
    torch = pytest.importorskip("torch")
    x = torch.tensor(scores, requires_grad=True)
    out = torch.nn.functional.multi_margin_loss(x, torch.tensor(labels), margin=margin)
    out.backward()
    helpers.assert_close(ww / C, out.detach().numpy())
    grad = jax.grad(
        lambda s: jaxloss.multiclass_hinge_loss(s, labels, kind="weston_watkins", margin=margin)
    )(scores)
    helpers.assert_close(grad / C, x.grad.numpy())


# ---- invalid labels -----------------------------------------------------------------


@pytest.mark.parametrize("loss", [jaxloss.hinge_loss, jaxloss.squared_hinge_loss])
@pytest.mark.parametrize("bad", [0, 2, 0.5, -0.5], ids=str)
def test_binary_label_that_is_not_plus_or_minus_one_gives_nan(loss, bad):
    labels = np.array([1, bad, -1], dtype=np.float64 if isinstance(bad, float) else np.int64)
    out = np.asarray(loss(np.array([0.3, 0.3, 0.3]), labels, reduction="none"))
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
    assert np.isnan(loss(np.array([0.3, 0.3, 0.3]), labels))


@pytest.mark.parametrize("kind", ["crammer_singer", "weston_watkins"])
@pytest.mark.parametrize("bad", [C, -1])
def test_multiclass_label_out_of_range_gives_nan(kind, bad):
    scores = helpers.class_scores(helpers.rng(), (3, C))
    out = jaxloss.multiclass_hinge_loss(
        scores, np.array([0, bad, 2]), kind=kind, reduction="none"
    )
    out = np.asarray(out)
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
