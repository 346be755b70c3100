"""Runs losses in jaxloss and in PyTorch on the same inputs and compares values and gradients.

Both sides get the same seeded inputs in the same dtype. For ``reduction="none"`` the
gradient is that of Σ c·ℓ for a random cotangent c, so every per-example gradient is checked.
All the variants of one call (reductions, say) run on the jaxloss side as a single jitted
computation, so the suite compiles few programs and stays quick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# pytest imports this module too (--doctest-modules), so it skips without torch like the tests.
torch = pytest.importorskip(
    "torch", reason="PyTorch is a test-only dependency of the parity suite and is not installed"
)

TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}

Variant = tuple[Callable[..., Any], Callable[..., Any]]


def _cast(value: Any, dtype) -> np.ndarray:
    value = np.asarray(value)
    return value.astype(dtype) if value.dtype.kind == "f" else value


def _torch_side(torch_fn, arrays, grad, dtype, seed):
    tensors = {
        k: torch.tensor(v, dtype=TORCH_DTYPE[dtype] if v.dtype.kind == "f" else None,
                        requires_grad=k in grad)
        for k, v in arrays.items()
    }
    out = torch_fn(**tensors)
    cotangent = np.random.default_rng(seed).uniform(0.5, 1.5, size=tuple(out.shape))
    cotangent = cotangent.astype(dtype)
    (out * torch.tensor(cotangent, dtype=out.dtype)).sum().backward()
    return out.detach().numpy(), [tensors[k].grad.numpy() for k in grad], cotangent


def check(
    variants: Variant | Sequence[Variant],
    inputs: dict[str, Any],
    grad: tuple[str, ...],
    dtype=np.float64,
    *,
    seed: int = 0,
) -> None:
    """Asserts, for each ``(jax_fn, torch_fn)``, that ``jax_fn(**inputs)`` equals
    ``torch_fn(**inputs)`` in value and in the gradient of each input named in ``grad``.
    """
    if callable(variants[0]) and not isinstance(variants[0], tuple):
        variants = [variants]
    tol = TOLERANCE[dtype]
    arrays = {k: _cast(v, dtype) for k, v in inputs.items()}
    expected = [_torch_side(t, arrays, grad, dtype, seed + i) for i, (_, t) in enumerate(variants)]

    @jax.jit
    def jax_side(*diff):
        results = []
        for (jax_fn, _), (_, _, cotangent) in zip(variants, expected, strict=True):
            def loss(*d, jax_fn=jax_fn):
                return jax_fn(**{**arrays, **dict(zip(grad, d, strict=True))})

            out, pullback = jax.vjp(loss, *diff)
            results.append((out, pullback(jnp.asarray(cotangent, out.dtype))))
        return results

    got = jax_side(*(arrays[k] for k in grad))
    for i, ((value, grads), (e_value, e_grads, _)) in enumerate(zip(got, expected, strict=True)):
        assert value.shape == e_value.shape, (i, value.shape, e_value.shape)
        np.testing.assert_allclose(value, e_value, rtol=tol, atol=tol, err_msg=f"variant {i}")
        for name, g, e in zip(grad, grads, e_grads, strict=True):
            np.testing.assert_allclose(g, e, rtol=tol, atol=tol,
                                       err_msg=f"variant {i}: gradient of {name}")
