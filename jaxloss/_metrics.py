"""Argmax metrics: accuracy and classification error (not differentiable)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import loss_function
from jaxloss._reduce import Prepared, finish


def _correct(predictions, labels, axis, where, weights, reduction, checks):
    x = Prepared(
        "predictions", predictions, "labels", labels,
        axis=axis, where=where, weights=weights, reduction=reduction, gathers="never",
    )
    valid, labels = x.label_validity()
    if x.is_index:
        _checks.value_check(
            checks, valid, f"labels must be class indices in [0, {x.num_classes})", x.labels
        )
    else:
        # Negative target probabilities make the example NaN below; report them too.
        _checks.value_check(
            checks, valid, "labels must be probabilities >= 0", jnp.min(x.labels, axis=-1)
        )
        labels = jnp.argmax(labels, axis=-1)
    # Metrics are piecewise constant: no gradient flows through the argmax.
    predicted = jnp.argmax(jax.lax.stop_gradient(x.predictions), axis=-1).astype(labels.dtype)
    correct = jnp.where(valid, (predicted == labels).astype(x.dtype), jnp.nan)
    return correct, x


@loss_function
def accuracy(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Weighted fraction of examples whose argmax prediction is the label.

    $$
    \mathrm{acc} = \frac{\sum_i w_i \,[\arg\max_k p_{ik} = y_i]}{\sum_i w_i}
    $$

    Works on logits or probabilities alike (argmax is the same); ties go to the lowest
    index. A floating ``labels`` array is a target distribution and its argmax is the label.
    It counts mistakes but not by how much: the seed note's models X and Y both score 2/3,
    though their cross-entropies are 1.38 and 0.64.

    Args:
      predictions: logits or probabilities with classes on ``axis``.
      labels: integer class indices (``predictions.shape`` without ``axis``) or target
        distributions (``predictions.shape``).
      axis: the class axis.
      where: boolean mask of the per-example shape.
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"`` (per-example 0/1 times weight), ``"sum"`` or ``"mean"``.
      checks: report labels out of range (or negative target probabilities) under
        ``jax.experimental.checkify``.

    Returns:
      The per-example shape for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]])
      >>> round(float(jaxloss.accuracy(probs, jnp.array([2, 1, 0]))), 4)
      0.6667
    """
    correct, x = _correct(predictions, labels, axis, where, weights, reduction, checks)
    return finish(correct, x.mask, x.weights, reduction)


@loss_function
def classification_error(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Weighted fraction of examples whose argmax prediction is not the label: 1 − accuracy.

    $$
    \mathrm{err} = \frac{\sum_i w_i \,[\arg\max_k p_{ik} \ne y_i]}{\sum_i w_i}
    $$

    Args:
      predictions: logits or probabilities with classes on ``axis``.
      labels: integer class indices or target distributions (see :func:`accuracy`).
      axis: the class axis.
      where: boolean mask of the per-example shape.
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report labels out of range (or negative target probabilities) under
        ``jax.experimental.checkify``.

    Returns:
      The per-example shape for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.3]])
      >>> round(float(jaxloss.classification_error(probs, jnp.array([2, 1, 0]))), 4)
      0.3333
    """
    correct, x = _correct(predictions, labels, axis, where, weights, reduction, checks)
    return finish(1 - correct, x.mask, x.weights, reduction)
