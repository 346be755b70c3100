"""The safety matrix: every public name x every edge case that applies x every transform.

Pass means no NaN anywhere the mathematics is finite; where it is infinite (a label on a
-inf class) the documented +inf, with the other examples still finite in value and in every
derivative. Masked rows hold NaN and +-inf and must not reach any output; when nothing counts
the loss and all its derivatives are exactly 0. The cells come from tests/safety_cases.py,
which must have an entry for every name in ``jaxloss.__all__``.

All transforms are compiled as one ``jax.jit`` computation per name, variant and form, which
every edge case of that form reuses (they share shapes and structure), so the matrix costs one
compilation per form rather than one per cell and transform. When that computation cannot be
traced (forward mode through a custom_vjp), the transforms that fail to trace alone are left
out of it, and only their own cells fail, with their error.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safety_cases import (
    POISON,
    REGISTRY,
    TRANSFORMS,
    Case,
    build,
    differentiable,
    edges,
    function,
    lookup,
    takes_ignore_index,
)

import jaxloss

# The transforms computed under one jit (the value is computed eagerly).
TRACED = ("jit", "grad", "jacfwd", "hessian", "vmap")
MISSING = "missing"


def _takes_ignore_index(name: str) -> bool:
    return takes_ignore_index(getattr(jaxloss, name))


def _cells():
    for name in sorted(jaxloss.__all__):
        entry = REGISTRY.get(name)
        if entry is None:
            yield pytest.param(name, MISSING, MISSING, MISSING, MISSING, id=f"{name}-MISSING")
            continue
        for variant in entry.variants:
            for form in entry.forms:
                for edge in edges(entry, form, _takes_ignore_index(name)):
                    for transform in TRANSFORMS:
                        reason = entry.xfail.get((variant.name, form.name, edge, transform))
                        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                        yield pytest.param(
                            name, variant.name, form.name, edge, transform, marks=marks,
                            id=f"{name}-{variant.name}-{form.name}-{edge}-{transform}",
                        )


def _as_jax(a: np.ndarray | None) -> jax.Array | None:
    if a is None:
        return None
    if np.issubdtype(a.dtype, np.floating):
        return jnp.asarray(a, dtype=jnp.float32)
    if np.issubdtype(a.dtype, np.integer):
        return jnp.asarray(a, dtype=jnp.int32)
    return jnp.asarray(a)


@functools.cache
def _compiled(name: str, variant_name: str, form_name: str, diff: tuple[int, ...]):
    """(call, transforms) for one name, variant and form, shared by all its edges.

    The transforms differentiate with respect to the positional arrays ``diff`` and then the
    variant's traced options, in that order.
    """
    _, variant, _ = lookup(name, variant_name, form_name)
    fn = function(name)
    static = {k: v for k, v in variant.options.items() if k not in variant.traced}
    argnums = tuple(range(len(diff) + len(variant.traced)))

    def call(args, where, weights, reduction, d=None):
        traced = {k: jnp.asarray(variant.options[k], jnp.float32) for k in variant.traced}
        if d is not None:
            args = list(args)
            for i, x in zip(diff, d[: len(diff)], strict=True):
                args[i] = x
            traced = dict(zip(variant.traced, d[len(diff) :], strict=True))
        return fn(*args, where=where, weights=weights, reduction=reduction, **static, **traced)

    def transforms(args, where, weights, which):
        d = [args[i] for i in diff] + [
            jnp.asarray(variant.options[k], jnp.float32) for k in variant.traced
        ]

        def mean(*d):
            return call(args, where, weights, "mean", d)

        def none(*d):
            return call(args, where, weights, "none", d)

        def per_copy(a, w, s):
            grads = jax.grad(lambda *d: call(a, w, s, "mean", d), argnums)(
                *[a[i] for i in diff], *d[len(diff) :]
            )
            return call(a, w, s, "none"), grads

        stacked = jax.tree.map(lambda x: jnp.stack([x, x]), (args, where, weights))
        each = {
            "jit": lambda: tuple(call(args, where, weights, r) for r in ("none", "mean", "sum")),
            "grad": lambda: jax.grad(mean, argnums)(*d),
            "jacfwd": lambda: jax.jacfwd(none, argnums)(*d),
            "hessian": lambda: jax.hessian(mean, argnums)(*d),
            "vmap": lambda: jax.vmap(per_copy)(*stacked),
        }
        return {t: each[t]() for t in which}

    jitted = jax.jit(transforms, static_argnums=3)
    untraceable: dict[str, Exception] = {}

    def run(args, where, weights):
        """Every transform's result or, for one that cannot be traced, its error."""
        which = tuple(t for t in TRACED if t not in untraceable)
        try:
            return {**jitted(args, where, weights, which), **untraceable}
        except Exception:
            if untraceable:
                raise
            # Found once per form by tracing each transform alone: one that fails (forward
            # mode through a custom_vjp) fails only its own cells; the others compile together.
            for t in TRACED:
                try:
                    jax.eval_shape(lambda *a, t=t: transforms(*a, (t,)), args, where, weights)
                except Exception as error:
                    untraceable[t] = error
            if not untraceable:
                raise
        return run(args, where, weights)

    return call, run


