"""Fused linear + softmax cross-entropy for large vocabularies: the logits are never stored whole.

The loss of a language model's last layer is ``softmax_cross_entropy(inputs @ weight.T + bias,
labels)``. Written that way, the N×V logits exist in memory, and autodiff keeps more arrays of
that size for the backward pass. Here the tokens are processed in chunks inside a
``jax.custom_vjp``: each step of a ``lax.scan`` computes one chunk's logits, its losses and, when
differentiating, its gradients, so only a chunk×V block of logits is ever live.

For ``"mean"`` and ``"sum"`` the cotangent of the loss is a scalar, so every gradient is that
scalar times a fixed array: the forward pass computes the gradients (three matrix products per
chunk, no recomputation) and the backward pass only scales them. For ``"none"`` the per-token
cotangent is only known in the backward pass, so the forward pass saves the log-sum-exp of each
token and the backward pass recomputes the logits chunk by chunk.

Inside ``jax.shard_map`` the same computation runs with the vocabulary split over a mesh axis
(``vocab_parallel_linear_softmax_cross_entropy``): each device holds some rows of the weight,
computes its chunk×V_local block of logits, and the per-token sums over the vocabulary (the
max, the sum of exponentials, the label's logit, the smoothing sums) are combined across
devices with one ``pmax`` and one ``psum`` of per-token numbers per chunk. The logits are never
communicated, and the backward pass of ``"none"`` needs no communication either.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import loss_function
from jaxloss._reduce import compute_dtype, finish, prepare, sanitize
from jaxloss._shard_map import (
    AxisName,
    axis_names,
    shard_count,
    tracks_variance,
    vary_over,
    varying_axes,
)

# Logit elements per chunk when chunk_size is not given: 2**24 is 64 MiB in float32, small next
# to the N×V logits of a large vocabulary and large enough for efficient matrix products.
_LOGITS_PER_CHUNK = 1 << 24
# Chunks no shorter than this (unless there are fewer tokens): short chunks starve the matmul.
_MIN_CHUNK = 16


class _Spec(NamedTuple):
    """Static configuration of one fused computation."""

    chunk: int
    num_classes: int  # over the whole vocabulary, every shard together
    softcap: float | None
    smoothing: bool
    use_z: bool
    dtype: Any  # accumulation dtype: float32, or float64 for float64 inputs
    mm_dtype: Any  # the inputs' dtype, in which the gradient matmuls read their operands
    axis_name: AxisName | None = None  # the mesh axis that splits the vocabulary, if any
    tracked: bool = True  # whether shard_map tracks variance across devices (check_vma)
    # The tokens' explicit mesh axes and the number of devices they are split over (1, ()
    # when they are not): sums over tokens are kept per device until the scan ends.
    token_shards: int = 1
    token_sharding: Any = None  # a NamedSharding that splits a leading axis of that size


class _Params(NamedTuple):
    """The differentiable inputs; ``bias`` and ``class_weights`` may be None."""

    inputs: jax.Array  # (n_chunks, chunk, D)
    weight: jax.Array  # (V, D): this device's rows when the vocabulary is split
    bias: jax.Array | None  # (V,)
    class_weights: jax.Array | None  # (V,), in the accumulation dtype
    label_smoothing: jax.Array  # scalar, in the accumulation dtype
    z_loss: jax.Array  # scalar, in the accumulation dtype


class _Labels(NamedTuple):
    """What the chunks need to know of the labels; not differentiated.

    ``position`` is the label's row in this device's ``weight``, or −1 where another device
    owns it (on one device, the label itself). ``weight`` is the class weight of the label,
    c_y, over the whole vocabulary (None without class weights); its derivative with respect
    to the class weights is part of the loss's own gradient.
    """

    position: jax.Array  # (n_chunks, chunk) int32
    weight: jax.Array | None  # (n_chunks, chunk), in the accumulation dtype


def _pmax(spec: _Spec, x: jax.Array) -> jax.Array:
    return x if spec.axis_name is None else lax.pmax(x, spec.axis_name)


def _psum(spec: _Spec, x: Any) -> Any:
    return x if spec.axis_name is None else lax.psum(x, spec.axis_name)


def _auto_chunk(num_tokens: int, num_classes: int) -> int:
    """Tokens per chunk: about _LOGITS_PER_CHUNK logits, split evenly to minimise padding."""
    target = max(_MIN_CHUNK, _LOGITS_PER_CHUNK // max(num_classes, 1))
    if num_tokens <= target:
        return max(num_tokens, 1)
    n_chunks = math.ceil(num_tokens / target)
    return math.ceil(num_tokens / n_chunks)


def _logits(spec: _Spec, p: _Params, xc: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """One chunk's logits in the accumulation dtype, soft-capped; and tanh(u/c) when capped."""
    # preferred_element_type: bfloat16 operands are multiplied with float32 accumulation.
    u = lax.dot_general(
        xc, p.weight, (((1,), (1,)), ((), ())), preferred_element_type=spec.dtype
    )
    if p.bias is not None:
        u = u + p.bias.astype(spec.dtype)[None, :]
    if spec.softcap is None:
        return u, None
    t = jnp.tanh(u / spec.softcap)
    return spec.softcap * t, t


