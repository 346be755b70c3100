"""Helpers for losses that run inside ``jax.shard_map`` with the vocabulary split over an axis."""

from __future__ import annotations

from typing import Any

import jax

AxisName = str | tuple[str, ...]


def axis_names(axis_name: Any) -> tuple[str, ...]:
    """``axis_name`` as a tuple of mesh axis names; raises unless it is a name or names."""
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(
            "axis_name must be a mesh axis name (a str) or a tuple of them; "
            f"received {axis_name!r}."
        )
    return names


def shard_count(axis_name: Any, loss: str, layout: str) -> int:
    """The number of vocabulary shards: the size of the bound mesh axis (or axes).

    ``loss`` and ``layout`` (how the vocabulary is laid out over the axis) go into the error
    raised when the axis is not bound, that is, outside ``shard_map``.
    """
    axis_names(axis_name)
    try:
        return jax.lax.axis_size(axis_name)
    except NameError as e:
        raise ValueError(
            f"axis_name={axis_name!r} is not bound: call {loss} inside jax.shard_map over a "
            f"mesh with that axis, with {layout}."
        ) from e


def varying_axes(x: jax.Array) -> frozenset[str]:
    """The manual mesh axes over which ``x`` differs between devices (empty without check_vma)."""
    aval = jax.typeof(x)
    mat = getattr(aval, "mat", None)
    return frozenset(mat.varying) if mat is not None else frozenset(getattr(aval, "vma", ()))


def vary_over(axes: frozenset[str], x: jax.Array | None) -> jax.Array | None:
    """Marks ``x`` as varying over ``axes``, so custom_vjp cotangents match the primal types.

    The transpose of this marking is a ``psum`` over the axes that it adds: a cotangent that
    each device computes from its own shard is summed where the primal was replicated.
    """
    if x is None:
        return None
    missing = tuple(sorted(axes - varying_axes(x)))
    return jax.lax.pcast(x, missing, to="varying") if missing else x


def tracks_variance(axis_name: AxisName) -> bool:
    """Whether shard_map tracks which values vary across devices (its ``check_vma=True``).

    ``axis_index`` always varies over its axis when shard_map tracks variance.
    """
    names = axis_names(axis_name)
    return set(names) <= varying_axes(jax.lax.axis_index(axis_name))