@functools.cache
def _outcome(name: str, variant_name: str, form_name: str, edge: str):
    """(case, ndims, eager, traced, clean): every transform of one cell, computed once.

    ``ndims``: the rank of each argument that derivatives are taken with respect to (0 for
    a traced option).
    """
    entry, variant, form = lookup(name, variant_name, form_name)
    case = build(name, entry, variant, form, edge, _takes_ignore_index(name))
    args = tuple(_as_jax(a) for a in case.args)
    where, weights = _as_jax(case.where), _as_jax(case.weights)
    diff = differentiable(entry, case.args)
    call, transforms = _compiled(name, variant_name, form_name, diff)
    eager = tuple(call(args, where, weights, r) for r in ("none", "mean", "sum"))
    traced = transforms(args, where, weights)
    clean = None
    if case.clean is not None:
        clean_args = tuple(_as_jax(a) for a in case.clean)
        clean = tuple(call(clean_args, where, weights, r) for r in ("none", "mean", "sum"))
    to_np = functools.partial(
        jax.tree.map,
        lambda x: x if isinstance(x, Exception) else np.asarray(x, dtype=np.float64),
    )
    ndims = [case.args[i].ndim for i in diff] + [0] * len(variant.traced)
    return case, ndims, to_np(eager), to_np(traced), None if clean is None else to_np(clean)


def _assert_finite(x, what: str) -> None:
    for leaf in jax.tree.leaves(x):
        bad = ~np.isfinite(leaf)
        assert not bad.any(), f"{what}: {bad.sum()} non-finite entries, e.g. {leaf[bad][:4]}"


def _assert_zero(x, what: str) -> None:
    for leaf in jax.tree.leaves(x):
        assert np.all(leaf == 0), f"{what}: expected exactly 0, got {leaf[leaf != 0][:4]}"


def _rows(leaf: np.ndarray, rows, axes) -> np.ndarray:
    """The entries of ``leaf`` whose index along every axis in ``axes`` is in ``rows``."""
    for ax in axes:
        leaf = np.take(leaf, list(rows), axis=ax)
    return leaf


def _check_value(case: Case, values, clean, what: str) -> None:
    none, mean, total = values
    if case.expect == "zero":
        _assert_zero(values, what)
    elif case.expect == "inf":
        rows = case.inf_rows
        others = [i for i in range(none.shape[0]) if i not in rows]
        assert np.all(np.isposinf(_rows(none, rows, [0]))), f"{what}: {none} not +inf at {rows}"
        _assert_finite(_rows(none, others, [0]), what + " (other examples)")
        assert np.isposinf(mean) and np.isposinf(total), f"{what}: mean {mean}, sum {total}"
    else:
        _assert_finite(values, what)
        if case.expect == "masked":
            np.testing.assert_allclose(none, clean[0], rtol=1e-6, err_msg=what)
            np.testing.assert_allclose(mean, clean[1], rtol=1e-6, err_msg=what)


def _check_derivative(case: Case, leaves, row_axes, what: str) -> None:
    """``leaves``: derivatives with the example (row) axes of each leaf in ``row_axes``.

    For an infinite case, the derivatives of the other examples (rows along the first of
    the axes) must be finite; for a masked case, every row axis is zero at masked rows.
    """
    for leaf, axes in zip(leaves, row_axes, strict=True):
        if case.expect == "zero":
            _assert_zero(leaf, what)
        elif case.expect == "inf":
            if not axes:
                continue  # the derivative of an infinite mean in an option: not defined
            others = [i for i in range(leaf.shape[axes[0]]) if i not in case.inf_rows]
            _assert_finite(_rows(leaf, others, axes[:1]), what + " (other examples)")
        else:
            _assert_finite(leaf, what)
            if case.expect == "masked":
                for ax in axes:
                    masked = np.take(leaf, list(POISON), axis=ax)
                    assert np.all(masked == 0), f"{what}: masked rows get gradient {masked}"