def _terms(
    spec: _Spec,
    p: _Params,
    z: jax.Array,
    labels: _Labels,
    class_total: jax.Array | None,
    lse: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Per-token pieces of the loss from one chunk's logits ``z`` (chunk, V).

    Returns the log-sum-exp ``lse``, the probabilities ``q``, ``nlq_y`` = −log q_y, the label
    term ``a`` = c_y·(−log q_y), the smoothing term ``s`` = Σ_k c_k (−log q_k) / V, the loss,
    and ``shifted``, ``lse_shifted`` with −log q = lse_shifted − shifted. ``class_total`` is
    Σ_k c_k over the whole vocabulary. With the vocabulary split, the sums over classes are
    combined across devices (``lse``, ``nlq_y``, ``a``, ``s`` and the loss are then global)
    and ``q``, ``shifted`` cover this device's classes.

    With ``lse`` given (the backward pass) the logits are shifted by it and nothing is
    reduced or communicated: only ``lse``, ``q``, ``shifted``, ``lse_shifted`` and ``nlq_y``
    are returned, the last one exact on the device that owns the label (0 elsewhere), the
    only one that reads it.
    """
    owns = labels.position >= 0
    index = jnp.where(owns, labels.position, 0)[:, None]
    if lse is not None:
        shifted = z - lse[:, None]
        label = jnp.where(owns, jnp.take_along_axis(shifted, index, axis=-1)[:, 0], 0)
        return {"lse": lse, "q": jnp.exp(shifted), "nlq_y": -label, "shifted": shifted,
                "lse_shifted": jnp.zeros_like(lse)[:, None]}
    # The max shift keeps exp from overflowing; −log q is then lse_shifted − shifted, a
    # difference of small numbers, so large logits lose no precision to the cancellation.
    # Its gradient is stopped (it cancels exactly): forward mode over this rule (jax.hessian)
    # would otherwise differentiate pmax, which has no derivative rule.
    shift = _pmax(spec, lax.stop_gradient(jnp.max(z, axis=-1)))[:, None]
    shifted = z - shift
    e = jnp.exp(shifted)
    # Only the owner of the label contributes its shifted logit; the psum hands it to all.
    local = {"sum_exp": jnp.sum(e, axis=-1),
             "label": jnp.where(owns, jnp.take_along_axis(shifted, index, axis=-1)[:, 0], 0)}
    if spec.smoothing:
        per_class = shifted if p.class_weights is None else p.class_weights[None, :] * shifted
        local["smooth"] = jnp.sum(per_class, axis=-1)
    # One all-reduce of per-token numbers per chunk: the logits never leave the device.
    total = _psum(spec, local)
    lse_shifted = jnp.log(total["sum_exp"])[:, None]
    lse = (lse_shifted + shift)[:, 0]
    # q from the same exponentials: one exp per logit instead of two.
    q = e / total["sum_exp"][:, None]
    nlq_y = lse_shifted[:, 0] - total["label"]
    a = nlq_y if labels.weight is None else labels.weight * nlq_y
    out = {"lse": lse, "q": q, "nlq_y": nlq_y, "a": a, "shifted": shifted,
           "lse_shifted": lse_shifted}
    loss = a
    if spec.smoothing:
        # Σ_k c_k (lse_shifted − shifted_k) as c·lse_shifted plus Σ_k c_k·(−shifted_k): both
        # parts are ≥ 0 (shifted ≤ 0), so nothing cancels.
        weight_total = spec.num_classes if p.class_weights is None else class_total
        s = (weight_total * lse_shifted[:, 0] - total["smooth"]) / spec.num_classes
        eps = p.label_smoothing
        loss = (1 - eps) * a + eps * s
        out["s"] = s
    if spec.use_z:
        loss = loss + p.z_loss * jnp.square(lse)
    out["loss"] = loss
    return out


def _chunk_grads(
    spec: _Spec,
    p: _Params,
    xc: jax.Array,
    labels: _Labels,
    class_total: jax.Array | None,
    gc: jax.Array,
    t: jax.Array | None,
    terms: dict[str, jax.Array],
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]:
    """Gradients of Σ_i g_i ℓ_i for one chunk: (d inputs, d weight, d bias, d class_weights),
    the last two None when there is no bias or no class weights.

    With q = softmax(z), ε the smoothing, c the class weights (S = Σ_k c_k) and ζ the z-loss,
    ∂ℓ/∂z_k = q_k·((1−ε)c_y + εS/V + 2ζ·lse) − (1−ε)c_y·[k = y] − ε c_k / V.
    With the vocabulary split, every term is local to this device's classes k (S, V, c_y and
    lse are global), and d inputs is this device's share of a sum over the vocabulary.
    """
    q = terms["q"]
    cw = p.class_weights
    local_classes = p.weight.shape[0]
    eps = p.label_smoothing if spec.smoothing else 0
    c_y = jnp.ones_like(gc) if labels.weight is None else labels.weight
    coef = (1 - eps) * c_y
    if spec.smoothing:
        total_c = spec.num_classes if cw is None else class_total
        coef = coef + eps * total_c / spec.num_classes
    if spec.use_z:
        coef = coef + 2 * p.z_loss * terms["lse"]
    position = labels.position
    classes = lax.broadcasted_iota(position.dtype, (1, local_classes), 1)
    # The one-hot term as a comparison: no (chunk, V) one-hot array is built. A position of
    # −1 (the label is on another device) matches no class.
    dz = (gc * coef)[:, None] * q - jnp.where(
        classes == position[:, None], (gc * (1 - eps) * c_y)[:, None], 0
    )
    if spec.smoothing:
        per_class = jnp.ones((1, local_classes), spec.dtype) if cw is None else cw[None, :]
        dz = dz - (gc * eps / spec.num_classes)[:, None] * per_class
    # d/du of c·tanh(u/c) is 1 − tanh²(u/c).
    du = dz if t is None else dz * (1 - jnp.square(t))
    du_mm = du.astype(spec.mm_dtype)
    dx = lax.dot_general(
        du_mm, p.weight, (((1,), (0,)), ((), ())), preferred_element_type=spec.dtype
    )
    # Sums over tokens are kept per device, with a leading axis of the devices the tokens are
    # split over: summing across devices in every chunk would all-reduce a (V, D) array per
    # step; the scan's result is summed once (_merge_shards). On one device the axis is 1.
    shards = spec.token_shards

    def per_shard(x: jax.Array) -> jax.Array:
        return x.reshape((shards, x.shape[0] // shards) + x.shape[1:])

    dw = lax.dot_general(
        per_shard(du_mm), per_shard(xc), (((1,), (1,)), ((0,), (0,))),
        preferred_element_type=spec.dtype,
    )
    db = None if p.bias is None else jnp.sum(per_shard(du), axis=1)
    dcw = None
    if cw is not None:
        # ∂ℓ/∂c_k = (1−ε)·[k = y]·(−log q_y) + ε·(−log q_k)/V; the first term belongs to the
        # device that owns the label (position −1 elsewhere matches no class).
        label_term = jnp.where(
            classes == position[:, None], (gc * (1 - eps) * terms["nlq_y"])[:, None], 0
        )
        dcw = jnp.sum(per_shard(label_term), axis=1)
        if spec.smoothing:
            nlq = terms["lse_shifted"] - terms["shifted"]
            dcw = dcw + (eps / spec.num_classes) * jnp.einsum(
                "st,stv->sv", per_shard(gc), per_shard(nlq)
            )
    return dx, dw, db, dcw


def _zero_accumulators(spec: _Spec, p: _Params) -> tuple[jax.Array | None, ...]:
    """Zeros for the gradients summed over chunks, one per token shard: weight, bias, class
    weights (or None)."""
    v, d = p.weight.shape
    # Inside shard_map the sums vary across devices as the weight does; a scan's carry must
    # keep its type from one step to the next.
    axes = varying_axes(p.weight)

    def zeros(*shape: int) -> jax.Array:
        shape = (spec.token_shards,) + shape
        if spec.token_shards == 1:
            return vary_over(axes, jnp.zeros(shape, spec.dtype))
        # Laid out as the per-shard partial sums are: one row per device of the token axes.
        return vary_over(axes, jnp.zeros(shape, spec.dtype, out_sharding=spec.token_sharding))

    db = None if p.bias is None else zeros(v)
    dcw = None if p.class_weights is None else zeros(v)
    return zeros(v, d), db, dcw


def _merge_shards(sums: tuple[jax.Array | None, ...]) -> tuple[jax.Array | None, ...]:
    """The per-token-shard sums of _zero_accumulators' layout, summed: one all-reduce each."""
    return tuple(None if x is None else jnp.sum(x, axis=0) for x in sums)


