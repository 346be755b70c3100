"""Losses over arrays sharded across devices: vocabulary-parallel cross-entropy for shard_map.

``vocab_parallel_softmax_cross_entropy`` takes this device's slice of the logits;
``vocab_parallel_linear_softmax_cross_entropy`` takes the hidden states and this device's rows
of the output weight, and runs the chunked computation of ``_linear_cross_entropy`` with the
sums over the vocabulary combined across devices.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import loss_function
from jaxloss._linear_cross_entropy import linear_loss
from jaxloss._reduce import Prepared, finish
from jaxloss._shard_map import AxisName, shard_count, tracks_variance, vary_over, varying_axes


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _global_terms(
    axis_name: AxisName,
    tracked: bool,
    logits: jax.Array,
    local_labels: jax.Array | None,
    class_weights: jax.Array | None,
    targets: jax.Array | None,
) -> dict[str, jax.Array]:
    """Per-example terms of the cross-entropy over the whole vocabulary, from local slices.

    ``logits`` (..., V_local) are this device's classes; ``local_labels`` (...) the label's
    position in this slice, or -1 where another device (or none) owns it. Returns ``lse``
    (log-partition), ``nll`` (−log q_y), ``label_weight`` (class weight of the label) and
    ``weighted`` (Σ_k t_k·(−log q_k) with 0·log 0 = 0), each over the global vocabulary and
    identical on every device of ``axis_name``; terms whose inputs are None are left out.
    ``tracked`` says whether shard_map tracks which values vary across devices (its
    ``check_vma=True``, the default).
    """
    return _global_terms_fwd(axis_name, tracked, logits, local_labels, class_weights, targets)[0]


def _global_terms_fwd(axis_name, tracked, logits, local_labels, class_weights, targets):
    # The max shift is a constant for the value; it only keeps exp() in range. Stopping its
    # gradient keeps forward mode (jax.hessian differentiates these rules) off pmax, which
    # has no derivative rule.
    shift = jax.lax.pmax(jax.lax.stop_gradient(jnp.max(logits, axis=-1)), axis_name)
    shifted = logits - shift[..., None]
    local = {"sum_exp": jnp.sum(jnp.exp(shifted), axis=-1)}
    if local_labels is not None:
        owns = local_labels >= 0
        index = jnp.where(owns, local_labels, 0)[..., None]
        # Only the owner contributes its entry; the psum hands it to every device.
        local["label_shifted"] = jnp.where(
            owns, jnp.take_along_axis(shifted, index, axis=-1)[..., 0], 0
        )
        if class_weights is not None:
            # With an explicit batch axis outside the shard_map, a gather needs its sharding.
            picked = class_weights.at[index[..., 0]].get(
                out_sharding=jax.typeof(index[..., 0]).sharding
            )
            local["label_weight"] = jnp.where(owns, picked, 0)
    if targets is not None:
        # A −inf logit with target 0 contributes 0·log 0 = 0, not 0·(−inf) = NaN.
        unused = (targets == 0) & (logits == -jnp.inf)
        local["targets_shifted"] = jnp.sum(targets * jnp.where(unused, 0, shifted), axis=-1)
        local["targets_sum"] = jnp.sum(targets, axis=-1)
    # One all-reduce carries every per-example sum; it is the only communication besides pmax.
    total = jax.lax.psum(local, axis_name)
    log_sum_exp = jnp.log(total["sum_exp"])
    out = {"lse": shift + log_sum_exp}
    if local_labels is not None:
        # −log q_y = log Σ exp(z − m) − (z_y − m): both parts are small, so no cancellation.
        out["nll"] = log_sum_exp - total["label_shifted"]
        if class_weights is not None:
            out["label_weight"] = total["label_weight"]
    if targets is not None:
        out["weighted"] = total["targets_sum"] * log_sum_exp - total["targets_shifted"]
    residuals = (logits, local_labels, class_weights, targets, shifted, log_sum_exp,
                 total.get("targets_sum"))
    return out, residuals


def _global_terms_bwd(axis_name, tracked, residuals, cotangents):
    logits, local_labels, class_weights, targets, shifted, log_sum_exp, targets_sum = residuals
    # The backward pass is local: every global quantity is a residual. Only without check_vma
    # does shard_map hand each device a partial cotangent of the replicated outputs (its
    # transpose of psum is psum); summing those per-example numbers restores the cotangent.
    if not tracked:
        cotangents = jax.lax.psum(cotangents, axis_name)
    probs = jnp.exp(shifted - log_sum_exp[..., None])
    # d lse = q; d(−log q_y) = q − onehot(y); d Σ t_k(−log q_k) = (Σ t) q − t.
    scale = cotangents["lse"]
    if local_labels is not None:
        scale = scale + cotangents["nll"]
    if targets is not None:
        scale = scale + cotangents["weighted"] * targets_sum
    grad_logits = scale[..., None] * probs
    grad_class_weights = grad_targets = None
    if local_labels is not None:
        owns = local_labels >= 0
        index = jnp.where(owns, local_labels, 0)
        classes = jax.lax.broadcasted_iota(index.dtype, logits.shape, logits.ndim - 1)
        onehot = (classes == index[..., None]) & owns[..., None]
        grad_logits = grad_logits - jnp.where(onehot, cotangents["nll"][..., None], 0)
        if class_weights is not None:
            per_example = jnp.where(owns, cotangents["label_weight"], 0)
            grad_class_weights = jnp.sum(
                jnp.where(onehot, per_example[..., None], 0),
                axis=tuple(range(logits.ndim - 1)),
            )
    if targets is not None:
        grad_logits = grad_logits - cotangents["weighted"][..., None] * targets
        unused = (targets == 0) & (logits == -jnp.inf)
        neg_log_q = jnp.where(unused, 0, log_sum_exp[..., None] - shifted)
        grad_targets = cotangents["weighted"][..., None] * neg_log_q
    return grad_logits, None, grad_class_weights, grad_targets


_global_terms.defvjp(_global_terms_fwd, _global_terms_bwd)


@loss_function
def vocab_parallel_softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: AxisName,
    class_weights: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float | ArrayLike = 0.0,
    z_loss: float | ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Softmax cross-entropy over a vocabulary sharded across devices, for ``jax.shard_map``.

    Each device of the mesh axis ``axis_name`` holds a contiguous slice of the classes: device
    $r$ of $R$ holds classes $[rV, (r+1)V)$ of $C = RV$, the layout of
    ``in_specs=P(..., axis_name)`` on the logits. The loss is the one of
    ``jaxloss.softmax_cross_entropy`` on the full logits,

    $$
    \ell = (1-\varepsilon)\, c_y\,\bigl(\mathrm{lse}(z) - z_y\bigr)
         + \frac{\varepsilon}{C} \sum_k c_k \bigl(\mathrm{lse}(z) - z_k\bigr)
         + \zeta\, \mathrm{lse}(z)^2,
    $$

    $$
    \mathrm{lse}(z) = m + \log \sum_r \sum_{k \in r} e^{z_k - m}, \qquad
    m = \max_r \max_{k \in r} z_k
    $$

    computed without gathering the logits: the local maxima are combined with ``pmax``, the
    local sums of exponentials (and the label's shifted logit, taken by the device that owns
    the label, and the class weight of the label) with one ``psum`` of per-example numbers;
    probability targets add one ``psum`` that counts negative entries. A ``custom_vjp`` keeps
    every global quantity as a residual, so the backward pass is local: the gradient on each
    device's slice is $a\,q_k - b_k$, with per-example $a$ and a local $b$ (the label's
    one-hot, the smoothing weights or the targets), and needs no further communication.
    Works with ``shard_map``'s ``check_vma`` on (the default) or off; with it off, JAX passes
    replicated cotangents as per-device partial sums, so the backward pass sums them with one
    ``psum`` of per-example numbers.

    The options and their semantics are those of ``softmax_cross_entropy`` with the class axis
    last: integer labels are global class indices in $[0, C)$ (replicated over ``axis_name``,
    like the batch); floating labels are target probabilities sharded like the logits;
    ``class_weights`` is this device's slice of shape ``(V,)``; ``ignore_index``,
    ``label_smoothing`` (with $C$ the global class count), ``z_loss``, and torch's weighted-mean
    denominators $\sum_i s_i c_{y_i}$ for integer labels are unchanged. An index outside
    $[0, C)$ that is not ``ignore_index``, or a negative target probability anywhere in the
    vocabulary, makes that example's loss NaN.

    Reduction: over the examples this device holds. In the standard layout the batch is
    replicated across ``axis_name`` (``in_specs=P(None, axis_name)`` for the logits and
    ``P()`` for the labels), so every device of the axis returns the same, global value. When
    the batch is also sharded over a data axis, the ``"mean"`` is that shard's mean; for the
    global mean, ``psum`` the ``"sum"`` and the count over the data axis (see
    ``docs/multi_device.md``).

    Args:
      logits: this device's slice of the logits, shape ``(..., V)``, classes last.
      labels: integer class indices of shape ``logits.shape[:-1]`` (global indices), or
        floating target probabilities of shape ``logits.shape`` (this device's slice).
      axis_name: the ``shard_map`` mesh axis (or tuple of axes) that shards the vocabulary.
      class_weights: this device's slice of the class weights, shape ``(V,)``.
      ignore_index: integer label whose examples do not count (integer labels only).
      label_smoothing: $\varepsilon \in [0, 1]$.
      z_loss: $\zeta \ge 0$, the coefficient of the squared log-partition penalty.
      where: boolean mask of the per-example shape ``logits.shape[:-1]``.
      weights: per-example sample weights, broadcastable to the per-example shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid labels under ``jax.experimental.checkify``.

    Returns:
      ``logits.shape[:-1]`` for ``"none"``, else a scalar; identical on every device of
      ``axis_name``. float32 for half-precision logits.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> import jaxloss
      >>> mesh = jax.make_mesh((jax.device_count(),), ("vocab",))
      >>> loss = jax.jit(jax.shard_map(
      ...     lambda z, y: jaxloss.vocab_parallel_softmax_cross_entropy(z, y, axis_name="vocab"),
      ...     mesh=mesh, in_specs=(P(None, "vocab"), P()), out_specs=P()))
      >>> logits = jnp.array([[2.0, 0.5, -1.0, 0.0], [0.0, 0.0, 3.0, 1.0]])
      >>> labels = jnp.array([0, 2])
      >>> value = loss(jax.device_put(logits, NamedSharding(mesh, P(None, "vocab"))),
      ...              jax.device_put(labels, NamedSharding(mesh, P())))
      >>> bool(np.isclose(value, jaxloss.softmax_cross_entropy(logits, labels)))
      True

    References:
      Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models Using
      Model Parallelism", 2019 (vocabulary-parallel cross-entropy).
      Müller, Kornblith and Hinton, "When does label smoothing help?", NeurIPS 2019.
      Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022 (z-loss).
    """
    shards = shard_count(
        axis_name, "vocab_parallel_softmax_cross_entropy",
        f"the logits' last axis sharded over it (in_specs=P(..., {axis_name!r}))",
    )
    x = Prepared(
        "logits", logits, "labels", labels,
        axis=-1, where=where, weights=weights, reduction=reduction,
    )
    _checks.in_unit_interval("label_smoothing", label_smoothing)
    _checks.nonnegative("z_loss", z_loss)
    label_smoothing = _checks.hyperparameter(label_smoothing, x.dtype)
    z_loss = _checks.hyperparameter(z_loss, x.dtype)
    local_classes = x.num_classes
    num_classes = local_classes * shards
    if class_weights is not None:
        class_weights = _checks.as_floating("class_weights", class_weights)
        if class_weights.shape != (local_classes,):
            raise ValueError(
                f"class_weights must be this device's slice of the class weights, shape "
                f"({local_classes},) like the last axis of logits (shard it like the logits, "
                f"P({axis_name!r})); received {class_weights.shape}."
            )
        class_weights = class_weights.astype(x.dtype)
    smoothing = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    mask = x.mask
    first = jax.lax.axis_index(axis_name) * local_classes
    tracked = tracks_variance(axis_name)
    # Every input of the custom_vjp must vary over the same mesh axes, or its per-device
    # cotangents would not match the primal types under check_vma.
    inputs = (first, x.predictions, x.labels, class_weights)
    axes = frozenset().union(*(varying_axes(a) for a in inputs if a is not None))
    vary = functools.partial(vary_over, axes)

    if x.is_index:
        valid = (x.labels >= 0) & (x.labels < num_classes)
        ignored = x.labels == ignore_index
        _checks.value_check(
            checks, valid | ignored,
            f"labels must be class indices in [0, {num_classes}) or ignore_index={ignore_index}",
            x.labels,
        )
        position = jnp.where(valid, x.labels, 0).astype(first.dtype) - first
        owned = valid & (position >= 0) & (position < local_classes)
        every_class = None
        if smoothing:
            # ones_like keeps the logits' sharding, which the custom_vjp's cotangent will have.
            every_class = jnp.ones_like(x.predictions)
            if class_weights is not None:
                every_class = every_class * jnp.expand_dims(
                    class_weights, tuple(range(x.predictions.ndim - 1))
                )
        terms = _global_terms(
            axis_name, tracked, vary(x.predictions), vary(jnp.where(owned, position, -1)),
            vary(class_weights), vary(every_class),
        )
        denominators = terms.get("label_weight")
        loss = terms["nll"] if denominators is None else denominators * terms["nll"]
        if smoothing:
            smooth = terms["weighted"] / num_classes
            # A traced smoothing of 0 must give exactly the unsmoothed loss, also at -inf logits.
            loss = jnp.where(
                label_smoothing == 0, loss, (1 - label_smoothing) * loss + label_smoothing * smooth
            )
        mask = mask & ~ignored
        valid = valid | ignored
    else:
        _checks.value_check(
            checks, x.labels >= 0, "labels must be probabilities >= 0", x.labels
        )
        targets = x.labels
        if smoothing:
            targets = (1 - label_smoothing) * targets + label_smoothing / num_classes
        if class_weights is not None:
            targets = targets * jnp.expand_dims(class_weights, tuple(range(targets.ndim - 1)))
        terms = _global_terms(
            axis_name, tracked, vary(x.predictions), None, None, vary(targets)
        )
        loss = terms["weighted"]
        # A negative probability on any device's slice makes the example invalid.
        negative = jnp.sum((x.labels < 0).astype(jnp.int32), axis=-1)
        valid = jax.lax.psum(negative, axis_name) == 0
        denominators = None

    if not (isinstance(z_loss, (int, float)) and z_loss == 0):
        loss = loss + z_loss * jnp.square(terms["lse"])
    loss = jnp.where(valid, loss, jnp.nan)
    return finish(loss, mask, x.weights, reduction, denominators)