@pytest.mark.parametrize(("name", "variant", "form", "edge", "transform"), list(_cells()))
def test_safety(name, variant, form, edge, transform):
    if variant == MISSING:
        pytest.fail(
            f"jaxloss.{name} has no entry in tests/safety_cases.py REGISTRY: add one that "
            "names its input forms (see the module docstring) so the safety matrix covers it."
        )
    case, ndims, eager, traced, clean = _outcome(name, variant, form, edge)
    what = f"{name}[{variant}] {form}/{edge} {transform}"
    for needed in {"vmap": ("vmap", "grad")}.get(transform, (transform,)):
        if isinstance(traced.get(needed), Exception):
            raise traced[needed]
    # The example (row) axis of each derivative: axis 0 of an argument, none for an option.
    rows = [(0,) if n else () for n in ndims]
    if transform == "value":
        _check_value(case, eager, clean, what)
    elif transform == "jit":
        _check_value(case, traced["jit"], clean, what)
        for got, want in zip(traced["jit"], eager, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=what + ": jit != eager")
    elif transform == "grad":
        _check_derivative(case, traced["grad"], rows, what)
    elif transform == "jacfwd":
        # d none_i / d x: the example axis of the output is 0; of the input, after the output's.
        axes = [(0,) + tuple(eager[0].ndim + a for a in r) for r in rows]
        _check_derivative(case, traced["jacfwd"], axes, what)
    elif transform == "hessian":
        blocks = [b for row in traced["hessian"] for b in row]
        axes = [ra + tuple(ndims[a] + x for x in rb) for a, ra in enumerate(rows) for rb in rows]
        _check_derivative(case, blocks, axes, what)
    elif transform == "vmap":
        none, grads = traced["vmap"]
        for copy in range(2):
            np.testing.assert_allclose(none[copy], eager[0], rtol=1e-5, err_msg=what)
            for got, want in zip(grads, traced["grad"], strict=True):
                np.testing.assert_allclose(got[copy], want, rtol=1e-5, atol=1e-7, err_msg=what)
        _check_derivative(case, [g[0] for g in grads], rows, what)


def test_registry_covers_every_public_name():
    missing = sorted(set(jaxloss.__all__) - set(REGISTRY))
    assert not missing, (
        f"public names without a safety entry: {missing}. Add each to REGISTRY in "
        "tests/safety_cases.py (its input forms and differentiable arguments)."
    )
    stale = sorted(set(REGISTRY) - set(jaxloss.__all__))
    assert not stale, f"REGISTRY names that are not public: {stale}; remove them."


def test_xfail_keys_name_real_cells():
    """An expected failure must point at a cell that exists, or it would silently rot."""
    for name, entry in REGISTRY.items():
        for variant, form, edge, transform in entry.xfail:
            forms = {f.name: f for f in entry.forms}
            assert variant in {v.name for v in entry.variants}, (name, variant)
            assert form in forms, (name, form)
            assert edge in edges(entry, forms[form], _takes_ignore_index(name)), (name, edge)
            assert transform in TRANSFORMS, (name, transform)


def test_poisson_zero_count_at_zero_rate_is_zero():
    """A zero count at rate 0 (log-rate -inf) has probability 1: its NLL is 0, not NaN.

    Reference: scipy.stats.poisson.logpmf(0, 0) = 0, and logpmf(2, 1) = 2 log 1 - 1 - log 2!
    for the finite neighbour (log t! is dropped with full=False).
    """
    from scipy import stats
    from scipy.special import gammaln

    log_rate = jnp.array([-jnp.inf, 0.0])
    counts = jnp.array([0.0, 2.0])
    want = -stats.poisson.logpmf([0, 2], [0.0, 1.0]) - gammaln(np.array([1.0, 3.0]))
    got = jaxloss.poisson_nll_loss(log_rate, counts, reduction="none")
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    grads = jax.grad(jaxloss.poisson_nll_loss, argnums=(0, 1))(log_rate, counts)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads), grads
