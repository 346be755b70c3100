"""Classification losses: softmax cross-entropy, Brier score, binary and focal losses."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import loss_function
from jaxloss._reduce import Prepared, compute_dtype, finish, prepare, sanitize


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


def _dense_value(
    targets: jax.Array, logits: jax.Array, relative: bool
) -> tuple[jax.Array, ...]:
    shifted, lse_shifted, _ = log_partition(logits)
    total = jnp.sum(targets, axis=-1)
    if relative:
        # KL = Σ_c t_c (log t_c − (z_c − m)) + (Σt)·lse in one pass over the classes. The
        # double where: t_c = 0 contributes 0 (0·log 0 = 0, also at a −inf logit) and log
        # never sees a 0, so no NaN reaches a derivative.
        positive = targets > 0
        log_t = jnp.log(jnp.where(positive, targets, 1))
        per_class = jnp.where(
            positive, targets * (log_t - jnp.where(positive, shifted, 0)), 0
        )
    else:
        # The double where: 0·(−inf) is replaced before the product, so a class with t_c = 0
        # contributes 0 even at a −inf logit (0·log 0 = 0) and no NaN reaches a derivative.
        safe = jnp.where((targets == 0) & (shifted == -jnp.inf), 0, shifted)
        per_class = -targets * safe
    value = total * lse_shifted + jnp.sum(per_class, axis=-1)
    return value, shifted, lse_shifted, total


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def dense_cross_entropy(targets: jax.Array, logits: jax.Array, relative: bool = False) -> jax.Array:
    """Σ_c t_c·(−log softmax(z)_c) = (Σ_c t_c)·lse − Σ_c t_c·(z_c − m) over the last axis;
    with ``relative=True`` the KL divergence Σ_c t_c·(log t_c − log softmax(z)_c).

    Its derivative is written by hand, (Σt)·softmax(z) − t for the logits and −log q (plus
    log t + 1 for the KL) for the targets, so that XLA fuses the gradient into one pass and
    keeps no (N, C) residual beyond what it needs: half the temporary memory of autodiff
    through the masked form. A tangent that is known to be zero (the targets' under
    ``jax.grad`` of the logits) costs nothing.
    """
    return _dense_value(targets, logits, relative)[0]


def _dense_cross_entropy_jvp(relative, primals, tangents):
    targets, logits = primals
    d_targets, d_logits = tangents
    value, shifted, lse_shifted, total = _dense_value(targets, logits, relative)
    d_value = jnp.zeros_like(value)
    if not isinstance(d_logits, SymbolicZero):
        probs = jnp.exp(shifted - lse_shifted[..., None])
        d_value = jnp.sum((total[..., None] * probs - targets) * d_logits, axis=-1)
    if not isinstance(d_targets, SymbolicZero):
        # −log q_c, taken as 0 where t_c = 0 at a −inf logit (its true value, +inf, would put
        # NaN in the gradient; the class is impossible under both p and q).
        impossible = (targets == 0) & (shifted == -jnp.inf)
        d_per_class = jnp.where(impossible, 0, lse_shifted[..., None] - shifted)
        if relative:
            # d(t log t)/dt = log t + 1, taken as 0 at t = 0 (not −inf), as xlogx does.
            positive = targets > 0
            d_per_class = d_per_class + jnp.where(
                positive, jnp.log(jnp.where(positive, targets, 1)) + 1, 0
            )
        d_value = d_value + jnp.sum(d_targets * d_per_class, axis=-1)
    return value, d_value


dense_cross_entropy.defjvp(_dense_cross_entropy_jvp, symbolic_zeros=True)


def _index_value(
    logits: jax.Array, labels: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    dtype = compute_dtype(logits)
    # The max and the gather are exact in the logits' own dtype; taking them before the cast
    # lets a half-precision cast fuse into the exp instead of storing a float32 copy.
    shift = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)).astype(dtype)
    exps = jnp.exp(logits.astype(dtype) - shift)
    total = jnp.sum(exps, axis=-1)
    lse_shifted = jnp.log(total)
    label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    # −log q_y = log Σ exp(z − m) − (z_y − m): two small numbers, no cancellation at ±1e4.
    nll = lse_shifted - (label_logit.astype(dtype) - shift[..., 0])
    return nll, lse_shifted + shift[..., 0], exps, total


@jax.custom_jvp
def index_cross_entropy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(−log softmax(z)_y, logsumexp(z)) over the last axis, for integer labels in range.

    The derivative is written by hand, softmax(z) − onehot(y) and softmax(z), with the one-hot
    as a comparison with the class index: the backward pass is one elementwise pass that
    reuses the forward's exponentials, with no scatter and no (N, C) one-hot array.
    """
    return _index_value(logits, labels)[:2]


