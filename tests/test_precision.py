"""Mixed precision, for every public loss (driven by tests/safety_cases.py).

bfloat16 and float16 inputs must give the float32 loss of the same (rounded) values to 1e-3
relative, because log-sum-exp and reductions accumulate in float32; the loss comes back in
float32 and each gradient in its input's own dtype, within that dtype's rounding of the
float32 gradient. float64 inputs compute and return float64.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safety_cases import (
    REGISTRY,
    build,
    combos,
    differentiable,
    edges,
    function,
    lookup,
    takes_ignore_index,
)

import jaxloss

HALF = (jnp.bfloat16, jnp.float16)
ROWS = 256  # enough examples that a reduction accumulated in half precision would show


def _floating(a) -> bool:
    return np.issubdtype(np.asarray(a).dtype, np.floating) or a.dtype == jnp.bfloat16


@functools.cache
def _evaluate(name, variant_name, form_name, diff):
    """jit(args, where, weights) -> (per-example loss, mean, grads of the mean)."""
    _, variant, _ = lookup(name, variant_name, form_name)
    fn = function(name)

    def run(args, where, weights):
        def mean(*d):
            a = list(args)
            for i, x in zip(diff, d, strict=True):
                a[i] = x
            return fn(*a, where=where, weights=weights, **variant.options)

        none = fn(*args, where=where, weights=weights, reduction="none", **variant.options)
        value, grads = jax.value_and_grad(mean, tuple(range(len(diff))))(
            *[args[i] for i in diff]
        )
        return none, value, grads

    return jax.jit(run)


def _cases(name, variant_name, form_name):
    """The finite edge cases of a combination, with ROWS examples, as float64 numpy arrays."""
    entry, variant, form = lookup(name, variant_name, form_name)
    takes_ignore = takes_ignore_index(getattr(jaxloss, name))
    for edge in edges(entry, form, takes_ignore):
        case = build(name, entry, variant, form, edge, takes_ignore, rows=ROWS)
        if case.expect == "finite":
            yield edge, case


def _cast(case, dtype):
    def cast(a):
        if np.issubdtype(a.dtype, np.floating):
            return jnp.asarray(a, dtype=jnp.float64).astype(dtype)
        if np.issubdtype(a.dtype, np.integer):
            return jnp.asarray(a, dtype=jnp.int32)
        return jnp.asarray(a)

    return tuple(cast(a) for a in case.args), cast(case.where), cast(case.weights)


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize(("name", "variant", "form"), combos())
def test_half_precision_matches_float32_on_the_same_values(name, variant, form, dtype):
    entry = REGISTRY[name]
    finfo = jnp.finfo(dtype)
    for edge, case in _cases(name, variant, form):
        diff = differentiable(entry, case.args)
        run = _evaluate(name, variant, form, diff)
        half = _cast(case, dtype)
        # The float32 reference sees exactly the rounded values that the half run sees.
        same = jax.tree.map(lambda x: x.astype(jnp.float32) if _floating(x) else x, half)
        none_h, mean_h, grads_h = run(*half)
        none_32, mean_32, grads_32 = run(*same)
        what = f"{name}[{variant}] {form}/{edge} in {finfo.dtype}"
        assert none_h.dtype == mean_h.dtype == jnp.float32, what + f": loss in {mean_h.dtype}"
        np.testing.assert_allclose(none_h, none_32, rtol=1e-3, atol=1e-6, err_msg=what)
        np.testing.assert_allclose(mean_h, mean_32, rtol=1e-3, atol=1e-6, err_msg=what)
        for i, g_h, g_32 in zip(diff, grads_h, grads_32, strict=True):
            assert g_h.dtype == dtype, what + f": gradient of argument {i} in {g_h.dtype}"
            # One unit in the last place of the half type, relative; and its smallest
            # subnormal in absolute terms, where the gradient underflows. The reference is
            # the float32 gradient rounded to the half type: beyond its range (65504 for
            # float16) that rounding, like the half gradient, is inf.
            np.testing.assert_allclose(
                np.asarray(g_h, np.float64), np.asarray(g_32.astype(dtype), np.float64),
                rtol=float(finfo.eps), atol=float(finfo.smallest_subnormal),
                err_msg=what + f": gradient of argument {i}",
            )


def _dtypes(name, variant, form, args, where, weights, diff):
    """Dtypes of (per-example loss, mean, gradients), by tracing only: nothing is compiled."""
    run = _evaluate(name, variant, form, diff)
    shapes = jax.eval_shape(run, args, where, weights)
    return jax.tree.map(lambda s: s.dtype, shapes)


@pytest.mark.parametrize(("name", "variant", "form"), combos())
def test_float64_inputs_compute_in_float64(name, variant, form):
    entry, variant_, form_ = lookup(name, variant, form)
    case = build(name, entry, variant_, form_, "base", takes_ignore_index(getattr(jaxloss, name)))
    diff = differentiable(entry, case.args)
    none, mean, grads = _dtypes(name, variant, form, *_cast(case, jnp.float64), diff)
    assert none == mean == jnp.float64
    assert all(g == jnp.float64 for g in grads)


def _two_floating():
    for name, variant, form in combos():
        entry, variant_, form_ = lookup(name, variant, form)
        case = build(name, entry, variant_, form_, "base", False)
        if len(differentiable(entry, case.args)) == 2:
            yield name, variant, form


@pytest.mark.parametrize(
    ("first", "second", "result"),
    [(jnp.bfloat16, jnp.float32, jnp.float32), (jnp.float16, jnp.float64, jnp.float64)],
    ids=["bf16+f32", "f16+f64"],
)
@pytest.mark.parametrize(("name", "variant", "form"), list(_two_floating()))
def test_mixed_input_dtypes(name, variant, form, first, second, result):
    """The loss is in the promoted dtype (and at least float32); each gradient in its input's."""
    entry, variant_, form_ = lookup(name, variant, form)
    case = build(name, entry, variant_, form_, "base", False)
    diff = differentiable(entry, case.args)
    args, where, weights = _cast(case, jnp.float32)
    args = tuple(
        a.astype(first) if i == diff[0] else a.astype(second) if i == diff[1] else a
        for i, a in enumerate(args)
    )
    none, mean, grads = _dtypes(name, variant, form, args, where, weights, diff)
    assert none == mean == result
    assert tuple(grads) == (jnp.dtype(first), jnp.dtype(second))


def test_bfloat16_mean_is_not_quantised():
    """A mean of many bfloat16 values, accumulated in bfloat16, would be off by far more.

    Reference: the float64 mean of the same rounded values (numpy).
    """
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0.0, 1.0, 100_000), dtype=jnp.float32).astype(jnp.bfloat16)
    zero = jnp.zeros_like(x)
    got = float(jaxloss.squared_error(x, zero))
    want = float(np.mean(np.square(np.asarray(x, np.float64))))
    assert abs(got - want) <= 1e-6 * want
    # The failure this guards against: the same mean computed in bfloat16 throughout.
    quantised = float(jnp.mean(jnp.square(x), dtype=jnp.bfloat16))
    assert abs(quantised - want) > 1e-3 * want
