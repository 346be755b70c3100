"""The safety registry: for every public name of jaxloss, how to build its inputs and which
edge cases apply.

The safety matrix (tests/test_safety.py), the precision tests (tests/test_precision.py), the
error tests (tests/test_errors.py) and the fuzz tests (tests/test_fuzz.py) are all driven by
``REGISTRY``, and a public name without an entry here fails tests/test_safety.py. Adding a
loss is usually one entry that names the input forms it accepts:

    "log_cosh": Entry(forms=(REGRESSION,), differentiable=(0, 1)),

A *form* is a kind of input (logits with index labels, probabilities with a target
distribution, real predictions with real targets, ...). It knows how to draw seeded inputs,
which edge cases apply to such inputs and how to break them (an invalid label for the
``checks`` tests). Edge cases that need a particular loss (a zero variance, a zero rate)
go in the entry's ``extra_edges``; a case whose mathematics is different for one loss (a
metric is finite where a loss is infinite) is adjusted by the entry's ``expect``. A case
that a loss cannot meet is listed in ``xfail`` with its reason, and in docs/numerics.md.
A loss whose signature no form fits (a linear layer in front of the logits, a loss that only
runs inside ``shard_map``) gets a ``function``: an adapter from a form's inputs to the loss,
which every consumer calls (through ``function(name)``) instead of the public name.

Inputs are float64 numpy arrays with examples along axis 0; the tests cast them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

import jaxloss

ROWS, CLASSES, WIDTH = 4, 5, 3
IGNORE_INDEX = -100  # the default of every loss that takes ignore_index
# Rows that the masked edge cases fill with NaN, +inf and -inf; the last row stays clean.
POISON = {0: np.nan, 1: np.inf, 2: -np.inf}

Args = tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class Case:
    """Inputs of one edge case and what the mathematics says about them.

    ``expect``: ``"finite"`` (every value and derivative is finite), ``"zero"`` (nothing
    counts: values and derivatives are exactly 0), ``"inf"`` (the examples ``inf_rows`` have
    loss +inf, every other example stays finite with finite derivatives) or ``"masked"``
    (rows masked by ``where`` hold NaN/inf: the result equals the one on ``clean`` inputs and
    masked rows get exactly zero gradient).
    """

    args: Args
    where: np.ndarray | None = None
    weights: np.ndarray | None = None
    expect: str = "finite"
    inf_rows: tuple[int, ...] = ()
    clean: Args | None = None


Edge = Callable[[Args, np.random.Generator], Case]


@dataclasses.dataclass(frozen=True)
class Form:
    """One kind of input: how to draw it, its edge cases, and how to make it invalid.

    ``make(rng, rows, width)`` returns the positional arrays, examples along axis 0 and (for
    class forms) classes along the last axis of the ``class_args``. ``invalid(args)`` puts
    one invalid value into row 1 and returns the new args and that value; ``check_message``
    is a fragment of the ``checks=True`` error. ``identical(args)`` returns args whose
    prediction matches the target exactly.
    """

    name: str
    make: Callable[[np.random.Generator, int, int], Args]
    edges: Mapping[str, Edge]
    class_args: tuple[int, ...] = ()
    index_labels: int | None = None
    invalid: Callable[[Args], tuple[Args, Any]] | None = None
    check_message: str | None = None
    identical: Callable[[Args], Args] | None = None


@dataclasses.dataclass(frozen=True)
class Variant:
    """A set of options under which the whole matrix is run again.

    ``adapt`` rewrites the form's inputs for these options (log-targets, say); ``expect``
    adjusts edge cases whose mathematics the options change. ``traced`` names options that
    are passed as 0-d arrays (so they are traced, not static) and differentiated too.
    ``has_invalid`` is False when
    the options make every value valid (any real number is a log-probability);
    ``identical_is_optimal`` is False when the options move the optimum away from a
    prediction identical to the target (label smoothing).
    """

    name: str = "default"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    adapt: Callable[[Args], Args] | None = None
    expect: Mapping[str, Callable[[Case], Case]] = dataclasses.field(default_factory=dict)
    has_invalid: bool = True
    identical_is_optimal: bool = True
    traced: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Entry:
    """How the safety suite drives one public name.

    ``differentiable``: positions of the positional arrays that gradients are taken with
    respect to (those that are integer in a form are skipped). ``optimum``: whether the value
    at identical predictions and targets is the minimum (``"min"``), the maximum (``"max"``,
    for accuracy) or not defined (``None``). ``takes_checks``: False only for names that are
    not losses. ``xfail`` maps (variant, form, edge, transform) to the reason that case fails.
    ``function``: an adapter called as ``function(*form_args, **options)`` in place of the
    public name (None: the public name itself); it must pass trace-time errors through unchanged.
    """

    forms: tuple[Form, ...]
    differentiable: tuple[int, ...]
    variants: tuple[Variant, ...] = (Variant(),)
    expect: Mapping[str, Callable[[Case], Case]] = dataclasses.field(default_factory=dict)
    extra_edges: Mapping[str, Edge] = dataclasses.field(default_factory=dict)
    optimum: str | None = "min"
    takes_checks: bool = True
    xfail: Mapping[tuple[str, str, str, str], str] = dataclasses.field(default_factory=dict)
    function: Callable[..., Any] | None = None


# ---------------------------------------------------------------------------------------
# Building blocks.


def _log(p: np.ndarray) -> np.ndarray:
    """log with log 0 = -inf, without numpy's warning."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(p)


