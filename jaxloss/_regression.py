"""Regression losses: elementwise errors between real-valued predictions and targets."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
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


def _pair(
    predictions: ArrayLike,
    targets: ArrayLike,
    where: ArrayLike | None,
    weights: ArrayLike | None,
    reduction: str,
    pred_name: str = "predictions",
    fill: float = 0.0,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]:
    """(predictions, targets, mask, weights): validated, same shape, masked and cast."""
    predictions = _checks.as_floating(pred_name, predictions)
    targets = _checks.as_floating("targets", targets)
    _checks.same_shape(pred_name, predictions, "targets", targets)
    mask, weights = prepare(where, weights, predictions.shape, reduction)
    dtype = compute_dtype(predictions, targets)
    predictions = sanitize(predictions, mask, fill).astype(dtype)
    targets = sanitize(targets, mask, 0).astype(dtype)
    return predictions, targets, mask, weights


def _positive(name: str, value: object) -> None:
    """Raises if a concrete hyperparameter is not > 0 (traced values are not checked)."""
    if isinstance(value, (int, float)) and not value > 0:
        raise ValueError(f"{name} must be > 0; received {value}.")


@jax.custom_jvp
def _abs(error: jax.Array) -> jax.Array:
    """|e| with derivative sign(e), which is 0 at e = 0 (jnp.abs has derivative 1 there)."""
    return jnp.abs(error)


# 0 is the subgradient torch's l1_loss uses, and the symmetric choice. Written as a rule
# rather than e·stop_gradient(sign(e)), XLA computes the sign once, in the backward pass.
_abs.defjvp(lambda primals, tangents: (
    _abs(primals[0]), jnp.sign(primals[0]) * tangents[0]
))


@loss_function
def absolute_error(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Absolute error |p − t| elementwise; with the default reduction, the MAE (L1 loss).

    $$
    \ell_i = |p_i - t_i|
    $$

    Its minimiser over a constant prediction is the median of the targets. The gradient at
    $p = t$ is 0 (the subgradient torch's ``l1_loss`` also uses).

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
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p, t = jnp.array([1.0, 2.0, 5.0]), jnp.array([1.5, 2.0, 3.0])
      >>> float(jaxloss.absolute_error(p, t, reduction="sum"))
      2.5

    References:
      Laplace, "Mémoire sur la probabilité des causes par les événements", 1774.
    """
    p, t, mask, weights = _pair(predictions, targets, where, weights, reduction)
    return finish(_abs(p - t), mask, weights, reduction)


@jax.custom_jvp
def _huber(error: jax.Array, delta: jax.Array | float) -> jax.Array:
    """Huber's ρ_δ(e): ½e² for |e| ≤ δ, δ(|e| − ½δ) beyond."""
    abs_error = jnp.abs(error)
    # A select rather than min(|e|, δ): XLA's CPU reductions take it without storing δ
    # broadcast to the errors' shape. The rule below gives the derivatives, so neither
    # branch's gradient passes through the select.
    return jnp.where(abs_error <= delta, 0.5 * jnp.square(error), delta * (abs_error - 0.5 * delta))


def _huber_jvp(primals, tangents):
    error, delta = primals
    d_error, d_delta = tangents
    value = _huber(error, delta)
    d_value = jnp.zeros_like(value)
    # ∂ρ/∂e = clip(e, −δ, δ), one elementwise pass fused with the backward pass instead of
    # autodiff through |e|, min and the products (0 at e = 0, as for absolute_error).
    if not isinstance(d_error, SymbolicZero):
        d_value = d_value + jnp.clip(error, -delta, delta) * d_error
    # ∂ρ/∂δ = |e| − min(|e|, δ): 0 inside, |e| − δ beyond.
    if not isinstance(d_delta, SymbolicZero):
        abs_error = jnp.abs(error)
        d_value = d_value + (abs_error - jnp.minimum(abs_error, delta)) * d_delta
    return value, d_value


_huber.defjvp(_huber_jvp, symbolic_zeros=True)


