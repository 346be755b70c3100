"""Margin losses: binary and multiclass hinge."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import loss_function
from jaxloss._reduce import Prepared, compute_dtype, finish, prepare, sanitize

_KINDS = ("crammer_singer", "weston_watkins")


def _binary_margin(
    scores: ArrayLike, labels: ArrayLike, margin, where, weights, reduction, checks
) -> tuple[jax.Array, jax.Array, jax.Array | None, jax.Array]:
    """(max(0, margin − y·s), mask, weights, valid) for labels y ∈ {−1, +1}."""
    scores = _checks.as_floating("scores", scores)
    labels, _ = _checks.as_labels("labels", labels)
    _checks.same_shape("scores", scores, "labels", labels)
    mask, weights = prepare(where, weights, scores.shape, reduction)
    dtype = compute_dtype(scores, labels)
    scores = sanitize(scores, mask, 0).astype(dtype)
    labels = sanitize(labels, mask, 1).astype(dtype)
    valid = (labels == 1) | (labels == -1)
    _checks.value_check(checks, valid, "labels must be -1 or +1", labels)
    margin = _checks.hyperparameter(margin, dtype, "margin")
    return jax.nn.relu(margin - labels * scores), mask, weights, valid


@loss_function
def hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float | ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Hinge loss max(0, margin − y·s) of binary scores, the loss of maximum-margin classifiers.

    $$
    \ell = \max(0,\; m - y s), \qquad y \in \{-1, +1\}
    $$

    It is zero once an example is on the right side with margin $m$, so the optimum of the
    L2-regularised hinge loss on separable data is the maximum-margin separator (the SVM).
    A label that is not ±1 (a 0/1 label, say) gives NaN rather than a plausible number.

    Args:
      scores: real-valued decision scores, any shape.
      labels: ±1 labels (integer or floating), same shape as ``scores``.
      margin: the margin $m$.
      where: boolean mask broadcastable to ``scores.shape``.
      weights: weights broadcastable to ``scores.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report labels that are not ±1 under ``jax.experimental.checkify``.

    Returns:
      ``scores.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> scores = jnp.array([2.0, 0.3, -0.5])
      >>> labels = jnp.array([1, 1, 1])
      >>> [round(v, 4) for v in jaxloss.hinge_loss(scores, labels, reduction="none").tolist()]
      [0.0, 0.7, 1.5]

    References:
      Cortes and Vapnik, "Support-vector networks", Machine Learning 20, 1995.
    """
    loss, mask, weights, valid = _binary_margin(
        scores, labels, margin, where, weights, reduction, checks
    )
    return finish(jnp.where(valid, loss, jnp.nan), mask, weights, reduction)


