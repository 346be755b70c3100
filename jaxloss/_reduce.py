"""The one reduction and masking rule that every loss follows."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import loss_function


def compute_dtype(*arrays: jax.Array) -> jnp.dtype:
    """float64 if any input is float64, else float32: half precision accumulates in float32."""
    if any(a.dtype == jnp.float64 for a in arrays):
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def prepare(
    where: ArrayLike | None, weights: ArrayLike | None, shape: tuple[int, ...], reduction: str
) -> tuple[jax.Array, jax.Array | None]:
    """Validates ``where``, ``weights`` and ``reduction``; returns the per-example mask, weights."""
    _checks.reduction(reduction)
    if where is None:
        mask = jnp.ones(shape, dtype=bool)
    else:
        where = jnp.asarray(where)
        if where.dtype != jnp.bool_:
            raise TypeError(
                f"where must be a boolean array; received dtype {where.dtype}. "
                "Use a comparison, e.g. where=lengths > 0, or mask.astype(bool)."
            )
        _checks.broadcastable("where", where, shape)
        mask = jnp.broadcast_to(where, shape)
    if weights is not None:
        weights = _checks.as_floating("weights", weights)
        _checks.broadcastable("weights", weights, shape)
        weights = jnp.broadcast_to(weights, shape)
    return mask, weights


def sanitize(x: jax.Array, mask: jax.Array, fill: Any, axis: int | None = None) -> jax.Array:
    """Replaces masked entries of ``x`` by ``fill`` before any computation touches them.

    ``mask`` has the per-example shape; ``axis`` is where ``x`` has its extra class axis.
    This is the first half of the "double where": it keeps NaN and inf in masked entries out
    of the gradient, which a single ``where`` on the output cannot do.
    """
    if axis is not None:
        mask = jnp.expand_dims(mask, axis)
    return jnp.where(mask, x, jnp.asarray(fill, dtype=x.dtype))


def finish(
    values: jax.Array,
    mask: jax.Array,
    weights: jax.Array | None,
    reduction: str,
    denominators: jax.Array | None = None,
) -> jax.Array:
    """Applies the reduction rule to per-example ``values``.

    ``"none"``: w·ℓ, 0 where masked. ``"sum"``: Σ w·ℓ. ``"mean"``: Σ w·ℓ / Σ w·d, where d is
    ``denominators`` (1 by default; class weights of the labels for weighted cross-entropy),
    and 0 when nothing counts.
    """
    dtype = values.dtype
    w = mask.astype(dtype) if weights is None else jnp.where(mask, weights.astype(dtype), 0)
    # The second half of the double where: masked values (possibly NaN) are never multiplied.
    weighted = jnp.where(mask, w * values, 0)
    if reduction == "none":
        return weighted
    total = jnp.sum(weighted)
    if reduction == "sum":
        return total
    d = w if denominators is None else w * denominators.astype(dtype)
    count = jnp.sum(d)
    # Nothing counts: the numerator is exactly 0, so dividing by 1 gives 0 with zero gradient.
    return total / jnp.where(count == 0, 1, count)


@loss_function
def reduce(
    values: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Reduces per-example values by jaxloss's one rule, for losses written by users.

    $$
    \text{none}: w_i \ell_i \qquad \text{sum}: \sum_i w_i \ell_i \qquad
    \text{mean}: \frac{\sum_i w_i \ell_i}{\sum_i w_i}
    $$

    where $w_i$ is ``weights`` (1 when omitted) and 0 where ``where`` is False. Masked entries
    never reach the value or the gradient, even when they hold NaN or inf. When every entry
    is masked (or the weights sum to 0) the mean is 0 with zero gradient, not NaN.

    Args:
      values: per-example values, any shape, floating.
      where: boolean mask broadcastable to ``values.shape``; False entries do not count.
      weights: non-negative weights broadcastable to ``values.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.

    Returns:
      ``values.shape`` for ``"none"``, else a scalar; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> values = jnp.array([1.0, 2.0, jnp.nan])
      >>> float(jaxloss.reduce(values, where=jnp.array([True, True, False])))
      1.5
      >>> float(jaxloss.reduce(values[:2], weights=jnp.array([3.0, 1.0]), reduction="sum"))
      5.0
    """
    values = _checks.as_floating("values", values)
    mask, weights = prepare(where, weights, values.shape, reduction)
    values = sanitize(values, mask, 0).astype(compute_dtype(values))
    return finish(values, mask, weights, reduction)


class Prepared:
    """Inputs of a loss over a class axis, validated, masked, cast and with the axis last."""

    def __init__(
        self,
        pred_name: str,
        predictions: ArrayLike,
        labels_name: str,
        labels: ArrayLike,
        *,
        axis: int,
        where: ArrayLike | None,
        weights: ArrayLike | None,
        reduction: str,
        labels_form: str = "any",
        gathers: str = "index",
    ) -> None:
        """``gathers`` says for which labels the loss picks entries along the class axis:
        ``"index"`` (the label's entry, for class indices), ``"always"`` or ``"never"``. For
        those, a class axis sharded over explicit mesh axes raises a ValueError that says how
        to reshard it, at trace time."""
        predictions = _checks.as_floating(pred_name, predictions)
        if labels_form == "index":
            labels, is_index = _checks.as_index_labels(labels_name, labels), True
        elif labels_form == "distribution":
            labels, is_index = _checks.as_floating(labels_name, labels), False
        else:
            labels, is_index = _checks.as_labels(labels_name, labels)
        if predictions.ndim == 0:
            raise ValueError(
                f"{pred_name} must have a class axis (rank >= 1); received a scalar."
            )
        ax = _checks.axis(axis, predictions.ndim, pred_name)
        if gathers == "always" or (gathers == "index" and is_index):
            _checks.whole_class_axis(pred_name, predictions, ax)
        _checks.label_shape(labels_name, labels, is_index, pred_name, predictions, ax)
        self.num_classes = predictions.shape[ax]
        self.example_shape = predictions.shape[:ax] + predictions.shape[ax + 1 :]
        self.mask, self.weights = prepare(where, weights, self.example_shape, reduction)
        self.dtype = compute_dtype(predictions) if is_index else compute_dtype(predictions, labels)
        self.is_index = is_index
        # ``inputs`` keeps the caller's dtype (a half-precision max or gather is exact and
        # lets the cast fuse into what follows); ``predictions`` is in the compute dtype.
        self.inputs = jnp.moveaxis(sanitize(predictions, self.mask, 0, ax), ax, -1)
        self.predictions = self.inputs.astype(self.dtype)
        if is_index:
            self.labels = sanitize(labels, self.mask, 0)
        else:
            fill = 1 / self.num_classes
            self.labels = jnp.moveaxis(
                sanitize(labels, self.mask, fill, ax).astype(self.dtype), ax, -1
            )

    def label_validity(self, ignore_index: int | None = None) -> tuple[jax.Array, jax.Array]:
        """(valid, safe): whether each label is usable, and the labels clipped into range.

        Index labels are valid in [0, C) or equal to ``ignore_index``; distributions are
        valid when no probability is negative. Invalid examples get a NaN loss.
        """
        if self.is_index:
            in_range = (self.labels >= 0) & (self.labels < self.num_classes)
            valid = in_range if ignore_index is None else in_range | (self.labels == ignore_index)
            # Ignored labels are clipped too: a gather out of range would put NaN in a value
            # that is masked later, and 0 · NaN would still reach the gradients.
            return valid, jnp.where(in_range, self.labels, 0)
        valid = jnp.all(self.labels >= 0, axis=-1)
        return valid, self.labels