def _dirichlet(rng: np.random.Generator, rows: int, width: int) -> np.ndarray:
    return rng.dirichlet(np.ones(width), rows)


def _zero_some(rng: np.random.Generator, p: np.ndarray, keep: np.ndarray | None = None):
    """Sets up to two classes per row to exactly 0 (never ``keep``) and renormalises."""
    p = p.copy()
    for i in range(p.shape[0]):
        choices = [c for c in range(p.shape[1]) if keep is None or c != keep[i]]
        if len(choices) > 1:
            zeros = rng.choice(choices, size=min(2, len(choices) - 1), replace=False)
            p[i, zeros] = 0.0
    return p / p.sum(axis=1, keepdims=True)


def _one_hot(rng: np.random.Generator, rows: int, width: int) -> np.ndarray:
    return np.eye(width)[rng.integers(0, width, rows)]


def _pm_1e4(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return 1e4 * rng.choice([-1.0, 1.0], size=shape)


def _neginf_unused(rng: np.random.Generator, logits: np.ndarray, used: np.ndarray):
    """-inf on two classes per row where ``used`` (a boolean rows x classes array) is False."""
    logits = logits.copy()
    for i in range(logits.shape[0]):
        unused = np.flatnonzero(~used[i])
        logits[i, rng.choice(unused, size=min(2, len(unused)), replace=False)] = -np.inf
    return logits


def _finite(case: Case) -> Case:
    """For metrics: an argmax does not become infinite."""
    return dataclasses.replace(case, expect="finite", inf_rows=())


def _every_row_inf(case: Case) -> Case:
    """Label smoothing puts mass on every class, so any -inf logit makes that row +inf."""
    rows = tuple(i for i in range(case.args[0].shape[0]) if np.isneginf(case.args[0][i]).any())
    return dataclasses.replace(case, expect="inf", inf_rows=rows)


# ---------------------------------------------------------------------------------------
# Forms.


def _logits_index_make(rng, rows, width):
    return rng.normal(0.0, 2.0, (rows, width)), rng.integers(0, width, rows)


def _logits_index_neginf(args, rng):
    logits, labels = args
    used = np.eye(logits.shape[1], dtype=bool)[labels]
    return Case((_neginf_unused(rng, logits, used), labels))


def _logits_index_label_on_neginf(args, rng):
    logits, labels = _logits_index_neginf(args, rng).args
    logits[1, labels[1]] = -np.inf
    return Case((logits, labels), expect="inf", inf_rows=(1,))


def _index_invalid(args):
    labels = args[1].copy()
    labels[1] = args[0].shape[1]
    return (args[0], labels), int(labels[1])


def _index_identical(args):
    # log of the one-hot target: 0 on the label, -inf elsewhere.
    hot = np.eye(args[0].shape[1], dtype=bool)[args[1]]
    return np.where(hot, 0.0, -np.inf), args[1]


LOGITS_INDEX = Form(
    name="logits_index",
    make=_logits_index_make,
    edges={
        "base": lambda a, rng: Case(a),
        "logits_1e4": lambda a, rng: Case((_pm_1e4(rng, a[0].shape), a[1])),
        "neginf_unused": _logits_index_neginf,
        "label_on_neginf": _logits_index_label_on_neginf,
    },
    class_args=(0,),
    index_labels=1,
    invalid=_index_invalid,
    check_message="class indices",
    identical=_index_identical,
)


def _logits_dist_make(rng, rows, width):
    return rng.normal(0.0, 2.0, (rows, width)), _dirichlet(rng, rows, width)


def _logits_dist_neginf(args, rng):
    logits, targets = args
    targets = _zero_some(rng, targets)
    return Case((_neginf_unused(rng, logits, targets > 0), targets))


def _logits_dist_on_neginf(args, rng):
    logits, targets = _logits_dist_neginf(args, rng).args
    logits[1, np.argmax(targets[1])] = -np.inf
    return Case((logits, targets), expect="inf", inf_rows=(1,))


def _dist_invalid(args):
    targets = args[1].copy()
    targets[1, 0] = -0.25
    return (args[0], targets), -0.25


LOGITS_DIST = Form(
    name="logits_dist",
    make=_logits_dist_make,
    edges={
        "base": lambda a, rng: Case(a),
        "logits_1e4": lambda a, rng: Case((_pm_1e4(rng, a[0].shape), a[1])),
        "zero_probs": lambda a, rng: Case((a[0], _zero_some(rng, a[1]))),
        "one_hot": lambda a, rng: Case((a[0], _one_hot(rng, *a[1].shape))),
        "neginf_unused": _logits_dist_neginf,
        "label_on_neginf": _logits_dist_on_neginf,
    },
    class_args=(0, 1),
    invalid=_dist_invalid,
    check_message="probabilities >= 0",
    identical=lambda a: (_log(a[1]), a[1]),
)


PROBS_INDEX = Form(
    name="probs_index",
    make=lambda rng, rows, width: (_dirichlet(rng, rows, width), rng.integers(0, width, rows)),
    edges={
        "base": lambda a, rng: Case(a),
        "zero_probs": lambda a, rng: Case((_zero_some(rng, a[0]), a[1])),
        "one_hot": lambda a, rng: Case((_one_hot(rng, *a[0].shape), a[1])),
    },
    class_args=(0,),
    index_labels=1,
    invalid=_index_invalid,
    check_message="class indices",
    identical=lambda a: (np.eye(a[0].shape[1])[a[1]], a[1]),
)


PROBS_DIST = Form(
    name="probs_dist",
    make=lambda rng, rows, width: (_dirichlet(rng, rows, width), _dirichlet(rng, rows, width)),
    edges={
        "base": lambda a, rng: Case(a),
        "zero_probs": lambda a, rng: Case((_zero_some(rng, a[0]), _zero_some(rng, a[1]))),
        "one_hot": lambda a, rng: Case(
            (_one_hot(rng, *a[0].shape), _one_hot(rng, *a[1].shape))
        ),
    },
    class_args=(0, 1),
    invalid=_dist_invalid,
    check_message="probabilities >= 0",
    identical=lambda a: (a[1], a[1]),
)


def _probs_invalid(args):
    probs = args[0].copy()
    probs[1, 0] = -0.25
    return (probs,), -0.25


PROBS = Form(
    name="probs",
    make=lambda rng, rows, width: (_dirichlet(rng, rows, width),),
    edges={
        "base": lambda a, rng: Case(a),
        "zero_probs": lambda a, rng: Case((_zero_some(rng, a[0]),)),
        "one_hot": lambda a, rng: Case((_one_hot(rng, *a[0].shape),)),
    },
    class_args=(0,),
    invalid=_probs_invalid,
    check_message=">= 0",
)


REGRESSION = Form(
    name="regression",
    make=lambda rng, rows, width: (
        rng.normal(0.0, 1.0, (rows, width)),
        rng.normal(0.0, 1.0, (rows, width)),
    ),
    edges={
        "base": lambda a, rng: Case(a),
        "large": lambda a, rng: Case((_pm_1e4(rng, a[0].shape), _pm_1e4(rng, a[1].shape))),
        # A zero residual: where an absolute value, a kink or a norm of p - t sits.
        "equal": lambda a, rng: Case((a[1].copy(), a[1])),
        # Zero-norm vectors: where a norm of p or of t appears.
        "zeros": lambda a, rng: Case((np.zeros_like(a[0]), np.zeros_like(a[1]))),
    },
    identical=lambda a: (a[1].copy(), a[1]),
)


def _signed_labels(rng, shape):
    return rng.choice([-1.0, 1.0], size=shape)


def _signed_inf_disagree(args, rng):
    scores, labels = args
    scores = scores.copy()
    scores[1] = -np.inf * labels[1]
    return Case((scores, labels), expect="inf", inf_rows=(1,))


def _signed_invalid(args):
    labels = args[1].copy()
    labels[1, 0] = 0.0
    return (args[0], labels), 0.0


SIGNED = Form(
    name="signed",
    make=lambda rng, rows, width: (
        rng.normal(0.0, 2.0, (rows, width)),
        _signed_labels(rng, (rows, width)),
    ),
    edges={
        "base": lambda a, rng: Case(a),
        "scores_1e4": lambda a, rng: Case((_pm_1e4(rng, a[0].shape), a[1])),
        # y·s exactly at the default margin of 1: the kink of the hinge.
        "at_margin": lambda a, rng: Case((a[1].copy(), a[1])),
        "scores_inf_agree": lambda a, rng: Case((np.inf * a[1], a[1])),
        "scores_inf_disagree": _signed_inf_disagree,
    },
    invalid=_signed_invalid,
    check_message="-1 or +1",
    identical=lambda a: (a[1].copy(), a[1]),
)


VALUES = Form(
    name="values",
    make=lambda rng, rows, width: (rng.normal(0.0, 1.0, (rows, width)),),
    edges={
        "base": lambda a, rng: Case(a),
        "large": lambda a, rng: Case((_pm_1e4(rng, a[0].shape),)),
    },
)


# Binary forms: each element is its own 0/1 problem.


def _binary_labels(rng, shape):
    return rng.integers(0, 2, shape)


def _binary_inf_agree(args, rng):
    """Logits of +inf on label 1 and -inf on label 0: the loss is exactly 0."""
    return Case((np.where(args[1] == 1, np.inf, -np.inf), args[1]))


def _binary_inf_disagree(args, rng):
    """Row 1 has every logit infinite on the wrong side: +inf there, the rest finite."""
    logits = args[0].copy()
    logits[1] = np.where(args[1][1] == 1, -np.inf, np.inf)
    return Case((logits, args[1]), expect="inf", inf_rows=(1,))


def _binary_invalid(args):
    labels = args[1].copy()
    labels[1, 0] = 2
    return (args[0], labels), 2


BINARY_LOGITS = Form(
    name="binary_logits",
    make=lambda rng, rows, width: (
        rng.normal(0.0, 2.0, (rows, width)),
        _binary_labels(rng, (rows, width)),
    ),
    edges={
        "base": lambda a, rng: Case(a),
        "logits_1e4": lambda a, rng: Case((_pm_1e4(rng, a[0].shape), a[1])),
        "logits_inf_agree": _binary_inf_agree,
        "logits_inf_disagree": _binary_inf_disagree,
    },
    # 0/1 labels are integers: the masked rows get a far out-of-range label as poison.
    index_labels=1,
    invalid=_binary_invalid,
    check_message="labels must be 0 or 1",
    identical=lambda a: (np.where(a[1] == 1, np.inf, -np.inf), a[1]),
)


def _probs_exact(args, rng):
    """Probabilities of exactly 0 and 1, on the right side in row 0 and the wrong one in 1."""
    probs = args[1].astype(float)
    probs[1] = 1.0 - probs[1]
    return Case((probs, args[1]))


BINARY_PROBS = Form(
    name="binary_probs",
    make=lambda rng, rows, width: (
        rng.uniform(0.05, 0.95, (rows, width)),
        _binary_labels(rng, (rows, width)),
    ),
    edges={
        "base": lambda a, rng: Case(a),
        # Exact 0 and 1 probabilities: the clamp at log = -100 keeps the wrong side finite.
        "probs_0_1": _probs_exact,
    },
    index_labels=1,
    invalid=_binary_invalid,
    check_message="labels must be 0 or 1",
    identical=lambda a: (a[1].astype(float), a[1]),
)


def _pair_inf_agree(args, rng):
    a, b, labels = args
    return Case((np.inf * labels, b, labels))


def _pair_inf_disagree(args, rng):
    a, b, labels = args
    a = a.copy()
    a[1] = -np.inf * labels[1]
    return Case((a, b, labels), expect="inf", inf_rows=(1,))


def _pair_invalid(args):
    labels = args[2].copy()
    labels[1, 0] = 0.0
    return (args[0], args[1], labels), 0.0


PAIR = Form(
    name="pair",
    make=lambda rng, rows, width: (
        rng.normal(0.0, 2.0, (rows, width)),
        rng.normal(0.0, 2.0, (rows, width)),
        _signed_labels(rng, (rows, width)),
    ),
    edges={
        "base": lambda a, rng: Case(a),
        "scores_1e4": lambda a, rng: Case((_pm_1e4(rng, a[0].shape), a[1], a[2])),
        # a = b: y·(a - b) = 0 sits on the kink of the default margin 0.
        "tied": lambda a, rng: Case((a[1].copy(), a[1], a[2])),
        "scores_inf_agree": _pair_inf_agree,
        "scores_inf_disagree": _pair_inf_disagree,
    },
    invalid=_pair_invalid,
    check_message="-1 or +1",
)


def _measure_make(rng, rows, width):
    # Unnormalised: the target masses do not sum to 1.
    return rng.normal(0.0, 1.0, (rows, width)), rng.exponential(1.0, (rows, width))


def _measure_zeros(args, rng):
    log_y, t = args
    return Case((log_y, _zero_some(rng, t) * t.sum(axis=1, keepdims=True)))


def _measure_neginf(args, rng):
    """A zero predicted mass (log -inf) where the target is zero: finite."""
    log_y, t = _measure_zeros(args, rng).args
    return Case((_neginf_unused(rng, log_y, t > 0), t))


def _measure_on_neginf(args, rng):
    log_y, t = _measure_neginf(args, rng).args
    log_y[1, np.argmax(t[1])] = -np.inf
    return Case((log_y, t), expect="inf", inf_rows=(1,))


MEASURE = Form(
    name="measure",
    make=_measure_make,
    edges={
        "base": lambda a, rng: Case(a),
        "zero_targets": _measure_zeros,
        "zero_measure": lambda a, rng: Case((a[0], np.zeros_like(a[1]))),
        "neginf_unused": _measure_neginf,
        "target_on_neginf": _measure_on_neginf,
    },
    class_args=(0, 1),
    invalid=_dist_invalid,
    check_message="targets must be >= 0",
    identical=lambda a: (_log(a[1]), a[1]),
)


def _with(a: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    a = a.copy()
    a[index] = value
    return a


GAUSSIAN = Form(
    name="gaussian",
    make=lambda rng, rows, width: (
        rng.normal(0.0, 1.0, (rows, width)),
        rng.normal(0.0, 1.0, (rows, width)),
        rng.uniform(0.5, 2.0, (rows, width)),
    ),
    edges={
        "base": lambda a, rng: Case(a),
        "large": lambda a, rng: Case((_pm_1e4(rng, a[0].shape), _pm_1e4(rng, a[1].shape), a[2])),
        "equal": lambda a, rng: Case((a[1].copy(), a[1], a[2])),
        # Zero variance: clamped at eps in the value, the gradient passes through the clamp.
        "zero_variance": lambda a, rng: Case((a[0], a[1], np.zeros_like(a[2]))),
    },
    invalid=lambda a: ((a[0], a[1], _with(a[2], (1, 0), -0.25)), -0.25),
    check_message="variance must be >= 0",
    identical=lambda a: (a[1].copy(), a[1], a[2]),
)



def _zero_rates(args, rng):
    """Rate 0 (log-rate -inf) on zero counts: 0 log 0 = 0, a finite loss."""
    log_rate, counts = args
    counts = np.where(rng.uniform(size=counts.shape) < 0.5, 0.0, counts)
    return Case((np.where(counts == 0, -np.inf, log_rate), counts))


def _count_on_zero_rate(args, rng):
    """Row 1 has positive counts at rate 0: +inf there, the rest finite."""
    log_rate, counts = _zero_rates(args, rng).args
    counts[1] = 3.0
    log_rate[1] = -np.inf
    return Case((log_rate, counts), expect="inf", inf_rows=(1,))


POISSON = Form(
    name="poisson",
    make=lambda rng, rows, width: (
        rng.normal(0.0, 1.0, (rows, width)),
        rng.poisson(2.0, (rows, width)).astype(float),
    ),
    edges={
        "base": lambda a, rng: Case(a),
        "zero_counts": lambda a, rng: Case((a[0], np.zeros_like(a[1]))),
        "zero_rates": _zero_rates,
        "count_on_zero_rate": _count_on_zero_rate,
    },
    invalid=lambda a: ((a[0], _with(a[1], (1, 0), -1.0)), -1.0),
    check_message="targets must be counts >= 0",
    # log λ = log t is the minimiser of λ - t log λ (the -inf log-rate of a zero count too).
    identical=lambda a: (_log(a[1]), a[1]),
)


FORMS = (
    LOGITS_INDEX, LOGITS_DIST, PROBS_INDEX, PROBS_DIST, PROBS, REGRESSION, SIGNED, VALUES,
    BINARY_LOGITS, BINARY_PROBS, PAIR, MEASURE, GAUSSIAN, POISSON,
)


# ---------------------------------------------------------------------------------------
# Cases every form gets.


def _mask_shape(form: Form, args: Args) -> tuple[int, ...]:
    rows = args[0].shape[0]
    return (rows,) if form.class_args else (rows, 1)


def _all_masked(form: Form) -> Edge:
    def edge(args, rng):
        shape = _mask_shape(form, args)
        return Case(
            args, where=np.zeros(shape, bool), weights=rng.uniform(0.5, 2.0, shape),
            expect="zero",
        )

    return edge


def _nan_masked(form: Form) -> Edge:
    """Rows 0-2 hold NaN, +inf and -inf (and invalid labels, and NaN weights) and are masked."""

    def edge(args, rng):
        shape = _mask_shape(form, args)
        poisoned = []
        for i, a in enumerate(args):
            a = a.copy()
            for row, value in POISON.items():
                if np.issubdtype(a.dtype, np.floating):
                    a[row] = value
                elif i == form.index_labels:
                    a[row] = 10**6  # far out of range
            poisoned.append(a)
        where = np.ones(shape, bool)
        where[list(POISON)] = False
        weights = rng.uniform(0.5, 2.0, shape)
        weights[0] = np.nan
        return Case(tuple(poisoned), where=where, weights=weights, expect="masked", clean=args)

    return edge


def _all_ignored(form: Form) -> Edge:
    def edge(args, rng):
        labels = np.full_like(args[form.index_labels], IGNORE_INDEX)
        new = tuple(labels if i == form.index_labels else a for i, a in enumerate(args))
        return Case(new, expect="zero")

    return edge


def edges(entry: Entry, form: Form, takes_ignore_index: bool) -> dict[str, Edge]:
    """Every edge case that applies to ``form`` under ``entry``, by name."""
    out = dict(form.edges)
    out.update(entry.extra_edges)
    out["all_masked"] = _all_masked(form)
    out["nan_masked"] = _nan_masked(form)
    if takes_ignore_index and form.index_labels is not None:
        out["all_ignored"] = _all_ignored(form)
    return out


def takes_ignore_index(fn: Callable[..., Any]) -> bool:
    return "ignore_index" in inspect.signature(fn).parameters


TRANSFORMS = ("value", "grad", "jacfwd", "hessian", "vmap", "jit")


def expected_failures(
    name: str, entry: Entry, reason: str, transforms: tuple[str, ...] = TRANSFORMS,
    edge_names: tuple[str, ...] | None = None, variant_names: tuple[str, ...] | None = None,
) -> dict[tuple[str, str, str, str], str]:
    """``xfail`` keys with ``reason`` for ``transforms`` on ``edge_names`` in ``variant_names``
    (None: all of them), in every form of ``entry``: for a limitation that spans many cells."""
    ignore = takes_ignore_index(getattr(jaxloss, name))
    return {
        (variant.name, form.name, edge, transform): reason
        for variant in entry.variants
        if variant_names is None or variant.name in variant_names
        for form in entry.forms
        for edge in edges(entry, form, ignore)
        if edge_names is None or edge in edge_names
        for transform in transforms
    }


# ---------------------------------------------------------------------------------------
# Adapters: losses whose signature no form fits, called on a form's inputs.


def _through_a_linear_layer(logits, labels, **options):
    """linear_softmax_cross_entropy of inputs and a weight whose product is ``logits``.

    The weight is a cyclic permutation of the classes: not symmetric, so a transposed product
    would show, and exact in every dtype (each logit is one input times 1 plus zeros), so
    finite logits come out unchanged. A -inf logit cannot: -inf * 0 is NaN in the product.
    """
    logits = jnp.asarray(logits)
    classes = logits.shape[-1]
    # weight[k, (k + 1) % C] = 1 and inputs[..., (k + 1) % C] = logits[..., k].
    weight = jnp.roll(jnp.eye(classes, dtype=logits.dtype), 1, axis=1)
    inputs = jnp.roll(logits, 1, axis=-1)
    return jaxloss.linear_softmax_cross_entropy(inputs, weight, labels, **options)


def _on_one_vocab_shard(logits, labels, **options):
    """vocab_parallel_softmax_cross_entropy inside jax.shard_map over a one-device "vocab" axis.

    The class axis (last) of the logits, of target probabilities and of class weights is
    sharded over "vocab"; index labels and every per-example or scalar array are replicated.
    """
    arrays = {k: v for k, v in options.items() if isinstance(v, (jax.Array, np.ndarray))}
    static = tuple(sorted((k, v) for k, v in options.items() if k not in arrays))
    return _vocab_sharded(static, jnp.asarray(logits), jnp.asarray(labels), arrays)


# Compiled once per set of static options, as the loss itself is (a new shard_map per call
# would be traced and compiled on every call).
@functools.partial(jax.jit, static_argnums=0)
def _vocab_sharded(static, logits, labels, arrays):
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("vocab",))
    classes = P(*[None] * (logits.ndim - 1), "vocab")
    specs = (
        classes,
        classes if labels.ndim == logits.ndim else P(),
        {k: P("vocab") if k == "class_weights" else P() for k in arrays},
    )

    def local(z, y, a):
        return jaxloss.vocab_parallel_softmax_cross_entropy(
            z, y, axis_name="vocab", **a, **dict(static)
        )

    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())(logits, labels, arrays)