@loss_function
def squared_hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float | ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Squared hinge loss max(0, margin − y·s)², differentiable everywhere.

    $$
    \ell = \max(0,\; m - y s)^2, \qquad y \in \{-1, +1\}
    $$

    Args:
      scores: real-valued decision scores, any shape.
      labels: ±1 labels (integer or floating), same shape as ``scores``.
      margin: the margin $m$.
      where: boolean mask broadcastable to ``scores.shape``.
      weights: weights broadcastable to ``scores.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report labels that are not ±1 under ``jax.experimental.checkify``.

    Returns:
      ``scores.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.squared_hinge_loss(jnp.array([0.5, -1.0]), jnp.array([1, -1])))
      0.125

    References:
      Rennie and Srebro, "Loss functions for preference levels", 2005.
    """
    loss, mask, weights, valid = _binary_margin(
        scores, labels, margin, where, weights, reduction, checks
    )
    return finish(jnp.where(valid, jnp.square(loss), jnp.nan), mask, weights, reduction)


@loss_function
def multiclass_hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    margin: float | ArrayLike = 1.0,
    kind: str = "crammer_singer",
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Multiclass hinge loss of per-class scores against an integer label.

    Crammer–Singer (``kind="crammer_singer"``) penalises the best wrong class:

    $$
    \ell = \max\bigl(0,\; m + \max_{j \ne y} s_j - s_y\bigr)
    $$

    Weston–Watkins (``kind="weston_watkins"``) penalises every wrong class:

    $$
    \ell = \sum_{j \ne y} \max(0,\; m + s_j - s_y)
    $$

    ``torch.nn.functional.multi_margin_loss`` is the Weston–Watkins loss divided by $C$.
    A label outside ``[0, C)`` gives NaN. A ``-inf`` score marks an impossible class: it
    contributes nothing, and a label on a ``-inf`` class has loss ``+inf``.

    Args:
      scores: per-class scores with classes on ``axis``.
      labels: integer class indices, ``scores.shape`` without ``axis``.
      axis: the class axis.
      margin: the margin $m$.
      kind: ``"crammer_singer"`` or ``"weston_watkins"``.
      where: boolean mask of the per-example shape.
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report labels out of range under ``jax.experimental.checkify``.

    Returns:
      The per-example shape for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> scores = jnp.array([[2.0, 1.5, -1.0]])
      >>> float(jaxloss.multiclass_hinge_loss(scores, jnp.array([0])))
      0.5
      >>> float(jaxloss.multiclass_hinge_loss(scores, jnp.array([0]), kind="weston_watkins"))
      0.5

    References:
      Crammer and Singer, "On the algorithmic implementation of multiclass kernel-based
      vector machines", JMLR 2001. Weston and Watkins, "Support vector machines for
      multi-class pattern recognition", ESANN 1999.
    """
    _checks.one_of("kind", kind, _KINDS)
    x = Prepared(
        "scores", scores, "labels", labels, axis=axis, where=where, weights=weights,
        reduction=reduction, labels_form="index",
    )
    valid, labels = x.label_validity()
    _checks.value_check(
        checks, valid, f"labels must be class indices in [0, {x.num_classes})", x.labels
    )
    margin = _checks.hyperparameter(margin, x.dtype, "margin")
    s = x.predictions
    is_label = jax.lax.broadcasted_iota(labels.dtype, s.shape, s.ndim - 1) == labels[..., None]
    s_y = jnp.take_along_axis(s, labels[..., None], axis=-1)
    if kind == "crammer_singer":
        best_other = jnp.max(jnp.where(is_label, -jnp.inf, s), axis=-1, keepdims=True)
        loss = jax.nn.relu(margin + best_other - s_y)[..., 0]
    else:
        # A -inf score is an impossible class that never violates the margin; skipping it also
        # keeps (-inf) - (-inf) = NaN out of a label on a -inf class, whose loss is then +inf.
        skip = is_label | (s == -jnp.inf)
        loss = jnp.sum(jnp.where(skip, 0, jax.nn.relu(margin + s - s_y)), axis=-1)
    return finish(jnp.where(valid, loss, jnp.nan), x.mask, x.weights, reduction)


