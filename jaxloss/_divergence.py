"""Divergences and entropy of categorical distributions."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._classification import dense_cross_entropy, neg_log_softmax
from jaxloss._jit import loss_function
from jaxloss._reduce import Prepared, compute_dtype, finish, prepare, sanitize


def xlogx(p: jax.Array) -> jax.Array:
    """p·log p with 0·log 0 = 0, and derivative 0 (not −inf) at p = 0."""
    positive = p > 0
    # The double where: log never sees a 0, so neither the value nor the gradient is NaN.
    return jnp.where(positive, p * jnp.log(jnp.where(positive, p, 1)), 0)


@loss_function
def kl_divergence(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    log_targets: bool = False,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Kullback–Leibler divergence KL(targets ‖ softmax(logits)).

    $$
    \mathrm{KL}(p \,\|\, q) = \sum_k p_k (\log p_k - \log q_k), \qquad q = \mathrm{softmax}(z)
    $$

    over ``axis``, with $0 \log 0 = 0$. Since $\mathrm{KL}(p\|q) = H(p, q) - H(p)$ and $H(p)$
    does not depend on $q$, minimising it over the logits is minimising
    :func:`softmax_cross_entropy`: the gradients with respect to the logits are equal.

    Gradients are finite with respect to the logits and the targets wherever the value is
    finite, targets equal to 0 included: there the derivative of $p \log p$ (one-sided
    $-\infty$) is taken as 0, which keeps ``KL = CE − H`` true for gradients as well.
    A ``-inf`` logit on a class with target 0 is allowed; target mass on a ``-inf`` class
    gives ``+inf``. A negative target probability gives NaN.

    Args:
      logits: unnormalised log-probabilities of the approximation q, classes on ``axis``.
      targets: the reference distribution p, same shape as ``logits`` (its log when
        ``log_targets=True``).
      axis: the class axis.
      log_targets: whether ``targets`` holds log-probabilities.
      where: boolean mask of the per-example shape (``logits.shape`` without ``axis``).
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report negative targets under ``jax.experimental.checkify``.

    Returns:
      The per-example shape for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([0.5, 0.5, 0.0])
      >>> logits = jnp.log(jnp.array([0.25, 0.25, 0.5]))
      >>> round(float(jaxloss.kl_divergence(logits, p)), 4)  # log 2
      0.6931

    References:
      Kullback and Leibler, "On Information and Sufficiency", 1951.
    """
    x = Prepared(
        "logits", logits, "targets", targets, axis=axis, where=where, weights=weights,
        reduction=reduction, labels_form="distribution",
    )
    if log_targets:
        log_p = x.labels
        p = jnp.exp(log_p)
        valid = jnp.ones(p.shape[:-1], dtype=bool)  # every log-probability is valid
        # A −inf log-target is p = 0: its term is 0, and its gradient exp(−inf)·(…) is 0.
        log_p = jnp.where(p > 0, log_p, 0)
        # KL = Σ p log p + H(p, q), with the given log p rather than a log of exp(log p).
        loss = jnp.sum(p * log_p, axis=-1) + dense_cross_entropy(p, x.predictions)
    else:
        p = x.labels
        valid = jnp.all(p >= 0, axis=-1)
        _checks.value_check(
            checks, valid, "targets must be probabilities >= 0", jnp.min(p, axis=-1)
        )
        # Σ p (log p − log q) in one pass; a class with p = 0 contributes 0 even at a −inf
        # logit.
        loss = dense_cross_entropy(p, x.predictions, True)
    loss = jnp.where(valid, loss, jnp.nan)
    return finish(loss, x.mask, x.weights, reduction)


