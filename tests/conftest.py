"""Test configuration: float64 available, strict dtype promotion, no implicit rank promotion.

Strict promotion and ``rank_promotion="raise"`` make sloppy broadcasting or mixed dtypes in
the library fail loudly here instead of silently computing in the wrong precision or shape.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
