"""Property-based fuzzing: random shapes, dtypes, axes, options and masks against invariants.

Invariants: KL >= 0, CE >= H and CE = KL + H (also with label smoothing, against the smoothed
target, and with z-loss, against scipy's logsumexp); JS symmetric, between 0 and log 2 (log 2
for disjoint supports) and equal to scipy's rel_entr form; the reduction rule (sum of "none" =
"sum", mean x total weight = sum, 0 when nothing counts, masked entries 0) for every loss in
the registry; and identical predictions and targets give the optimal value.

Profiles: the default (``jaxloss-fuzz``) is derandomised and small enough for every test run;
``HYPOTHESIS_PROFILE=nightly`` runs many more random examples.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safety_cases import REGISTRY, Form, build, combos, function, lookup, takes_ignore_index
from scipy.special import logsumexp, rel_entr

import jaxloss

settings.register_profile(
    "jaxloss-fuzz",
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly",
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Applied per test, so that other modules' hypothesis settings are left alone.
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "jaxloss-fuzz"))

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


def _tolerance(dtype, *magnitudes):
    """Rounding budget of a sum of a few terms: a multiple of eps times their magnitude."""
    eps = float(jnp.finfo(dtype).eps)
    return 64 * eps * (1 + sum(np.abs(m) for m in magnitudes))


# ---------------------------------------------------------------------------------------
# Cross-entropy, KL and entropy.


@st.composite
def distributions(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    classes = draw(st.integers(1, 6))
    axis = draw(st.integers(-ndim, ndim - 1))
    return {
        "shape": shape,
        "classes": classes,
        "axis": axis,
        "dtype": draw(st.sampled_from(sorted(DTYPES))),
        "scale": draw(st.sampled_from([0.1, 1.0, 10.0, 30.0])),
        "zeros": draw(st.floats(0.0, 0.6)),
        "neg_inf": draw(st.booleans()),
        "masked": draw(st.sampled_from(["none", "some", "all"])),
        "label_smoothing": draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0])),
        "z_loss": draw(st.sampled_from([0.0, 1e-3])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@functools.partial(jax.jit, static_argnames=("axis", "label_smoothing", "z_loss"))
def _divergences(logits, targets, smoothed, where, *, axis, label_smoothing, z_loss):
    ce = jaxloss.softmax_cross_entropy(
        logits, targets, axis=axis, where=where, reduction="none",
        label_smoothing=label_smoothing, z_loss=z_loss,
    )
    kl = jaxloss.kl_divergence(logits, smoothed, axis=axis, where=where, reduction="none")
    h = jaxloss.entropy(smoothed, axis=axis, where=where, reduction="none")
    grads = jax.grad(
        lambda z, p: jaxloss.kl_divergence(z, p, axis=axis, where=where), argnums=(0, 1)
    )(logits, smoothed)
    return ce, kl, h, grads


@FUZZ
@given(distributions())
def test_cross_entropy_is_kl_plus_entropy(spec):
    rng = np.random.default_rng(spec["seed"])
    batch, classes, dtype = spec["shape"][:-1], spec["classes"], DTYPES[spec["dtype"]]
    logits = rng.normal(0.0, spec["scale"], batch + (classes,))
    targets = rng.dirichlet(np.ones(classes), batch).reshape(batch + (classes,))
    # Exact zeros, never on a row's largest probability (a row stays a distribution).
    zero = rng.uniform(size=targets.shape) < spec["zeros"]
    zero &= targets < targets.max(-1, keepdims=True)
    targets = np.where(zero, 0.0, targets)
    targets /= targets.sum(-1, keepdims=True)
    eps = spec["label_smoothing"]
    if spec["neg_inf"] and eps == 0:
        # -inf logits only on classes the target does not use: the loss stays finite.
        logits = np.where(zero, -np.inf, logits)
    # Round to the dtype first, so that the numpy references see the library's inputs.
    logits = np.asarray(jnp.asarray(logits, dtype), np.float64)
    targets = np.asarray(jnp.asarray(targets, dtype), np.float64)
    smoothed = (1 - eps) * targets + eps / classes
    smoothed = np.asarray(jnp.asarray(smoothed, dtype), np.float64)
    where = {
        "none": np.ones(batch, bool),
        "some": rng.uniform(size=batch) < 0.5,
        "all": np.zeros(batch, bool),
    }[spec["masked"]]

    axis = spec["axis"] % len(spec["shape"])
    move = functools.partial(np.moveaxis, source=-1, destination=axis)
    ce, kl, h, grads = _divergences(
        jnp.asarray(move(logits), dtype), jnp.asarray(move(targets), dtype),
        jnp.asarray(move(smoothed), dtype), jnp.asarray(where),
        axis=spec["axis"], label_smoothing=eps, z_loss=spec["z_loss"],
    )
    ce, kl, h = (np.asarray(x, np.float64) for x in (ce, kl, h))
    # z-loss reference: scipy's log-sum-exp of the same logits.
    z = np.where(where, spec["z_loss"] * np.square(logsumexp(logits, axis=-1)), 0.0)
    tol = _tolerance(dtype, ce, kl, h)
    assert np.all(kl >= -tol), kl
    assert np.all(ce - z >= h - tol), (ce, h)
    np.testing.assert_allclose(ce, kl + h + z, rtol=0, atol=tol.max())
    assert np.all(ce[~where] == 0) and np.all(kl[~where] == 0) and np.all(h[~where] == 0)
    for g in grads:
        assert np.isfinite(np.asarray(g, np.float64)).all()


# ---------------------------------------------------------------------------------------
# Jensen-Shannon: symmetric and bounded by log 2.


@functools.partial(jax.jit, static_argnames=("axis",))
def _js_both_ways(log_p, log_q, p, q, where, *, axis):
    pq = jaxloss.js_divergence(log_q, p, axis=axis, where=where, reduction="none")
    qp = jaxloss.js_divergence(log_p, q, axis=axis, where=where, reduction="none")
    grads = jax.grad(
        lambda z, t: jaxloss.js_divergence(z, t, axis=axis, where=where), argnums=(0, 1)
    )(log_q, p)
    return pq, qp, grads


def _with_zeros(rng, p, fraction):
    """Exact zeros, never on a row's largest probability (a row stays a distribution)."""
    zero = (rng.uniform(size=p.shape) < fraction) & (p < p.max(-1, keepdims=True))
    p = np.where(zero, 0.0, p)
    return p / p.sum(-1, keepdims=True)


