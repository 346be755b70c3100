"""vocab_parallel_linear_softmax_cross_entropy on 8 devices equals the fused loss on one.

References, on one device with the full weight: jaxloss.linear_softmax_cross_entropy (tested
against the materialised composition and torch.nn.functional.linear_cross_entropy in
tests/test_linear_cross_entropy.py) and jaxloss.softmax_cross_entropy on the materialised
logits (tested against numpy and PyTorch in the single-device suite). These tests need 8
devices; tests/test_sharding.py runs this folder with
XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

import functools
import math
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

# 10 tokens in chunks of 3: four chunks, the last one padded. 8 classes per device.
TOKENS, DIM, CLASSES, CHUNK = 10, 5, 64, 3
LOCAL = CLASSES // DEVICES
IGNORE = -100
REDUCTIONS = ("none", "sum", "mean")
PER_CLASS = ("weight", "bias", "class_weights")
COLLECTIVE = re.compile(
    r"= (\([^=]*?\)|\w+\[[\d,]*\]\S*) "
    r"(all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)(?:-start)?\("
)


def _problem(seed: int, tokens: int = TOKENS) -> dict[str, np.ndarray]:
    """Seeded float32 inputs: tokens 0 and 4 masked by ``where`` and holding NaN; tokens 2 and
    6 ignored; token 1's label is on the last device, token 3's on the first."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(tokens, DIM))
    where = np.ones(tokens, bool)
    where[[0, 4]] = False
    inputs[~where] = np.nan
    labels = rng.integers(0, CLASSES, tokens)
    labels[1], labels[3] = CLASSES - 1, 0
    labels[[2, 6]] = IGNORE
    return {
        "inputs": inputs.astype(np.float32),
        # Logits of about ±4: the soft cap of 2 below is far from linear there.
        "weight": (0.8 * rng.normal(size=(CLASSES, DIM))).astype(np.float32),
        "bias": rng.normal(size=CLASSES).astype(np.float32),
        "labels": labels.astype(np.int32),
        "where": where,
        "weights": rng.uniform(0.5, 2.0, tokens).astype(np.float32),
        "class_weights": rng.uniform(0.5, 2.0, CLASSES).astype(np.float32),
        "cotangent": rng.normal(size=tokens).astype(np.float32),
    }


# "everything" switches every option on, the hyperparameters as traced (differentiated) arrays.
VARIANTS = {
    "plain": ({}, ()),
    "everything": (
        {"label_smoothing": np.float32(0.1), "z_loss": np.float32(0.01), "logit_softcap": 2.0,
         "chunk_size": CHUNK},
        ("bias", "class_weights", "where", "weights"),
    ),
}
DIFFERENTIABLE = ("inputs", "weight", "bias", "class_weights", "weights", "label_smoothing",
                  "z_loss")


def _inputs(variant: str, seed: int = 0) -> tuple[dict, dict]:
    """The arrays (keyed) and the static options of ``variant``."""
    options, arrays = VARIANTS[variant]
    data = _problem(seed)
    keep = ("inputs", "weight", "labels", "cotangent", *arrays)
    a = {k: data[k] for k in keep}
    static = {}
    for k, v in options.items():
        if isinstance(v, np.ndarray | np.generic):
            a[k] = v
        else:
            static[k] = v
    return a, static


def _call(loss, reduction, a, static):
    keys = [k for k in ("bias", "class_weights", "where", "weights", "label_smoothing",
                        "z_loss") if k in a]
    return loss(a["inputs"], a["weight"], a["labels"], reduction=reduction,
                **{k: a[k] for k in keys}, **static)


def _every_reduction(call):
    """For each reduction, ((scalar, output), gradients) of ``call(reduction, inputs)``.

    For "none" the scalar is the output contracted with the inputs' fixed cotangent.
    """

    def run(inputs):
        diff = {k: v for k, v in inputs.items() if k in DIFFERENTIABLE}
        rest = {k: v for k, v in inputs.items() if k not in DIFFERENTIABLE}

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


def _specs(a: dict, vocab="vocab", batch=None) -> dict[str, P]:
    """Rows of the weight (and bias, class weights) over ``vocab``; tokens over ``batch``."""
    specs = {}
    for k, v in a.items():
        if k in PER_CLASS:
            specs[k] = P(vocab, None) if np.ndim(v) == 2 else P(vocab)
        elif np.ndim(v) == 0:
            specs[k] = P()
        else:
            specs[k] = P(batch, *[None] * (np.ndim(v) - 1))
    return specs


