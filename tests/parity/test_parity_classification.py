"""PyTorch parity of the classification and margin losses: values and gradients.

Mapping (torch.nn.functional → jaxloss):

- ``cross_entropy(x, y, weight=w, ignore_index=i, label_smoothing=s, reduction=r)`` with
  classes on dim 1 → ``softmax_cross_entropy(x, y, axis=1, class_weights=w, ignore_index=i,
  label_smoothing=s, reduction=r)``, for index and probability targets.
- ``nll_loss(log_probs, y, ...)`` → ``softmax_cross_entropy(log_probs, y, axis=1, ...)``:
  log_softmax is idempotent on log-probabilities, so the values agree, and through a
  log_softmax layer the gradients agree too.
- ``binary_cross_entropy(p, y, weight=w)`` → ``binary_cross_entropy(p, y, weights=w)``;
  ``binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=v)`` →
  ``sigmoid_binary_cross_entropy(x, y, weights=w, pos_weight=v)``. torch's weighted mean
  divides by the number of elements, jaxloss's by Σ w: torch's ``"mean"`` is jaxloss's
  ``"sum"`` divided by the number of elements.
- ``multi_margin_loss(x, y, margin=m, weight=w)`` → ``multiclass_hinge_loss(x, y,
  kind="weston_watkins", margin=m, weights=w[y])`` divided by C, with torch's ``"mean"``
  being jaxloss's ``"sum"`` divided by N·C.
- ``margin_ranking_loss(a, b, y, margin=m)`` → ``margin_ranking_loss(a, b, y, margin=m)``.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is a test-only dependency of the parity suite and is not installed"
)
import torch.nn.functional as F  # noqa: E402
from torch_parity import check  # noqa: E402

import jaxloss  # noqa: E402

REDUCTIONS = ("none", "sum", "mean")
DTYPES = (np.float64, np.float32)
SHAPES = ((6, 5), (3, 4, 2, 3))  # (N, C) and (N, C, d1, d2) with classes on axis 1
# Every shape in float64; float32 on the first, to keep the suite quick.
SHAPES_DTYPES = [(SHAPES[0], np.float64), (SHAPES[1], np.float64), (SHAPES[0], np.float32)]
C = 5


def _index_targets(rng, shape, ignore_index):
    n, c, *spatial = shape
    target = rng.integers(0, c, size=(n, *spatial))
    if ignore_index == -100:
        target = np.where(rng.random(target.shape) < 0.25, -100, target)
    target.flat[0] = 0  # at least one example counts
    return target


def _soft_targets(rng, shape):
    raw = rng.normal(size=shape)
    return np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)


def _ce_variants(ignore_index=None):
    """With and without class weights, every reduction, without and with label smoothing."""
    extra = {} if ignore_index is None else {"ignore_index": ignore_index}
    return [
        (
            lambda logits, target, weight, r=r, s=s, w=w: jaxloss.softmax_cross_entropy(
                logits, target, axis=1, class_weights=weight if w else None,
                label_smoothing=s, reduction=r, **extra,
            ),
            lambda logits, target, weight, r=r, s=s, w=w: F.cross_entropy(
                logits, target, weight=weight if w else None, label_smoothing=s,
                reduction=r, **extra,
            ),
        )
        for w in (False, True)
        for r in REDUCTIONS
        for s in (0.0, 0.15)
    ]


@pytest.mark.parametrize("shape, dtype", SHAPES_DTYPES, ids=str)
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_cross_entropy_index_targets(ignore_index, shape, dtype):
    rng = np.random.default_rng(0)
    inputs = {
        "logits": 2 * rng.normal(size=shape),
        "target": _index_targets(rng, shape, ignore_index),
        "weight": rng.uniform(0.2, 2.0, size=shape[1]),
    }
    check(_ce_variants(ignore_index), inputs, ("logits",), dtype)


@pytest.mark.parametrize("shape, dtype", SHAPES_DTYPES, ids=str)
def test_cross_entropy_probability_targets(shape, dtype):
    rng = np.random.default_rng(1)
    inputs = {
        "logits": 2 * rng.normal(size=shape),
        "target": _soft_targets(rng, shape),
        "weight": rng.uniform(0.2, 2.0, size=shape[1]),
    }
    check(_ce_variants(), inputs, ("logits", "target"), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_nll_loss_on_log_probabilities(dtype):
    rng = np.random.default_rng(2)
    shape = (6, C, 3)
    inputs = {
        "logits": 2 * rng.normal(size=shape),
        "target": _index_targets(rng, shape, -100),
        "weight": rng.uniform(0.2, 2.0, size=C),
    }
    # Both sides see log-probabilities made by a log_softmax layer, and the gradient is taken
    # with respect to that layer's input.
    variants = [
        (
            lambda logits, target, weight, r=r: jaxloss.softmax_cross_entropy(
                jax.nn.log_softmax(logits, axis=1), target, axis=1, class_weights=weight,
                reduction=r,
            ),
            lambda logits, target, weight, r=r: F.nll_loss(
                F.log_softmax(logits, dim=1), target, weight=weight, reduction=r
            ),
        )
        for r in REDUCTIONS
    ]
    check(variants, inputs, ("logits",), dtype)


def _weighted_mean_as_sum(reduction, weighted, n):
    """torch's weighted "mean" divides by the element count n; jaxloss's by Σ w."""
    if weighted and reduction == "mean":
        return "sum", 1.0 / n
    return reduction, 1.0


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_binary_cross_entropy_on_probabilities(dtype):
    rng = np.random.default_rng(3)
    shape = (4, 3, 2)
    inputs = {
        "probs": rng.uniform(0.02, 0.98, size=shape),
        "target": rng.uniform(size=shape),
        "weight": rng.uniform(0.2, 2.0, size=shape),
    }
    variants = []
    for w, r in itertools.product((False, True), REDUCTIONS):
        jr, scale = _weighted_mean_as_sum(r, w, int(np.prod(shape)))
        variants.append((
            lambda probs, target, weight, jr=jr, scale=scale, w=w: scale
            * jaxloss.binary_cross_entropy(
                probs, target, weights=weight if w else None, reduction=jr
            ),
            lambda probs, target, weight, r=r, w=w: F.binary_cross_entropy(
                probs, target, weight=weight if w else None, reduction=r
            ),
        ))
    check(variants, inputs, ("probs", "target"), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_binary_cross_entropy_with_logits(dtype):
    rng = np.random.default_rng(4)
    shape = (6, C)
    inputs = {
        "logits": 3 * rng.normal(size=shape),
        "target": rng.uniform(size=shape),
        "weight": rng.uniform(0.2, 2.0, size=shape),
        "pos_weight": rng.uniform(0.5, 3.0, size=C),  # one per class, as torch's
    }
    variants = []
    for w, pw, r in itertools.product((False, True), (False, True), REDUCTIONS):
        jr, scale = _weighted_mean_as_sum(r, w, int(np.prod(shape)))
        variants.append((
            lambda logits, target, weight, pos_weight, jr=jr, scale=scale, w=w, pw=pw: scale
            * jaxloss.sigmoid_binary_cross_entropy(
                logits, target, weights=weight if w else None,
                pos_weight=pos_weight if pw else None, reduction=jr,
            ),
            lambda logits, target, weight, pos_weight, r=r, w=w, pw=pw: (
                F.binary_cross_entropy_with_logits(
                    logits, target, weight=weight if w else None,
                    pos_weight=pos_weight if pw else None, reduction=r,
                )
            ),
        ))
    check(variants, inputs, ("logits", "target"), dtype)


def test_bce_integer_labels_match_float_targets():
    rng = np.random.default_rng(5)
    x, y = 3 * rng.normal(size=(8,)), rng.integers(0, 2, size=8)
    check(
        (
            lambda x, y: jaxloss.sigmoid_binary_cross_entropy(x, y),
            lambda x, y: F.binary_cross_entropy_with_logits(x, y.double()),
        ),
        {"x": x, "y": y}, ("x",),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_multi_margin_loss(dtype):
    rng = np.random.default_rng(6)
    n, margin = 7, 0.8
    weight = rng.uniform(0.2, 2.0, size=C)
    inputs = {"scores": rng.normal(size=(n, C)), "target": rng.integers(0, C, size=n)}
    variants = []
    for w, r in itertools.product((False, True), REDUCTIONS):
        # jaxloss's Weston–Watkins sums over the wrong classes; torch averages over all C, and
        # its "mean" divides by N whatever the weights: jaxloss's "sum" over N·C.
        divisor = C * (n if r == "mean" else 1)
        jr = "sum" if r == "mean" else r
        per_class = weight if w else np.ones(C)
        variants.append((
            lambda scores, target, jr=jr, divisor=divisor, pc=per_class: (
                jaxloss.multiclass_hinge_loss(
                    scores, target, kind="weston_watkins", margin=margin,
                    weights=jnp.asarray(pc, scores.dtype)[target], reduction=jr,
                ) / divisor
            ),
            lambda scores, target, r=r, w=w: F.multi_margin_loss(
                scores, target, margin=margin,
                weight=torch.tensor(weight, dtype=scores.dtype) if w else None, reduction=r,
            ),
        ))
    check(variants, inputs, ("scores",), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_margin_ranking_loss(dtype):
    rng = np.random.default_rng(7)
    shape = (5, 3)
    inputs = {
        "a": rng.normal(size=shape),
        "b": rng.normal(size=shape),
        "y": rng.choice([-1.0, 1.0], size=shape),
    }
    variants = [
        (
            lambda a, b, y, r=r: jaxloss.margin_ranking_loss(a, b, y, margin=0.3, reduction=r),
            lambda a, b, y, r=r: F.margin_ranking_loss(a, b, y, margin=0.3, reduction=r),
        )
        for r in REDUCTIONS
    ]
    check(variants, inputs, ("a", "b"), dtype)