@FUZZ
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    classes=st.integers(1, 6),
    axis_draw=st.integers(0, 2),
    dtype=st.sampled_from(sorted(DTYPES)),
    zeros=st.floats(0.0, 0.6),
    disjoint=st.booleans(),
    masked=st.sampled_from(["none", "some", "all"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_js_divergence_is_symmetric_and_at_most_log_2(
    shape, classes, axis_draw, dtype, zeros, disjoint, masked, seed
):
    """JS(p, q) = JS(q, p), 0 <= JS <= log 2, with log 2 exactly for disjoint supports.

    Reference: scipy.special.rel_entr, JS = (rel_entr(p, m) + rel_entr(q, m)) / 2 summed over
    the classes, m = (p + q) / 2.
    """
    rng = np.random.default_rng(seed)
    batch, dtype = shape[:-1], DTYPES[dtype]
    p = _with_zeros(rng, rng.dirichlet(np.ones(classes), batch), zeros)
    q = _with_zeros(rng, rng.dirichlet(np.ones(classes), batch), zeros)
    disjoint = disjoint and classes >= 2
    if disjoint:
        # Class 0 belongs to p, class 1 to q, the others to one of them at random.
        side = rng.uniform(size=p.shape) < 0.5
        side[..., 0], side[..., 1] = True, False
        p, q = np.where(side, p + 0.1, 0.0), np.where(side, 0.0, q + 0.1)
        p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    # Round to the dtype first, so that the references see the library's inputs.
    p = np.asarray(jnp.asarray(p, dtype), np.float64)
    q = np.asarray(jnp.asarray(q, dtype), np.float64)
    with np.errstate(divide="ignore"):
        log_p, log_q = np.log(p), np.log(q)
    where = {
        "none": np.ones(batch, bool),
        "some": rng.uniform(size=batch) < 0.5,
        "all": np.zeros(batch, bool),
    }[masked]

    axis = axis_draw % len(shape)
    move = functools.partial(np.moveaxis, source=-1, destination=axis)
    pq, qp, grads = _js_both_ways(
        *(jnp.asarray(move(a), dtype) for a in (log_p, log_q, p, q)), jnp.asarray(where),
        axis=axis,
    )
    pq, qp = np.asarray(pq, np.float64), np.asarray(qp, np.float64)
    # softmax(log q) is q renormalised after rounding: the reference uses the same q.
    q_ref = q / q.sum(-1, keepdims=True)
    m = (p + q_ref) / 2
    want = np.where(where, 0.5 * np.sum(rel_entr(p, m) + rel_entr(q_ref, m), axis=-1), 0.0)
    tol = _tolerance(dtype, np.log(2))
    np.testing.assert_allclose(pq, want, rtol=0, atol=tol)
    np.testing.assert_allclose(pq, qp, rtol=0, atol=tol)
    assert np.all(pq >= -tol) and np.all(pq <= np.log(2) + tol), pq
    if disjoint:
        np.testing.assert_allclose(pq[where], np.log(2), rtol=0, atol=tol)
    assert np.all(pq[~where] == 0) and np.all(qp[~where] == 0)
    for g in grads:
        assert np.isfinite(np.asarray(g, np.float64)).all()


# ---------------------------------------------------------------------------------------
# The reduction rule, for every loss in the registry.


def _reduction_combos():
    """Every registry combination whose mean denominator is the total sample weight.

    (With class weights, the denominator also holds each label's class weight.)
    """
    return [c for c in combos() if "class_weights" not in lookup(*c)[1].options]


def _shape_inputs(form: Form, args, batch, axis):
    """Reshape the rows of ``args`` into ``batch`` and move each class axis to ``axis``."""
    out = []
    for i, a in enumerate(args):
        a = a.reshape(batch + a.shape[1:])
        if i in form.class_args:
            a = np.moveaxis(a, -1, axis)
        out.append(a)
    return tuple(out)


@functools.cache
def _reductions(name, variant_name, axis):
    """jit(args, where, weights) -> the "none", "sum" and "mean" reductions of one loss."""
    _, variant, _ = lookup(name, variant_name, REGISTRY[name].forms[0].name)
    fn = function(name)
    options = dict(variant.options) if axis is None else {**variant.options, "axis": axis}

    def run(args, where, weights):
        return tuple(
            fn(*args, where=where, weights=weights, reduction=r, **options)
            for r in ("none", "sum", "mean")
        )

    return jax.jit(run)


@FUZZ
@given(
    combo=st.sampled_from(_reduction_combos()),
    batch=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
    width=st.integers(1, 5),
    axis_draw=st.integers(0, 2),
    dtype=st.sampled_from(sorted(DTYPES)),
    masked=st.sampled_from(["none", "some", "all"]),
    weighted=st.sampled_from(["none", "positive", "with zeros"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_reductions_are_consistent(combo, batch, width, axis_draw, dtype, masked, weighted, seed):
    name, variant, form_name = combo
    entry, variant_, form = lookup(name, variant, form_name)
    rows = int(np.prod(batch))
    case = build(name, entry, variant_, form, "base", takes_ignore_index(getattr(jaxloss, name)),
                 rows=rows, width=width)
    rng = np.random.default_rng(seed)
    example = batch if form.class_args else batch + (width,)
    # A loss without an axis option (its classes last) keeps the class axis last.
    takes_axis = "axis" in inspect.signature(getattr(jaxloss, name)).parameters
    axis = axis_draw % (len(batch) + 1) if takes_axis else len(batch)
    dtype = DTYPES[dtype]
    args = tuple(
        jnp.asarray(a, dtype) if np.issubdtype(a.dtype, np.floating) else jnp.asarray(a)
        for a in _shape_inputs(form, case.args, batch, axis)
    )
    where = {
        "none": np.ones(example, bool),
        "some": rng.uniform(size=example) < 0.5,
        "all": np.zeros(example, bool),
    }[masked]
    weights = {
        "none": np.ones(example),
        "positive": rng.uniform(0.1, 3.0, example),
        "with zeros": np.where(
            rng.uniform(size=example) < 0.5, 0.0, rng.uniform(0.1, 3.0, example)
        ),
    }[weighted]
    run = _reductions(name, variant, axis if form.class_args and takes_axis else None)
    none, total, mean = (
        np.asarray(x, np.float64)
        for x in run(args, jnp.asarray(where), jnp.asarray(weights, dtype))
    )
    weights = np.asarray(jnp.asarray(weights, dtype), np.float64)
    count = np.sum(np.where(where, weights, 0.0))
    tol = _tolerance(dtype, np.abs(none).sum())
    assert none.shape == example
    assert np.all(none[~where] == 0)
    assert abs(none.sum() - total) <= tol
    if count == 0:
        assert total == 0 and mean == 0
    else:
        assert abs(mean * count - total) <= tol * (1 + count)


# ---------------------------------------------------------------------------------------
# Identical predictions and targets are optimal.


def _optimum_combos():
    return [
        c for c in combos()
        if REGISTRY[c[0]].optimum is not None
        and lookup(*c)[1].identical_is_optimal
        and lookup(*c)[2].identical is not None
    ]


@FUZZ
@given(
    combo=st.sampled_from(_optimum_combos()),
    rows=st.integers(1, 6),
    width=st.integers(2, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_identical_predictions_and_targets_are_optimal(combo, rows, width, seed):
    name, variant, form_name = combo
    entry, variant_, form = lookup(name, variant, form_name)
    fn = function(name)
    # Targets with exact zeros where the form has such a case (log 0 = -inf logits).
    edge = "zero_probs" if "zero_probs" in form.edges else "base"
    # Built without the variant's adapt (log-targets, say), which is applied after identical.
    plain = dataclasses.replace(variant_, adapt=None)
    case = build(name, entry, plain, form, edge, False, rows=rows, width=width)
    rng = np.random.default_rng(seed)
    # Predictions identical to the targets, against predictions drawn anew.
    identical = form.identical(case.args)
    others = [form.make(rng, rows, width)[:1] + identical[1:] for _ in range(3)]
    if variant_.adapt is not None:
        identical = variant_.adapt(identical)
        others = [variant_.adapt(o) for o in others]

    def none(args):
        return np.asarray(
            fn(*(jnp.asarray(a) for a in args), reduction="none", **variant_.options), np.float64
        )

    best = none(identical)
    assert np.isfinite(best).all()
    for other in others:
        value = none(other)
        tol = _tolerance(jnp.float64, best, value)
        if entry.optimum == "min":
            assert np.all(best <= value + tol), (best, value)
        else:
            assert np.all(best >= value - tol), (best, value)
