"""The contract every loss follows: signature, errors, compilation, effects, dtypes, rule."""

import inspect
import logging

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss

# (loss, number of leading array arguments)
LOSSES = [
    (jaxloss.squared_error, 2),
    (jaxloss.brier_score, 2),
    (jaxloss.softmax_cross_entropy, 2),
    (jaxloss.kl_divergence, 2),
    (jaxloss.entropy, 1),
    (jaxloss.hinge_loss, 2),
    (jaxloss.squared_hinge_loss, 2),
    (jaxloss.multiclass_hinge_loss, 2),
    (jaxloss.accuracy, 2),
    (jaxloss.classification_error, 2),
]
LOSS_IDS = [loss.__name__ for loss, _ in LOSSES]
FIRST_ARGS = {"predictions", "logits", "probs", "scores"}
SECOND_ARGS = {"targets", "labels"}


def test_public_names_are_exported_and_sorted():
    assert jaxloss.__all__ == sorted(jaxloss.__all__)
    for loss, _ in LOSSES:
        assert loss.__name__ in jaxloss.__all__
        assert getattr(jaxloss, loss.__name__) is loss
    assert "reduce" in jaxloss.__all__


@pytest.mark.parametrize(("loss", "num_arrays"), LOSSES, ids=LOSS_IDS)
def test_signature_arrays_first_then_keyword_only_options(loss, num_arrays):
    params = list(inspect.signature(loss).parameters.values())
    arrays, options = params[:num_arrays], params[num_arrays:]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in arrays)
    assert arrays[0].name in FIRST_ARGS
    if num_arrays == 2:
        assert arrays[1].name in SECOND_ARGS
    assert all(p.kind is p.KEYWORD_ONLY for p in options)
    defaults = {p.name: p.default for p in options}
    assert defaults["where"] is None
    assert defaults["weights"] is None
    assert defaults["reduction"] == "mean"
    assert defaults["checks"] is False


@pytest.mark.parametrize(("loss", "num_arrays"), LOSSES, ids=LOSS_IDS)
def test_an_option_passed_positionally_raises_type_error(loss, num_arrays):
    arrays = [np.zeros((2, 3))] * num_arrays
    with pytest.raises(TypeError, match="keyword-only"):
        loss(*arrays, None)


def test_reduce_options_are_keyword_only():
    with pytest.raises(TypeError):
        jaxloss.reduce(np.zeros(3), np.ones(3, bool))


# ---- trace-time errors that name the argument, the expected and the received ---------

L = np.zeros((4, 5))  # logits: 4 examples, 5 classes
Y = np.zeros(4, np.int32)  # index labels
CE = jaxloss.softmax_cross_entropy

