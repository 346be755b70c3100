"""Relative error of log_cosh in float32, jaxloss against optax, at errors from 1e-4 to 10.

The reference is float64: the Taylor series x²/2 − x⁴/12 + x⁶/45 below 1e-2 (its next term is
below 1e-16 relative there) and numpy's log(cosh(x)) above. This is what jaxloss's log_cosh
pays for in speed at 16M float32 elements (see benchmarks/README.md).

    python benchmarks/log_cosh_precision.py
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxloss

ERRORS = [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]


def reference(e: np.ndarray) -> np.ndarray:
    x = np.abs(e.astype(np.float64))
    return np.where(x < 1e-2, x**2 / 2 - x**4 / 12 + x**6 / 45, np.log(np.cosh(x)))


def main() -> list[dict[str, float]]:
    import optax

    e = np.asarray(ERRORS, np.float32)
    zeros = jnp.zeros(e.shape, jnp.float32)
    exact = reference(e)
    ours = np.asarray(jaxloss.log_cosh(jnp.asarray(e), zeros, reduction="none"), np.float64)
    theirs = np.asarray(optax.losses.log_cosh(jnp.asarray(e), zeros), np.float64)
    rows = []
    print("| error | log cosh (float64) | jaxloss relative error | optax relative error |")
    print("|---|---|---|---|")
    for x, r, a, b in zip(e, exact, ours, theirs, strict=True):
        rows.append({"error": float(x), "exact": float(r), "jaxloss": abs(a - r) / r,
                     "optax": abs(b - r) / r})
        print(f"| {x:g} | {r:.6g} | {abs(a - r) / r:.1e} | {abs(b - r) / r:.1e} |")
    return rows


if __name__ == "__main__":
    main()