def _accumulate(
    carry: tuple[jax.Array | None, ...], *grads: jax.Array | None
) -> tuple[jax.Array | None, ...]:
    return tuple(None if acc is None else acc + g for acc, g in zip(carry, grads, strict=True))


def _whole(spec: _Spec, cotangent: jax.Array) -> jax.Array:
    """The cotangent of a loss that is replicated over the vocabulary axis, in full.

    Without check_vma, shard_map hands each device a share of it (its transpose of psum is
    psum), which is right for the gradients of replicated inputs (the hyperparameters, the
    sample weights: their shares are summed later) but not for those of this device's slice
    of the weight: summing the shares, a per-token vector, restores the whole cotangent.
    """
    if spec.axis_name is None or spec.tracked:
        return cotangent
    return lax.psum(cotangent, spec.axis_name)


def _param_cotangents(
    spec: _Spec,
    grads: tuple[jax.Array | None, ...],
    scale: jax.Array | float = 1,
    hyper_scale: jax.Array | float = 1,
) -> _Params:
    """The cotangent of the params from (dx, dw, db, dcw, deps, dzeta), in their dtypes.

    The gradients of inputs, weight, bias and class weights are scaled by ``scale``, those of
    the hyperparameters by ``hyper_scale`` (see _whole for when they differ).
    """
    dx, dw, db, dcw, deps, dzeta = grads
    return _Params(
        inputs=(scale * dx).astype(spec.mm_dtype),
        weight=(scale * dw).astype(spec.mm_dtype),
        bias=None if db is None else (scale * db).astype(spec.mm_dtype),
        class_weights=None if dcw is None else (scale * dcw).astype(spec.dtype),
        label_smoothing=(hyper_scale * deps).astype(spec.dtype),
        z_loss=(hyper_scale * dzeta).astype(spec.dtype),
    )