def _mesh(axis_type=AxisType.Explicit):
    return jax.make_mesh((DEVICES,), ("vocab",), axis_types=(axis_type,))


def _vocab_parallel(a, static, check_vma=True):
    """The three reductions inside shard_map, gradients taken outside it (a training step)."""
    mesh = _mesh()
    specs = _specs(a)
    loss = functools.partial(jaxloss.vocab_parallel_linear_softmax_cross_entropy,
                             axis_name="vocab")

    def call(reduction, b):
        mapped = jax.shard_map(
            lambda c: _call(loss, reduction, c, static), mesh=mesh,
            in_specs=({k: specs[k] for k in b},), out_specs=P(), check_vma=check_vma,
        )
        return mapped(b)

    placed = {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in a.items()}
    return jax.jit(_every_reduction(call))(placed)


def _one_device(a, static, loss=jaxloss.linear_softmax_cross_entropy):
    device = jax.devices()[0]
    run = _every_reduction(lambda reduction, b: _call(loss, reduction, b, static))
    return jax.jit(run)({k: jax.device_put(v, device) for k, v in a.items()})


def _assert_same(actual, expected, rtol=2e-5, atol=2e-6, keys=None):
    for r in REDUCTIONS:
        (value, out), grads = actual[r]
        (ref_value, ref_out), ref_grads = expected[r]
        assert np.all(np.isfinite(ref_out)), f"reduction={r}: the reference is not finite"
        assert value.dtype == ref_value.dtype, r
        np.testing.assert_allclose(value, ref_value, rtol=rtol, atol=atol, err_msg=f"{r}: value")
        np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol, err_msg=f"{r}: output")
        for k in keys or ref_grads:
            assert grads[k].dtype == ref_grads[k].dtype, k
            assert np.all(np.isfinite(np.asarray(ref_grads[k], np.float64))), (r, k)
            np.testing.assert_allclose(
                np.asarray(grads[k], np.float64), np.asarray(ref_grads[k], np.float64),
                rtol=rtol, atol=atol, err_msg=f"{r}: gradient for {k}",
            )


@functools.cache
def _reference(variant: str):
    a, static = _inputs(variant)
    if "where" not in a:
        a["inputs"] = np.nan_to_num(a["inputs"])
    return _one_device(a, static)


@pytest.mark.parametrize(
    ("variant", "check_vma"),
    [("plain", True), ("everything", True), ("everything", False)],
    ids=["plain", "everything", "everything-no_check_vma"],
)
def test_values_and_gradients_equal_the_fused_loss_on_one_device(variant, check_vma):
    a, static = _inputs(variant)
    if "where" not in a:
        a["inputs"] = np.nan_to_num(a["inputs"])  # no mask: the NaN rows are not allowed
    actual = _vocab_parallel(a, static, check_vma)
    _assert_same(actual, _reference(variant))
    # Masked (NaN) and ignored tokens get exactly zero gradient, on every device's share.
    uncounted = np.isin(np.arange(TOKENS), [2, 6] + ([0, 4] if "where" in a else []))
    for r in REDUCTIONS:
        assert np.all(np.asarray(actual[r][1]["inputs"])[uncounted] == 0), r


def test_values_and_gradients_equal_softmax_cross_entropy_on_the_logits():
    a, static = _inputs("everything", seed=1)
    a["inputs"] = np.nan_to_num(a["inputs"])  # NaN · 0 in the reference's weight gradient
    static = {"label_smoothing": 0.1}
    del a["z_loss"], a["label_smoothing"]

    def materialised(inputs, weight, labels, *, bias, **options):
        return jaxloss.softmax_cross_entropy(inputs @ weight.T + bias[None, :], labels,
                                             **options)

    actual = _vocab_parallel(a, static)
    _assert_same(actual, _one_device(a, static, materialised))