def _index_cross_entropy_jvp(primals, tangents):
    logits, labels = primals
    d_logits, _ = tangents  # integer labels have no tangent
    nll, lse, exps, total = _index_value(logits, labels)
    if isinstance(d_logits, SymbolicZero):
        return (nll, lse), (jnp.zeros_like(nll), jnp.zeros_like(lse))
    # q from the stored exponentials: one multiply instead of a second exp per logit.
    probs = exps * (1 / total)[..., None]
    d = d_logits.astype(probs.dtype)
    classes = jax.lax.broadcasted_iota(labels.dtype, logits.shape, logits.ndim - 1)
    d_lse = jnp.sum(probs * d, axis=-1)
    d_nll = d_lse - jnp.sum(jnp.where(classes == labels[..., None], d, 0), axis=-1)
    return (nll, lse), (d_nll, d_lse)


index_cross_entropy.defjvp(_index_cross_entropy_jvp, symbolic_zeros=True)


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
        # In the caller's dtype unless smoothing also differentiates the logits: the two
        # gradients must meet in float32, not each be rounded to half precision first.
        loss, lse = index_cross_entropy(logits if smoothing else x.inputs, labels)
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
        lse = None

    if not (isinstance(z_loss, (int, float)) and z_loss == 0):
        if lse is None:
            _, lse_shifted, shift = log_partition(logits)
            lse = lse_shifted + shift
        loss = loss + z_loss * jnp.square(lse)
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
        axis=axis, where=where, weights=weights, reduction=reduction, gathers="never",
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


def _binary_inputs(
    pred_name: str,
    predictions: ArrayLike,
    labels: ArrayLike,
    where: ArrayLike | None,
    weights: ArrayLike | None,
    reduction: str,
    fill: float,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None, jax.Array, bool]:
    """(predictions, labels, mask, weights, valid, is_index) of an elementwise binary loss.

    Integer labels must be 0 or 1; floating labels are the probability of class 1 and must
    lie in [0, 1]. Masked entries are replaced by ``fill`` and label 0 before any use.
    """
    predictions = _checks.as_floating(pred_name, predictions)
    labels, is_index = _checks.as_labels("labels", labels)
    _checks.same_shape(pred_name, predictions, "labels", labels)
    mask, weights = prepare(where, weights, predictions.shape, reduction)
    dtype = compute_dtype(predictions) if is_index else compute_dtype(predictions, labels)
    predictions = sanitize(predictions, mask, fill).astype(dtype)
    y = sanitize(labels, mask, 0).astype(dtype)
    valid = (y == 0) | (y == 1) if is_index else (y >= 0) & (y <= 1)
    return predictions, y, mask, weights, valid, is_index


def _smooth_binary(labels: jax.Array, label_smoothing: float | jax.Array) -> jax.Array:
    """Labels squeezed towards ½: y(1 − ε) + ε/2 (Keras' and optax's binary smoothing)."""
    if isinstance(label_smoothing, (int, float)) and label_smoothing == 0:
        return labels
    return labels * (1 - label_smoothing) + 0.5 * label_smoothing