def _hyper_grads(
    spec: _Spec, g: jax.Array, lse: jax.Array, a: jax.Array, s: jax.Array | None
) -> tuple[jax.Array, jax.Array]:
    """Σ_i g_i ∂ℓ_i/∂ε and Σ_i g_i ∂ℓ_i/∂ζ from saved per-token terms."""
    zero = jnp.zeros((), spec.dtype)
    deps = jnp.sum(g * (s - a)) if spec.smoothing else zero
    dzeta = jnp.sum(g * jnp.square(lse)) if spec.use_z else zero
    return deps, dzeta


def _fused_sum(spec: _Spec):
    """Σ_i r_i ℓ_i over the tokens that count, with gradients computed in the forward pass.

    ``r``, ``keep`` (the token counts), ``valid`` (its label is usable) and ``labels`` are
    chunked like ``p.inputs``, shape (chunks, tokens per chunk); ``class_total`` is Σ_k c_k.
    """

    def total(loss, r, keep, valid):
        loss = jnp.where(valid, loss, jnp.nan)
        # Tokens that do not count (masked, ignored, padding) never reach the sum, even as NaN.
        return jnp.sum(jnp.where(keep, r * loss, 0)), jnp.where(keep, loss, 0)

    def primal(p, r, labels, class_total, keep, valid):
        def step(_, chunk):
            xc, lc = chunk
            z, _ = _logits(spec, p, xc)
            return None, _terms(spec, p, z, lc, class_total)["loss"]

        _, loss = lax.scan(step, None, (p.inputs, labels))
        return total(loss, r, keep, valid)[0]

    def fwd(p, r, labels, class_total, keep, valid):
        # Invalid labels give a NaN value but, as in the unfused loss, no gradient to the logits.
        g = jnp.where(keep & valid, r, 0)

        def step(carry, chunk):
            xc, lc, gc = chunk
            z, t = _logits(spec, p, xc)
            terms = _terms(spec, p, z, lc, class_total)
            dx, dw, db, dcw = _chunk_grads(spec, p, xc, lc, class_total, gc, t, terms)
            carry = _accumulate(carry, dw, db, dcw)
            per_token = (terms["loss"], terms["lse"], terms["a"], terms.get("s", terms["a"]))
            return carry, (per_token, dx)

        sums, ((loss, lse, a, s), dx) = lax.scan(
            step, _zero_accumulators(spec, p), (p.inputs, labels, g)
        )
        dw, db, dcw = _merge_shards(sums)
        value, kept_loss = total(loss, r, keep, valid)
        deps, dzeta = _hyper_grads(spec, g, lse, a, s)
        return value, ((dx, dw, db, dcw, deps, dzeta), kept_loss)

    def bwd(residuals, ct):
        grads, kept_loss = residuals
        # The cotangent of a scalar only scales the gradients computed in the forward pass.
        params = _param_cotangents(spec, grads, _whole(spec, ct), ct)
        return params, ct * kept_loss, None, None, None, None

    fused = jax.custom_vjp(primal)
    fused.defvjp(fwd, bwd)
    return fused