def test_invalid_labels_give_nan_for_that_token_only_and_checks_report_them():
    a, static = _inputs("plain", seed=2)
    a["inputs"] = np.nan_to_num(a["inputs"])
    a["labels"][1] = CLASSES  # just past the last device's rows
    a["labels"][3] = -1
    out = _vocab_parallel(a, static)["none"][0][1]
    assert np.isnan(out[1]) and np.isnan(out[3])
    assert np.all(np.isfinite(np.delete(out, [1, 3])))

    # An Auto mesh: in jax 0.10.2, checkify's Error.get() fails on explicitly sharded errors.
    mesh = _mesh(AxisType.Auto)

    def local(x, w, y):
        return jaxloss.vocab_parallel_linear_softmax_cross_entropy(
            x, w, y, axis_name="vocab", checks=True)

    f = jax.shard_map(local, mesh=mesh, in_specs=(P(), P("vocab", None), P()), out_specs=P())
    err, _ = checkify.checkify(jax.jit(f))(a["inputs"], a["weight"], a["labels"])
    assert f"first offending value: {CLASSES}" in err.get()


def test_bfloat16_accumulates_in_float32():
    a, static = _inputs("everything", seed=3)
    for k in ("inputs", "weight", "bias"):
        a[k] = a[k].astype(jnp.bfloat16)
    actual = _vocab_parallel(a, static)
    expected = _one_device(a, static)
    # Both sides round the same float32 gradients to bfloat16 (8 bits): a last-bit difference.
    _assert_same(actual, expected, rtol=2e-5, atol=2e-6,
                 keys=("class_weights", "weights", "label_smoothing", "z_loss"))
    for r in REDUCTIONS:
        grads, ref_grads = actual[r][1], expected[r][1]
        for k in ("inputs", "weight", "bias"):
            assert grads[k].dtype == jnp.bfloat16, (r, k)
            scale = np.max(np.abs(np.asarray(ref_grads[k], np.float32)))
            np.testing.assert_allclose(np.asarray(grads[k], np.float32),
                                       np.asarray(ref_grads[k], np.float32),
                                       rtol=1e-2, atol=1e-2 * scale, err_msg=f"{r}: {k}")
    # Against float64 on the same bfloat16 numbers: float32 accumulation, not bfloat16.
    wide = {k: (np.asarray(v, np.float64) if np.issubdtype(np.asarray(v).dtype, np.floating)
                else v) for k, v in a.items()}
    (value, _), _ = actual["mean"]
    assert value.dtype == jnp.float32
    reference = _one_device(wide, static)["mean"][0][0]
    np.testing.assert_allclose(value, reference, rtol=1e-5)


@pytest.mark.parametrize("check_vma", [True, False], ids=["check_vma", "no_check_vma"])
def test_batch_split_over_data_gives_the_global_mean(check_vma):
    """Tokens over "data" (2), vocabulary over "model" (4): psum of sums over counts."""
    a = _problem(4, tokens=2 * TOKENS)
    del a["cotangent"], a["class_weights"]
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    specs = _specs(a, "model", "data")
    options = {"label_smoothing": 0.1, "z_loss": 0.01, "chunk_size": 4}

    def local(b):
        total = jaxloss.vocab_parallel_linear_softmax_cross_entropy(
            b["inputs"], b["weight"], b["labels"], axis_name="model", bias=b["bias"],
            where=b["where"], weights=b["weights"], reduction="sum", **options,
        )
        counts = b["where"] & (b["labels"] != IGNORE)
        count = jnp.sum(jnp.where(counts, b["weights"], 0))
        return jax.lax.psum(total, "data") / jax.lax.psum(count, "data")

    mapped = jax.shard_map(local, mesh=mesh, in_specs=(specs,), out_specs=P(),
                           check_vma=check_vma)
    placed = {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in a.items()}
    diff = ("inputs", "weight", "bias", "weights")

    def split(b):
        return {k: b[k] for k in diff}, {k: v for k, v in b.items() if k not in diff}

    value, grad = jax.jit(jax.value_and_grad(lambda d, r: mapped(r | d)))(*split(placed))

    def reference(d, r):
        b = r | d
        return jaxloss.linear_softmax_cross_entropy(
            b["inputs"], b["weight"], b["labels"], bias=b["bias"], where=b["where"],
            weights=b["weights"], **options,
        )

    ref_value, ref_grad = jax.jit(jax.value_and_grad(reference))(*split(a))
    np.testing.assert_allclose(value, ref_value, rtol=2e-5)
    for k in diff:
        np.testing.assert_allclose(grad[k], ref_grad[k], rtol=2e-5, atol=2e-6, err_msg=k)


