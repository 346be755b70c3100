"""Shared test material: seeded inputs, numpy references and the case tables.

The references are written from the formulas in numpy (with ``scipy.special`` for
log-softmax, ``entr`` and ``rel_entr``), never by calling jaxloss, so every value test
compares two independent implementations. Each case draws its inputs from a generator
seeded by the test, so a failure reproduces exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
from scipy import special

import jaxloss

REDUCTIONS = ("none", "sum", "mean")
SEED = 20240521
EXAMPLE_SHAPE = (4, 3)  # per-example shape: a batch of 4 with an extra (time) axis of 3
NUM_CLASSES = 5
HALF_DTYPES = (jnp.bfloat16, jnp.float16)


def rng(offset: int = 0) -> np.random.Generator:
    """The tests' seeded generator."""
    return np.random.default_rng(SEED + offset)


# --------------------------------------------------------------------------------------
# Seeded input generators (float64 numpy arrays; integer labels are int64).
# --------------------------------------------------------------------------------------


def normal(r: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return r.normal(scale=scale, size=shape)


def probabilities(
    r: np.random.Generator, shape: tuple[int, ...], floor: float = 0.1
) -> np.ndarray:
    """Rows on the last axis that sum to 1, every entry at least floor / (1 + C·floor).

    The floor keeps finite differences of p·log p (whose third derivative is 1/p²) away
    from the boundary p = 0.
    """
    p = r.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    return (p + floor) / (1 + shape[-1] * floor)


def probabilities_with_zeros(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Distributions on the last axis that put exactly 0 on some classes (never all)."""
    p = probabilities(r, shape)
    zero = r.random(shape) < 0.4
    zero[..., 0] = False
    p = np.where(zero, 0.0, p)
    return p / p.sum(axis=-1, keepdims=True)


def index_labels(r: np.random.Generator, shape: tuple[int, ...], num_classes: int) -> np.ndarray:
    return r.integers(0, num_classes, size=shape)


def signs(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return r.choice(np.array([-1, 1]), size=shape)


def binary_scores(r: np.random.Generator, labels: np.ndarray, margin: float) -> np.ndarray:
    """Scores with margin − y·s at least 0.1 away from the hinge's kink at 0, either side."""
    gap = r.uniform(0.1, 1.5, size=labels.shape) * signs(r, labels.shape)
    return labels * (margin + gap)


def class_scores(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Per-class scores whose pairwise differences avoid the multiclass hinge's kinks.

    Scores in a row are 0.3·(a permutation of 0..C−1) plus a jitter of at most 0.02 and a
    random offset, so differences lie within 0.04 of a multiple of 0.3: for margins 1 and
    0.5, m + s_j − s_y stays at least 0.06 away from 0, and there are no ties.
    """
    rows = int(np.prod(shape[:-1]))
    base = np.stack([r.permutation(shape[-1]) for _ in range(rows)]).reshape(shape)
    jitter = r.uniform(-0.02, 0.02, size=shape)
    offset = r.normal(size=shape[:-1] + (1,))
    return 0.3 * base + jitter + offset


def mask(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask with both True and False entries."""
    m = r.random(shape) < 0.6
    m.flat[0], m.flat[-1] = True, False
    return m


def sample_weights(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return r.uniform(0.5, 2.0, size=shape)


# --------------------------------------------------------------------------------------
# The reduction rule and the losses, in numpy, from their formulas.
# --------------------------------------------------------------------------------------


class Reference(NamedTuple):
    """Per-example values of a reference, which examples count, and mean denominators."""

    values: np.ndarray
    counts: np.ndarray | None = None  # False for examples that never count (ignore_index)
    denominators: np.ndarray | None = None  # per-example factor of the mean's denominator


def np_reduce(
    values: np.ndarray,
    where: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    reduction: str = "mean",
    denominators: np.ndarray | None = None,
) -> np.ndarray:
    """none: w·ℓ (0 where masked); sum: Σ w·ℓ; mean: Σ w·ℓ / Σ w·d, 0 when that is 0."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.ones(values.shape, bool) if where is None else np.broadcast_to(where, values.shape)
    w = np.ones(values.shape) if weights is None else np.broadcast_to(weights, values.shape)
    w = np.where(counts, w, 0.0)
    weighted = np.where(counts, w * np.where(counts, values, 0.0), 0.0)
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return np.asarray(weighted.sum())
    d = w if denominators is None else w * denominators
    total = d.sum()
    return np.asarray(0.0 if total == 0 else weighted.sum() / total)


def _last(x: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(np.asarray(x), axis, -1)


def _is_index(labels: np.ndarray) -> bool:
    return np.issubdtype(np.asarray(labels).dtype, np.integer)


def np_squared_error(predictions, targets) -> Reference:
    return Reference((np.asarray(predictions) - np.asarray(targets)) ** 2)


def np_brier_score(probs, labels, *, axis=-1) -> Reference:
    p = _last(probs, axis)
    y = np.eye(p.shape[-1])[labels] if _is_index(labels) else _last(labels, axis)
    return Reference(((p - y) ** 2).sum(axis=-1))


def np_softmax_cross_entropy(
    logits, labels, *, axis=-1, class_weights=None, ignore_index=-100, label_smoothing=0.0,
    z_loss=0.0,
) -> Reference:
    """The issue's formula: (1−ε)·c_y·(−log q_y) + ε/C·Σ_k c_k(−log q_k) + ζ·lse²."""
    z = _last(logits, axis)
    num_classes = z.shape[-1]
    log_q = special.log_softmax(z, axis=-1)
    c = np.ones(num_classes) if class_weights is None else np.asarray(class_weights)
    eps = float(label_smoothing)
    counts = denominators = None
    if _is_index(labels):
        counts = labels != ignore_index
        y = np.where(counts, labels, 0)
        nll = -np.take_along_axis(log_q, y[..., None], axis=-1)[..., 0]
        smooth = -(c * log_q).sum(axis=-1) / num_classes
        values = (1 - eps) * c[y] * nll + eps * smooth
        if class_weights is not None:
            denominators = c[y]
    else:
        p = (1 - eps) * _last(labels, axis) + eps / num_classes
        # 0·log 0 = 0: a class with no target mass contributes nothing, even at q = 0.
        values = -np.where(p == 0, 0.0, c * p * log_q).sum(axis=-1)
    values = values + float(z_loss) * special.logsumexp(z, axis=-1) ** 2
    return Reference(values, counts, denominators)


def np_kl_divergence(logits, targets, *, axis=-1, log_targets=False) -> Reference:
    q = special.softmax(_last(logits, axis), axis=-1)
    p = np.exp(_last(targets, axis)) if log_targets else _last(targets, axis)
    return Reference(special.rel_entr(p, q).sum(axis=-1))


def np_entropy(probs, *, axis=-1) -> Reference:
    return Reference(special.entr(_last(probs, axis)).sum(axis=-1))


def np_hinge_loss(scores, labels, *, margin=1.0) -> Reference:
    return Reference(np.maximum(0.0, margin - np.asarray(labels) * np.asarray(scores)))


def np_squared_hinge_loss(scores, labels, *, margin=1.0) -> Reference:
    return Reference(np_hinge_loss(scores, labels, margin=margin).values ** 2)


def np_multiclass_hinge_loss(
    scores, labels, *, axis=-1, margin=1.0, kind="crammer_singer"
) -> Reference:
    s = _last(scores, axis)
    rows = s.reshape(-1, s.shape[-1])
    out = []
    for row, y in zip(rows, np.ravel(labels), strict=True):
        others = np.delete(row, y)
        if kind == "crammer_singer":
            out.append(max(0.0, margin + others.max() - row[y]))
        else:
            out.append(np.maximum(0.0, margin + others - row[y]).sum())
    return Reference(np.array(out).reshape(np.shape(labels)))


def _np_correct(predictions, labels, axis):
    predicted = np.argmax(_last(predictions, axis), axis=-1)
    y = labels if _is_index(labels) else np.argmax(_last(labels, axis), axis=-1)
    return (predicted == y).astype(np.float64)


def np_accuracy(predictions, labels, *, axis=-1) -> Reference:
    return Reference(_np_correct(predictions, labels, axis))


def np_classification_error(predictions, labels, *, axis=-1) -> Reference:
    return Reference(1.0 - _np_correct(predictions, labels, axis))


def np_torch_cross_entropy(
    input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0
) -> np.ndarray:
    """``torch.nn.functional.cross_entropy`` as its documentation defines it, in numpy.

    Classes on dimension 1 of ``input`` (N, C, d1, ...). Index targets: the smoothed loss is
    (1−ε)·nll + ε/C·smooth, where nll_n = −w_{y_n} log q_{n,y_n} and smooth_n =
    −Σ_c w_c log q_{n,c}, both 0 for ignored targets, and for ``"mean"`` both are divided
    by Σ_n w_{y_n} over the targets that are not ignored. Probability targets: ℓ_n =
    −Σ_c w_c ỹ_{n,c} log q_{n,c} with ỹ = (1−ε)y + ε/C, and ``"mean"`` divides by N·d1·….
    """
    x = np.moveaxis(np.asarray(input, np.float64), 1, -1)
    example_shape = x.shape[:-1]
    num_classes = x.shape[-1]
    x = x.reshape(-1, num_classes)
    log_q = x - special.logsumexp(x, axis=-1, keepdims=True)
    w = np.ones(num_classes) if weight is None else np.asarray(weight, np.float64)
    eps = label_smoothing
    if _is_index(target):
        t = np.ravel(target)
        keep = t != ignore_index
        t0 = np.where(keep, t, 0)
        nll = np.where(keep, -w[t0] * log_q[np.arange(len(t0)), t0], 0.0)
        smooth = np.where(keep, -(w * log_q).sum(axis=-1), 0.0)
        if reduction == "none":
            return ((1 - eps) * nll + eps / num_classes * smooth).reshape(example_shape)
        if reduction == "sum":
            return (1 - eps) * nll.sum() + eps / num_classes * smooth.sum()
        denominator = w[t0][keep].sum()
        return (1 - eps) * nll.sum() / denominator + eps / num_classes * smooth.sum() / denominator
    y = np.moveaxis(np.asarray(target, np.float64), 1, -1).reshape(-1, num_classes)
    y = (1 - eps) * y + eps / num_classes
    per_example = -(w * y * log_q).sum(axis=-1)
    if reduction == "none":
        return per_example.reshape(example_shape)
    if reduction == "sum":
        return per_example.sum()
    return per_example.sum() / len(per_example)


# --------------------------------------------------------------------------------------
# The seed note's worked example (../shared/seed/README.md, section 4), by hand.
# --------------------------------------------------------------------------------------

SEED_LABELS = (2, 1, 0)  # C, B, A
SEED_MODELS = {
    # model: (outputs, classification error, average cross-entropy, Brier "MSE")
    "X": (
        ((0.3, 0.3, 0.4), (0.3, 0.4, 0.3), (0.1, 0.2, 0.7)),
        1 / 3,
        -(math.log(0.4) + math.log(0.4) + math.log(0.1)) / 3,
        ((0.3**2 + 0.3**2 + 0.6**2) + (0.3**2 + 0.6**2 + 0.3**2) + (0.9**2 + 0.2**2 + 0.7**2))
        / 3,
    ),
    "Y": (
        ((0.1, 0.2, 0.7), (0.1, 0.7, 0.2), (0.3, 0.4, 0.3)),
        1 / 3,
        -(math.log(0.7) + math.log(0.7) + math.log(0.3)) / 3,
        ((0.1**2 + 0.2**2 + 0.3**2) + (0.1**2 + 0.3**2 + 0.2**2) + (0.7**2 + 0.4**2 + 0.3**2))
        / 3,
    ),
}
SEED_ROUNDED = {"X": (0.33, 0.67, 1.38, 0.81), "Y": (0.33, 0.67, 0.64, 0.34)}


# --------------------------------------------------------------------------------------
# Case tables.
# --------------------------------------------------------------------------------------

Arrays = tuple[np.ndarray, ...]
Make = Callable[[np.random.Generator], tuple[Arrays, dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Case:
    """One loss with one kind of input.

    ``make`` draws the positional arrays (float64 / int64 numpy) and the options;
    ``reference`` maps them to a :class:`Reference`. ``class_args`` are the positions of
    arrays with a class axis (last, as drawn); ``grad_args`` are what the loss is
    differentiable in: positions of arrays, or names of options that may be arrays.
    Inputs are drawn away from kinks and, except in the ``-zeros`` cases, from p = 0.
    """

    id: str
    loss: Callable[..., jax.Array]
    make: Make
    reference: Callable[..., Reference]
    family: str
    class_args: tuple[int, ...] = ()
    grad_args: tuple[int | str, ...] = ()
    # False where another case of the same loss runs the same code: check_grads and the
    # property tests (jit, vmap, axis, masking, dtypes) cost a compilation or more each.
    check_grads: bool = True
    properties: bool = True

    def __str__(self) -> str:
        return self.id

    @property
    def example_shape(self) -> tuple[int, ...]:
        return EXAMPLE_SHAPE


SHAPE = EXAMPLE_SHAPE
CLASS_SHAPE = EXAMPLE_SHAPE + (NUM_CLASSES,)


def _regression(r):
    return (normal(r, SHAPE), normal(r, SHAPE)), {}


def _brier_index(r):
    return (probabilities(r, CLASS_SHAPE), index_labels(r, SHAPE, NUM_CLASSES)), {}


def _brier_probs(r):
    return (probabilities(r, CLASS_SHAPE), probabilities(r, CLASS_SHAPE)), {}


def _ce_index(r):
    return (normal(r, CLASS_SHAPE, 2.0), index_labels(r, SHAPE, NUM_CLASSES)), {}


def _ce_index_options(r):
    labels = index_labels(r, SHAPE, NUM_CLASSES)
    labels[1, 0] = labels[3, 2] = -100  # two ignored examples
    options = dict(
        class_weights=r.uniform(0.5, 2.0, NUM_CLASSES), label_smoothing=0.15, z_loss=0.01
    )
    return (normal(r, CLASS_SHAPE, 2.0), labels), options


def _ce_probs(r):
    return (normal(r, CLASS_SHAPE, 2.0), probabilities(r, CLASS_SHAPE)), {}


def _ce_probs_options(r):
    options = dict(
        class_weights=r.uniform(0.5, 2.0, NUM_CLASSES), label_smoothing=0.1, z_loss=0.02
    )
    return (normal(r, CLASS_SHAPE, 2.0), probabilities(r, CLASS_SHAPE)), options


def _kl(r):
    return (normal(r, CLASS_SHAPE, 2.0), probabilities(r, CLASS_SHAPE)), {}


def _kl_log(r):
    return (normal(r, CLASS_SHAPE, 2.0), np.log(probabilities(r, CLASS_SHAPE))), {
        "log_targets": True
    }


def _kl_zeros(r):
    return (normal(r, CLASS_SHAPE, 2.0), probabilities_with_zeros(r, CLASS_SHAPE)), {}


def _entropy(r):
    return (probabilities(r, CLASS_SHAPE),), {}


def _entropy_zeros(r):
    return (probabilities_with_zeros(r, CLASS_SHAPE),), {}


def _hinge_int_labels(r):
    labels = signs(r, SHAPE)
    return (binary_scores(r, labels, 0.5), labels), {"margin": 0.5}


def _hinge_float_labels(r):
    labels = signs(r, SHAPE).astype(np.float64)
    return (binary_scores(r, labels, 1.0), labels), {}


def _multiclass_cs(r):
    return (class_scores(r, CLASS_SHAPE), index_labels(r, SHAPE, NUM_CLASSES)), {"margin": 1.0}


def _multiclass_ww(r):
    options = {"kind": "weston_watkins", "margin": 0.5}
    return (class_scores(r, CLASS_SHAPE), index_labels(r, SHAPE, NUM_CLASSES)), options


def _metric_index(r):
    return (normal(r, CLASS_SHAPE), index_labels(r, SHAPE, NUM_CLASSES)), {}


def _metric_probs(r):
    return (probabilities(r, CLASS_SHAPE), probabilities(r, CLASS_SHAPE)), {}


CASES = (
    Case("squared_error", jaxloss.squared_error, _regression, np_squared_error, "regression",
         grad_args=(0, 1)),
    Case("brier_score-index", jaxloss.brier_score, _brier_index, np_brier_score,
         "classification", class_args=(0,), grad_args=(0,), check_grads=False,
         properties=False),
    Case("brier_score-probs", jaxloss.brier_score, _brier_probs, np_brier_score,
         "classification", class_args=(0, 1), grad_args=(0, 1)),
    Case("softmax_cross_entropy-index", jaxloss.softmax_cross_entropy, _ce_index,
         np_softmax_cross_entropy, "classification", class_args=(0,), grad_args=(0,),
         check_grads=False, properties=False),
    Case("softmax_cross_entropy-index-options", jaxloss.softmax_cross_entropy,
         _ce_index_options, np_softmax_cross_entropy, "classification", class_args=(0,),
         grad_args=(0, "class_weights", "label_smoothing", "z_loss")),
    Case("softmax_cross_entropy-probs", jaxloss.softmax_cross_entropy, _ce_probs,
         np_softmax_cross_entropy, "classification", class_args=(0, 1), grad_args=(0, 1),
         check_grads=False, properties=False),
    Case("softmax_cross_entropy-probs-options", jaxloss.softmax_cross_entropy,
         _ce_probs_options, np_softmax_cross_entropy, "classification", class_args=(0, 1),
         grad_args=(0, 1, "class_weights", "label_smoothing", "z_loss")),
    Case("kl_divergence", jaxloss.kl_divergence, _kl, np_kl_divergence, "divergence",
         class_args=(0, 1), grad_args=(0, 1)),
    Case("kl_divergence-log_targets", jaxloss.kl_divergence, _kl_log, np_kl_divergence,
         "divergence", class_args=(0, 1), grad_args=(0, 1), check_grads=False),
    Case("kl_divergence-zero-targets", jaxloss.kl_divergence, _kl_zeros, np_kl_divergence,
         "divergence", class_args=(0, 1), check_grads=False, properties=False),
    Case("entropy", jaxloss.entropy, _entropy, np_entropy, "divergence", class_args=(0,),
         grad_args=(0,)),
    Case("entropy-zeros", jaxloss.entropy, _entropy_zeros, np_entropy, "divergence",
         class_args=(0,), check_grads=False, properties=False),
    Case("hinge_loss", jaxloss.hinge_loss, _hinge_int_labels, np_hinge_loss, "margin",
         grad_args=(0, "margin")),
    Case("squared_hinge_loss", jaxloss.squared_hinge_loss, _hinge_float_labels,
         np_squared_hinge_loss, "margin", grad_args=(0,), properties=False),
    Case("multiclass_hinge_loss-crammer_singer", jaxloss.multiclass_hinge_loss,
         _multiclass_cs, np_multiclass_hinge_loss, "margin", class_args=(0,),
         grad_args=(0, "margin")),
    Case("multiclass_hinge_loss-weston_watkins", jaxloss.multiclass_hinge_loss,
         _multiclass_ww, np_multiclass_hinge_loss, "margin", class_args=(0,),
         grad_args=(0, "margin"), check_grads=False),
    # Metrics are piecewise constant: zero gradient in the predictions (tested in
    # test_metrics.py); their weights enter through the rule that test_reduce.py checks.
    Case("accuracy-index", jaxloss.accuracy, _metric_index, np_accuracy, "metrics",
         class_args=(0,), check_grads=False),
    Case("classification_error-probs", jaxloss.classification_error, _metric_probs,
         np_classification_error, "metrics", class_args=(0, 1), check_grads=False),
)


def cases(family: str | None = None) -> list[Case]:
    return [c for c in CASES if family is None or c.family == family]


def property_cases(family: str | None = None) -> list[Case]:
    """The cases that the transformation, masking and dtype tests run on."""
    return [c for c in cases(family) if c.properties]


def grad_cases(family: str | None = None) -> list[Case]:
    """The cases whose derivatives check_gradients verifies (every loss has one or more)."""
    return [c for c in cases(family) if c.check_grads]


def draw(case: Case, offset: int = 0) -> tuple[Arrays, dict[str, Any], np.ndarray, np.ndarray]:
    """Seeded arrays, options, a mask and sample weights of the per-example shape."""
    r = rng(offset)
    arrays, options = case.make(r)
    return arrays, options, mask(r, case.example_shape), sample_weights(r, case.example_shape)


def expected(
    case: Case,
    arrays: Arrays,
    options: dict[str, Any],
    where: np.ndarray | None,
    weights: np.ndarray | None,
    reduction: str,
) -> np.ndarray:
    """The reference's per-example values reduced by the numpy rule."""
    ref = case.reference(*arrays, **options)
    counts = ref.counts
    if where is not None:
        counts = where if counts is None else counts & where
    return np_reduce(ref.values, counts, weights, reduction, ref.denominators)


def assert_close(actual: Any, desired: Any, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(actual, np.float64), desired, rtol=rtol, atol=atol)


def as_float(x: Any, dtype: Any) -> Any:
    """Floating arrays cast to ``dtype``; integer arrays and Python values unchanged."""
    if isinstance(x, np.ndarray | jax.Array) and jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.asarray(x, dtype=dtype)
    return x


# --------------------------------------------------------------------------------------
# Checks shared by the family test files (each asserts; each can fail).
# --------------------------------------------------------------------------------------


def float_positions(arrays: Arrays) -> list[int]:
    return [i for i, a in enumerate(arrays) if np.issubdtype(np.asarray(a).dtype, np.floating)]


def value_and_grads(case: Case, arrays, options, where, weights, reduction):
    """Σ of the loss and its gradients w.r.t. every floating array and the weights.

    Not wrapped in an outer jit: the loss's own compiled computation is differentiated, and
    its derivative is compiled once and cached across calls with the same shapes.
    """
    positions = float_positions(arrays)

    def total(diff, w):
        a = list(arrays)
        for i, x in zip(positions, diff, strict=True):
            a[i] = x
        return jnp.sum(case.loss(*a, where=where, weights=w, reduction=reduction, **options))

    fn = jax.value_and_grad(total, argnums=(0, 1))
    value, (grads, weight_grad) = fn([jnp.asarray(arrays[i]) for i in positions], weights)
    return value, dict(zip(positions, grads, strict=True)), weight_grad


def check_matches_reference(case: Case, reduction: str, variant: str) -> None:
    """``variant``: "plain" (no where, no weights) or "where+weights".

    With "where+weights", ``"sum"`` gets a mask over the time axis only and one weight
    per batch row, which the loss must broadcast to the per-example shape.
    """
    arrays, options, where, weights = draw(case)
    if variant == "plain":
        where = weights = None
    elif reduction == "sum":
        where, weights = where[:1, :], weights[:, :1]
    got = case.loss(*arrays, where=where, weights=weights, reduction=reduction, **options)
    want = expected(case, arrays, options, where, weights, reduction)
    assert got.shape == want.shape
    assert got.dtype == jnp.float64
    assert_close(got, want)


def check_jit_matches_eager(case: Case, reduction: str) -> None:
    """The loss's own compiled call, an outer jax.jit and the op-by-op run agree."""
    arrays, options, where, weights = draw(case)

    def f(a, m, w):
        return case.loss(*a, where=m, weights=w, reduction=reduction, **options)

    default = f(arrays, where, weights)
    jitted = jax.jit(f)(arrays, where, weights)
    with jax.disable_jit():
        eager = f(arrays, where, weights)
    assert default.dtype == jitted.dtype == eager.dtype
    assert_close(jitted, default, rtol=1e-12)
    assert_close(eager, default, rtol=1e-12)


def check_vmap_matches_batched(case: Case) -> None:
    """vmap over a new leading axis equals calling per slice and calling on the batch."""
    draws = [draw(case, offset=k) for k in range(2)]
    options = draws[0][1]
    arrays = tuple(np.stack([d[0][i] for d in draws]) for i in range(len(draws[0][0])))
    where = np.stack([d[2] for d in draws])
    weights = np.stack([d[3] for d in draws])

    def f(a, m, w):
        return case.loss(*a, where=m, weights=w, reduction="none", **options)

    mapped = jax.vmap(f)(arrays, where, weights)
    looped = np.stack([
        np.asarray(f(tuple(a[k] for a in arrays), where[k], weights[k])) for k in range(2)
    ])
    assert_close(mapped, looped, rtol=1e-12)
    assert_close(mapped, f(arrays, where, weights), rtol=1e-12)


def check_axis_matches_last(case: Case, axis: int) -> None:
    """Classes on ``axis`` equal classes last (and the numpy reference)."""
    arrays, options, where, weights = draw(case)
    moved = tuple(
        np.moveaxis(a, -1, axis) if i in case.class_args else a for i, a in enumerate(arrays)
    )
    got = case.loss(*moved, axis=axis, where=where, weights=weights, reduction="none",
                    **options)
    last = case.loss(*arrays, where=where, weights=weights, reduction="none", **options)
    assert got.shape == last.shape == case.example_shape
    assert_close(got, last, rtol=1e-12)
    assert_close(got, expected(case, arrays, options, where, weights, "none"))


def check_gradients(case: Case) -> None:
    """jax.test_util.check_grads, orders 1 and 2, fwd and rev, in every differentiable input.

    All of a case's differentiable inputs are perturbed together in a random direction, so
    one call covers them all. The loss runs op by op here (jit disabled), which shares
    primitive compilations between cases; ``check_jit_matches_eager`` ties the two paths.
    """
    arrays, options, where, weights = draw(case)
    names = (*case.grad_args, "weights")

    def f(*diff):
        a, opts, w = list(arrays), dict(options), weights
        for name, x in zip(names, diff, strict=True):
            if name == "weights":
                w = x
            elif isinstance(name, int):
                a[name] = x
            else:
                opts[name] = x
        return case.loss(*a, where=where, weights=w, **opts)

    def start(name):
        if name == "weights":
            return weights
        if isinstance(name, int):
            return arrays[name]
        # An option given as an array stays traced, so it can be differentiated.
        return np.asarray(options[name], np.float64)

    with jax.disable_jit():
        jax.test_util.check_grads(
            f, tuple(jnp.asarray(start(n)) for n in names), order=2, modes=("fwd", "rev")
        )


def check_all_masked(case: Case, how: str) -> None:
    """Nothing counts: every reduction is 0, and the mean's gradients are finite and 0.

    ``how``: every example masked by ``where``, or every sample weight 0.
    """
    arrays, options, where, weights = draw(case)
    if how == "where":
        where = np.zeros(case.example_shape, bool)
    else:
        where, weights = np.ones(case.example_shape, bool), np.zeros(case.example_shape)
    for reduction in REDUCTIONS:
        out = case.loss(*arrays, where=where, weights=weights, reduction=reduction, **options)
        np.testing.assert_array_equal(out, np.zeros(out.shape))
    value, grads, weight_grad = value_and_grads(case, arrays, options, where, weights, "mean")
    assert float(value) == 0.0
    for g in grads.values():
        np.testing.assert_array_equal(g, np.zeros(g.shape))
    if how == "where":
        np.testing.assert_array_equal(weight_grad, np.zeros(weight_grad.shape))
    else:
        assert np.all(np.isfinite(weight_grad))


def poisoned(case: Case, arrays: Arrays, where: np.ndarray, value: float) -> Arrays:
    """``arrays`` with ``value`` in every entry of the masked examples (labels out of range)."""
    out = []
    for i, a in enumerate(arrays):
        if np.issubdtype(a.dtype, np.floating):
            masked = ~where[..., None] if i in case.class_args else ~where
            out.append(np.where(masked, value, a))
        else:
            out.append(np.where(~where, 10**6, a))
    return tuple(out)


def check_masked_entries_do_not_leak(case: Case, reduction: str, value: float) -> None:
    arrays, options, where, weights = draw(case)
    bad = poisoned(case, arrays, where, value)
    got, grads, weight_grad = value_and_grads(case, bad, options, where, weights, reduction)
    _, clean_grads, clean_weight_grad = value_and_grads(
        case, arrays, options, where, weights, reduction
    )
    want = expected(case, arrays, options, where, weights, reduction)
    assert_close(got, np.sum(want))
    out = case.loss(*bad, where=where, weights=weights, reduction=reduction, **options)
    assert_close(out, want)
    for i, g in grads.items():
        assert np.all(np.isfinite(g)), f"non-finite gradient for argument {i}"
        masked = ~where[..., None] if i in case.class_args else ~where
        np.testing.assert_array_equal(np.where(masked, g, 0), np.zeros(g.shape))
        assert_close(g, clean_grads[i], rtol=1e-12)
    assert_close(weight_grad, clean_weight_grad, rtol=1e-12)