def _sigmoid_cross_entropy(
    logits: jax.Array, labels: jax.Array, pos_weight: jax.Array | float = 1.0
) -> jax.Array:
    """−[w₊·y·log σ(x) + (1 − y)·log(1 − σ(x))], exact for logits of any magnitude, ±inf too."""
    # −log σ(x) = softplus(−x) and −log(1 − σ(x)) = softplus(x): no log of a rounded σ.
    return _softplus_pair(logits, pos_weight * labels, 1 - labels)


@jax.custom_jvp
def _softplus_pair(x: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """a·softplus(−x) + b·softplus(x) from one exp and one log1p, with 0·softplus(±inf) = 0.

    softplus(±x) = max(±x, 0) + log1p(e^{−|x|}): the two share their transcendental part.
    """
    shared = jnp.log1p(jnp.exp(-jnp.abs(x)))
    return _times(a, jnp.maximum(-x, 0) + shared) + _times(b, jnp.maximum(x, 0) + shared)


def _sigmoid(x: jax.Array) -> jax.Array:
    """σ(x) from e^{−|x|}, the exponential that _softplus_pair's value already computes."""
    e = jnp.exp(-jnp.abs(x))
    # Both branches are ≤ 1 and never overflow. At x = 0, jnp.abs has derivative 1 and the
    # x ≥ 0 branch is taken, so the derivative there is σ'(0) = ¼, as it must be.
    return jnp.where(x >= 0, 1, e) / (1 + e)


def _times(coefficient: jax.Array, value: jax.Array) -> jax.Array:
    """coefficient·value, with 0·inf = 0: a term with a zero coefficient is not there."""
    # The double where keeps the inf out of the coefficient's gradient too.
    skip = (coefficient == 0) & (value == jnp.inf)
    return jnp.where(skip, 0, coefficient * jnp.where(skip, 0, value))


def _softplus_pair_jvp(primals, tangents):
    x, a, b = primals
    dx, da, db = tangents
    value = _softplus_pair(x, a, b)
    d_value = jnp.zeros_like(value)
    # The derivative is written out, (a + b)·σ(x) − a, rather than traced through max and
    # |x|, whose kinks at 0 would give a second derivative of 0 there instead of σ'(0)·(a + b)
    # (Newton's method from zero weights starts exactly at x = 0).
    if not isinstance(dx, SymbolicZero):
        d_value = d_value + ((a + b) * _sigmoid(x) - a) * dx
    # ∂/∂a = softplus(−x) and ∂/∂b = softplus(x), 0 where the term is absent, as in the value.
    if not isinstance(da, SymbolicZero):
        absent = (a == 0) & (x == -jnp.inf)
        d_value = d_value + jnp.where(absent, 0, jax.nn.softplus(-x)) * da
    if not isinstance(db, SymbolicZero):
        absent = (b == 0) & (x == jnp.inf)
        d_value = d_value + jnp.where(absent, 0, jax.nn.softplus(x)) * db
    return value, d_value


_softplus_pair.defjvp(_softplus_pair_jvp, symbolic_zeros=True)


@loss_function
def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    pos_weight: float | ArrayLike | None = None,
    label_smoothing: float | ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Binary cross-entropy of independent sigmoid predictions, computed from the logits.

    $$
    \ell_i = -\bigl[w_+\, y_i \log \sigma(x_i) + (1 - y_i) \log(1 - \sigma(x_i))\bigr]
           = w_+\, y_i\, \mathrm{softplus}(-x_i) + (1 - y_i)\, \mathrm{softplus}(x_i)
    $$

    with $y \leftarrow y(1 - \varepsilon) + \varepsilon/2$ under label smoothing. Each
    element is its own binary problem (multi-label classification). The softplus form is
    exact for logits of any magnitude: ``x = ±inf`` with the matching label gives 0 and a
    finite gradient (``torch.nn.functional.binary_cross_entropy_with_logits`` gives NaN
    there). ``pos_weight`` is torch's: it multiplies the positive term only. ``weights``
    play the part of torch's ``weight``, but ``"mean"`` divides by $\sum w$ (torch divides by
    the number of elements). Integer labels must be 0 or 1 and floating labels in
    $[0, 1]$; anything else gives NaN.

    Args:
      logits: logits $x$ of class 1, any shape.
      labels: 0/1 integer labels or floating probabilities of class 1, ``logits.shape``.
      pos_weight: weight $w_+$ of the positive term, broadcastable to ``logits.shape``
        (e.g. one per class of a multi-label problem); 1 when omitted.
      label_smoothing: $\varepsilon \in [0, 1]$.
      where: boolean mask broadcastable to ``logits.shape``.
      weights: weights broadcastable to ``logits.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid labels under ``jax.experimental.checkify``.

    Returns:
      ``logits.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([0.0, jnp.inf, -jnp.inf])
      >>> labels = jnp.array([1, 1, 0])
      >>> [round(v, 4) for v in jaxloss.sigmoid_binary_cross_entropy(
      ...     logits, labels, reduction="none").tolist()]  # log 2, then two exact zeros
      [0.6931, 0.0, 0.0]
      >>> grad = jax.grad(jaxloss.sigmoid_binary_cross_entropy)(logits, labels)
      >>> [round(v, 4) for v in grad.tolist()]  # (σ(x) − y)/3, finite at ±inf
      [-0.1667, 0.0, 0.0]

    References:
      Goodfellow, Bengio and Courville, "Deep Learning", MIT Press 2016, section 6.2.2.3.
    """
    _checks.in_unit_interval("label_smoothing", label_smoothing)
    x, y, mask, weights, valid, _ = _binary_inputs(
        "logits", logits, labels, where, weights, reduction, fill=0.0
    )
    _checks.value_check(checks, valid, "labels must be 0 or 1 (or probabilities in [0, 1])", y)
    y = _smooth_binary(y, _checks.hyperparameter(label_smoothing, x.dtype))
    if pos_weight is None:
        pw = 1.0
    elif isinstance(pos_weight, (int, float)):
        pw = pos_weight
    else:
        pw = _checks.as_floating("pos_weight", pos_weight)
        _checks.broadcastable("pos_weight", pw, x.shape)
        pw = jnp.broadcast_to(pw, x.shape).astype(x.dtype)
    loss = _sigmoid_cross_entropy(x, y, pw)
    return finish(jnp.where(valid, loss, jnp.nan), mask, weights, reduction)


def _clamped_log(p: jax.Array) -> jax.Array:
    """max(log p, −100) for p ≥ 0, with zero gradient where the clamp is active."""
    # torch clamps each log at −100 so that p = 0 or 1 gives a large finite loss, not inf.
    # The double where keeps log(0) = −inf and its infinite derivative out of the gradient.
    positive = p > 0
    return jnp.where(positive, jnp.maximum(jnp.log(jnp.where(positive, p, 1)), -100), -100)


@loss_function
def binary_cross_entropy(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    label_smoothing: float | ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Binary cross-entropy of predicted probabilities, with each log clamped at −100.

    $$
    \ell_i = -\bigl[y_i \max(\log p_i, -100) + (1 - y_i) \max(\log(1 - p_i), -100)\bigr]
    $$

    The clamp is ``torch.nn.functional.binary_cross_entropy``'s: a probability of exactly 0
    or 1 on the wrong side costs 100 instead of inf, and the clamped side has zero
    gradient (torch's backward instead divides by $\max(p(1-p), 10^{-12})$). Keras clips
    the probabilities to $[10^{-7}, 1 - 10^{-7}]$ instead. Prefer
    :func:`sigmoid_binary_cross_entropy` on logits, which needs no clamp. Probabilities
    outside $[0, 1]$ or invalid labels give NaN. ``weights`` are torch's ``weight``, but
    ``"mean"`` divides by $\sum w$ (torch divides by the number of elements).

    Args:
      probs: predicted probabilities of class 1, any shape.
      labels: 0/1 integer labels or floating probabilities of class 1, ``probs.shape``.
      label_smoothing: $\varepsilon \in [0, 1]$: $y \leftarrow y(1 - \varepsilon) +
        \varepsilon/2$.
      where: boolean mask broadcastable to ``probs.shape``.
      weights: weights broadcastable to ``probs.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid probabilities and labels under ``jax.experimental.checkify``.

    Returns:
      ``probs.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs, labels = jnp.array([0.5, 0.0, 1.0]), jnp.array([1, 1, 1])
      >>> [round(v, 4) for v in jaxloss.binary_cross_entropy(
      ...     probs, labels, reduction="none").tolist()]  # log 2, the clamp, exact 0
      [0.6931, 100.0, 0.0]

    References:
      Goodfellow, Bengio and Courville, "Deep Learning", MIT Press 2016, section 6.2.2.3.
    """
    _checks.in_unit_interval("label_smoothing", label_smoothing)
    p, y, mask, weights, valid, _ = _binary_inputs(
        "probs", probs, labels, where, weights, reduction, fill=0.5
    )
    _checks.value_check(checks, valid, "labels must be 0 or 1 (or probabilities in [0, 1])", y)
    in_range = (p >= 0) & (p <= 1)
    _checks.value_check(checks, in_range, "probs must be in [0, 1]", p)
    y = _smooth_binary(y, _checks.hyperparameter(label_smoothing, p.dtype))
    loss = -y * _clamped_log(p) - (1 - y) * _clamped_log(1 - p)
    return finish(jnp.where(valid & in_range, loss, jnp.nan), mask, weights, reduction)