def _per_token(spec: _Spec):
    """ℓ_i for every token; the backward pass recomputes the logits from the saved lse."""

    def value(p, labels, class_total):
        def step(_, chunk):
            xc, lc = chunk
            z, _ = _logits(spec, p, xc)
            terms = _terms(spec, p, z, lc, class_total)
            return None, (terms["loss"], terms["lse"], terms["a"], terms.get("s", terms["a"]))

        _, out = lax.scan(step, None, (p.inputs, labels))
        return out

    def primal(p, labels, class_total):
        return value(p, labels, class_total)[0]

    def fwd(p, labels, class_total):
        loss, lse, a, s = value(p, labels, class_total)
        return loss, (p, labels, class_total, lse, a, s)

    def bwd(residuals, g):
        p, labels, class_total, lse, a, s = residuals
        # Every global quantity is saved: this pass communicates nothing (but for _whole).
        whole = _whole(spec, g)

        def step(carry, chunk):
            xc, lc, gc, lse_c = chunk
            z, t = _logits(spec, p, xc)
            terms = _terms(spec, p, z, lc, class_total, lse=lse_c)
            dx, dw, db, dcw = _chunk_grads(spec, p, xc, lc, class_total, gc, t, terms)
            return _accumulate(carry, dw, db, dcw), dx

        sums, dx = lax.scan(
            step, _zero_accumulators(spec, p), (p.inputs, labels, whole, lse)
        )
        dw, db, dcw = _merge_shards(sums)
        deps, dzeta = _hyper_grads(spec, g, lse, a, s)
        return _param_cotangents(spec, (dx, dw, db, dcw, deps, dzeta)), None, None

    per_token = jax.custom_vjp(primal)
    per_token.defvjp(fwd, bwd)
    return per_token


def _token_shards(inputs: jax.Array, example_shape: tuple[int, ...]) -> tuple[int, Any]:
    """Over how many devices the tokens are split, and a sharding that splits a leading axis
    the same way: the explicit mesh axes of the leading example axis ((1, None) on one
    device, for automatic axes and for shard_map's manual axes)."""
    names = _checks.explicit_axes(inputs, 0) if example_shape else ()
    if not names:
        return 1, None
    mesh = jax.typeof(inputs).sharding.mesh
    # The mesh of the inputs' own type: no mesh needs to be set in context.
    return math.prod(mesh.shape[n] for n in names), NamedSharding(mesh, P(names))


def _validate_softcap(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            "logit_softcap must be a Python number or None (it is a fixed part of the model, "
            f"compiled in); received {type(value).__name__}."
        )
    if not value > 0:
        raise ValueError(f"logit_softcap must be > 0; received {value}.")
    return float(value)


def _validate_chunk(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"chunk_size must be a Python int or None; received {value!r}.")
    if value < 1:
        raise ValueError(f"chunk_size must be >= 1; received {value}.")
    return value


def _same_dtype(name: str, x: jax.Array, inputs: jax.Array) -> None:
    if x.dtype != inputs.dtype:
        raise TypeError(
            f"{name} must have the dtype of inputs, {inputs.dtype}; received {x.dtype}. "
            f"Cast one of them, e.g. {name}.astype(inputs.dtype)."
        )


