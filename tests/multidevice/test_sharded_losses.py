"""Every public loss on inputs sharded along the batch over 8 devices equals the one-device call.

These tests need 8 devices; tests/test_sharding.py runs this folder in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8, so the rest of the suite keeps one device.
Each public name of jaxloss needs an entry in CASES saying how to build a batch of its inputs.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss

DEVICES = 8
needs_8_devices = pytest.mark.skipif(
    jax.device_count() < DEVICES,
    reason=f"needs {DEVICES} devices, found {jax.device_count()}: tests/test_sharding.py runs "
    "this folder in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8",
)

BATCH, CLASSES = 16, 5  # two examples per device
REDUCTIONS = ("none", "sum", "mean")
Inputs = tuple[tuple[np.ndarray, ...], dict[str, object]]


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def _probs(rng: np.random.Generator) -> np.ndarray:
    e = np.exp(_normal(rng, BATCH, CLASSES))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _index(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, CLASSES, size=BATCH)  # int64, the default integer with x64


def _signs(rng: np.random.Generator) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=(BATCH, 3)).astype(np.float32)


def _cross_entropy(rng: np.random.Generator) -> Inputs:
    labels = _index(rng)
    labels[[3, 12]] = -100  # ignored examples on two different devices
    class_weights = rng.uniform(0.5, 2.0, CLASSES).astype(np.float32)
    options = {"class_weights": class_weights, "label_smoothing": 0.1, "z_loss": 1e-3}
    return (_normal(rng, BATCH, CLASSES), labels), options


# Positional arrays (batch first, sharded) and options (arrays replicated) of each public name;
# a string says why the name is not called on batch-sharded inputs.
def _pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _normal(rng, BATCH, 3), _normal(rng, BATCH, 3)


def _bits(rng: np.random.Generator) -> np.ndarray:
    return (rng.random((BATCH, 3)) < 0.5).astype(np.float32)


def _positive(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.2, 2.0, (BATCH, 3)).astype(np.float32)


CASES: dict[str, Callable[[np.random.Generator], Inputs] | str] = {
    "absolute_error": lambda rng: (_pair(rng), {}),
    "binary_cross_entropy": lambda rng: (
        (rng.uniform(0.05, 0.95, (BATCH, 3)).astype(np.float32), _bits(rng)), {}
    ),
    "gaussian_nll_loss": lambda rng: ((*_pair(rng), _positive(rng)), {}),
    "generalized_kl_divergence": lambda rng: (
        (np.log(_positive(rng)), _positive(rng)), {}
    ),
    "huber_loss": lambda rng: (_pair(rng), {"delta": 0.5}),
    "js_divergence": lambda rng: ((_normal(rng, BATCH, CLASSES), _probs(rng)), {}),
    "log_cosh": lambda rng: (_pair(rng), {}),
    "margin_ranking_loss": lambda rng: ((*_pair(rng), _signs(rng)), {"margin": 0.1}),
    "multiclass_perceptron_loss": lambda rng: ((_normal(rng, BATCH, CLASSES), _index(rng)), {}),
    "perceptron_loss": lambda rng: ((_normal(rng, BATCH, 3), _signs(rng)), {}),
    "pinball_loss": lambda rng: (_pair(rng), {"quantile": 0.3}),
    "poisson_nll_loss": lambda rng: ((_normal(rng, BATCH, 3), _positive(rng)), {"full": True}),
    "poly1_cross_entropy": lambda rng: ((_normal(rng, BATCH, CLASSES), _index(rng)), {}),
    "sigmoid_binary_cross_entropy": lambda rng: (
        (_normal(rng, BATCH, 3), _bits(rng)), {"pos_weight": 2.0, "label_smoothing": 0.1}
    ),
    "sigmoid_focal_loss": lambda rng: ((_normal(rng, BATCH, 3), _bits(rng)), {"alpha": 0.25}),
    "smooth_l1_loss": lambda rng: (_pair(rng), {"beta": 0.5}),
    "softmax_focal_loss": lambda rng: ((_normal(rng, BATCH, CLASSES), _index(rng)), {}),
    "accuracy": lambda rng: ((_normal(rng, BATCH, CLASSES), _index(rng)), {}),
    "brier_score": lambda rng: ((_probs(rng), _index(rng)), {}),
    "classification_error": lambda rng: ((_normal(rng, BATCH, CLASSES), _index(rng)), {}),
    "entropy": lambda rng: ((_probs(rng),), {}),
    "hinge_loss": lambda rng: ((_normal(rng, BATCH, 3), _signs(rng)), {"margin": 0.5}),
    "kl_divergence": lambda rng: ((_normal(rng, BATCH, CLASSES), _probs(rng)), {}),
    # The weight is replicated (an option array) and the labels too; the inputs are sharded.
    "linear_softmax_cross_entropy": lambda rng: (
        (_normal(rng, BATCH, 4),), {"weight": _normal(rng, CLASSES, 4), "labels": _index(rng)}
    ),
    "multiclass_hinge_loss": lambda rng: (
        (_normal(rng, BATCH, CLASSES), _index(rng)), {"kind": "weston_watkins"}
    ),
    "reduce": lambda rng: ((_normal(rng, BATCH, 3),), {}),
    "softmax_cross_entropy": _cross_entropy,
    "squared_error": lambda rng: ((_normal(rng, BATCH, 3), _normal(rng, BATCH, 3)), {}),
    "squared_hinge_loss": lambda rng: ((_normal(rng, BATCH, 3), _signs(rng)), {}),
    "vocab_parallel_linear_softmax_cross_entropy": (
        "shards the vocabulary inside shard_map: "
        "tests/multidevice/test_vocab_parallel_linear.py"
    ),
    "vocab_parallel_softmax_cross_entropy": (
        "shards the vocabulary inside shard_map: tests/multidevice/test_vocab_parallel.py"
    ),
}


def test_every_public_name_has_a_case():
    missing = sorted(set(jaxloss.__all__) - set(CASES))
    assert not missing, (
        f"add {missing} to CASES in tests/multidevice/test_sharded_losses.py: a function that "
        "builds a batch of its inputs, so that it is tested on batch-sharded inputs"
    )
    assert set(CASES) <= set(jaxloss.__all__), sorted(set(CASES) - set(jaxloss.__all__))


class Problem:
    """Seeded inputs of one public function, keyed, with how each is placed and differentiated.

    ``where`` masks all of device 0's examples and some others, and the masked predictions
    hold NaN, which must reach neither the value nor any gradient, sharded or not.
    """

    def __init__(self, name: str) -> None:
        case = CASES[name]
        assert callable(case)
        rng = np.random.default_rng(sorted(CASES).index(name))
        positional, options = case(rng)
        self.fn = getattr(jaxloss, name)
        self.static = {k: v for k, v in options.items() if not isinstance(v, np.ndarray)}
        self.replicated = [k for k, v in options.items() if isinstance(v, np.ndarray)]
        example_shape = jax.eval_shape(
            lambda *a: self.fn(*a, reduction="none", **options), *positional
        ).shape
        where = rng.random(example_shape) > 0.3
        where[: BATCH // DEVICES] = False
        predictions = positional[0].copy()
        predictions[~where] = np.nan
        self.num_args = len(positional)
        self.arrays = {f"arg{i}": a for i, a in enumerate((predictions, *positional[1:]))}
        self.arrays |= {
            "where": where,
            "weights": rng.uniform(0.5, 2.0, example_shape).astype(np.float32),
            "cotangent": _normal(rng, *example_shape),
        }
        self.arrays |= {k: options[k] for k in self.replicated}
        self.differentiate = [
            k for k, v in self.arrays.items()
            if np.issubdtype(v.dtype, np.floating) and k != "cotangent"
        ]

    def value_and_grad(self, placed: dict[str, jax.Array]):
        """For each reduction: ((scalar, output), gradients of every floating input).

        For ``"none"`` the scalar is the output contracted with a fixed random cotangent.
        One jit call (one compilation) covers the three reductions.
        """

        def objective(reduction, diff, rest):
            a = rest | diff
            args = [a[f"arg{i}"] for i in range(self.num_args)]
            options = {k: a[k] for k in self.replicated}
            out = self.fn(*args, where=a["where"], weights=a["weights"], reduction=reduction,
                          **options, **self.static)
            scalar = jnp.sum(out * a["cotangent"]) if reduction == "none" else out
            return scalar, out

        def every_reduction(diff, rest):
            return {
                r: jax.value_and_grad(functools.partial(objective, r), has_aux=True)(diff, rest)
                for r in REDUCTIONS
            }

        diff = {k: placed[k] for k in self.differentiate}
        rest = {k: v for k, v in placed.items() if k not in diff}
        return jax.jit(every_reduction)(diff, rest)


@functools.cache
def _one_device(name: str):
    """The reference: the same computation with every input on one device."""
    problem = Problem(name)
    device = jax.devices()[0]
    return problem.value_and_grad({k: jax.device_put(v, device) for k, v in problem.arrays.items()})


def _close(actual, expected, what: str) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert np.all(np.isfinite(expected)), f"{what}: the one-device reference is not finite"
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=1e-6, equal_nan=False,
                               err_msg=what)


# Every name under explicit axes, where the sharding is part of the type and the stricter
# check; automatic partitioning for one name of each computational shape, to keep the
# suite's time in bounds (the losses share their masking and reduction code).
AUTO = ("kl_divergence", "linear_softmax_cross_entropy", "softmax_cross_entropy", "squared_error")
AXIS_CASES = [(name, AxisType.Explicit) for name in jaxloss.__all__] + [
    (name, AxisType.Auto) for name in AUTO
]


@needs_8_devices
@pytest.mark.parametrize(("name", "axis_type"), AXIS_CASES, ids=str)
def test_batch_sharded_equals_one_device(name, axis_type):
    case = CASES.get(name)
    if case is None:
        pytest.fail(f"{name} has no entry in CASES of tests/multidevice/test_sharded_losses.py")
    if isinstance(case, str):
        pytest.skip(case)
    problem = Problem(name)
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(axis_type,))
    placed = {
        k: jax.device_put(
            v, NamedSharding(mesh, P() if k in problem.replicated else P("batch"))
        )
        for k, v in problem.arrays.items()
    }
    sharded, reference = problem.value_and_grad(placed), _one_device(name)
    for reduction in REDUCTIONS:
        (value, out), grads = sharded[reduction]
        (ref_value, ref_out), ref_grads = reference[reduction]
        what = f"{name}, reduction={reduction!r}"
        _close(value, ref_value, f"{what}: value")
        _close(out, ref_out, f"{what}: output")
        for k in problem.differentiate:
            _close(grads[k], ref_grads[k], f"{what}: gradient with respect to {k}")
        if axis_type == AxisType.Explicit:
            # With explicit axes the sharding is part of the type: no gather onto one device.
            for k in problem.differentiate:
                assert grads[k].sharding.is_equivalent_to(placed[k].sharding, grads[k].ndim), k
            if reduction == "none":
                batch = NamedSharding(mesh, P("batch"))
                assert out.sharding.is_equivalent_to(batch, out.ndim), out.sharding


# Losses that pick each example's entry along the class axis (a gather), with their first
# argument's name; softmax_focal_loss does so for target probabilities too.
GATHERING = [
    ("softmax_cross_entropy", "logits", False),
    ("multiclass_hinge_loss", "scores", False),
    ("softmax_focal_loss", "logits", True),
]


@needs_8_devices
@pytest.mark.parametrize(("name", "argument", "targets"), GATHERING, ids=str)
def test_a_sharded_class_axis_raises_an_error_that_says_how_to_reshard(name, argument, targets):
    rng = np.random.default_rng(0)
    logits = _normal(rng, BATCH, 8)
    labels = rng.dirichlet(np.ones(8), BATCH).astype(np.float32) if targets else _index(rng)
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    sharded = jax.device_put(logits, NamedSharding(mesh, P("data", "model")))
    placed_labels = jax.device_put(
        labels, NamedSharding(mesh, P("data", "model") if targets else P("data"))
    )
    loss = getattr(jaxloss, name)
    message = (
        rf"{argument} must have its class axis \(axis 1\) whole on each device; received it "
        r"sharded over the mesh axis 'model' \(sharding spec P\('data', 'model'\)\)"
        rf".*jax\.sharding\.reshard\({argument}, P\('data', None\)\).*"
        r"vocab_parallel_softmax_cross_entropy inside jax\.shard_map"
    )
    with pytest.raises(ValueError, match=message):
        loss(sharded, placed_labels)
    # What the message suggests works, and gives the one-device value.
    with jax.set_mesh(mesh):
        whole = jax.sharding.reshard(sharded, P("data", None))
    np.testing.assert_allclose(loss(whole, placed_labels), loss(logits, labels), rtol=1e-6)


@needs_8_devices
def test_a_sharded_class_axis_is_fine_where_nothing_is_gathered():
    """Accuracy, Brier score, and cross-entropy with target probabilities only reduce over the
    class axis, which XLA does across its shards: they keep working."""
    rng = np.random.default_rng(1)
    logits, labels = _normal(rng, BATCH, 8), _index(rng)
    targets = rng.dirichlet(np.ones(8), BATCH).astype(np.float32)
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    classes, rows = NamedSharding(mesh, P("data", "model")), NamedSharding(mesh, P("data"))
    for loss, args in ((jaxloss.accuracy, (logits, labels)),
                       (jaxloss.brier_score, (np.asarray(jax.nn.softmax(logits)), labels)),
                       (jaxloss.softmax_cross_entropy, (logits, targets))):
        placed = [jax.device_put(a, classes if a.ndim == 2 else rows) for a in args]
        np.testing.assert_allclose(loss(*placed), loss(*args), rtol=1e-6, err_msg=loss.__name__)


@needs_8_devices
def test_linear_cross_entropy_on_a_vocabulary_sharded_weight_says_what_to_use():
    rng = np.random.default_rng(2)
    inputs, labels = _normal(rng, BATCH, 4), _index(rng)
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    weight = jax.device_put(_normal(rng, 8, 4), NamedSharding(mesh, P("model", None)))
    message = (
        r"weight must have its class axis \(axis 0\) whole on each device; received it sharded "
        r"over the mesh axis 'model' .*jax\.sharding\.reshard\(weight, P\(None, None\)\).*"
        r"use jaxloss\.vocab_parallel_linear_softmax_cross_entropy inside jax\.shard_map"
    )
    with pytest.raises(ValueError, match=message):
        jaxloss.linear_softmax_cross_entropy(inputs, weight, labels)