def _linear_on_one_vocab_shard(logits, labels, **options):
    """vocab_parallel_linear_softmax_cross_entropy inside jax.shard_map over a one-device
    "vocab" axis, on inputs and a permutation weight whose product is ``logits`` (as in
    _through_a_linear_layer).

    The rows of the weight and the class weights are sharded over "vocab"; the inputs, the
    labels and every per-example or scalar array are replicated.
    """
    logits = jnp.asarray(logits)
    weight = jnp.roll(jnp.eye(logits.shape[-1], dtype=logits.dtype), 1, axis=1)
    arrays = {k: v for k, v in options.items() if isinstance(v, (jax.Array, np.ndarray))}
    static = tuple(sorted((k, v) for k, v in options.items() if k not in arrays))
    return _linear_vocab_sharded(
        static, jnp.roll(logits, 1, axis=-1), weight, jnp.asarray(labels), arrays
    )


@functools.partial(jax.jit, static_argnums=0)
def _linear_vocab_sharded(static, inputs, weight, labels, arrays):
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("vocab",))
    specs = (
        P(), P("vocab", None), P(),
        {k: P("vocab") if k == "class_weights" else P() for k in arrays},
    )

    def local(x, w, y, a):
        return jaxloss.vocab_parallel_linear_softmax_cross_entropy(
            x, w, y, axis_name="vocab", **a, **dict(static)
        )

    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())(
        inputs, weight, labels, arrays
    )


