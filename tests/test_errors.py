"""Bad input gets a clear answer.

Shape, dtype and option mistakes raise at trace time with a message that names the argument,
what was expected and what was received (one test per message). Value-level problems that
tracing cannot see (a label out of range, a hinge label that is not +-1, a negative
probability) make that example NaN under plain ``jit``; with ``checks=True`` they are reported
under ``checkify.checkify(f, errors=checkify.user_checks)`` with the check and the value, and
with ``checks=False`` (the default) the loss adds no effect to the jaxpr.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from safety_cases import REGISTRY, build, combos, function, lookup

import jaxloss

LOGITS = jnp.zeros((3, 4))
LABELS = jnp.array([0, 1, 3])
PROBS = jnp.full((3, 4), 0.25)
X = jnp.ones((3, 2))


def _raises(exc, fn, *fragments):
    """Calls ``fn`` and checks the error's type and that every fragment is in its message."""
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ---------------------------------------------------------------------------------------
# Trace-time errors: one test per message.


def test_options_are_keyword_only():
    _raises(
        TypeError, lambda: jaxloss.squared_error(X, X, "sum"),
        "squared_error()", "2 positional arguments", "(predictions, targets)", "3 were given",
        "keyword-only",
    )


def test_predictions_must_be_floating():
    _raises(
        TypeError, lambda: jaxloss.softmax_cross_entropy(jnp.zeros((3, 4), jnp.int32), LABELS),
        "logits", "floating-point", "received dtype int32", "astype",
    )


def test_targets_must_be_floating():
    _raises(
        TypeError, lambda: jaxloss.squared_error(X, jnp.ones((3, 2), jnp.int32)),
        "targets", "floating-point", "received dtype int32", "astype",
    )


def test_labels_must_be_integer_or_floating():
    _raises(
        TypeError, lambda: jaxloss.softmax_cross_entropy(LOGITS, jnp.array([True, False, True])),
        "labels", "integer array of class indices", "floating array of target probabilities",
        "received dtype bool", "astype",
    )


def test_index_labels_must_be_integer():
    _raises(
        TypeError, lambda: jaxloss.multiclass_hinge_loss(LOGITS, PROBS),
        "labels", "integer array of class indices", "received dtype float", "argmax",
    )


def test_reduction_must_be_known():
    _raises(
        ValueError, lambda: jaxloss.squared_error(X, X, reduction="avg"),
        "reduction", "('none', 'sum', 'mean')", "received 'avg'",
    )


def test_string_option_must_be_known():
    _raises(
        ValueError, lambda: jaxloss.multiclass_hinge_loss(LOGITS, LABELS, kind="svm"),
        "kind", "('crammer_singer', 'weston_watkins')", "received 'svm'",
    )


def test_axis_must_be_an_int():
    _raises(
        TypeError, lambda: jaxloss.entropy(PROBS, axis=1.0),
        "axis", "must be an int", "received 1.0",
    )


def test_axis_must_be_in_range():
    _raises(
        ValueError, lambda: jaxloss.softmax_cross_entropy(LOGITS, LABELS, axis=2),
        "axis", "[-2, 2)", "logits of rank 2", "received 2",
    )


def test_class_axis_needs_rank_one():
    _raises(
        ValueError, lambda: jaxloss.softmax_cross_entropy(jnp.float32(0.0), jnp.int32(0)),
        "logits", "class axis (rank >= 1)", "received a scalar",
    )
    _raises(
        ValueError, lambda: jaxloss.entropy(jnp.float32(0.5)),
        "probs", "class axis (rank >= 1)", "received a scalar",
    )


def test_elementwise_shapes_must_match():
    _raises(
        ValueError, lambda: jaxloss.squared_error(X, jnp.ones((3, 1))),
        "targets", "shape of predictions, (3, 2)", "received (3, 1)", "jnp.broadcast_to",
    )
    _raises(
        ValueError, lambda: jaxloss.hinge_loss(X, jnp.ones((2,), jnp.int32)),
        "labels", "shape of scores, (3, 2)", "received (2,)",
    )


