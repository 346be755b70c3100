"""Input validation: trace-time errors that teach, and opt-in value checks under checkify."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.sharding import AxisType

REDUCTIONS = ("none", "sum", "mean")


def _describe(x: Any) -> str:
    return f"shape {tuple(np.shape(x))} and dtype {jnp.result_type(x)}"


def as_floating(name: str, x: Any) -> jax.Array:
    """``x`` as an array, which must hold floating-point values."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must be a floating-point array (float16, bfloat16, float32 or float64); "
            f"received dtype {x.dtype}. Cast it, e.g. {name}.astype(jnp.float32)."
        )
    return x


def as_labels(name: str, x: Any) -> tuple[jax.Array, bool]:
    """``x`` as an array of labels; returns it and whether it holds class indices."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.unsignedinteger):
        # Compared with a negative ignore_index, unsigned labels would wrap it (−100 is 156 in
        # uint8) and silently ignore an out-of-range label 156. In int32 the comparison is
        # exact; labels beyond its range are clipped to its maximum, which is still invalid.
        if x.dtype.itemsize >= 4:
            x = jnp.minimum(x, jnp.asarray(np.iinfo(np.int32).max, x.dtype))
        x = x.astype(jnp.int32)
    if jnp.issubdtype(x.dtype, jnp.integer):
        return x, True
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x, False
    raise TypeError(
        f"{name} must be an integer array of class indices or a floating array of target "
        f"probabilities; received dtype {x.dtype}. Cast it, e.g. {name}.astype(jnp.int32)."
    )


def as_index_labels(name: str, x: Any) -> jax.Array:
    """``x`` as an integer array of class indices."""
    x, is_index = as_labels(name, x)
    if not is_index:
        raise TypeError(
            f"{name} must be an integer array of class indices; received dtype {x.dtype}. "
            "For one-hot targets pass their argmax, e.g. jnp.argmax(onehot, axis=-1)."
        )
    return x


def reduction(value: Any) -> str:
    """Validates the ``reduction`` option."""
    if value not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {REDUCTIONS}; received {value!r}."
        )
    return value


def one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """Validates a string option."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; received {value!r}.")
    return value


def axis(value: Any, ndim: int, name: str = "predictions") -> int:
    """Normalises ``axis`` for an input of rank ``ndim``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"axis must be an int; received {value!r}.")
    if not -ndim <= value < ndim:
        raise ValueError(
            f"axis must be in [-{ndim}, {ndim}) for {name} of rank {ndim}; received {value}."
        )
    return int(value) % ndim


def same_shape(name_a: str, a: jax.Array, name_b: str, b: jax.Array) -> None:
    """Raises unless ``a`` and ``b`` have the same shape (no silent broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b} must have the shape of {name_a}, {a.shape}; received {b.shape}. "
            "jaxloss does not broadcast predictions against targets: broadcast explicitly "
            "with jnp.broadcast_to if that is what you mean."
        )


def label_shape(
    labels_name: str,
    labels: jax.Array,
    is_index: bool,
    pred_name: str,
    predictions: jax.Array,
    ax: int,
) -> None:
    """Index labels have the predictions' shape without ``axis``; distributions its shape."""
    if is_index:
        expected = predictions.shape[:ax] + predictions.shape[ax + 1 :]
        form = "integer class indices: the shape of " + pred_name + " without axis"
    else:
        expected = predictions.shape
        form = "floating target probabilities: the shape of " + pred_name
    if labels.shape != expected:
        raise ValueError(
            f"{labels_name} ({form}) must have shape {expected} for {pred_name} of shape "
            f"{predictions.shape} with axis={ax}; received {labels.shape}."
        )