# ---------------------------------------------------------------------------------------
# The registry: one entry per public name of jaxloss.

def _all_rows_inf(case: Case) -> Case:
    """Binary label smoothing puts mass on both sides, so an infinite logit gives +inf."""
    return dataclasses.replace(case, expect="inf", inf_rows=tuple(range(case.args[0].shape[0])))

def _logits_1e3(args: Args, rng: np.random.Generator) -> Case:
    """Logits of +-1e3, where a naive (1 - p)^gamma has an infinite derivative for gamma < 1."""
    return Case((1e3 * rng.choice([-1.0, 1.0], size=args[0].shape), *args[1:]))

# Focal losses must be finite in value, gradient and Hessian at logits of +-1e3 for every
# gamma >= 0; sigmoid_focal_loss runs gamma 2 (the default) and 0.5 (below 1, where u^gamma
# is not differentiable at u = 0), the latter traced and differentiated.
_FOCAL_EDGES = {"logits_1e3": _logits_1e3}

_FOCAL_INF_HESSIAN = (
    "with a traced gamma and an infinite example, d/dx (d mean/d gamma) is NaN for every "
    "example: forward mode through the infinite example's (1 - p_t)^gamma * CE forms 0 * inf, "
    "and the sum over the batch carries it to the others (docs/numerics.md)"
)


