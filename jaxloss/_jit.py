"""The decorator that turns a loss into one compiled computation with trace-time options."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

F = TypeVar("F", bound=Callable[..., Any])

_STATIC_TYPES = (type(None), bool, int, float, str)


def _is_static(value: Any) -> bool:
    if isinstance(value, _STATIC_TYPES):
        return True
    return isinstance(value, tuple) and all(_is_static(v) for v in value)


def loss_function(fn: F) -> F:
    """Compile ``fn`` with ``jax.jit``, treating Python scalars and strings as static.

    Arrays (and tracers) are traced; ``None``, ``bool``, ``int``, ``float``, ``str`` and tuples
    of them are static, so options are validated at trace time and a hyperparameter given as
    a Python number is a compile-time constant, while one given as an array stays traced (it
    can be scheduled or differentiated without recompiling). An eager call therefore runs one
    compiled computation, and a repeated call with the same shapes and options hits the cache.
    """

    def traced(static: tuple[tuple[str, type, Any], ...], dynamic: dict[str, Any]) -> jax.Array:
        return fn(**dynamic, **{name: value for name, _, value in static})

    # Named after the loss so that compile logs and profiles say which loss they are about
    # (functools.wraps would also copy fn's signature, which jax.jit would then inspect).
    traced.__name__ = traced.__qualname__ = fn.__name__
    compiled = jax.jit(traced, static_argnums=0)
    positional = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD
    ]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> jax.Array:
        if len(args) > len(positional):
            raise TypeError(
                f"{fn.__name__}() takes {len(positional)} positional arguments "
                f"({', '.join(positional)}) but {len(args)} were given; "
                "options are keyword-only"
            )
        for name, value in zip(positional, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{fn.__name__}() got multiple values for argument {name!r}")
            kwargs[name] = value
        static, dynamic = [], {}
        for name, value in kwargs.items():
            if _is_static(value):
                # The type is part of the key so that 1, 1.0 and True never share a trace.
                static.append((name, type(value), value))
            elif isinstance(value, (list, tuple)):
                dynamic[name] = jnp.asarray(value)
            else:
                dynamic[name] = value
        return compiled(tuple(sorted(static, key=lambda item: item[0])), dynamic)

    return wrapper  # type: ignore[return-value]