@loss_function
def vocab_parallel_linear_softmax_cross_entropy(
    inputs: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: AxisName,
    bias: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float | ArrayLike = 0.0,
    z_loss: float | ArrayLike = 0.0,
    logit_softcap: float | None = None,
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    checks: bool = False,
) -> jax.Array:
    r"""Linear layer + softmax cross-entropy over a vocabulary sharded across devices, fused.

    For ``jax.shard_map``: each device of the mesh axis ``axis_name`` holds a contiguous slice
    of the rows of the output weight, device $r$ of $R$ the classes $[rV, (r+1)V)$ of
    $C = RV$ (``in_specs=P(axis_name, None)`` on ``weight``, ``P(axis_name)`` on ``bias`` and
    ``class_weights``), and the same tokens (``inputs`` and ``labels`` replicated over
    ``axis_name``). The loss, value and gradients, is the one of
    ``linear_softmax_cross_entropy`` with the full weight on one device: with logits
    $z = x W^\top + b$ (soft-capped to $\kappa \tanh(z/\kappa)$ when ``logit_softcap``
    $=\kappa$ is set),

    $$
    \ell = (1-\varepsilon)\, c_y\,\bigl(\mathrm{lse}(z) - z_y\bigr)
         + \frac{\varepsilon}{C} \sum_k c_k \bigl(\mathrm{lse}(z) - z_k\bigr)
         + \zeta\, \mathrm{lse}(z)^2,
    $$

    with the sums and the log-sum-exp over all $C$ classes. Neither the full logits nor this
    device's $N \times V$ block are ever stored: tokens go through in chunks, as in
    ``linear_softmax_cross_entropy``, and each chunk's per-token sums over the vocabulary
    (the max, the sum of exponentials, the label's logit taken by the device that owns it,
    the smoothing sums) are combined with one ``pmax`` and one ``psum`` of per-token numbers.
    For ``"mean"`` and ``"sum"`` the gradients are computed in that same pass; for ``"none"``
    the backward pass recomputes each device's logits from the saved global log-sum-exp,
    without communication. The gradient with respect to ``inputs`` is each device's share of
    a sum over the vocabulary, which autodiff adds up with one ``psum``; those of ``weight``,
    ``bias`` and ``class_weights`` are local. Works with ``shard_map``'s ``check_vma`` on (the
    default) or off, with gradients taken outside ``shard_map`` as a training step does.

    The options are those of ``linear_softmax_cross_entropy``: labels are global class
    indices in $[0, C)$; ``label_smoothing`` divides by the global $C$; the weighted mean is
    torch's, $\sum_i s_i \ell_i / \sum_i s_i c_{y_i}$ over the tokens that count; a label
    outside $[0, C)$ that is not ``ignore_index`` makes that token's loss NaN (reported
    with ``checks=True`` under ``jax.experimental.checkify``); tokens masked by ``where`` are
    zeroed before the matrix product, so NaN there reaches no value or gradient.

    Reduction: over the tokens this device holds, as ``vocab_parallel_softmax_cross_entropy``.
    With the tokens replicated over ``axis_name`` every device of the axis returns the same,
    global value. When the tokens are also split over a data axis, the ``"mean"`` is that
    shard's mean; for the global mean, ``psum`` the ``"sum"`` and the count over the data axis
    (``docs/multi_device.md``).

    Args:
      inputs: hidden states, shape ``(..., D)``, floating; the same on every device of
        ``axis_name``.
      weight: this device's rows of the output projection, shape ``(V, D)``, the dtype of
        ``inputs``.
      labels: global class indices, shape ``inputs.shape[:-1]``.
      axis_name: the ``shard_map`` mesh axis (or tuple of axes) that shards the vocabulary.
      bias: this device's slice of the output bias, shape ``(V,)``, the dtype of ``inputs``.
      class_weights: this device's slice of the class weights, shape ``(V,)``.
      ignore_index: integer label whose tokens do not count.
      label_smoothing: $\varepsilon \in [0, 1]$.
      z_loss: $\zeta \ge 0$, the coefficient of the squared log-partition penalty.
      logit_softcap: $\kappa > 0$, a Python number, or None for no soft-capping.
      chunk_size: tokens per chunk on each device, a Python int; by default chosen from
        ``V`` so that a chunk holds about $2^{24}$ of this device's logits.
      where: boolean mask broadcastable to ``inputs.shape[:-1]``; False tokens do not count.
      weights: per-token sample weights, broadcastable to ``inputs.shape[:-1]``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid labels under ``jax.experimental.checkify``.

    Returns:
      Shape ``inputs.shape[:-1]`` for ``"none"``, else a scalar; identical on every device of
      ``axis_name``; float32 for half-precision and float32 inputs, float64 for float64.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> import jaxloss
      >>> mesh = jax.make_mesh((jax.device_count(),), ("vocab",))
      >>> loss = jax.jit(jax.shard_map(
      ...     lambda x, w, y: jaxloss.vocab_parallel_linear_softmax_cross_entropy(
      ...         x, w, y, axis_name="vocab", chunk_size=2),
      ...     mesh=mesh, in_specs=(P(), P("vocab", None), P()), out_specs=P()))
      >>> inputs = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
      >>> weight = jnp.tile(jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5], [0.5, 0.5]]),
      ...                   (jax.device_count(), 1))  # 4 classes per device
      >>> labels = jnp.array([0, 1, 3])
      >>> value = loss(inputs, jax.device_put(weight, NamedSharding(mesh, P("vocab", None))),
      ...              labels)
      >>> bool(np.isclose(value, jaxloss.linear_softmax_cross_entropy(inputs, weight, labels)))
      True

    References:
      Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models Using
      Model Parallelism", 2019 (vocabulary-parallel cross-entropy).
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", 2024,
      arXiv:2411.09009.
    """
    return linear_loss(
        inputs, weight, labels, bias=bias, class_weights=class_weights,
        ignore_index=ignore_index, label_smoothing=label_smoothing, z_loss=z_loss,
        logit_softcap=logit_softcap, chunk_size=chunk_size, where=where, weights=weights,
        reduction=reduction, checks=checks, axis_name=axis_name,
    )