_METRIC_EXPECT = {"label_on_neginf": _finite}
# The margin as an array: traced, and differentiated like the scores.
_ARRAY_MARGIN = (Variant(), Variant("array_margin", {"margin": 1.0}, traced=("margin",)))
# Cross-entropy, plain and with every option (the option arrays traced and differentiated).
_CROSS_ENTROPY = (
    Variant(),
    Variant(
        "smoothed",
        {
            "label_smoothing": 0.1,
            "z_loss": 1e-4,
            "class_weights": np.array([0.5, 1.0, 2.0, 1.0, 0.25]),
        },
        expect={"neginf_unused": _every_row_inf, "label_on_neginf": _every_row_inf},
        # The optimum is the smoothed target, not the target itself.
        identical_is_optimal=False,
        traced=("label_smoothing", "z_loss"),
    ),
)
_FORWARD_MODE = (
    "forward mode (jax.jvp, so jax.jacfwd) is not defined for the loss's jax.custom_vjp, as "
    "its docstring says"
)
_NEGINF_EDGES = ("neginf_unused", "label_on_neginf")
_LINEAR = Entry(
    forms=(LOGITS_INDEX,), differentiable=(0,), variants=_CROSS_ENTROPY,
    function=_through_a_linear_layer,
    # The prediction identical to an index label is log one-hot: -inf logits (_NEGINF_LOGIT).
    optimum=None,
)
_NEGINF_LOGIT = (
    "a -inf logit cannot come out of a finite linear layer: -inf * 0 is NaN in "
    "inputs @ weight.T, so the row's loss is NaN"
)
_LINEAR = dataclasses.replace(_LINEAR, xfail={
    **expected_failures("linear_softmax_cross_entropy", _LINEAR, _FORWARD_MODE, ("jacfwd",)),
    **expected_failures(
        "linear_softmax_cross_entropy", _LINEAR, _NEGINF_LOGIT,
        ("value", "jit", "grad", "hessian", "vmap"), _NEGINF_EDGES, ("default",),
    ),
    # Smoothed, every row with a -inf logit is expected to be +inf, and no derivative is
    # checked on such rows: only the NaN value fails.
    **expected_failures(
        "linear_softmax_cross_entropy", _LINEAR, _NEGINF_LOGIT, ("value", "jit"),
        _NEGINF_EDGES, ("smoothed",),
    ),
})
_VOCAB_PARALLEL = Entry(
    forms=(LOGITS_INDEX, LOGITS_DIST), differentiable=(0, 1), variants=_CROSS_ENTROPY,
    function=_on_one_vocab_shard,
)
_VOCAB_PARALLEL = dataclasses.replace(_VOCAB_PARALLEL, xfail=expected_failures(
    "vocab_parallel_softmax_cross_entropy", _VOCAB_PARALLEL, _FORWARD_MODE, ("jacfwd",)
))