@loss_function
def perceptron_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Perceptron loss max(0, −y·s): the hinge loss with margin 0.

    $$
    \ell = \max(0,\; -y s), \qquad y \in \{-1, +1\}
    $$

    Zero for every correctly classified example however small its margin; its subgradient
    step is Rosenblatt's perceptron update. A label that is not ±1 gives NaN.

    Args:
      scores: real-valued decision scores, any shape.
      labels: ±1 labels (integer or floating), same shape as ``scores``.
      where: boolean mask broadcastable to ``scores.shape``.
      weights: weights broadcastable to ``scores.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report labels that are not ±1 under ``jax.experimental.checkify``.

    Returns:
      ``scores.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> scores, labels = jnp.array([2.0, 0.5, -1.5]), jnp.array([1, -1, 1])
      >>> jaxloss.perceptron_loss(scores, labels, reduction="none").tolist()
      [0.0, 0.5, 1.5]

    References:
      Rosenblatt, "The perceptron: a probabilistic model for information storage and
      organization in the brain", Psychological Review 65, 1958.
    """
    loss, mask, weights, valid = _binary_margin(
        scores, labels, 0.0, where, weights, reduction, checks
    )
    return finish(jnp.where(valid, loss, jnp.nan), mask, weights, reduction)


@loss_function
def multiclass_perceptron_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Multiclass perceptron loss: how far the label's score is below the best score.

    $$
    \ell = \max_j s_j - s_y
    $$

    It is the Crammer–Singer hinge loss with margin 0 (``multiclass_hinge_loss(...,
    margin=0.0)``), and equals ``optax.multiclass_perceptron_loss``. A label outside
    ``[0, C)`` gives NaN.

    Args:
      scores: per-class scores with classes on ``axis``.
      labels: integer class indices, ``scores.shape`` without ``axis``.
      axis: the class axis.
      where: boolean mask of the per-example shape.
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report labels out of range under ``jax.experimental.checkify``.

    Returns:
      The per-example shape for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> scores = jnp.array([[2.0, 3.5, -1.0], [4.0, 0.0, 1.0]])
      >>> jaxloss.multiclass_perceptron_loss(scores, jnp.array([0, 0]), reduction="none").tolist()
      [1.5, 0.0]

    References:
      Collins, "Discriminative training methods for hidden Markov models: theory and
      experiments with perceptron algorithms", EMNLP 2002.
    """
    x = Prepared(
        "scores", scores, "labels", labels, axis=axis, where=where, weights=weights,
        reduction=reduction, labels_form="index",
    )
    valid, labels = x.label_validity()
    _checks.value_check(
        checks, valid, f"labels must be class indices in [0, {x.num_classes})", x.labels
    )
    s = x.predictions
    s_y = jnp.take_along_axis(s, labels[..., None], axis=-1)[..., 0]
    loss = jnp.max(s, axis=-1) - s_y
    return finish(jnp.where(valid, loss, jnp.nan), x.mask, x.weights, reduction)


@loss_function
def margin_ranking_loss(
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float | ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Pairwise ranking hinge: label +1 asks for ``scores_a`` above ``scores_b`` by ``margin``.

    $$
    \ell = \max\bigl(0,\; m - y (a - b)\bigr), \qquad y \in \{-1, +1\}
    $$

    Equals ``torch.nn.functional.margin_ranking_loss(a, b, y, margin=m)``. A label that is
    not ±1 gives NaN.

    Args:
      scores_a: scores of the first item of each pair, any shape.
      scores_b: scores of the second item, the shape of ``scores_a``.
      labels: ±1 (integer or floating): +1 when ``a`` should rank higher, the same shape.
      margin: the margin $m$.
      where: boolean mask broadcastable to ``scores_a.shape``.
      weights: weights broadcastable to ``scores_a.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report labels that are not ±1 under ``jax.experimental.checkify``.

    Returns:
      ``scores_a.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> a, b = jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5])
      >>> jaxloss.margin_ranking_loss(a, b, jnp.array([1, -1]), margin=1.0,
      ...                             reduction="none").tolist()
      [0.5, 1.5]

    References:
      Herbrich, Graepel and Obermayer, "Large Margin Rank Boundaries for Ordinal
      Regression", Advances in Large Margin Classifiers, 2000.
    """
    scores_a = _checks.as_floating("scores_a", scores_a)
    scores_b = _checks.as_floating("scores_b", scores_b)
    _checks.same_shape("scores_a", scores_a, "scores_b", scores_b)
    labels, _ = _checks.as_labels("labels", labels)
    _checks.same_shape("scores_a", scores_a, "labels", labels)
    mask, weights = prepare(where, weights, scores_a.shape, reduction)
    dtype = compute_dtype(scores_a, scores_b, labels) if jnp.issubdtype(
        labels.dtype, jnp.floating
    ) else compute_dtype(scores_a, scores_b)
    a = sanitize(scores_a, mask, 0).astype(dtype)
    b = sanitize(scores_b, mask, 0).astype(dtype)
    y = sanitize(labels, mask, 1).astype(dtype)
    valid = (y == 1) | (y == -1)
    _checks.value_check(checks, valid, "labels must be -1 or +1", y)
    margin = _checks.hyperparameter(margin, dtype)
    loss = jax.nn.relu(margin - y * (a - b))
    return finish(jnp.where(valid, loss, jnp.nan), mask, weights, reduction)