def test_index_label_shape():
    _raises(
        ValueError, lambda: jaxloss.softmax_cross_entropy(LOGITS, jnp.array([0, 1])),
        "labels", "integer class indices", "must have shape (3,)", "logits of shape (3, 4)",
        "received (2,)",
    )


def test_distribution_label_shape():
    _raises(
        ValueError, lambda: jaxloss.kl_divergence(LOGITS, jnp.full((3, 5), 0.2)),
        "targets", "floating target probabilities", "must have shape (3, 4)",
        "received (3, 5)",
    )


def test_where_must_be_boolean():
    _raises(
        TypeError, lambda: jaxloss.squared_error(X, X, where=jnp.ones((3, 2))),
        "where", "boolean", "received dtype float", "astype(bool)",
    )


def test_where_must_broadcast():
    _raises(
        ValueError, lambda: jaxloss.softmax_cross_entropy(LOGITS, LABELS, where=jnp.ones(4, bool)),
        "where", "per-example shape (3,)", "received shape (4,)",
    )


def test_weights_must_broadcast():
    _raises(
        ValueError, lambda: jaxloss.squared_error(X, X, weights=jnp.ones((2, 2))),
        "weights", "per-example shape (3, 2)", "received shape (2, 2)",
    )


def test_weights_must_be_floating():
    _raises(
        TypeError, lambda: jaxloss.squared_error(X, X, weights=jnp.ones((3, 2), jnp.int32)),
        "weights", "floating-point", "received dtype int32",
    )


def test_class_weights_shape():
    _raises(
        ValueError,
        lambda: jaxloss.softmax_cross_entropy(LOGITS, LABELS, class_weights=jnp.ones(3)),
        "class_weights", "shape (4,)", "one weight per class", "received (3,)",
    )


def test_nonnegative_hyperparameter():
    _raises(
        ValueError, lambda: jaxloss.softmax_cross_entropy(LOGITS, LABELS, z_loss=-1e-4),
        "z_loss", ">= 0", "received -0.0001",
    )


def test_unit_interval_hyperparameter():
    _raises(
        ValueError, lambda: jaxloss.softmax_cross_entropy(LOGITS, LABELS, label_smoothing=1.5),
        "label_smoothing", "[0, 1]", "received 1.5",
    )


def test_hyperparameter_must_be_scalar():
    _raises(
        ValueError, lambda: jaxloss.hinge_loss(X, X, margin=jnp.ones(2)),
        "margin", "scalar", "received shape (2,)",
    )
    _raises(
        ValueError,
        lambda: jaxloss.softmax_cross_entropy(LOGITS, LABELS, label_smoothing=jnp.ones(3)),
        "label_smoothing", "scalar", "received shape (3,)",
    )


def test_checks_must_be_a_python_bool():
    _raises(
        TypeError, lambda: jaxloss.kl_divergence(LOGITS, PROBS, checks=jnp.array(True)),
        "checks", "Python bool", "received",
    )


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_public_function_rejects_integer_predictions(name):
    """A registry-wide guard: the first argument is named in the error, whatever the loss."""
    entry = REGISTRY[name]
    first = next(iter(inspect.signature(getattr(jaxloss, name)).parameters))
    case = build(name, entry, entry.variants[0], entry.forms[0], "base", False)
    args = [jnp.asarray(a) for a in case.args]
    args[0] = args[0].astype(jnp.int32)
    _raises(TypeError, lambda: function(name)(*args), first, "received dtype int32")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_public_function_rejects_unknown_reduction(name):
    entry = REGISTRY[name]
    case = build(name, entry, entry.variants[0], entry.forms[0], "base", False)
    args = [jnp.asarray(a) for a in case.args]
    _raises(
        ValueError, lambda: function(name)(*args, reduction="average"),
        "reduction", "received 'average'",
    )