# The linear layer's entry, run through shard_map: the same cases and the same reasons.
_VOCAB_PARALLEL_LINEAR = dataclasses.replace(
    _LINEAR,
    function=_linear_on_one_vocab_shard,
    xfail={
        **expected_failures(
            "vocab_parallel_linear_softmax_cross_entropy", _LINEAR, _FORWARD_MODE, ("jacfwd",)
        ),
        **expected_failures(
            "vocab_parallel_linear_softmax_cross_entropy", _LINEAR, _NEGINF_LOGIT,
            ("value", "jit", "grad", "hessian", "vmap"), _NEGINF_EDGES, ("default",),
        ),
        **expected_failures(
            "vocab_parallel_linear_softmax_cross_entropy", _LINEAR, _NEGINF_LOGIT,
            ("value", "jit"), _NEGINF_EDGES, ("smoothed",),
        ),
    },
)

REGISTRY: dict[str, Entry] = {
    "accuracy": Entry(
        forms=(LOGITS_INDEX, LOGITS_DIST), differentiable=(0,), expect=_METRIC_EXPECT,
        optimum="max",
    ),
    "brier_score": Entry(forms=(PROBS_INDEX, PROBS_DIST), differentiable=(0, 1)),
    "classification_error": Entry(
        forms=(LOGITS_INDEX, LOGITS_DIST), differentiable=(0,), expect=_METRIC_EXPECT
    ),
    "entropy": Entry(forms=(PROBS,), differentiable=(0,), optimum=None),
    # Labels are ±1, a discrete set: gradients are taken with respect to the scores only.
    "hinge_loss": Entry(forms=(SIGNED,), differentiable=(0,), variants=_ARRAY_MARGIN),
    "linear_softmax_cross_entropy": _LINEAR,
    "kl_divergence": Entry(
        forms=(LOGITS_DIST,),
        differentiable=(0, 1),
        variants=(
            Variant(),
            Variant(
                "log_targets",
                {"log_targets": True},
                adapt=lambda a: (a[0], _log(a[1])),
                has_invalid=False,
            ),
        ),
    ),
    "multiclass_hinge_loss": Entry(
        forms=(LOGITS_INDEX,),
        differentiable=(0,),
        variants=(
            Variant(),
            Variant(
                "weston_watkins", {"kind": "weston_watkins", "margin": 1.0}, traced=("margin",)
            ),
        ),
    ),
    "reduce": Entry(forms=(VALUES,), differentiable=(0,), optimum=None, takes_checks=False),
    "softmax_cross_entropy": Entry(
        forms=(LOGITS_INDEX, LOGITS_DIST), differentiable=(0, 1), variants=_CROSS_ENTROPY
    ),
    "squared_error": Entry(forms=(REGRESSION,), differentiable=(0, 1)),
    "squared_hinge_loss": Entry(forms=(SIGNED,), differentiable=(0,), variants=_ARRAY_MARGIN),
    "vocab_parallel_linear_softmax_cross_entropy": _VOCAB_PARALLEL_LINEAR,
    "vocab_parallel_softmax_cross_entropy": _VOCAB_PARALLEL,
    "absolute_error": Entry(forms=(REGRESSION,), differentiable=(0, 1)),
    "binary_cross_entropy": Entry(forms=(BINARY_PROBS,), differentiable=(0, 1)),
    "gaussian_nll_loss": Entry(forms=(GAUSSIAN,), differentiable=(0, 1, 2)),
    "generalized_kl_divergence": Entry(forms=(MEASURE,), differentiable=(0, 1)),
    "huber_loss": Entry(forms=(REGRESSION,), differentiable=(0, 1)),
    # Bounded by log 2: target mass on a -inf logit (q = 0) is finite, unlike KL.
    "js_divergence": Entry(
        forms=(LOGITS_DIST,), differentiable=(0, 1), expect={"label_on_neginf": _finite}
    ),
    "log_cosh": Entry(forms=(REGRESSION,), differentiable=(0, 1)),
    "margin_ranking_loss": Entry(forms=(PAIR,), differentiable=(0, 1)),
    "multiclass_perceptron_loss": Entry(forms=(LOGITS_INDEX,), differentiable=(0,)),
    # Labels are +-1: gradients with respect to the scores only, as for hinge_loss.
    "perceptron_loss": Entry(
        forms=(SIGNED,),
        differentiable=(0,),
        # Scores of 0: the kink of max(0, -y s).
        extra_edges={"zero_scores": lambda a, rng: Case((np.zeros_like(a[0]), a[1]))},
    ),
    "pinball_loss": Entry(forms=(REGRESSION,), differentiable=(0, 1)),
    "poisson_nll_loss": Entry(
        forms=(POISSON,),
        differentiable=(0, 1),
        variants=(
            Variant(),
            Variant(
                "rates_full",
                {"log_input": False, "full": True},
                adapt=lambda a: (np.exp(a[0]), a[1]),
                # The rate is given directly and log(rate + eps) is finite at rate 0.
                expect={"count_on_zero_rate": _finite},
            ),
        ),
    ),
    # Index labels only, to keep compile time down: with a target distribution the loss is
    # the dense cross-entropy of softmax_cross_entropy plus sum(p (1 - q)), finite everywhere.
    "poly1_cross_entropy": Entry(forms=(LOGITS_INDEX,), differentiable=(0, 1)),
    "sigmoid_binary_cross_entropy": Entry(
        forms=(BINARY_LOGITS,),
        differentiable=(0, 1),
        variants=(
            Variant(),
            Variant(
                "smoothed",
                {"label_smoothing": 0.1, "pos_weight": 2.0},
                expect={"logits_inf_agree": _all_rows_inf},
                identical_is_optimal=False,
                traced=("label_smoothing",),
            ),
        ),
    ),
    "sigmoid_focal_loss": Entry(
        forms=(BINARY_LOGITS,),
        differentiable=(0, 1),
        extra_edges=_FOCAL_EDGES,
        variants=(
            Variant(),
            Variant("gamma_half", {"gamma": 0.5, "alpha": 0.25}, traced=("gamma", "alpha")),
        ),
        xfail={
            ("gamma_half", "binary_logits", "logits_inf_disagree", "hessian"): _FOCAL_INF_HESSIAN
        },
    ),
    "smooth_l1_loss": Entry(
        forms=(REGRESSION,),
        differentiable=(0, 1),
        # beta = 0 is exactly the absolute error, with a finite gradient.
        variants=(Variant(), Variant("beta_0", {"beta": 0.0})),
    ),
    # One variant, to keep the matrix's compile time down: gamma = 0.5 traced (the default
    # gamma = 2 runs the same code as a constant), and sigmoid_focal_loss sweeps gamma over
    # 2, 0.5 and 0 through the same focal factor.
    "softmax_focal_loss": Entry(
        forms=(LOGITS_INDEX, LOGITS_DIST),
        differentiable=(0, 1),
        extra_edges=_FOCAL_EDGES,
        variants=(Variant("gamma_half", {"gamma": 0.5, "alpha": 0.25}, traced=("gamma",)),),
        xfail={
            ("gamma_half", form, "label_on_neginf", "hessian"): _FOCAL_INF_HESSIAN
            for form in ("logits_index", "logits_dist")
        },
    ),
}