def linear_loss(
    inputs: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None,
    class_weights: ArrayLike | None,
    ignore_index: int,
    label_smoothing: float | ArrayLike,
    z_loss: float | ArrayLike,
    logit_softcap: float | None,
    chunk_size: int | None,
    where: ArrayLike | None,
    weights: ArrayLike | None,
    reduction: str,
    checks: bool,
    axis_name: AxisName | None = None,
) -> jax.Array:
    """The fused loss; with ``axis_name``, ``weight`` (and bias, class weights) are this
    device's rows of a vocabulary split over that mesh axis, inside ``jax.shard_map``."""
    shards = 1
    if axis_name is not None:
        shards = shard_count(
            axis_name, "vocab_parallel_linear_softmax_cross_entropy",
            f"the rows of weight sharded over it (in_specs=P({axis_name!r}, None))",
        )
    inputs = _checks.as_floating("inputs", inputs)
    weight = _checks.as_floating("weight", weight)
    labels = _checks.as_index_labels("labels", labels)
    if inputs.ndim == 0:
        raise ValueError("inputs must have a feature axis (rank >= 1); received a scalar.")
    dim = inputs.shape[-1]
    if weight.ndim != 2 or weight.shape[1] != dim:
        raise ValueError(
            f"weight must have shape (V, {dim}), one row of size inputs.shape[-1] per class; "
            f"received {weight.shape}."
        )
    _same_dtype("weight", weight, inputs)
    local_classes = weight.shape[0]
    num_classes = local_classes * shards
    example_shape = inputs.shape[:-1]
    if labels.shape != example_shape:
        raise ValueError(
            f"labels (integer class indices: the shape of inputs without its last axis) must "
            f"have shape {example_shape} for inputs of shape {inputs.shape}; received "
            f"{labels.shape}."
        )
    if bias is not None:
        bias = _checks.as_floating("bias", bias)
        _same_dtype("bias", bias, inputs)
        if bias.shape != (local_classes,):
            raise ValueError(
                f"bias must have shape ({local_classes},), one entry per row of weight; "
                f"received {bias.shape}."
            )
    softcap = _validate_softcap(logit_softcap)
    chunk_size = _validate_chunk(chunk_size)
    _checks.in_unit_interval("label_smoothing", label_smoothing)
    _checks.nonnegative("z_loss", z_loss)
    mask, sample_weights = prepare(where, weights, example_shape, reduction)
    dtype = compute_dtype(inputs)
    if class_weights is not None:
        class_weights = _checks.as_floating("class_weights", class_weights)
        if class_weights.shape != (local_classes,):
            raise ValueError(
                f"class_weights must have shape ({local_classes},), one weight per row of "
                f"weight; received {class_weights.shape}."
            )
        class_weights = class_weights.astype(dtype)
    smoothing = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    use_z = not (isinstance(z_loss, (int, float)) and z_loss == 0)
    label_smoothing = jnp.asarray(_checks.hyperparameter(label_smoothing, dtype), dtype)
    z_loss = jnp.asarray(_checks.hyperparameter(z_loss, dtype), dtype)
    if axis_name is None:
        # Each chunk's logits need every class: a vocabulary sharded over explicit mesh axes
        # would fail deep inside, at the gather of the label's logit.
        for name, array in (("weight", weight), ("bias", bias), ("class_weights", class_weights)):
            if array is not None:
                _checks.whole_class_axis(
                    name, array, 0, "jaxloss.vocab_parallel_linear_softmax_cross_entropy"
                )

    # Masked tokens become zeros before the matmul: their NaN or inf never reaches a gradient.
    inputs = sanitize(inputs, mask, 0, axis=-1)
    labels = sanitize(labels, mask, 0)
    valid = ((labels >= 0) & (labels < num_classes)) | (labels == ignore_index)
    _checks.value_check(
        checks, valid,
        f"labels must be class indices in [0, {num_classes}) or ignore_index={ignore_index}",
        labels,
    )
    keep = mask & (labels != ignore_index)
    safe_labels = jnp.where(keep & valid, labels, 0).astype(jnp.int32)

    tracked, local, replicated = True, frozenset(), frozenset()
    if axis_name is None:
        position = safe_labels
        label_weights = None if class_weights is None else class_weights[safe_labels]
        class_total = None if class_weights is None else jnp.sum(class_weights)
    else:
        # Device r holds classes [r·V, (r+1)·V): a label's row here is its index minus r·V.
        position = safe_labels - lax.axis_index(axis_name).astype(jnp.int32) * local_classes
        owned = (position >= 0) & (position < local_classes)
        position = jnp.where(owned, position, -1)
        label_weights = class_total = None
        if class_weights is not None:
            index = jnp.where(owned, position, 0)
            # With an explicit batch axis outside the shard_map, a gather needs its sharding.
            picked = class_weights.at[index].get(out_sharding=jax.typeof(index).sharding)
            # The owner's class weight, shared with a psum of one number per token.
            label_weights = lax.psum(jnp.where(owned, picked, 0), axis_name)
            class_total = lax.psum(jnp.sum(class_weights), axis_name)
        tracked = tracks_variance(axis_name)
        # Under check_vma the custom_vjp's cotangents must have its inputs' types. The local
        # gradients (inputs, weight, bias, class weights) vary over every axis, and marking
        # inputs as varying over the vocabulary axis makes autodiff psum their gradient,
        # which each device computes from its own classes; the hyperparameters and sample
        # weights get gradients that are the same on every device of the vocabulary axis.
        arrays = (position, inputs, weight, bias, class_weights, mask, sample_weights)
        local = frozenset().union(*(varying_axes(a) for a in arrays if a is not None))
        replicated = local - frozenset(axis_names(axis_name))

    num_tokens = math.prod(example_shape)
    shards, token_sharding = _token_shards(inputs, example_shape)
    per_shard = num_tokens // shards
    chunk = chunk_size or _auto_chunk(per_shard, local_classes)
    n_chunks = math.ceil(per_shard / chunk)
    padding = n_chunks * chunk - per_shard
    spec = _Spec(chunk, num_classes, softcap, smoothing, use_z, dtype, inputs.dtype,
                 axis_name, tracked, shards, token_sharding)

    def chunked(x: jax.Array, fill: Any) -> jax.Array:
        """(n_chunks, shards·chunk, ...): step j of the scan takes chunk j of every shard.

        With the tokens split over S devices (explicit mesh axes), each device's tokens are
        chunked where they are, so the scanned axis is never the sharded one; on one device
        S = 1 and this is a plain split into chunks. Padding tokens are zeros that do not
        count; they are sliced off the results.
        """
        rest = x.shape[len(example_shape):]
        x = x.reshape((shards, per_shard) + rest)
        x = jnp.pad(x, [(0, 0), (0, padding)] + [(0, 0)] * len(rest), constant_values=fill)
        x = jnp.moveaxis(x.reshape((shards, n_chunks, chunk) + rest), 1, 0)
        return x.reshape((n_chunks, shards * chunk) + rest)

    def unchunked(x: jax.Array) -> jax.Array:
        """The inverse of ``chunked`` for per-token results, without the padding."""
        x = jnp.moveaxis(x.reshape((n_chunks, shards, chunk)), 0, 1)
        return x.reshape((shards, n_chunks * chunk))[:, :per_shard].reshape(example_shape)

    # On one device (and without check_vma) both sets of axes are empty: nothing is marked.
    params = _Params(
        vary_over(local, chunked(inputs, 0)), vary_over(local, weight), vary_over(local, bias),
        vary_over(local, class_weights), vary_over(replicated, label_smoothing),
        vary_over(replicated, z_loss),
    )
    chunk_labels = _Labels(
        # Padding tokens hold no label: position −1 matches no class.
        chunked(position, -1),
        None if label_weights is None else chunked(label_weights, 0),
    )

    if reduction == "none":
        loss = _per_token(spec)(params, chunk_labels, class_total)
        loss = jnp.where(valid, unchunked(loss), jnp.nan)
        return finish(loss, keep, sample_weights, reduction)

    w = jnp.ones(example_shape, dtype) if sample_weights is None else sample_weights.astype(dtype)
    w = jnp.where(keep, w, 0)
    if reduction == "mean":
        d = w if label_weights is None else w * label_weights
        count = jnp.sum(d)
        # Nothing counts: every row factor is 0, so the mean is exactly 0 with zero gradient.
        w = w / jnp.where(count == 0, 1, count)

    return _fused_sum(spec)(
        params, vary_over(replicated, chunked(w, 0)), chunk_labels, class_total,
        chunked(keep, False), chunked(valid, True),
    )


