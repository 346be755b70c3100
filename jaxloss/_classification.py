"""Losses of a categorical prediction: softmax cross-entropy and the Brier score."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import loss_function
from jaxloss._reduce import Prepared, finish


def log_partition(logits: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(shifted logits z − m, log Σ exp(z − m), m) over the last axis, with m = max z.

    Working with the shifted logits keeps full precision for logits of ±1e4, where
    ``lse − z`` in unshifted form would cancel two large numbers.
    """
    # The max shift is a constant for autodiff: the true gradient of the shift cancels.
    shift = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    shifted = logits - shift
    return shifted, jnp.log(jnp.sum(jnp.exp(shifted), axis=-1)), shift[..., 0]


def neg_log_softmax(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(−log softmax(logits), logsumexp(logits)) over the last axis, computed stably."""
    shifted, lse_shifted, shift = log_partition(logits)
    return lse_shifted[..., None] - shifted, lse_shifted + shift


def _dense_value(targets: jax.Array, logits: jax.Array) -> tuple[jax.Array, ...]:
    shifted, lse_shifted, _ = log_partition(logits)
    # The double where: 0·(−inf) is replaced before the product, so a class with t_c = 0
    # contributes 0 even at a −inf logit (0·log 0 = 0) and no NaN reaches a derivative.
    safe = jnp.where((targets == 0) & (shifted == -jnp.inf), 0, shifted)
    value = jnp.sum(targets, axis=-1) * lse_shifted - jnp.sum(targets * safe, axis=-1)
    return value, shifted, lse_shifted, safe


@jax.custom_jvp
def dense_cross_entropy(targets: jax.Array, logits: jax.Array) -> jax.Array:
    """Σ_c t_c·(−log softmax(z)_c) = (Σ_c t_c)·lse − Σ_c t_c·(z_c − m) over the last axis.

    Its derivative is written by hand, (Σt)·softmax(z) − t for the logits and −log q for the
    targets, so that XLA fuses the gradient into one pass and keeps no (N, C) residual beyond
    what it needs: half the temporary memory of autodiff through the masked form.
    """
    return _dense_value(targets, logits)[0]


@dense_cross_entropy.defjvp
def _dense_cross_entropy_jvp(primals, tangents):
    targets, logits = primals
    d_targets, d_logits = tangents
    value, shifted, lse_shifted, safe = _dense_value(targets, logits)
    probs = jnp.exp(shifted - lse_shifted[..., None])
    total = jnp.sum(targets, axis=-1, keepdims=True)
    d_value = jnp.sum((total * probs - targets) * d_logits, axis=-1)
    # −log q_c, taken as 0 where t_c = 0 at a −inf logit (its true value, +inf, would put
    # NaN in the gradient; the class is impossible under both p and q).
    impossible = (targets == 0) & (shifted == -jnp.inf)
    neg_log_q = jnp.where(impossible, 0, lse_shifted[..., None] - safe)
    d_value = d_value + jnp.sum(d_targets * neg_log_q, axis=-1)
    return value, d_value


@loss_function
def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weights: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float | ArrayLike = 0.0,
    z_loss: float | ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Cross-entropy H(labels, softmax(logits)) between a target and a categorical prediction.

    With $q = \mathrm{softmax}(z)$ over ``axis``, smoothing $\varepsilon$, $C$ classes and
    class weights $c$ (all 1 when omitted), the loss of one example is

    $$
    \ell = (1-\varepsilon)\, c_y\,(-\log q_y) + \frac{\varepsilon}{C} \sum_k c_k (-\log q_k)
         + \zeta \,(\log \textstyle\sum_k e^{z_k})^2
    $$

    for an integer label $y$, and $\ell = -\sum_k c_k \tilde p_k \log q_k + \zeta\,(\cdot)^2$
    with $\tilde p = (1-\varepsilon)p + \varepsilon/C$ for a target distribution $p$.

    Reduction (with sample weights $s$ from ``weights``; $c = 1$ without class weights):
    for integer labels an example's weight in the mean's denominator is $s_i c_{y_i}$, so
    ``"mean"`` is $\sum_i s_i \ell_i / \sum_i s_i c_{y_i}$ over the examples that are not
    masked or ignored, which is exactly ``torch.nn.functional.cross_entropy``'s weighted mean.
    For probability targets the class weights sit inside $\ell$ and the denominator is
    $\sum_i s_i$ (torch's rule when $s = 1$). ``"none"`` returns $s_i \ell_i$.

    Numerics: log-sum-exp is shifted by the max and accumulated in at least float32. A
    ``-inf`` logit on a class the target does not use is allowed (finite loss, zero gradient
    there); a target that puts mass on a ``-inf`` class has loss ``+inf``. An integer label
    outside ``[0, C)`` that is not ``ignore_index``, or a negative target probability, makes
    that example's loss NaN (with ``checks=True`` it is reported under ``checkify``).
    An ignored example contributes 0 and exactly zero gradient when its logits are finite;
    use ``where`` for rows that may hold NaN.

    Args:
      logits: unnormalised log-probabilities, shape ``(..., C, ...)`` with classes on ``axis``.
      labels: integer class indices of shape ``logits.shape`` without ``axis``, or floating
        target probabilities of shape ``logits.shape``.
      axis: the class axis of ``logits`` (``1`` for torch's ``(N, C, d1, ...)`` layout).
      class_weights: weights of shape ``(C,)`` (torch's ``weight``).
      ignore_index: integer label whose examples do not count (integer labels only).
      label_smoothing: $\varepsilon \in [0, 1]$.
      z_loss: $\zeta \ge 0$, the coefficient of the squared log-partition penalty.
      where: boolean mask of the per-example shape; False examples do not count.
      weights: per-example sample weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid labels under ``jax.experimental.checkify``.

    Returns:
      The per-example shape (``logits.shape`` without ``axis``) for ``"none"``, else a scalar.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
      >>> labels = jnp.array([0, 2])
      >>> # (log(e^2 + e^0.5 + e^-1) - 2 + log(1 + 1 + e^3) - 3) / 2
      >>> round(float(jaxloss.softmax_cross_entropy(logits, labels)), 4)
      0.1681
      >>> grad = jax.grad(jaxloss.softmax_cross_entropy)(logits, labels)
      >>> bool(jnp.allclose(grad, (jax.nn.softmax(logits) - jax.nn.one_hot(labels, 3)) / 2))
      True

    References:
      Müller, Kornblith and Hinton, "When does label smoothing help?", NeurIPS 2019.
      Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022 (z-loss).
    """
    x = Prepared(
        "logits", logits, "labels", labels,
        axis=axis, where=where, weights=weights, reduction=reduction,
    )
    _checks.in_unit_interval("label_smoothing", label_smoothing)
    _checks.nonnegative("z_loss", z_loss)
    label_smoothing = _checks.hyperparameter(label_smoothing, x.dtype, "label_smoothing")
    z_loss = _checks.hyperparameter(z_loss, x.dtype, "z_loss")
    num_classes = x.num_classes
    if class_weights is not None:
        class_weights = _checks.as_floating("class_weights", class_weights)
        if class_weights.shape != (num_classes,):
            raise ValueError(
                f"class_weights must have shape ({num_classes},), one weight per class of "
                f"logits; received {class_weights.shape}."
            )
        class_weights = class_weights.astype(x.dtype)
    logits = x.predictions
    shifted, lse_shifted, shift = log_partition(logits)
    valid, labels = x.label_validity(ignore_index if x.is_index else None)
    smoothing = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    mask = x.mask
    denominators = None

    if x.is_index:
        _checks.value_check(
            checks, valid,
            f"labels must be class indices in [0, {num_classes}) or ignore_index={ignore_index}",
            x.labels,
        )
        mask = mask & (x.labels != ignore_index)
        # Gather from the raw logits, then shift: no (N, C) intermediate, and no precision loss.
        label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
        loss = lse_shifted - (label_logit - shift)
        if class_weights is not None:
            # Under explicit sharding a gather must be told its output sharding: the labels'.
            denominators = class_weights.at[labels].get(out_sharding=jax.typeof(labels).sharding)
            loss = denominators * loss
        if smoothing:
            every_class = (
                jnp.ones_like(logits)
                if class_weights is None
                else jnp.broadcast_to(class_weights, logits.shape)
            )
            smooth = dense_cross_entropy(every_class, logits) / num_classes
            # An array smoothing of 0 must give exactly the unsmoothed loss at a -inf logit,
            # where smooth is +inf and 0·inf is NaN: replace it before the product (double
            # where). Elsewhere the mix keeps its true gradient in ε, also at ε = 0.
            smooth = jnp.where((label_smoothing == 0) & (smooth == jnp.inf), 0, smooth)
            loss = (1 - label_smoothing) * loss + label_smoothing * smooth
    else:
        _checks.value_check(
            checks, valid, "labels must be probabilities >= 0", jnp.min(x.labels, axis=-1)
        )
        targets = labels
        if smoothing:
            targets = (1 - label_smoothing) * targets + label_smoothing / num_classes
        if class_weights is not None:
            targets = targets * jnp.broadcast_to(class_weights, targets.shape)
        loss = dense_cross_entropy(targets, logits)

    if not (isinstance(z_loss, (int, float)) and z_loss == 0):
        loss = loss + z_loss * jnp.square(lse_shifted + shift)
    loss = jnp.where(valid, loss, jnp.nan)
    return finish(loss, mask, x.weights, reduction, denominators)


@loss_function
def brier_score(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Brier score: the squared error between predicted probabilities and the target.

    $$
    \ell = \sum_k (p_k - y_k)^2
    $$

    summed over the class ``axis``, with $y$ the one-hot encoding of an integer label or a
    target distribution. Its ``"mean"`` is the "MSE" of a classifier's outputs (mean over
    examples, sum over classes): 0.81 for the seed note's model X and 0.34 for model Y.
    An integer label outside ``[0, C)`` or a negative target gives NaN.

    Args:
      probs: predicted probabilities, shape ``(..., C, ...)`` with classes on ``axis``.
      labels: integer class indices (``probs.shape`` without ``axis``) or floating target
        probabilities (``probs.shape``).
      axis: the class axis.
      where: boolean mask of the per-example shape.
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid labels under ``jax.experimental.checkify``.

    Returns:
      The per-example shape for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]])
      >>> round(float(jaxloss.brier_score(probs, jnp.array([2, 1, 0]))), 2)
      0.81

    References:
      Brier, "Verification of forecasts expressed in terms of probability", 1950.
    """
    x = Prepared(
        "probs", probs, "labels", labels,
        axis=axis, where=where, weights=weights, reduction=reduction,
    )
    valid, labels = x.label_validity()
    if x.is_index:
        _checks.value_check(
            checks, valid, f"labels must be class indices in [0, {x.num_classes})", x.labels
        )
        labels = jax.nn.one_hot(labels, x.num_classes, dtype=x.dtype)
    else:
        _checks.value_check(
            checks, valid, "labels must be probabilities >= 0", jnp.min(x.labels, axis=-1)
        )
    loss = jnp.sum(jnp.square(x.predictions - labels), axis=-1)
    loss = jnp.where(valid, loss, jnp.nan)
    return finish(loss, x.mask, x.weights, reduction)
