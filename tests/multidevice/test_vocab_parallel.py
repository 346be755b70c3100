"""vocab_parallel_softmax_cross_entropy on 8 devices equals softmax_cross_entropy on one.

The reference is jaxloss.softmax_cross_entropy on the full logits on one device, itself
tested against numpy and PyTorch in the single-device suite. These tests need 8 devices;
tests/test_sharding.py runs this folder with XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss

DEVICES = 8
pytestmark = pytest.mark.skipif(
    jax.device_count() < DEVICES,
    reason=f"needs {DEVICES} devices, found {jax.device_count()}: tests/test_sharding.py runs "
    "this folder in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8",
)

BATCH, CLASSES = 6, 32  # 4 classes per device
REDUCTIONS = ("none", "sum", "mean")
COLLECTIVE = re.compile(
    r"\b(all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)(?:-start)?\("
)


def _problem(seed: int, *, targets: bool = False, ignored: bool = True) -> dict[str, np.ndarray]:
    """Seeded inputs: rows 0 and 4 masked by ``where`` and holding NaN; rows 2 and 5 ignored."""
    rng = np.random.default_rng(seed)
    logits = (3 * rng.normal(size=(BATCH, CLASSES))).astype(np.float32)
    where = np.ones(BATCH, bool)
    where[[0, 4]] = False
    logits[~where] = np.nan
    if targets:
        labels = rng.dirichlet(np.ones(CLASSES), size=BATCH).astype(np.float32)
        labels[~where] = np.nan
    else:
        labels = rng.integers(0, CLASSES, size=BATCH)
        labels[1] = CLASSES - 1  # owned by the last device
        if ignored:
            labels[[2, 5]] = -100
    return {
        "logits": logits,
        "labels": labels,
        "where": where,
        "weights": rng.uniform(0.5, 2.0, BATCH).astype(np.float32),
        "class_weights": rng.uniform(0.5, 2.0, CLASSES).astype(np.float32),
        "cotangent": rng.normal(size=BATCH).astype(np.float32),
    }


def _call(loss, reduction, a, **options):
    """``loss`` on the keyed inputs ``a``, passing the options that ``a`` holds."""
    keys = [k for k in ("where", "weights", "class_weights", "label_smoothing", "z_loss")
            if k in a]
    return loss(a["logits"], a["labels"], reduction=reduction, **{k: a[k] for k in keys},
                **options)


def _every_reduction(call, differentiate):
    """For each reduction, ((scalar, output), gradients) of ``call(reduction, inputs)``.

    For "none" the scalar is the output contracted with the inputs' fixed cotangent.
    """

    def run(inputs):
        diff = {k: v for k, v in inputs.items() if k in differentiate}
        rest = {k: v for k, v in inputs.items() if k not in differentiate}

        def objective(reduction, diff):
            out = call(reduction, rest | diff)
            if reduction == "none":
                return jnp.sum(out * rest["cotangent"].astype(out.dtype)), out
            return out, out

        return {
            r: jax.value_and_grad(functools.partial(objective, r), has_aux=True)(diff)
            for r in REDUCTIONS
        }

    return run


def _specs(inputs: dict, vocab, batch=None) -> dict[str, P]:
    """Logits and targets split over classes; per-example inputs over ``batch``."""
    per_class = {"logits", "class_weights"} | (
        {"labels"} if inputs["labels"].ndim == 2 else set()
    )
    specs = {}
    for k, v in inputs.items():
        if k in per_class:
            specs[k] = P(batch, vocab) if v.ndim == 2 else P(vocab)
        elif np.ndim(v) >= 1:
            specs[k] = P(batch)
        else:
            specs[k] = P()
    return specs


def _vocab_parallel(mesh, inputs, differentiate, vocab="vocab", check_vma=True, **options):
    """The three reductions with the vocabulary sharded over ``vocab`` inside shard_map.

    Gradients are taken outside shard_map, as a training step does.
    """
    specs = _specs(inputs, vocab)
    loss = functools.partial(jaxloss.vocab_parallel_softmax_cross_entropy, axis_name=vocab)

    def call(reduction, a):
        mapped = jax.shard_map(
            functools.partial(_call, loss, reduction, **options), mesh=mesh,
            in_specs=({k: specs[k] for k in a},), out_specs=P(), check_vma=check_vma,
        )
        return mapped(a)

    placed = {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in inputs.items()}
    return jax.jit(_every_reduction(call, differentiate))(placed)


def _one_device(inputs, differentiate, **options):
    device = jax.devices()[0]

    def call(reduction, a):
        return _call(jaxloss.softmax_cross_entropy, reduction, a, **options)

    run = _every_reduction(call, differentiate)
    return jax.jit(run)({k: jax.device_put(v, device) for k, v in inputs.items()})


def _assert_same(actual, expected, differentiate, rtol=2e-5, atol=1e-6):
    for r in REDUCTIONS:
        (value, out), grads = actual[r]
        (ref_value, ref_out), ref_grads = expected[r]
        assert np.all(np.isfinite(ref_out)), f"reduction={r}: the reference is not finite"
        np.testing.assert_allclose(value, ref_value, rtol=rtol, atol=atol, err_msg=f"{r}: value")
        np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol, err_msg=f"{r}: output")
        for k in differentiate:
            assert grads[k].dtype == ref_grads[k].dtype, k
            np.testing.assert_allclose(
                np.asarray(grads[k], np.float64), np.asarray(ref_grads[k], np.float64),
                rtol=rtol, atol=atol, equal_nan=False, err_msg=f"{r}: gradient for {k}",
            )


def _vocab_mesh(axis_type=AxisType.Explicit):
    return jax.make_mesh((DEVICES,), ("vocab",), axis_types=(axis_type,))


@pytest.mark.parametrize("check_vma", [True, False], ids=["check_vma", "no_check_vma"])
@pytest.mark.parametrize("variant", ["plain", "weighted_smoothed_zloss"])
def test_index_labels_equal_one_device(variant, check_vma):
    inputs = _problem(0)
    options = {}
    if variant == "plain":
        del inputs["class_weights"]
    else:
        options = {"label_smoothing": 0.1, "z_loss": 1e-3}
    differentiate = {"logits", "weights", "class_weights"} & set(inputs)
    actual = _vocab_parallel(_vocab_mesh(), inputs, differentiate, check_vma=check_vma,
                             **options)
    _assert_same(actual, _one_device(inputs, differentiate, **options), differentiate)


def test_traced_hyperparameters_equal_one_device():
    # No ignored rows: the reference's gradient for a traced label_smoothing is NaN when a
    # label equals ignore_index (its take_along_axis reads out of range); see the next test.
    inputs = _problem(1, ignored=False)
    inputs["label_smoothing"] = np.float32(0.2)
    inputs["z_loss"] = np.float32(0.01)
    differentiate = {"logits", "weights", "class_weights", "label_smoothing", "z_loss"}
    actual = _vocab_parallel(_vocab_mesh(), inputs, differentiate)
    _assert_same(actual, _one_device(inputs, differentiate), differentiate)


def test_ignored_examples_equal_leaving_them_out():
    inputs = _problem(2)
    inputs["label_smoothing"] = np.float32(0.2)
    differentiate = {"logits", "weights", "class_weights", "label_smoothing"}
    actual = _vocab_parallel(_vocab_mesh(), inputs, differentiate)
    kept = inputs["labels"] != -100
    sliced = {k: (v[kept] if k in ("logits", "labels", "where", "weights", "cotangent") else v)
              for k, v in inputs.items()}
    expected = _one_device(sliced, differentiate)
    for r in ("sum", "mean"):
        (value, _), grads = actual[r]
        (ref_value, _), ref_grads = expected[r]
        np.testing.assert_allclose(value, ref_value, rtol=2e-5)
        np.testing.assert_allclose(grads["logits"][kept], ref_grads["logits"], rtol=2e-5,
                                   atol=1e-6)
        # An ignored example with finite logits has exactly zero gradient.
        assert np.all(np.asarray(grads["logits"])[~kept] == 0)
        for k in ("class_weights", "label_smoothing"):
            np.testing.assert_allclose(grads[k], ref_grads[k], rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["plain", "weighted_smoothed_zloss"])
def test_probability_targets_equal_one_device(variant):
    inputs = _problem(3, targets=True)
    options = {}
    if variant == "plain":
        del inputs["class_weights"]
    else:
        options = {"label_smoothing": 0.1, "z_loss": 1e-3}
    differentiate = {"logits", "labels", "weights", "class_weights"} & set(inputs)
    actual = _vocab_parallel(_vocab_mesh(), inputs, differentiate, **options)
    _assert_same(actual, _one_device(inputs, differentiate, **options), differentiate)


@pytest.mark.parametrize("targets", [False, True], ids=["index", "probabilities"])
def test_minus_inf_logits_on_unused_classes(targets):
    inputs = _problem(4, targets=targets)
    del inputs["class_weights"]
    # Classes 8..15 (devices 2 and 3) are impossible; no target uses them.
    inputs["logits"][:, 8:16] = -np.inf
    if targets:
        inputs["labels"][:, 8:16] = 0
        inputs["labels"] /= inputs["labels"].sum(-1, keepdims=True)
    else:
        inputs["labels"] = np.where((inputs["labels"] >= 8) & (inputs["labels"] < 16), 0,
                                    inputs["labels"])
    differentiate = {"logits", "labels"} & {"logits", "labels" if targets else "logits"}
    actual = _vocab_parallel(_vocab_mesh(), inputs, differentiate)
    _assert_same(actual, _one_device(inputs, differentiate), differentiate)
    assert np.all(np.asarray(actual["mean"][1]["logits"])[:, 8:16] == 0)


def test_invalid_labels_give_nan_for_that_example_only():
    inputs = _problem(5)
    del inputs["class_weights"]
    inputs["labels"][1] = CLASSES  # just past the last device's slice
    inputs["labels"][3] = -1
    out = _vocab_parallel(_vocab_mesh(), inputs, set())["none"][0][1]
    assert np.isnan(out[1]) and np.isnan(out[3])
    rest = np.ones(BATCH, bool)
    rest[[1, 3]] = False
    assert np.all(np.isfinite(out[rest]))

    targets = _problem(6, targets=True)
    targets["labels"][3, 30] = -0.1  # on the last device only
    out = _vocab_parallel(_vocab_mesh(), targets, set())["none"][0][1]
    assert np.isnan(out[3])
    rest = np.ones(BATCH, bool)
    rest[3] = False
    assert np.all(np.isfinite(out[rest]))


def test_checks_report_the_invalid_label():
    # An Auto mesh: in jax 0.10.2, checkify's Error.get() fails on explicitly sharded errors.
    mesh = _vocab_mesh(AxisType.Auto)

    def local(logits, labels, checks):
        return jaxloss.vocab_parallel_softmax_cross_entropy(
            logits, labels, axis_name="vocab", checks=checks
        )

    logits = jnp.zeros((3, CLASSES))
    for labels, message in (([1, CLASSES + 5, -100], f"first offending value: {CLASSES + 5}"),
                            ([1, 2, -100], None)):
        f = jax.shard_map(functools.partial(local, checks=True), mesh=mesh,
                          in_specs=(P(None, "vocab"), P()), out_specs=P())
        err, _ = checkify.checkify(jax.jit(f))(logits, jnp.array(labels))
        if message is None:
            assert err.get() is None
        else:
            assert message in err.get()
    unchecked = jax.shard_map(functools.partial(local, checks=False), mesh=mesh,
                              in_specs=(P(None, "vocab"), P()), out_specs=P())
    assert not jax.make_jaxpr(unchecked)(logits, jnp.array([1, 2, 3])).effects


@pytest.mark.parametrize("check_vma", [True, False], ids=["check_vma", "no_check_vma"])
def test_batch_sharded_over_a_data_axis_gives_the_global_mean(check_vma):
    """Batch over "data" (2), vocabulary over "vocab" (4): psum of sums over counts."""
    inputs = _problem(7)
    del inputs["class_weights"], inputs["cotangent"]
    inputs = {k: np.concatenate([v, v[::-1]]) for k, v in inputs.items()}  # 12 examples
    mesh = jax.make_mesh((2, 4), ("data", "vocab"))
    specs = _specs(inputs, "vocab", "data")

    def local(a):
        total = jaxloss.vocab_parallel_softmax_cross_entropy(
            a["logits"], a["labels"], axis_name="vocab", where=a["where"],
            weights=a["weights"], label_smoothing=0.1, reduction="sum",
        )
        counts = a["where"] & (a["labels"] != -100)
        count = jnp.sum(jnp.where(counts, a["weights"], 0))
        return jax.lax.psum(total, "data") / jax.lax.psum(count, "data")

    mapped = jax.shard_map(local, mesh=mesh, in_specs=(specs,), out_specs=P(),
                           check_vma=check_vma)
    placed = {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in inputs.items()}
    diff = ("logits", "weights")

    def split(a):
        return {k: a[k] for k in diff}, {k: v for k, v in a.items() if k not in diff}

    value, grad = jax.jit(jax.value_and_grad(lambda d, r: mapped(r | d)))(*split(placed))

    def reference(d, r):
        a = r | d
        return jaxloss.softmax_cross_entropy(
            a["logits"], a["labels"], where=a["where"], weights=a["weights"], label_smoothing=0.1
        )

    ref_value, ref_grad = jax.value_and_grad(reference)(*split(inputs))
    np.testing.assert_allclose(value, ref_value, rtol=2e-5)
    for k in diff:
        np.testing.assert_allclose(grad[k], ref_grad[k], rtol=2e-5, atol=1e-6, err_msg=k)


def test_vocabulary_sharded_over_two_mesh_axes():
    inputs = _problem(8)
    mesh = jax.make_mesh((2, 4), ("a", "b"))
    differentiate = {"logits", "class_weights"}
    actual = _vocab_parallel(mesh, inputs, differentiate, vocab=("a", "b"), label_smoothing=0.1)
    expected = _one_device(inputs, differentiate, label_smoothing=0.1)
    _assert_same(actual, expected, differentiate)


@pytest.mark.parametrize("dtype", ["bfloat16", "float64"])
def test_precision_follows_softmax_cross_entropy(dtype):
    inputs = _problem(9)
    inputs["logits"] = inputs["logits"].astype(dtype)
    differentiate = {"logits"}
    actual = _vocab_parallel(_vocab_mesh(), inputs, differentiate, label_smoothing=0.1)
    expected = _one_device(inputs, differentiate, label_smoothing=0.1)
    loss_dtype = np.float64 if dtype == "float64" else np.float32
    assert actual["mean"][0][0].dtype == loss_dtype
    assert actual["mean"][1]["logits"].dtype == inputs["logits"].dtype
    rtol = 1e-12 if dtype == "float64" else 2e-5
    # bfloat16 gradients: both sides round the same float32 gradient to 8 bits.
    atol = 1e-14 if dtype == "float64" else 2e-3
    _assert_same(actual, expected, differentiate, rtol=rtol, atol=atol)


def test_every_device_of_the_axis_returns_the_same_value():
    inputs = _problem(10)
    mesh = _vocab_mesh()

    def local(logits, labels, where):
        value = jaxloss.vocab_parallel_softmax_cross_entropy(
            logits, labels, axis_name="vocab", where=where
        )
        return value[None]

    # check_vma=False lets each device return its own copy, gathered along "vocab".
    f = jax.shard_map(local, mesh=mesh, in_specs=(P(None, "vocab"), P(), P()),
                      out_specs=P("vocab"), check_vma=False)
    replicated = NamedSharding(mesh, P())
    values = jax.jit(f)(jax.device_put(inputs["logits"], NamedSharding(mesh, P(None, "vocab"))),
                        jax.device_put(inputs["labels"], replicated),
                        jax.device_put(inputs["where"], replicated))
    values = np.asarray(values)
    assert values.shape == (DEVICES,) and np.isfinite(values[0])
    assert np.all(values == values[0])


def _collectives(compiled_text: str) -> list[str]:
    return sorted(COLLECTIVE.findall(compiled_text))


def test_compiled_program_never_gathers_the_logits():
    mesh = _vocab_mesh()
    logits = jnp.asarray(_problem(11)["logits"][1:4])  # finite rows
    labels = jnp.array([3, 17, 30])
    class_weights = jnp.linspace(0.5, 2.0, CLASSES, dtype=jnp.float32)
    spec = NamedSharding(mesh, P(None, "vocab"))
    args = (jax.device_put(logits, spec), jax.device_put(labels, NamedSharding(mesh, P())),
            jax.device_put(class_weights, NamedSharding(mesh, P("vocab"))))

    def local(z, y, c):
        return jaxloss.vocab_parallel_softmax_cross_entropy(
            z, y, axis_name="vocab", class_weights=c, label_smoothing=0.1, z_loss=1e-3
        )

    def gathered(z, y, c):
        # What the loss must not do: assemble the full logits on every device.
        full = jax.lax.all_gather(z, "vocab", axis=1, tiled=True)
        return jaxloss.softmax_cross_entropy(
            full, y, class_weights=jax.lax.all_gather(c, "vocab", tiled=True),
            label_smoothing=0.1, z_loss=1e-3,
        )

    specs = (P(None, "vocab"), P(), P("vocab"))
    forward = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())
    naive = jax.shard_map(gathered, mesh=mesh, in_specs=specs, out_specs=P(), check_vma=False)
    grad = jax.value_and_grad(forward, argnums=(0, 2))

    def hlo(f):
        return jax.jit(f).lower(*args).compile().as_text()

    assert "all-gather" in hlo(naive)  # the check below can see a gather when there is one
    forward_ops, grad_ops = _collectives(hlo(forward)), _collectives(hlo(grad))
    assert "all-gather" not in forward_ops and "all-gather" not in grad_ops
    assert "all-reduce" in forward_ops  # the pmax and the psum
    # The backward pass adds no communication: the gradient program has the forward's only.
    assert grad_ops == forward_ops
    np.testing.assert_allclose(jax.jit(forward)(*args), jax.jit(naive)(*args), rtol=2e-5)


@pytest.mark.parametrize(
    ("axis_type", "targets"),
    [(AxisType.Explicit, False), (AxisType.Auto, False), (AxisType.Explicit, True)],
    ids=["explicit-index", "auto-index", "explicit-probabilities"],
)
def test_shard_map_manual_over_the_vocabulary_axis_only(axis_type, targets):
    """shard_map(axis_names={"vocab"}): the batch stays sharded over "data" outside it."""
    inputs = _problem(12, targets=targets)
    keep = ("logits", "labels", "where", "class_weights")
    inputs = {k: inputs[k] for k in keep}
    inputs = {k: (v if k == "class_weights" else np.concatenate([v, v[::-1]]))
              for k, v in inputs.items()}  # 12 examples
    mesh = jax.make_mesh((2, 4), ("data", "vocab"), axis_types=(axis_type, axis_type))
    per_class = P(None, "vocab") if targets else P()
    outside = {"logits": P("data", "vocab"), "labels": P("data", *per_class[1:]),
               "where": P("data"), "class_weights": P("vocab")}
    inside = {"logits": P(None, "vocab"), "labels": per_class, "where": P(),
              "class_weights": P("vocab")}

    def local(a):
        return jaxloss.vocab_parallel_softmax_cross_entropy(
            a["logits"], a["labels"], axis_name="vocab", where=a["where"],
            class_weights=a["class_weights"], label_smoothing=0.1, reduction="none",
        )

    mapped = jax.shard_map(local, mesh=mesh, in_specs=(inside,), out_specs=P(),
                           axis_names={"vocab"})
    diff = ("logits", "class_weights") + (("labels",) if targets else ())
    cotangent = np.random.default_rng(13).uniform(0.5, 1.5, 12).astype(np.float32)

    def split(a):
        return {k: a[k] for k in diff}, {k: v for k, v in a.items() if k not in diff}

    placed = {k: jax.device_put(v, NamedSharding(mesh, outside[k])) for k, v in inputs.items()}
    value, grad = jax.jit(jax.value_and_grad(
        lambda d, r: jnp.sum(mapped(r | d) * cotangent)
    ))(*split(placed))

    def reference(d, r):
        a = r | d
        out = jaxloss.softmax_cross_entropy(
            a["logits"], a["labels"], where=a["where"], class_weights=a["class_weights"],
            label_smoothing=0.1, reduction="none",
        )
        return jnp.sum(out * cotangent)

    ref_value, ref_grad = jax.value_and_grad(reference)(*split(inputs))
    np.testing.assert_allclose(value, ref_value, rtol=2e-5)
    for k in diff:
        np.testing.assert_allclose(grad[k], ref_grad[k], rtol=2e-5, atol=1e-6, err_msg=k)