@loss_function
def linear_softmax_cross_entropy(
    inputs: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
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
    r"""Softmax cross-entropy of a linear layer's logits, computed without storing the logits.

    With logits $z = x W^\top + b$ (soft-capped to $\kappa \tanh(z/\kappa)$ when
    ``logit_softcap`` $=\kappa$ is set), $q = \mathrm{softmax}(z)$ over the $V$ classes,
    smoothing $\varepsilon$, class weights $c$ and z-loss coefficient $\zeta$, the loss of a
    token with label $y$ is

    $$
    \ell = (1-\varepsilon)\, c_y\,(-\log q_y) + \frac{\varepsilon}{V} \sum_k c_k (-\log q_k)
         + \zeta \,(\log \textstyle\sum_k e^{z_k})^2 ,
    $$

    the same value and the same gradients with respect to ``inputs``, ``weight`` and ``bias``
    as ``softmax_cross_entropy(inputs @ weight.T + bias, labels, ...)``, with the same
    reduction rule: ``"mean"`` is $\sum_i s_i \ell_i / \sum_i s_i c_{y_i}$ over the tokens
    that are not masked or ignored (torch's weighted mean), ``"sum"`` is
    $\sum_i s_i \ell_i$, ``"none"`` returns $s_i \ell_i$, with $s$ the sample ``weights``.
    When nothing counts the mean is 0 with zero gradient.

    How: tokens are processed in chunks by a ``lax.scan`` under a ``jax.custom_vjp``, so only
    a ``(chunk_size, V)`` block of logits exists at a time. For ``"mean"`` and ``"sum"`` the
    gradients are computed in the forward pass and scaled in the backward pass; for
    ``"none"`` the forward pass saves each token's log-sum-exp and the backward pass
    recomputes the logits. Logits, log-sum-exp and the weight gradient accumulate in
    float32 for float16 and bfloat16 inputs (float64 for float64). Forward-mode
    differentiation (``jax.jvp``, ``jax.jacfwd``) is not supported; ``jax.grad``,
    ``jax.vjp``, ``jax.jit`` and ``jax.vmap`` are. ``logit_softcap`` and ``chunk_size`` are
    compile-time constants; ``label_smoothing``, ``z_loss`` and ``class_weights`` may be
    arrays and are differentiable.

    Masking: tokens masked by ``where`` are replaced by zeros before the matrix product, so
    NaN or inf there never reaches the value or any gradient. An ignored token contributes
    0 and exactly zero gradient when its inputs are finite. A label outside ``[0, V)`` that
    is not ``ignore_index`` makes that token's loss NaN (reported with ``checks=True``
    under ``jax.experimental.checkify``).

    Args:
      inputs: hidden states, shape ``(..., D)``, floating.
      weight: the output projection, shape ``(V, D)``, the dtype of ``inputs``.
      labels: integer class indices, shape ``inputs.shape[:-1]``.
      bias: the output bias, shape ``(V,)``, the dtype of ``inputs``.
      class_weights: weights of shape ``(V,)`` (torch's ``weight``).
      ignore_index: integer label whose tokens do not count.
      label_smoothing: $\varepsilon \in [0, 1]$.
      z_loss: $\zeta \ge 0$, the coefficient of the squared log-partition penalty.
      logit_softcap: $\kappa > 0$, a Python number, or None for no soft-capping.
      chunk_size: tokens per chunk on each device, a Python int; by default chosen from
        ``V`` so that a chunk holds about $2^{24}$ logits. With ``inputs`` split along their
        first axis over explicit mesh axes, each device chunks its own tokens.
      where: boolean mask broadcastable to ``inputs.shape[:-1]``; False tokens do not count.
      weights: per-token sample weights, broadcastable to ``inputs.shape[:-1]``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      checks: report invalid labels under ``jax.experimental.checkify``.

    Returns:
      Shape ``inputs.shape[:-1]`` for ``"none"``, else a scalar; float32 for half-precision
      and float32 inputs, float64 for float64 inputs.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> inputs = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
      >>> weight = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]])
      >>> labels = jnp.array([0, 1, 2])
      >>> fused = jaxloss.linear_softmax_cross_entropy(inputs, weight, labels, chunk_size=2)
      >>> naive = jaxloss.softmax_cross_entropy(inputs @ weight.T, labels)
      >>> bool(jnp.allclose(fused, naive))
      True
      >>> grad = jax.grad(jaxloss.linear_softmax_cross_entropy, argnums=1)(inputs, weight, labels)
      >>> grad.shape
      (3, 2)

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", 2024,
      arXiv:2411.09009.
      Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training", 2024,
      arXiv:2410.10989.
      Gemma Team, "Gemma 2: Improving Open Language Models at a Practical Size", 2024
      (logit soft-capping).
    """
    return linear_loss(
        inputs, weight, labels, bias=bias, class_weights=class_weights,
        ignore_index=ignore_index, label_smoothing=label_smoothing, z_loss=z_loss,
        logit_softcap=logit_softcap, chunk_size=chunk_size, where=where, weights=weights,
        reduction=reduction, checks=checks,
    )