def _collective_shapes(compiled_text: str) -> list[tuple[str, tuple[int, ...]]]:
    """(kind, operand shape) of every collective in a compiled HLO module."""
    found = []
    for types, kind in COLLECTIVE.findall(compiled_text):
        for dims in re.findall(r"\w+\[([\d,]*)\]", types):
            found.append((kind, tuple(int(d) for d in dims.split(",") if d)))
    return sorted(found)


def test_compiled_program_communicates_only_per_token_numbers():
    a = _problem(5)
    a["inputs"] = np.nan_to_num(a["inputs"])
    mesh = _mesh()
    specs = (P(), P("vocab", None), P("vocab"), P("vocab"), P())
    args = [jax.device_put(a[k], NamedSharding(mesh, s))
            for k, s in zip(("inputs", "weight", "bias", "class_weights", "labels"), specs,
                            strict=True)]

    def program(reduction):
        def local(x, w, b, c, y):
            out = jaxloss.vocab_parallel_linear_softmax_cross_entropy(
                x, w, y, axis_name="vocab", bias=b, class_weights=c, label_smoothing=0.1,
                z_loss=1e-3, chunk_size=CHUNK, reduction=reduction,
            )
            return jnp.sum(out * a["cotangent"]) if reduction == "none" else out

        return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())

    def gathered(x, w, b, c, y):
        # What the loss must not do: assemble the logits of the whole vocabulary.
        logits = jax.lax.all_gather(x @ w.T + b[None, :], "vocab", axis=1, tiled=True)
        return jnp.sum(logits)

    def collectives(f):
        return _collective_shapes(jax.jit(f).lower(*args).compile().as_text())

    naive = jax.shard_map(gathered, mesh=mesh, in_specs=specs, out_specs=P(), check_vma=False)
    assert ("all-gather", (TOKENS, CLASSES)) in collectives(naive)  # the parser sees a gather

    n_chunks = math.ceil(TOKENS / CHUNK)
    for reduction in ("mean", "none"):
        forward = collectives(program(reduction))
        grad = collectives(jax.value_and_grad(program(reduction), argnums=(0, 1, 2, 3)))
        for kind, shape in forward + grad:
            assert kind == "all-reduce", (reduction, kind, shape)
            # No logits, local or global, and no weight gradient: no axis of the vocabulary.
            assert LOCAL not in shape and CLASSES not in shape, (reduction, shape)
        assert ("all-reduce", (CHUNK,)) in forward  # the per-chunk pmax and psum
        # The backward pass adds one collective: the sum of every device's share of the
        # gradient with respect to the inputs, (chunks, tokens per chunk, D).
        extra = list(grad)
        for op in forward:
            extra.remove(op)
        assert extra == [("all-reduce", (n_chunks, CHUNK, DIM))], (reduction, extra)


def test_temporary_memory_holds_a_chunk_of_logits_not_all_of_them():
    """Compile only: per device, the fused loss plans far less than this device's N×V logits,
    and the unfused vocabulary-parallel loss at least that much."""
    tokens, dim, classes, chunk = 1024, 32, DEVICES * 1024, 64
    mesh = _mesh()
    x = jax.ShapeDtypeStruct((tokens, dim), jnp.float32, sharding=NamedSharding(mesh, P()))
    w = jax.ShapeDtypeStruct((classes, dim), jnp.float32,
                             sharding=NamedSharding(mesh, P("vocab", None)))
    y = jax.ShapeDtypeStruct((tokens,), jnp.int32, sharding=NamedSharding(mesh, P()))

    def fused(x, w, y):
        return jaxloss.vocab_parallel_linear_softmax_cross_entropy(
            x, w, y, axis_name="vocab", chunk_size=chunk)

    def unfused(x, w, y):
        return jaxloss.vocab_parallel_softmax_cross_entropy(x @ w.T, y, axis_name="vocab")

    def temporary(f):
        mapped = jax.shard_map(f, mesh=mesh, in_specs=(P(), P("vocab", None), P()),
                               out_specs=P())
        compiled = jax.jit(jax.value_and_grad(mapped, argnums=(0, 1))).lower(x, w, y).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    local_logits = tokens * (classes // DEVICES) * 4
    assert temporary(unfused) >= local_logits
    assert temporary(fused) < local_logits / 4