def _focal_factor(log_u: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """u^γ from log u, finite with finite derivatives of every order for every γ ≥ 0."""
    if isinstance(gamma, (int, float)) and gamma == 0:
        return jnp.ones_like(log_u)
    # exp(γ log u) instead of u**γ: the derivative of u**γ at u = 0 is infinite for γ < 1,
    # while γ·log u stays finite for finite logits and exp underflows gently to 0.
    zero = log_u == -jnp.inf
    factor = jnp.exp(gamma * jnp.where(zero, 0, log_u))
    # u = 0 exactly (an infinite logit): 0^γ is 0, or 1 for γ = 0.
    return jnp.where(zero, jnp.where(gamma == 0, 1, 0).astype(log_u.dtype), factor)


def _alpha_balance(alpha: float | jax.Array, labels: jax.Array) -> jax.Array | float:
    """α·y + (1 − α)(1 − y): weight α on positives and 1 − α on negatives."""
    return alpha * labels + (1 - alpha) * (1 - labels)


@loss_function
def sigmoid_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: float | ArrayLike | None = None,
    gamma: float | ArrayLike = 2.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Focal loss of independent sigmoid predictions: cross-entropy scaled by (1 − p_t)^γ.

    $$
    \ell_i = \alpha_t\, (1 - p_t)^\gamma\, \mathrm{BCE}(x_i, y_i), \qquad
    p_t = y\,\sigma(x) + (1 - y)(1 - \sigma(x)), \quad
    \alpha_t = \alpha y + (1 - \alpha)(1 - y)
    $$

    with $\alpha_t = 1$ when ``alpha`` is None. Well-classified elements ($p_t \to 1$) are
    down-weighted, so training concentrates on the hard ones. The factor is computed as
    $\exp(\gamma \log(1 - p_t))$ with $\log(1 - p_t)$ from softplus, so the value, gradient
    and Hessian are finite at logits of ±1000 for every $\gamma \ge 0$ (a naive
    $(1 - p_t)^\gamma$ has an infinite derivative at $p_t = 1$ when $\gamma < 1$).
    Equals ``torchvision.ops.sigmoid_focal_loss`` (whose default is ``alpha=0.25``) and
    ``optax.sigmoid_focal_loss``. Floating labels in $[0, 1]$ are allowed.

    Args:
      logits: logits $x$ of class 1, any shape.
      labels: 0/1 integer labels or floating probabilities of class 1, ``logits.shape``.
      alpha: balance $\alpha \in [0, 1]$ of positives against negatives, or None.
      gamma: focusing parameter $\gamma \ge 0$; 0 gives the (alpha-balanced) BCE.
      where: boolean mask broadcastable to ``logits.shape``.
      weights: weights broadcastable to ``logits.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid labels under ``jax.experimental.checkify``.

    Returns:
      ``logits.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits, labels = jnp.array([0.0, 3.0]), jnp.array([1, 1])
      >>> focal = jaxloss.sigmoid_focal_loss(logits, labels, reduction="none")
      >>> bce = jaxloss.sigmoid_binary_cross_entropy(logits, labels, reduction="none")
      >>> [round(v, 4) for v in (focal / bce).tolist()]  # (1 − σ(x))²
      [0.25, 0.0022]

    References:
      Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object Detection",
      ICCV 2017.
    """
    _checks.nonnegative("gamma", gamma)
    if alpha is not None:
        _checks.in_unit_interval("alpha", alpha)
    x, y, mask, weights, valid, _ = _binary_inputs(
        "logits", logits, labels, where, weights, reduction, fill=0.0
    )
    _checks.value_check(checks, valid, "labels must be 0 or 1 (or probabilities in [0, 1])", y)
    gamma = _checks.hyperparameter(gamma, x.dtype)
    ce = _sigmoid_cross_entropy(x, y)
    # 1 − p_t = y·σ(−x) + (1 − y)·σ(x), in log space: log σ(∓x) = −softplus(±x).
    log_not_pos = -jax.nn.softplus(x)
    log_not_neg = -jax.nn.softplus(-x)
    soft = (y > 0) & (y < 1)
    # Double where: the logs of y and 1 − y only ever see soft labels.
    y_soft = jnp.where(soft, y, 0.5)
    log_u_soft = jnp.logaddexp(
        jnp.log(y_soft) + log_not_pos, jnp.log1p(-y_soft) + log_not_neg
    )
    log_u = jnp.where(y >= 1, log_not_pos, jnp.where(y <= 0, log_not_neg, log_u_soft))
    loss = _focal_factor(log_u, gamma) * ce
    if alpha is not None:
        loss = _alpha_balance(_checks.hyperparameter(alpha, x.dtype), y) * loss
    return finish(jnp.where(valid, loss, jnp.nan), mask, weights, reduction)


def _softmax_logs(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(−log q, log(1 − q)) for q = softmax(logits) over the last axis, both to full precision.

    With the largest logit z* and r = Σ_{j≠*} exp(z_j − z*), log Σ exp(z) = z* + log1p(r):
    accurate when q* is near 1, where log(1 + r) would round r away. For the top class
    1 − q* = r/(1 + r) is computed directly rather than by the cancelling subtraction; every
    other class has q ≤ ½, where log1p(−q) is exact.
    """
    classes = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
    top = jnp.argmax(logits, axis=-1, keepdims=True).astype(jnp.int32)
    is_top = classes == top
    # Differences to the top logit are ≤ 0: exp never overflows.
    diff = logits - jnp.take_along_axis(logits, top, axis=-1)
    rest = jnp.sum(jnp.where(is_top, 0, jnp.exp(diff)), axis=-1, keepdims=True)
    log1p_rest = jnp.log1p(rest)
    neg_log_q = log1p_rest - diff
    # Double where: no log(0) when every other class has probability 0 (then 1 − q* = 0).
    has_rest = rest > 0
    log_rest = jnp.where(has_rest, jnp.log(jnp.where(has_rest, rest, 1)), -jnp.inf)
    # Double where: log1p(−q) never sees the top class's q ≈ 1, whose derivative blows up.
    q_other = jnp.where(is_top, 0, jnp.exp(-neg_log_q))
    log_one_minus_q = jnp.where(is_top, log_rest - log1p_rest, jnp.log1p(-q_other))
    return neg_log_q, log_one_minus_q


def _class_weight_vector(name: str, value: ArrayLike, num_classes: int, dtype) -> jax.Array:
    """A per-class weight vector of shape (C,), from an array or a scalar."""
    value = _checks.as_floating(name, value)
    if value.ndim == 0:
        return jnp.broadcast_to(value, (num_classes,)).astype(dtype)
    if value.shape != (num_classes,):
        raise ValueError(
            f"{name} must be a scalar or have shape ({num_classes},), one weight per class "
            f"of logits; received {value.shape}."
        )
    return value.astype(dtype)


@loss_function
def softmax_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    alpha: float | ArrayLike | None = None,
    gamma: float | ArrayLike = 2.0,
    ignore_index: int = -100,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Multiclass focal loss: softmax cross-entropy with each class's term scaled by (1 − q)^γ.

    With $q = \mathrm{softmax}(z)$ over ``axis`` and per-class weights $\alpha$ (all 1 when
    omitted), an integer label $y$ gives

    $$
    \ell = -\alpha_y\, (1 - q_y)^\gamma \log q_y
    $$

    and a target distribution $p$ gives $\ell = -\sum_k \alpha_k p_k (1 - q_k)^\gamma \log
    q_k$ (Keras' ``CategoricalFocalCrossentropy`` on one-hot targets, with its default
    ``alpha=0.25`` made explicit). $-\log q$ and $\log(1 - q)$ are computed without
    cancellation (for the largest logit from the other classes' mass), and the factor as
    $\exp(\gamma \log(1 - q))$, so value, gradient and Hessian are finite at logits of ±1000
    for every $\gamma \ge 0$. $\gamma = 0$ is the class-weighted cross-entropy.

    Reduction: $\alpha$ sits inside $\ell$; ``"mean"`` divides by $\sum_i w_i$ over examples
    that are not masked or ignored (unlike ``class_weights`` of
    :func:`softmax_cross_entropy`, which also enter the denominator). An integer label
    outside $[0, C)$ that is not ``ignore_index``, or a negative target, gives NaN.

    Args:
      logits: unnormalised log-probabilities, shape ``(..., C, ...)`` with classes on
        ``axis``.
      labels: integer class indices (``logits.shape`` without ``axis``) or floating target
        probabilities (``logits.shape``).
      axis: the class axis.
      alpha: a scalar or per-class weights of shape ``(C,)``, or None.
      gamma: focusing parameter $\gamma \ge 0$.
      ignore_index: integer label whose examples do not count (integer labels only).
      where: boolean mask of the per-example shape.
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid labels under ``jax.experimental.checkify``.

    Returns:
      The per-example shape (``logits.shape`` without ``axis``) for ``"none"``, else a
      scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.9, 0.05, 0.05]]))
      >>> labels = jnp.array([0, 0])
      >>> [round(v, 4) for v in jaxloss.softmax_focal_loss(
      ...     logits, labels, reduction="none").tolist()]  # 0.5² log 2, 0.1² log(1/0.9)
      [0.1733, 0.0011]

    References:
      Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object Detection",
      ICCV 2017.
    """
    _checks.nonnegative("gamma", gamma)
    # Both label forms gather: the log-probabilities are shifted by the argmax logit.
    x = Prepared(
        "logits", logits, "labels", labels,
        axis=axis, where=where, weights=weights, reduction=reduction, gathers="always",
    )
    gamma = _checks.hyperparameter(gamma, x.dtype)
    z = x.predictions
    neg_log_q, log_one_minus_q = _softmax_logs(z)
    factor = _focal_factor(log_one_minus_q, gamma)
    class_alpha = None if alpha is None else _class_weight_vector(
        "alpha", alpha, x.num_classes, x.dtype
    )
    valid, labels = x.label_validity(ignore_index if x.is_index else None)
    mask = x.mask
    if x.is_index:
        _checks.value_check(
            checks, valid,
            f"labels must be class indices in [0, {x.num_classes}) or ignore_index={ignore_index}",
            x.labels,
        )
        mask = mask & (x.labels != ignore_index)
        pick = labels[..., None]
        loss = (
            jnp.take_along_axis(factor, pick, axis=-1)
            * jnp.take_along_axis(neg_log_q, pick, axis=-1)
        )[..., 0]
        if class_alpha is not None:
            loss = class_alpha[labels] * loss
    else:
        _checks.value_check(
            checks, valid, "labels must be probabilities >= 0", jnp.min(x.labels, axis=-1)
        )
        coefficients = labels * factor
        if class_alpha is not None:
            coefficients = coefficients * jnp.broadcast_to(class_alpha, coefficients.shape)
        loss = dense_cross_entropy(coefficients, z)
    return finish(jnp.where(valid, loss, jnp.nan), mask, x.weights, reduction)


@loss_function
def poly1_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    epsilon: float | ArrayLike = 1.0,
    ignore_index: int = -100,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Poly-1 loss: softmax cross-entropy plus ε times the first polynomial term (1 − q_y).

    $$
    \ell = -\log q_y + \epsilon\,(1 - q_y), \qquad q = \mathrm{softmax}(z)
    $$

    for an integer label $y$; for a target distribution $p$,
    $\ell = -\sum_k p_k \log q_k + \epsilon \sum_k p_k (1 - q_k)$ (``optax``'s
    ``poly_loss_cross_entropy``, whose default is $\epsilon = 2$). Cross-entropy is
    $\sum_j (1 - q_y)^j / j$; Poly-1 raises the weight of the first term from 1 to
    $1 + \epsilon$. $\epsilon$ may be negative (the paper uses −1 for detection).
    ``"mean"`` divides by $\sum_i w_i$ over examples that are not masked or ignored.
    An integer label outside $[0, C)$ that is not ``ignore_index``, or a negative target,
    gives NaN.

    Args:
      logits: unnormalised log-probabilities, shape ``(..., C, ...)`` with classes on
        ``axis``.
      labels: integer class indices (``logits.shape`` without ``axis``) or floating target
        probabilities (``logits.shape``).
      axis: the class axis.
      epsilon: the coefficient $\epsilon$ of $(1 - q_y)$.
      ignore_index: integer label whose examples do not count (integer labels only).
      where: boolean mask of the per-example shape.
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid labels under ``jax.experimental.checkify``.

    Returns:
      The per-example shape for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.25, 0.25]]))
      >>> round(float(jaxloss.poly1_cross_entropy(logits, jnp.array([0]))), 4)  # log 2 + ½
      1.1931

    References:
      Leng, Xu, Tan, Sohn, Zhang, Kristensen, Yu, Mou, Wang, Zhou and others, "PolyLoss: A
      Polynomial Expansion Perspective of Classification Loss Functions", ICLR 2022.
    """
    x = Prepared(
        "logits", logits, "labels", labels,
        axis=axis, where=where, weights=weights, reduction=reduction,
    )
    epsilon = _checks.hyperparameter(epsilon, x.dtype)
    z = x.predictions
    neg_log_q, _ = neg_log_softmax(z)
    q = jnp.exp(-neg_log_q)
    valid, labels = x.label_validity(ignore_index if x.is_index else None)
    mask = x.mask
    if x.is_index:
        _checks.value_check(
            checks, valid,
            f"labels must be class indices in [0, {x.num_classes}) or ignore_index={ignore_index}",
            x.labels,
        )
        mask = mask & (x.labels != ignore_index)
        pick = labels[..., None]
        ce = jnp.take_along_axis(neg_log_q, pick, axis=-1)[..., 0]
        poly = 1 - jnp.take_along_axis(q, pick, axis=-1)[..., 0]
    else:
        _checks.value_check(
            checks, valid, "labels must be probabilities >= 0", jnp.min(x.labels, axis=-1)
        )
        ce = dense_cross_entropy(labels, z)
        poly = jnp.sum(labels * (1 - q), axis=-1)
    loss = ce + epsilon * poly
    return finish(jnp.where(valid, loss, jnp.nan), mask, x.weights, reduction)