def seed_of(*parts: str) -> int:
    """A stable seed per case (Python's hash of a string changes between runs)."""
    import zlib

    return zlib.crc32("/".join(parts).encode())


def build(
    name: str, entry: Entry, variant: Variant, form: Form, edge: str, takes_ignore_index: bool,
    rows: int = ROWS, width: int | None = None,
) -> Case:
    """The inputs of one cell of the matrix, with the entry's and variant's adjustments.

    ``where`` and ``weights`` are always arrays (all True and random positive weights where
    the edge case does not set them), so that every edge case of a form has the same
    structure and one compiled computation serves them all.
    """
    rng = np.random.default_rng(seed_of(name, variant.name, form.name, edge))
    if width is None:
        width = CLASSES if form.class_args else WIDTH
    args = form.make(rng, rows, width)
    case = edges(entry, form, takes_ignore_index)[edge](args, rng)
    for adjust in (entry.expect.get(edge), variant.expect.get(edge)):
        if adjust is not None:
            case = adjust(case)
    shape = _mask_shape(form, case.args)
    if case.where is None:
        case = dataclasses.replace(case, where=np.ones(shape, bool))
    if case.weights is None:
        case = dataclasses.replace(case, weights=rng.uniform(0.5, 2.0, shape))
    if variant.adapt is not None:
        clean = None if case.clean is None else variant.adapt(case.clean)
        case = dataclasses.replace(case, args=variant.adapt(case.args), clean=clean)
    return case


def lookup(name: str, variant_name: str, form_name: str) -> tuple[Entry, Variant, Form]:
    entry = REGISTRY[name]
    variant = next(v for v in entry.variants if v.name == variant_name)
    form = next(f for f in entry.forms if f.name == form_name)
    return entry, variant, form


def combos() -> list[tuple[str, str, str]]:
    """Every (name, variant, form) of the registry."""
    return [
        (name, variant.name, form.name)
        for name, entry in sorted(REGISTRY.items())
        for variant in entry.variants
        for form in entry.forms
    ]


def differentiable(entry: Entry, args: Args) -> tuple[int, ...]:
    """The entry's differentiable positions that hold floating arrays in ``args``."""
    return tuple(i for i in entry.differentiable if np.issubdtype(args[i].dtype, np.floating))


def function(name: str) -> Callable[..., Any]:
    """What the suite calls for ``name``: the entry's adapter, or else the public function."""
    entry = REGISTRY[name]
    return getattr(jaxloss, name) if entry.function is None else entry.function