# ---------------------------------------------------------------------------------------
# Every loss takes checks.


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_loss_takes_checks(name):
    entry = REGISTRY[name]
    parameters = inspect.signature(getattr(jaxloss, name)).parameters
    if not entry.takes_checks:
        assert "checks" not in parameters
        return
    assert "checks" in parameters, f"jaxloss.{name} lacks the checks keyword"
    checks = parameters["checks"]
    assert checks.kind is inspect.Parameter.KEYWORD_ONLY and checks.default is False


# ---------------------------------------------------------------------------------------
# Value-level problems: NaN under plain jit, reported under checkify with checks=True.


def _checked_combos():
    out = []
    for name, variant, form in combos():
        entry, variant_, form_ = lookup(name, variant, form)
        if entry.takes_checks and form_.invalid is not None and variant_.has_invalid:
            out.append((name, variant, form))
    return out


def _invalid(name, variant, form):
    entry, variant_, form_ = lookup(name, variant, form)
    case = build(name, entry, variant_, form_, "base", False)
    args, bad = form_.invalid(case.args)
    args = tuple(
        jnp.asarray(a, jnp.float32) if np.issubdtype(a.dtype, np.floating) else jnp.asarray(a)
        for a in args
    )
    return function(name), args, variant_.options, form_.check_message, bad


@pytest.mark.parametrize(("name", "variant", "form"), _checked_combos())
def test_invalid_value_is_nan_under_jit(name, variant, form):
    fn, args, options, _, _ = _invalid(name, variant, form)
    for checks in (False, True):  # debug_check is a no-op outside checkify

        @jax.jit
        def both(*a, c=checks):
            return (fn(*a, reduction="none", checks=c, **options), fn(*a, checks=c, **options))

        none, mean = both(*args)
        assert np.isnan(none[1]).any(), f"checks={checks}: row 1 is {none[1]}"
        assert np.isfinite(np.delete(np.asarray(none), 1, axis=0)).all()
        assert np.isnan(mean)


@pytest.mark.parametrize(("name", "variant", "form"), _checked_combos())
def test_invalid_value_is_reported_under_checkify(name, variant, form):
    fn, args, options, message, bad = _invalid(name, variant, form)
    checked = checkify.checkify(
        jax.jit(lambda *a: fn(*a, checks=True, **options)), errors=checkify.user_checks
    )
    err, _ = checked(*args)
    text = err.get()
    assert text is not None, "no error reported"
    assert message in text, text
    assert re.search(rf"first offending value: {re.escape(str(bad))}\b", text), text
    with pytest.raises(checkify.JaxRuntimeError, match=re.escape(message)):
        err.throw()
    # The same inputs with the bad value fixed report nothing.
    entry, variant_, form_ = lookup(name, variant, form)
    case = build(name, entry, variant_, form_, "base", False)
    valid = tuple(jnp.asarray(a, a.dtype if a.dtype.kind != "f" else jnp.float32)
                  for a in case.args)
    err, value = checked(*valid)
    assert err.get() is None and np.isfinite(value)


@pytest.mark.parametrize(("name", "variant", "form"), combos())
def test_checks_off_adds_no_effect_to_the_jaxpr(name, variant, form):
    entry, variant_, form_ = lookup(name, variant, form)
    case = build(name, entry, variant_, form_, "base", False)
    fn, args = function(name), [jnp.asarray(a) for a in case.args]
    off = jax.make_jaxpr(lambda *a: fn(*a, **variant_.options))(*args)
    assert not off.effects, off.effects
    if entry.takes_checks:
        on = jax.make_jaxpr(lambda *a: fn(*a, checks=True, **variant_.options))(*args)
        # Something to check (an invalid form exists) means an effect; nothing, none.
        assert bool(on.effects) == (form_.invalid is not None and variant_.has_invalid)


# ---------------------------------------------------------------------------------------
# The numerics page's examples run.


def test_numerics_page_examples_run():
    page = Path(__file__).resolve().parents[1] / "docs" / "numerics.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks, "docs/numerics.md has no python example"
    for block in blocks:
        exec(compile(block, str(page), "exec"), {})