@loss_function
def entropy(
    probs: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Shannon entropy H(p) = −Σ p log p of a categorical distribution, in nats.

    $$
    H(p) = -\sum_k p_k \log p_k, \qquad 0 \log 0 = 0
    $$

    The derivative at $p_k = 0$ is taken as 0 (see :func:`kl_divergence`). A negative
    probability gives NaN.

    Args:
      probs: probabilities with classes on ``axis``.
      axis: the class axis.
      where: boolean mask of the per-example shape (``probs.shape`` without ``axis``).
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report negative probabilities under ``jax.experimental.checkify``.

    Returns:
      The per-example shape for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> round(float(jaxloss.entropy(jnp.array([0.25, 0.25, 0.25, 0.25, 0.0]))), 4)  # log 4
      1.3863

    References:
      Shannon, "A Mathematical Theory of Communication", 1948.
    """
    probs = _checks.as_floating("probs", probs)
    if probs.ndim == 0:
        raise ValueError("probs must have a class axis (rank >= 1); received a scalar.")
    ax = _checks.axis(axis, probs.ndim, "probs")
    example_shape = probs.shape[:ax] + probs.shape[ax + 1 :]
    mask, weights = prepare(where, weights, example_shape, reduction)
    p = jnp.moveaxis(sanitize(probs, mask, 0, ax).astype(compute_dtype(probs)), ax, -1)
    valid = jnp.all(p >= 0, axis=-1)
    _checks.value_check(checks, valid, "probs must be >= 0", jnp.min(p, axis=-1))
    loss = jnp.where(valid, -jnp.sum(xlogx(p), axis=-1), jnp.nan)
    return finish(loss, mask, weights, reduction)


@loss_function
def js_divergence(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Jensen–Shannon divergence between targets and softmax(logits), in nats.

    $$
    \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m),
    \qquad m = \tfrac12 (p + q), \quad q = \mathrm{softmax}(z)
    $$

    over ``axis``, with $0 \log 0 = 0$. It is symmetric, finite even for disjoint supports,
    and bounded by $\log 2$ (reached when the supports are disjoint). Its square root is the
    Jensen–Shannon distance (``scipy.spatial.distance.jensenshannon``). As in
    :func:`kl_divergence`, the derivative of $p \log p$ at $p = 0$ (one-sided $-\infty$) is
    taken as 0, so $\partial \mathrm{JS} / \partial p_k = -\tfrac12 (\log m_k + 1)$ there
    and every gradient is finite. A ``-inf`` logit is allowed; a negative target gives NaN.

    Args:
      logits: unnormalised log-probabilities of q, classes on ``axis``.
      targets: the distribution p, the shape of ``logits``.
      axis: the class axis.
      where: boolean mask of the per-example shape (``logits.shape`` without ``axis``).
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report negative targets under ``jax.experimental.checkify``.

    Returns:
      The per-example shape for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([0.0, -jnp.inf])  # q = (1, 0)
      >>> round(float(jaxloss.js_divergence(logits, jnp.array([0.0, 1.0]))), 4)  # log 2
      0.6931

    References:
      Lin, "Divergence measures based on the Shannon entropy", IEEE Transactions on
      Information Theory 37, 1991.
    """
    x = Prepared(
        "logits", logits, "targets", targets, axis=axis, where=where, weights=weights,
        reduction=reduction, labels_form="distribution",
    )
    p = x.labels
    valid = jnp.all(p >= 0, axis=-1)
    _checks.value_check(checks, valid, "targets must be probabilities >= 0", jnp.min(p, axis=-1))
    neg_log_q, _ = neg_log_softmax(x.predictions)
    q = jnp.exp(-neg_log_q)
    total = p + q
    # Double where throughout: no log of 0, so no −inf·0 in the value or the gradient.
    positive = total > 0
    log_m = jnp.log(jnp.where(positive, total, 1)) - math.log(2)
    # p log p by xlogx: derivative 0 at p = 0, as in kl_divergence.
    p_term = xlogx(p) - p * log_m
    q_pos = q > 0
    q_term = jnp.where(q_pos, q * (jnp.where(q_pos, -neg_log_q, 0) - log_m), 0)
    loss = 0.5 * jnp.sum(p_term + q_term, axis=-1)
    return finish(jnp.where(valid, loss, jnp.nan), x.mask, x.weights, reduction)


@loss_function
def generalized_kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Generalised KL divergence (I-divergence) between unnormalised non-negative measures.

    $$
    D(t \,\|\, y) = \sum_k \Bigl(t_k \log \frac{t_k}{y_k} - t_k + y_k\Bigr),
    \qquad y = \exp(\text{log\_predictions})
    $$

    over ``axis``, with $0 \log 0 = 0$: the Bregman divergence of $x \log x - x$, equal to
    ``scipy.special.kl_div(t, y)`` summed over ``axis`` and to ``optax``'s
    ``generalized_kl_divergence``. Neither measure needs to sum to 1; for normalised ones it
    is the KL divergence. Predictions are given as logs so that tiny masses keep their
    precision. torch's ``kl_div`` omits the $-t + y$ terms. A negative target gives NaN.

    Args:
      log_predictions: logs of the predicted measure $y$, classes on ``axis``.
      targets: the target measure $t \ge 0$, the shape of ``log_predictions``.
      axis: the axis summed over.
      where: boolean mask of the per-example shape.
      weights: per-example weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report negative targets under ``jax.experimental.checkify``.

    Returns:
      The per-example shape (``log_predictions.shape`` without ``axis``) for ``"none"``,
      else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> t, y = jnp.array([2.0, 0.0]), jnp.array([1.0, 3.0])
      >>> round(float(jaxloss.generalized_kl_divergence(jnp.log(y), t)), 4)  # 2 log 2 − 2 + 4
      3.3863

    References:
      Csiszár, "Why least squares and maximum entropy?", Annals of Statistics 19, 1991.
      Lee and Seung, "Algorithms for Non-negative Matrix Factorization", NIPS 2000.
    """
    x = Prepared(
        "log_predictions", log_predictions, "targets", targets, axis=axis, where=where,
        weights=weights, reduction=reduction, labels_form="distribution",
    )
    t, log_y = x.labels, x.predictions
    valid = jnp.all(t >= 0, axis=-1)
    _checks.value_check(checks, valid, "targets must be >= 0", jnp.min(t, axis=-1))
    # A zero target on a −inf log-prediction contributes 0 (not 0·inf), and no NaN gradient.
    safe_log_y = jnp.where((t == 0) & (log_y == -jnp.inf), 0, log_y)
    loss = jnp.sum(xlogx(t) - t * safe_log_y - t + jnp.exp(log_y), axis=-1)
    return finish(jnp.where(valid, loss, jnp.nan), x.mask, x.weights, reduction)