def explicit_axes(x: jax.Array, ax: int) -> tuple[str, ...]:
    """The explicit mesh axes that split axis ``ax`` of ``x`` (automatic and shard_map's
    manual axes are not in its type, so they never count)."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    spec = getattr(sharding, "spec", None)
    if spec is None or ax >= len(spec) or spec[ax] is None:
        return ()
    mesh = sharding.mesh
    types = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))
    names = spec[ax] if isinstance(spec[ax], tuple) else (spec[ax],)
    return tuple(n for n in names if types.get(n) == AxisType.Explicit)


def whole_class_axis(
    name: str, x: jax.Array, ax: int,
    alternative: str = "jaxloss.vocab_parallel_softmax_cross_entropy",
) -> None:
    """Raises if the class axis ``ax`` of ``x`` is sharded over explicit mesh axes.

    A loss that picks each example's label entry along the class axis (a gather) cannot do
    so on a sharded class axis without gathering the classes, which explicit sharding leaves
    to the user; JAX would raise a ShardingTypeError from deep inside the loss. The error
    suggests ``alternative``, the loss that works on the sharded classes in ``shard_map``.
    """
    if not explicit_axes(x, ax):
        return
    spec = jax.typeof(x).sharding.spec
    entries = list(spec) + [None] * (x.ndim - len(spec))
    entries[ax] = None
    replicated = "P(" + ", ".join(repr(e) for e in entries) + ")"
    raise ValueError(
        f"{name} must have its class axis (axis {ax}) whole on each device; received it "
        f"sharded over the mesh axis {spec[ax]!r} (sharding spec {spec}). Reshard it to "
        f"replicate the class axis, e.g. jax.sharding.reshard({name}, {replicated}), or, for "
        f"a vocabulary too large to gather, use {alternative} inside jax.shard_map."
    )


def broadcastable(name: str, x: jax.Array, shape: tuple[int, ...]) -> None:
    """Raises unless ``x`` broadcasts to ``shape`` without changing it."""
    try:
        ok = np.broadcast_shapes(x.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must broadcast to the per-example shape {tuple(shape)}; "
            f"received shape {x.shape}."
        )


def nonnegative(name: str, value: Any) -> None:
    """Raises if a concrete hyperparameter is negative (traced values are not checked)."""
    if isinstance(value, (int, float)) and value < 0:
        raise ValueError(f"{name} must be >= 0; received {value}.")


def in_unit_interval(name: str, value: Any) -> None:
    """Raises if a concrete hyperparameter is outside [0, 1]."""
    if isinstance(value, (int, float)) and not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1]; received {value}.")


def value_check(enabled: bool, ok: jax.Array, message: str, values: jax.Array) -> None:
    """Reports the first value where ``ok`` fails, under ``checkify``, when ``enabled``.

    With ``enabled=False`` nothing is added to the computation, so the jaxpr has no effects
    and ``jit`` keeps its fast dispatch path. ``debug_check`` is a no-op outside checkify.
    """
    if not isinstance(enabled, bool):
        raise TypeError(
            f"checks must be a Python bool (it decides at trace time whether checks are added); "
            f"received {enabled!r}."
        )
    if not enabled:
        return
    # Broadcast before flattening: flattening first would pair an (n, m) ``values`` with an
    # (n·m,) ``ok`` and fail to broadcast for every input of rank 2 or more.
    shape = np.broadcast_shapes(values.shape, ok.shape)
    ok = jnp.ravel(jnp.broadcast_to(ok, shape))
    values = jnp.ravel(jnp.broadcast_to(values, shape))
    checkify.debug_check(jnp.all(ok), message + " (first offending value: {bad})",
                         bad=values[jnp.argmin(ok)])


def hyperparameter(value: Any, dtype: Any, name: str = "hyperparameters") -> Any:
    """A Python number stays a (weakly typed) constant; an array is cast to ``dtype``."""
    if isinstance(value, (int, float)):
        return value
    value = jnp.asarray(value)
    if value.ndim != 0:
        raise ValueError(
            f"{name} must be a scalar (a Python number or a 0-d array); "
            f"received shape {value.shape}."
        )
    return value.astype(dtype)