@loss_function
def huber_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    delta: float | ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Huber loss: quadratic for small errors, linear (slope δ) for large ones.

    $$
    \ell_i = \begin{cases} \tfrac12 e_i^2 & |e_i| \le \delta \\
                           \delta\,(|e_i| - \tfrac12 \delta) & |e_i| > \delta \end{cases},
    \qquad e_i = p_i - t_i
    $$

    Equal to ``torch.nn.functional.huber_loss(p, t, delta=δ)``, ``optax.huber_loss`` and
    Keras' ``Huber``; ``smooth_l1_loss`` with ``beta=δ`` is this divided by δ.

    Args:
      predictions: real-valued predictions, any shape.
      targets: real-valued targets, the shape of ``predictions``.
      delta: the threshold $\delta > 0$ between the quadratic and the linear part.
      where: boolean mask broadcastable to ``predictions.shape``.
      weights: weights broadcastable to ``predictions.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: accepted for the common signature and ignored: every real value is a valid
        prediction and target, so there is nothing to check.

    Returns:
      ``predictions.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p, t = jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0])
      >>> jaxloss.huber_loss(p, t, reduction="none").tolist()
      [0.125, 2.5]

    References:
      Huber, "Robust Estimation of a Location Parameter", Annals of Mathematical
      Statistics 35, 1964.
    """
    _positive("delta", delta)
    p, t, mask, weights = _pair(predictions, targets, where, weights, reduction)
    delta = _checks.hyperparameter(delta, p.dtype)
    return finish(_huber(p - t, delta), mask, weights, reduction)


@loss_function
def smooth_l1_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    beta: float | ArrayLike = 1.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Smooth L1 loss: the Huber loss divided by its threshold, so its slope tends to 1.

    $$
    \ell_i = \begin{cases} \tfrac{1}{2\beta} e_i^2 & |e_i| < \beta \\
                           |e_i| - \tfrac12 \beta & |e_i| \ge \beta \end{cases},
    \qquad e_i = p_i - t_i
    $$

    ``beta=0`` is exactly the absolute error $|e_i|$, with a finite gradient (the formula's
    $e^2/2\beta$ is never evaluated at $\beta = 0$). Equal to
    ``torch.nn.functional.smooth_l1_loss(p, t, beta=β)`` (Fast R-CNN's loss for β = 1).

    Args:
      predictions: real-valued predictions, any shape.
      targets: real-valued targets, the shape of ``predictions``.
      beta: the threshold $\beta \ge 0$.
      where: boolean mask broadcastable to ``predictions.shape``.
      weights: weights broadcastable to ``predictions.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: accepted for the common signature and ignored: every real value is a valid
        prediction and target, so there is nothing to check.

    Returns:
      ``predictions.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p, t = jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0])
      >>> jaxloss.smooth_l1_loss(p, t, beta=2.0, reduction="none").tolist()
      [0.0625, 2.0]
      >>> jaxloss.smooth_l1_loss(p, t, beta=0.0, reduction="none").tolist()
      [0.5, 3.0]

    References:
      Girshick, "Fast R-CNN", ICCV 2015.
    """
    _checks.nonnegative("beta", beta)
    p, t, mask, weights = _pair(predictions, targets, where, weights, reduction)
    beta = _checks.hyperparameter(beta, p.dtype)
    error = p - t
    abs_error = _abs(error)
    quadratic = abs_error < beta
    # Double where: divide only where |e| < β, which implies β > 0; so β = 0 is exactly |e|
    # with a finite gradient, and 0/0 never reaches the value or the gradient.
    beta_safe = jnp.where(quadratic, beta, 1)
    loss = jnp.where(quadratic, 0.5 * jnp.square(error) / beta_safe, abs_error - 0.5 * beta)
    return finish(loss, mask, weights, reduction)