ERRORS = [
    # (id, call, exception, fragments the message must contain: argument, expected, received)
    ("reduction", lambda: CE(L, Y, reduction="avg"), ValueError,
     ["reduction", "('none', 'sum', 'mean')", "'avg'"]),
    ("axis-range", lambda: CE(L, Y, axis=2), ValueError, ["axis", "[-2, 2)", "received 2"]),
    ("axis-type", lambda: CE(L, Y, axis=1.0), TypeError, ["axis", "int", "1.0"]),
    ("where-dtype", lambda: CE(L, Y, where=np.ones(4, np.int32)), TypeError,
     ["where", "boolean", "int32"]),
    ("where-shape", lambda: CE(L, Y, where=np.ones(5, bool)), ValueError,
     ["where", "(4,)", "(5,)"]),
    ("weights-shape", lambda: CE(L, Y, weights=np.ones((4, 2))), ValueError,
     ["weights", "(4,)", "(4, 2)"]),
    ("weights-dtype", lambda: CE(L, Y, weights=np.ones(4, np.int32)), TypeError,
     ["weights", "floating", "int32"]),
    ("labels-dtype", lambda: CE(L, np.zeros(4, bool)), TypeError,
     ["labels", "integer", "floating", "bool"]),
    ("labels-dtype-index-only", lambda: jaxloss.multiclass_hinge_loss(L, np.zeros(4)),
     TypeError, ["labels", "integer", "float64"]),
    ("labels-shape-index", lambda: CE(L, np.zeros(3, np.int32)), ValueError,
     ["labels", "(4,)", "(3,)"]),
    ("labels-shape-probs", lambda: CE(L, np.zeros((4, 4))), ValueError,
     ["labels", "(4, 5)", "(4, 4)"]),
    ("targets-shape", lambda: jaxloss.squared_error(np.zeros(4), np.zeros(3)), ValueError,
     ["targets", "(4,)", "(3,)"]),
    ("predictions-dtype", lambda: CE(np.zeros((4, 5), np.int32), Y), TypeError,
     ["logits", "floating", "int32"]),
    ("no-class-axis", lambda: CE(np.zeros(()), np.zeros((), np.int32)), ValueError,
     ["logits", "rank >= 1", "scalar"]),
    ("class_weights-shape", lambda: CE(L, Y, class_weights=np.ones(4)), ValueError,
     ["class_weights", "(5,)", "(4,)"]),
    ("label_smoothing-range", lambda: CE(L, Y, label_smoothing=1.5), ValueError,
     ["label_smoothing", "[0, 1]", "1.5"]),
    ("z_loss-negative", lambda: CE(L, Y, z_loss=-0.5), ValueError, ["z_loss", ">= 0", "-0.5"]),
    ("kind", lambda: jaxloss.multiclass_hinge_loss(L, Y, kind="svm"), ValueError,
     ["kind", "'crammer_singer'", "'weston_watkins'", "'svm'"]),
]


