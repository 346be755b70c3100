"""Regression losses: elementwise errors between real-valued predictions and targets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import loss_function
from jaxloss._reduce import compute_dtype, finish, prepare, sanitize


@loss_function
def squared_error(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Squared error (p − t)² elementwise; with the default reduction, the MSE.

    $$
    \ell_i = (p_i - t_i)^2, \qquad
    \mathrm{MSE} = \frac{\sum_i w_i \ell_i}{\sum_i w_i}
    $$

    As an estimator's expected loss, $\mathbb{E}[(\hat\theta - \theta)^2] =
    \mathrm{bias}^2 + \mathrm{variance}$ (see ``experiments/mse_bias_variance.py``).

    Args:
      predictions: real-valued predictions, any shape.
      targets: real-valued targets, the shape of ``predictions`` (no silent broadcasting).
      where: boolean mask broadcastable to ``predictions.shape``.
      weights: weights broadcastable to ``predictions.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: accepted for the common signature and ignored: every real value is a valid
        prediction and target, so there is nothing to check.

    Returns:
      ``predictions.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> price, guess = jnp.array([100_000.0]), jnp.array([95_000.0])
      >>> float(jaxloss.squared_error(guess, price))
      25000000.0
      >>> float(jax.grad(jaxloss.squared_error)(guess, price)[0])
      -10000.0

    References:
      Gauss, "Theoria combinationis observationum erroribus minimis obnoxiae", 1823.
    """
    predictions = _checks.as_floating("predictions", predictions)
    targets = _checks.as_floating("targets", targets)
    _checks.same_shape("predictions", predictions, "targets", targets)
    mask, weights = prepare(where, weights, predictions.shape, reduction)
    dtype = compute_dtype(predictions, targets)
    predictions = sanitize(predictions, mask, 0).astype(dtype)
    targets = sanitize(targets, mask, 0).astype(dtype)
    return finish(jnp.square(predictions - targets), mask, weights, reduction)