@loss_function
def log_cosh(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Log-cosh loss log(cosh(p − t)): about ½e² for small errors, |e| − log 2 for large.

    $$
    \ell_i = \log\cosh(e_i), \qquad e_i = p_i - t_i
    $$

    Computed without overflow for errors of any size (cosh overflows float64 beyond 710)
    and without cancellation for tiny errors, where $\cosh e - 1$ is computed directly. The
    gradient is $\tanh(e)$ and the second derivative $\operatorname{sech}^2(e)$, both
    finite everywhere.

    Args:
      predictions: real-valued predictions, any shape.
      targets: real-valued targets, the shape of ``predictions``.
      where: boolean mask broadcastable to ``predictions.shape``.
      weights: weights broadcastable to ``predictions.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: accepted for the common signature and ignored: every real value is a valid
        prediction and target, so there is nothing to check.

    Returns:
      ``predictions.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> values = jaxloss.log_cosh(jnp.array([0.0, 1.0, 50.0]), jnp.zeros(3), reduction="none")
      >>> [round(v, 4) for v in values.tolist()]  # 0, log cosh 1, 50 − log 2
      [0.0, 0.4338, 49.3069]

    References:
      Saleh and Saleh, "Statistical Properties of the log-cosh Loss Function Used in
      Machine Learning", 2022.
    """
    p, t, mask, weights = _pair(predictions, targets, where, weights, reduction)
    return finish(_log_cosh(p - t), mask, weights, reduction)


@jax.custom_jvp
def _log_cosh(error: jax.Array) -> jax.Array:
    """log cosh(e) from one expm1 and one log1p, exact to a few ulps for every e."""
    a = jnp.abs(error)
    # m = e^{-a} − 1 without cancellation; 1 + m = e^{-a} never overflows.
    m = jnp.expm1(-a)
    small = a < 1
    # |e| < 1: cosh a − 1 = m² / (2 e^{-a}), no cancellation for tiny errors.
    # |e| ≥ 1: log cosh a = a − log 2 + log1p(e^{-2a}), no exp of a large number.
    s = jnp.where(small, jnp.square(m) / (2 * (1 + m)), jnp.square(1 + m))
    return jnp.log1p(s) + jnp.where(small, 0, a - math.log(2))


# The derivative is tanh(e): one cheap rule instead of differentiating through both branches
# (about twice as fast under value_and_grad), and its own derivative gives sech²(e) for Hessians.
_log_cosh.defjvp(lambda primals, tangents: (
    _log_cosh(primals[0]), jnp.tanh(primals[0]) * tangents[0]
))


@loss_function
def pinball_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    quantile: float | ArrayLike = 0.5,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Pinball (quantile) loss, whose minimiser is the ``quantile`` of the targets.

    $$
    \ell_i = \max\bigl(\tau (t_i - p_i),\; (\tau - 1)(t_i - p_i)\bigr)
    $$

    Under-predictions cost $\tau$ per unit and over-predictions $1 - \tau$; at $\tau = 0.5$
    it is half the absolute error.

    Args:
      predictions: predicted quantiles, any shape.
      targets: observed values, the shape of ``predictions``.
      quantile: $\tau \in [0, 1]$.
      where: boolean mask broadcastable to ``predictions.shape``.
      weights: weights broadcastable to ``predictions.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: accepted for the common signature and ignored: every real value is a valid
        prediction and target, so there is nothing to check.

    Returns:
      ``predictions.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p, t = jnp.array([1.0, 3.0]), jnp.array([2.0, 2.0])
      >>> values = jaxloss.pinball_loss(p, t, quantile=0.9, reduction="none")
      >>> [round(v, 4) for v in values.tolist()]  # under-prediction costs 0.9, over 0.1
      [0.9, 0.1]

    References:
      Koenker and Bassett, "Regression Quantiles", Econometrica 46, 1978.
    """
    _checks.in_unit_interval("quantile", quantile)
    p, t, mask, weights = _pair(predictions, targets, where, weights, reduction)
    quantile = _checks.hyperparameter(quantile, p.dtype)
    residual = t - p
    return finish(
        jnp.maximum(quantile * residual, (quantile - 1) * residual), mask, weights, reduction
    )


def _variance_shape(variance: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``variance`` broadcast to ``shape`` by torch's rules, or a ValueError that says how."""
    if variance.shape == shape or variance.ndim == 0:
        return jnp.broadcast_to(variance, shape)
    if len(shape) > 0 and variance.shape == shape[:-1]:
        # One variance per row, shared by the last axis (torch's homoscedastic case).
        return jnp.broadcast_to(variance[..., None], shape)
    same_rank = variance.ndim == len(shape)
    if same_rank and all(v in (1, s) for v, s in zip(variance.shape, shape, strict=True)):
        return jnp.broadcast_to(variance, shape)
    raise ValueError(
        f"variance must have the shape of mean {shape}, that shape without its last axis "
        f"{shape[:-1]}, that shape with some axes of size 1, or be a scalar; received "
        f"{variance.shape}."
    )


@loss_function
def gaussian_nll_loss(
    mean: ArrayLike,
    targets: ArrayLike,
    variance: float | ArrayLike,
    *,
    full: bool = False,
    eps: float = 1e-6,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Negative log-likelihood of targets under a Gaussian with predicted mean and variance.

    $$
    \ell_i = \tfrac12 \Bigl(\log \max(\sigma_i^2, \epsilon)
             + \frac{(t_i - \mu_i)^2}{\max(\sigma_i^2, \epsilon)}\Bigr)
             \;\bigl[+\ \tfrac12 \log 2\pi \text{ if full}\bigr]
    $$

    Follows ``torch.nn.functional.gaussian_nll_loss``: the variance is clamped below at
    ``eps`` for the value, while its gradient passes through the clamp unchanged (torch
    clamps under ``no_grad``), so a variance driven below ``eps`` still receives a gradient.
    ``variance`` may have the shape of ``mean`` (heteroscedastic), that shape without its
    last axis or with axes of size 1 (shared variances), or be a scalar. A negative variance
    makes that entry NaN (torch raises; under ``jit`` values cannot raise, so
    ``checks=True`` reports it under ``checkify``).

    Args:
      mean: predicted means, any shape.
      targets: observed values, the shape of ``mean``.
      variance: predicted variances $\sigma^2 \ge 0$ (see above for the shapes accepted); a
        negative Python number raises at trace time.
      full: add the constant $\tfrac12 \log 2\pi$.
      eps: the clamp $\epsilon > 0$ on the variance.
      where: boolean mask broadcastable to ``mean.shape``.
      weights: weights broadcastable to ``mean.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report negative variances under ``jax.experimental.checkify``.

    Returns:
      ``mean.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> mu, t = jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0])
      >>> values = jaxloss.gaussian_nll_loss(mu, t, jnp.array([1.0, 4.0]), reduction="none")
      >>> [round(v, 4) for v in values.tolist()]  # ½(log 1 + 1/1), ½(log 4 + 0/4)
      [0.5, 0.6931]

    References:
      Nix and Weigend, "Estimating the mean and variance of the target probability
      distribution", ICNN 1994.
    """
    _positive("eps", eps)
    mu, t, mask, weights = _pair(mean, targets, where, weights, reduction, pred_name="mean")
    if isinstance(variance, (int, float)):
        _checks.nonnegative("variance", variance)
        # A Python number takes the inputs' dtype rather than promoting them to float64.
        var = jnp.full(mu.shape, variance, mu.dtype)
    else:
        var = _variance_shape(_checks.as_floating("variance", variance), mu.shape)
    dtype = compute_dtype(mu, var)
    mu, t = mu.astype(dtype), t.astype(dtype)
    var = sanitize(var, mask, 1).astype(dtype)
    valid = var >= 0
    _checks.value_check(checks, valid, "variance must be >= 0", var)
    # Clamp the value but not the gradient, as torch does: x − sg(x) is exactly 0.
    clamped = var - jax.lax.stop_gradient(var) + jax.lax.stop_gradient(jnp.maximum(var, eps))
    loss = 0.5 * (jnp.log(clamped) + jnp.square(t - mu) / clamped)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return finish(jnp.where(valid, loss, jnp.nan), mask, weights, reduction)


@loss_function
def poisson_nll_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Negative log-likelihood of counts under a Poisson distribution with predicted rate.

    With ``log_input=True`` the predictions are log-rates $z$ and, dropping $\log t!$,

    $$
    \ell_i = e^{z_i} - t_i z_i
    $$

    with ``log_input=False`` they are rates $\lambda$ and
    $\ell_i = \lambda_i - t_i \log(\lambda_i + \epsilon)$. ``full=True`` adds Stirling's
    approximation of $\log t!$, $t \log t - t + \tfrac12 \log(2\pi t)$, for $t > 1$ (0 for
    $t \le 1$), exactly as ``torch.nn.functional.poisson_nll_loss``. A negative target gives
    NaN.

    Args:
      predictions: log-rates (``log_input=True``) or rates, any shape.
      targets: observed counts $t \ge 0$ (need not be integers), the shape of
        ``predictions``.
      log_input: whether ``predictions`` are log-rates.
      full: add the Stirling term.
      eps: added to the rate inside the log when ``log_input=False``.
      where: boolean mask broadcastable to ``predictions.shape``.
      weights: weights broadcastable to ``predictions.shape``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report negative targets under ``jax.experimental.checkify``.

    Returns:
      ``predictions.shape`` for ``"none"``, else a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> log_rate, counts = jnp.log(jnp.array([2.0, 2.0])), jnp.array([0.0, 3.0])
      >>> values = jaxloss.poisson_nll_loss(log_rate, counts, reduction="none")
      >>> [round(v, 4) for v in values.tolist()]  # 2 − 0, 2 − 3 log 2
      [2.0, -0.0794]

    References:
      McCullagh and Nelder, "Generalized Linear Models", 2nd ed., 1989, ch. 6.
    """
    _checks.nonnegative("eps", eps)
    fill = 0.0 if log_input else 1.0
    p, t, mask, weights = _pair(predictions, targets, where, weights, reduction, fill=fill)
    valid = t >= 0
    _checks.value_check(checks, valid, "targets must be counts >= 0", t)
    if log_input:
        # A zero count at rate 0 (log-rate −inf) contributes 0 (0·log 0 = 0), not 0·(−inf):
        # the double where keeps the −inf out of the value and of the gradient of t.
        safe_p = jnp.where((t == 0) & (p == -jnp.inf), 0, p)
        loss = jnp.exp(p) - t * safe_p
    else:
        loss = p - t * jnp.log(p + eps)
    if full:
        counted = t > 1
        # Double where: log never sees t ≤ 1, where the term is 0 anyway.
        t_safe = jnp.where(counted, t, 2)
        stirling = t_safe * jnp.log(t_safe) - t_safe + 0.5 * jnp.log(2 * math.pi * t_safe)
        loss = loss + jnp.where(counted, stirling, 0)
    return finish(jnp.where(valid, loss, jnp.nan), mask, weights, reduction)