@pytest.mark.parametrize(("call", "exception", "fragments"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_trace_time_error_names_argument_expected_and_received(call, exception, fragments):
    # Under eval_shape nothing is computed: the error must come from tracing alone.
    with pytest.raises(exception) as info:
        jax.eval_shape(call)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ---- one compiled computation, no retrace --------------------------------------------


def _events(caplog, name):
    """(traces, compilations) of the computation ``name`` logged so far."""
    messages = [r.getMessage() for r in caplog.records]
    return (
        sum(m.startswith(f"Finished tracing {name} ") for m in messages),
        sum(m.startswith(f"Compiling jit({name})") for m in messages),
    )


def test_repeated_call_does_not_retrace_or_recompile(caplog):
    # Shapes used nowhere else, so the first call must trace and compile.
    r = helpers.rng()
    logits, labels = r.normal(size=(7, 11)), r.integers(0, 11, size=7)
    caplog.set_level(logging.WARNING)
    name = "softmax_cross_entropy"
    with jax.log_compiles():
        CE(logits, labels, label_smoothing=0.1)
        first = _events(caplog, name)
        for _ in range(3):
            CE(r.normal(size=(7, 11)), labels, label_smoothing=0.1)
        repeated = _events(caplog, name)
        CE(logits, labels, label_smoothing=0.2)  # a different static option compiles again
        changed = _events(caplog, name)
    assert first == (1, 1)
    assert repeated == first
    assert changed == (2, 2)


# ---- checks=False adds nothing; checks=True reports under checkify ---------------------


@pytest.mark.parametrize("case", helpers.property_cases(), ids=str)
def test_checks_off_adds_no_effects_and_on_adds_a_check(case):
    arrays, options, _, _ = helpers.draw(case)

    def jaxpr(checks):
        return jax.make_jaxpr(lambda *a: case.loss(*a, checks=checks, **options))(*arrays)

    assert jaxpr(False).effects == set()
    # Every real number is a valid regression input, and every log-probability a valid
    # log-target: those have nothing to check.
    if case.id not in ("squared_error", "kl_divergence-log_targets"):
        assert jaxpr(True).effects != set()


def _probs(shape=(2, 3, 5)):
    return helpers.probabilities(helpers.rng(), shape)


def _with(x, index, value):
    x = np.array(x)
    x[index] = value
    return x


# Per-example shape (2, 3): the checks must also work beyond rank 1.
LABELS = np.array([[0, 1, 2], [3, 4, 0]])
SIGNS = np.array([[1, -1, 1], [-1, 1, 1]])
BAD_INPUTS = [
    # (id, (loss, *arrays) with one invalid value, that value as the message must show it)
    ("softmax_cross_entropy-index", lambda: (CE, _probs(), _with(LABELS, (1, 2), 7)), "7"),
    ("softmax_cross_entropy-probs", lambda: (CE, _probs(), _with(_probs(), (0, 1, 3), -0.25)),
     "-0.25"),
    ("brier_score", lambda: (jaxloss.brier_score, _probs(), _with(LABELS, (0, 0), -3)), "-3"),
    ("kl_divergence",
     lambda: (jaxloss.kl_divergence, _probs(), _with(_probs(), (1, 1, 0), -0.5)), "-0.5"),
    ("entropy", lambda: (jaxloss.entropy, _with(_probs(), (1, 0, 2), -0.125)), "-0.125"),
    # Labels are compared in the floating compute dtype, so the integer 0 shows as 0.0.
    ("hinge_loss", lambda: (jaxloss.hinge_loss, np.ones((2, 3)), _with(SIGNS, (1, 1), 0)),
     "0.0"),
    ("squared_hinge_loss",
     lambda: (jaxloss.squared_hinge_loss, np.ones((2, 3)), _with(SIGNS * 1.0, (0, 2), 0.5)),
     "0.5"),
    ("multiclass_hinge_loss",
     lambda: (jaxloss.multiclass_hinge_loss, _probs(), _with(LABELS, (1, 0), 5)), "5"),
    ("accuracy", lambda: (jaxloss.accuracy, _probs(), _with(LABELS, (0, 2), 9)), "9"),
    ("classification_error",
     lambda: (jaxloss.classification_error, _probs(), _with(LABELS, (1, 2), -2)), "-2"),
    ("accuracy-probs",
     lambda: (jaxloss.accuracy, _probs(), _with(_probs(), (0, 0, 4), -0.75)), "-0.75"),
]
@pytest.mark.parametrize(("make", "bad"), [b[1:] for b in BAD_INPUTS],
                         ids=[b[0] for b in BAD_INPUTS])
def test_checkify_reports_the_offending_value(make, bad):
    loss, *arrays = make()
    checked = checkify.checkify(
        lambda *a: loss(*a, checks=True, reduction="none"), errors=checkify.user_checks
    )
    error, out = checked(*arrays)
    message = error.get()
    assert message is not None
    assert f"first offending value: {bad})" in message
    # The offending example's value is NaN, as without checks; the others are finite.
    assert np.sum(np.isnan(out)) == 1
    # Valid inputs of the same shapes report nothing.
    if loss in (jaxloss.hinge_loss, jaxloss.squared_hinge_loss):
        valid = [arrays[0], SIGNS.astype(arrays[1].dtype)]
    elif np.issubdtype(arrays[-1].dtype, np.integer):
        valid = [arrays[0], LABELS]
    else:
        valid = [_probs() for _ in arrays]
    assert checked(*valid)[0].get() is None


# ---- dtypes -------------------------------------------------------------------------

DTYPE_CASES = [
    c for c in helpers.property_cases()
    if c.id in {
        "squared_error", "brier_score-probs", "softmax_cross_entropy-index-options",
        "softmax_cross_entropy-probs-options", "kl_divergence", "entropy", "hinge_loss",
        "multiclass_hinge_loss-weston_watkins",
    }
]


# bfloat16 for every case; float16 (same code path, narrower range) where logs and
# exponentials are taken.
HALF_PARAMS = [(c, jnp.bfloat16) for c in DTYPE_CASES] + [
    (c, jnp.float16) for c in DTYPE_CASES
    if c.id in {"softmax_cross_entropy-index-options", "kl_divergence", "entropy"}
]


@pytest.mark.parametrize(("case", "dtype"), HALF_PARAMS,
                         ids=[f"{c}-{jnp.dtype(d).name}" for c, d in HALF_PARAMS])
def test_half_precision_accumulates_and_returns_float32(case, dtype):
    arrays, options, where, weights = helpers.draw(case)
    half = tuple(helpers.as_float(jnp.asarray(a), dtype) for a in arrays)
    half_options = {k: helpers.as_float(v, dtype) for k, v in options.items()}
    half_weights = jnp.asarray(weights, dtype)
    out = case.loss(*half, where=where, weights=half_weights, **half_options)
    assert out.dtype == jnp.float32
    # The same rounded inputs in float32 give the float32 computation ...
    f32 = tuple(helpers.as_float(a, jnp.float32) for a in half)
    f32_options = {k: helpers.as_float(v, jnp.float32) for k, v in half_options.items()}
    single = case.loss(
        *f32, where=where, weights=half_weights.astype(jnp.float32), **f32_options
    )
    assert single.dtype == jnp.float32
    helpers.assert_close(out, single, rtol=1e-6, atol=1e-7)
    # ... and, since it accumulates in float32, float64 numpy on them agrees to ~1e-6.
    as64 = [np.asarray(a, np.float64) if np.issubdtype(a.dtype, np.floating) else np.asarray(a)
            for a in f32]
    options64 = {k: np.asarray(v, np.float64) if isinstance(v, jax.Array) else v
                 for k, v in f32_options.items()}
    want = helpers.expected(case, tuple(as64), options64, where,
                            np.asarray(half_weights, np.float64), "mean")
    helpers.assert_close(out, want, rtol=1e-5, atol=1e-6)
    # Gradients come back in each input's own dtype (traced only: nothing is computed).
    positions = helpers.float_positions(arrays)
    grads = jax.eval_shape(
        jax.grad(
            lambda diff, w: case.loss(
                *[diff[positions.index(i)] if i in positions else a for i, a in enumerate(half)],
                where=where, weights=w, **half_options,
            ),
            argnums=(0, 1),
        ),
        [half[i] for i in positions], half_weights,
    )
    assert [g.dtype for g in grads[0]] == [jnp.dtype(dtype)] * len(positions)
    assert grads[1].dtype == jnp.dtype(dtype)


def test_single_precision_is_kept():
    # float64 is asserted by every reference test; float32 stays float32 (not promoted).
    r = helpers.rng()
    logits = jnp.asarray(r.normal(size=(4, 5)), jnp.float32)
    labels = jnp.asarray(r.integers(0, 5, size=4))
    assert CE(logits, labels).dtype == jnp.float32
    assert jax.eval_shape(jax.grad(CE), logits, labels).dtype == jnp.float32
    assert jaxloss.squared_error(logits, logits).dtype == jnp.float32


def test_mixed_precision_promotes():
    r = helpers.rng()
    p16 = jnp.asarray(r.random(4), jnp.float16)
    assert jaxloss.squared_error(p16, jnp.asarray(r.random(4), jnp.float64)).dtype == jnp.float64
    assert jaxloss.squared_error(p16, jnp.asarray(r.random(4), jnp.bfloat16)).dtype == (
        jnp.float32
    )


# ---- reduce() is the rule that every loss follows --------------------------------------


@pytest.mark.parametrize(
    "case",
    # Ignored labels and class-weight denominators are the documented exceptions to reduce().
    [c for c in helpers.property_cases() if c.id != "softmax_cross_entropy-index-options"],
    ids=str,
)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_losses_follow_the_rule_of_reduce(case, reduction):
    # The loss without where and weights gives the per-example values ℓ; with them, it must
    # be reduce(ℓ, where, weights) under the same reduction.
    arrays, options, where, weights = helpers.draw(case)
    per_example = case.loss(*arrays, reduction="none", **options)
    got = case.loss(*arrays, where=where, weights=weights, reduction=reduction, **options)
    helpers.assert_close(
        got, jaxloss.reduce(per_example, where=where, weights=weights, reduction=reduction)
    )
