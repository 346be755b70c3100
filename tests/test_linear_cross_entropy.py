"""Tests of jaxloss.linear_softmax_cross_entropy, the fused linear + softmax cross-entropy.

References: the composition it is defined to equal, ``softmax_cross_entropy(inputs @ weight.T
+ bias, labels, ...)`` (with ``c·tanh(z/c)`` applied first when soft-capped), computed with the
logits materialised by plain autodiff; and, independently of jaxloss,
``torch.nn.functional.linear_cross_entropy`` and ``cross_entropy`` (PyTorch 2.13, CPU) for the
options torch has.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss

torch = pytest.importorskip("torch")

N, D, V = 12, 6, 11
IGNORE = -100


def data(dtype=jnp.float64, shape=(N,), seed=0):
    """Seeded inputs, weight, bias, labels (two of them ignore_index), class and sample weights."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=shape + (D,))
    # Scaled so that logits reach about ±4: the soft cap of 2 below is far from linear there.
    weight = rng.normal(size=(V, D)) * 0.8
    bias = rng.normal(size=(V,))
    labels = rng.integers(0, V, size=shape)
    labels.reshape(-1)[[2, 7]] = IGNORE
    return {
        "inputs": jnp.asarray(inputs, dtype),
        "weight": jnp.asarray(weight, dtype),
        "bias": jnp.asarray(bias, dtype),
        "labels": jnp.asarray(labels, jnp.int32),
        "class_weights": jnp.asarray(rng.uniform(0.2, 2.0, size=V), dtype),
        "weights": jnp.asarray(rng.uniform(0.0, 2.0, size=shape), dtype),
        "where": jnp.asarray(rng.random(shape) > 0.25),
        "cotangent": jnp.asarray(rng.normal(size=shape), dtype),
    }


# Options of the loss; "bias" and the arrays named in ARRAY_OPTIONS are taken from data().
# Each option switches a separate code path on, so "everything" exercises all of them together,
# and the others check the paths with smoothing, z-loss, soft-capping or bias switched off.
OPTIONS = {
    "plain": {},
    "class_weights+where": {"class_weights": True, "where": True, "weights": True},
    "smoothing+z_loss": {"label_smoothing": 0.3, "z_loss": 0.05},
    "everything": {
        "bias": True, "class_weights": True, "label_smoothing": 0.1, "z_loss": 0.02,
        "logit_softcap": 2.0, "where": True, "weights": True,
    },
}
ARRAY_OPTIONS = ("bias", "class_weights", "where", "weights")


def resolve(options, d):
    return {k: (d[k] if k in ARRAY_OPTIONS and v is True else v) for k, v in options.items()}


def composition(inputs, weight, labels, *, bias=None, logit_softcap=None, **kwargs):
    """The definition: logits materialised, then jaxloss.softmax_cross_entropy."""
    logits = inputs @ weight.T
    if bias is not None:
        logits = logits + jnp.broadcast_to(bias, logits.shape)
    if logit_softcap is not None:
        logits = logit_softcap * jnp.tanh(logits / logit_softcap)
    return jaxloss.softmax_cross_entropy(logits, labels, **kwargs)


def fused(inputs, weight, labels, **kwargs):
    return jaxloss.linear_softmax_cross_entropy(inputs, weight, labels, **kwargs)


def value_and_grads(loss, d, options, reduction, chunk_size="absent"):
    """Value and gradients w.r.t. inputs, weight and bias of Σ cotangent·loss (scalar as is)."""
    kwargs = resolve(options, d)
    kwargs.pop("bias", None)
    if chunk_size != "absent":
        kwargs["chunk_size"] = chunk_size

    def objective(inputs, weight, bias):
        out = loss(inputs, weight, d["labels"], bias=bias, reduction=reduction, **kwargs)
        # A random cotangent tests every per-token gradient of "none", not only their sum.
        return (out, jnp.sum(out * d["cotangent"])) if reduction == "none" else (out, out)

    bias = d["bias"] if options.get("bias") else None

    @jax.jit
    def run(inputs, weight, bias):
        grads = jax.grad(
            lambda *a: objective(*a)[1], argnums=(0, 1, 2) if bias is not None else (0, 1)
        )(inputs, weight, bias)
        return objective(inputs, weight, bias)[0], grads

    return run(d["inputs"], d["weight"], bias)


def assert_close(actual, expected, rtol):
    """Agreement relative to the scale of the expected array: |a − e| ≤ rtol·max(|e|, tiny)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = max(np.max(np.abs(expected), initial=0.0), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


_REFERENCES = {}


def reference(d, name, reduction):
    """The composition's value and gradients, computed once per data set, options and reduction."""
    key = (str(d["inputs"].dtype), d["inputs"].shape, name, reduction)
    if key not in _REFERENCES:
        _REFERENCES[key] = value_and_grads(composition, d, OPTIONS[name], reduction)
    return _REFERENCES[key]


def assert_agrees(d, name, reduction, rtol, chunk_size="absent", cache=True):
    ours = value_and_grads(fused, d, OPTIONS[name], reduction, chunk_size)
    if cache:
        ref = reference(d, name, reduction)
    else:
        ref = value_and_grads(composition, d, OPTIONS[name], reduction)
    assert ours[0].dtype == ref[0].dtype
    assert_close(ours[0], ref[0], rtol)
    assert len(ours[1]) == len(ref[1])
    for g, r in zip(ours[1], ref[1], strict=True):
        assert g.dtype == r.dtype
        assert_close(g, r, rtol)


@pytest.mark.parametrize(
    ("name", "reduction"),
    [(name, reduction) for name in OPTIONS for reduction in ("mean", "none")]
    + [("everything", "sum")],
)
def test_agrees_with_composition_float64(name, reduction):
    # chunk_size=5 does not divide the 12 tokens: the last chunk is padded.
    assert_agrees(data(), name, reduction, 1e-10, chunk_size=5)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_agrees_with_composition_float32(reduction):
    assert_agrees(data(jnp.float32), "everything", reduction, 1e-5, chunk_size=5)


@pytest.mark.parametrize("chunk_size", [None, 1, 4])
def test_chunk_sizes(chunk_size):
    # None picks one chunk of all 12 tokens, 1 is a token per step, 4 divides 12.
    # (chunk_size=5, used everywhere else, pads the last of three chunks.)
    assert_agrees(data(), "everything", "mean", 1e-10, chunk_size=chunk_size)


def test_leading_axes_and_broadcast_where():
    d = data(shape=(3, 4))
    d["where"] = jnp.asarray([[True], [False], [True]])
    d["weights"] = jnp.asarray([0.5, 1.0, 2.0, 1.5], jnp.float64)
    assert_agrees(d, "everything", "none", 1e-10, chunk_size=5, cache=False)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradients_of_array_hyperparameters(reduction):
    """Sample weights, class weights, smoothing and z-loss given as arrays are differentiable."""
    d = data()
    # No ignored labels here: the composition's gradient with respect to an array
    # label_smoothing is NaN when a label equals ignore_index (see the test below).
    d["labels"] = jnp.where(d["labels"] == IGNORE, 1, d["labels"])

    def objective(loss, weights, class_weights, label_smoothing, z_loss):
        out = loss(
            d["inputs"], d["weight"], d["labels"], bias=d["bias"], weights=weights,
            class_weights=class_weights, label_smoothing=label_smoothing, z_loss=z_loss,
            where=d["where"], reduction=reduction,
        )
        return jnp.sum(out * d["cotangent"]) if reduction == "none" else out

    args = (d["weights"], d["class_weights"], jnp.float64(0.15), jnp.float64(0.03))
    ours = jax.jit(jax.grad(lambda *a: objective(fused, *a), argnums=(0, 1, 2, 3)))(*args)
    ref = jax.jit(jax.grad(lambda *a: objective(composition, *a), argnums=(0, 1, 2, 3)))(*args)
    for g, r in zip(ours, ref, strict=True):
        assert_close(g, r, 1e-10)


def test_smoothing_gradient_with_ignored_tokens_equals_sliced():
    d = data()
    kept = np.asarray(d["labels"]) != IGNORE

    def grad_eps(inputs, labels):
        return jax.jit(jax.grad(
            lambda e: fused(inputs, d["weight"], labels, label_smoothing=e, chunk_size=5)
        ))(jnp.float64(0.2))

    ignored = grad_eps(d["inputs"], d["labels"])
    sliced = grad_eps(d["inputs"][kept], d["labels"][kept])
    assert np.isfinite(ignored)
    assert_close(ignored, sliced, 1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_linear_cross_entropy_parity(reduction):
    d = data()
    tensors = {k: torch.tensor(np.asarray(d[k]), requires_grad=True)
               for k in ("inputs", "weight", "bias")}
    kwargs = {"class_weights": d["class_weights"], "label_smoothing": 0.2}
    torch_kwargs = {"weight": torch.tensor(np.asarray(d["class_weights"])),
                    "label_smoothing": 0.2}
    expected = torch.nn.functional.linear_cross_entropy(
        tensors["inputs"], tensors["weight"], torch.tensor(np.asarray(d["labels"])).long(),
        linear_bias=tensors["bias"], reduction=reduction, ignore_index=IGNORE, **torch_kwargs,
    )
    cotangent = torch.tensor(np.asarray(d["cotangent"])) if reduction == "none" else None
    expected.backward(cotangent)

    def objective(inputs, weight, bias):
        out = fused(inputs, weight, d["labels"], bias=bias, reduction=reduction, chunk_size=5,
                    **kwargs)
        return jnp.sum(out * d["cotangent"]) if reduction == "none" else out

    value = fused(d["inputs"], d["weight"], d["labels"], bias=d["bias"], reduction=reduction,
                  chunk_size=5, **kwargs)
    grads = jax.jit(jax.grad(objective, argnums=(0, 1, 2)))(d["inputs"], d["weight"], d["bias"])
    assert_close(value, expected.detach().numpy(), 1e-10)
    for g, name in zip(grads, ("inputs", "weight", "bias"), strict=True):
        assert_close(g, tensors[name].grad.numpy(), 1e-10)


def test_torch_parity_soft_capped():
    d = data()
    x, w, b = (torch.tensor(np.asarray(d[k]), requires_grad=True)
               for k in ("inputs", "weight", "bias"))
    logits = 2.0 * torch.tanh((x @ w.T + b) / 2.0)
    expected = torch.nn.functional.cross_entropy(
        logits, torch.tensor(np.asarray(d["labels"])).long(), ignore_index=IGNORE
    )
    expected.backward()
    value, grads = jax.jit(jax.value_and_grad(
        lambda *a: fused(*a[:2], d["labels"], bias=a[2], logit_softcap=2.0, chunk_size=5),
        argnums=(0, 1, 2),
    ))(d["inputs"], d["weight"], d["bias"])
    assert_close(value, expected.detach().numpy(), 1e-10)
    for g, t in zip(grads, (x, w, b), strict=True):
        assert_close(g, t.grad.numpy(), 1e-10)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_masked_nan_rows_equal_sliced(reduction):
    """Rows masked by where may hold NaN and invalid labels: they reach no value or gradient."""
    d = data()
    keep = np.asarray(d["where"])
    inputs = d["inputs"].at[~keep].set(jnp.nan)
    labels = d["labels"].at[~keep].set(V + 5)
    kwargs = {"bias": d["bias"], "class_weights": d["class_weights"], "z_loss": 0.01,
              "label_smoothing": 0.1, "logit_softcap": 2.0, "reduction": reduction,
              "chunk_size": 5}

    def total(out):
        return jnp.sum(out)

    masked_value, masked_grads = jax.jit(jax.value_and_grad(
        lambda x, w: total(fused(x, w, labels, where=d["where"], **kwargs)), argnums=(0, 1)
    ))(inputs, d["weight"])
    sliced_value, sliced_grads = jax.jit(jax.value_and_grad(
        lambda x, w: total(fused(x, w, d["labels"][keep], **kwargs)), argnums=(0, 1)
    ))(d["inputs"][keep], d["weight"])
    assert np.isfinite(masked_value)
    assert np.all(np.isfinite(masked_grads[0])) and np.all(np.isfinite(masked_grads[1]))
    assert_close(masked_value, sliced_value, 1e-12)
    assert_close(masked_grads[0][keep], sliced_grads[0], 1e-12)
    assert np.all(np.asarray(masked_grads[0])[~keep] == 0)
    assert_close(masked_grads[1], sliced_grads[1], 1e-12)


def test_ignored_rows_get_exactly_zero_gradient():
    d = data()
    grad = jax.jit(jax.grad(
        lambda x: fused(x, d["weight"], d["labels"], bias=d["bias"], z_loss=0.1,
                        label_smoothing=0.2, chunk_size=5)
    ))(d["inputs"])
    ignored = np.asarray(d["labels"]) == IGNORE
    assert ignored.sum() == 2
    assert np.all(np.asarray(grad)[ignored] == 0)
    assert np.all(np.asarray(grad)[~ignored] != 0)


@pytest.mark.parametrize(
    ("nothing", "reduction"), [("masked", "mean"), ("ignored", "mean"), ("ignored", "none")]
)
def test_nothing_counts_gives_zero_and_zero_gradient(nothing, reduction):
    d = data()
    labels = jnp.full((N,), IGNORE, jnp.int32) if nothing == "ignored" else d["labels"]
    where = jnp.zeros((N,), bool) if nothing == "masked" else None

    def objective(x, w, b):
        out = fused(x, w, labels, bias=b, where=where, class_weights=d["class_weights"],
                    z_loss=0.1, reduction=reduction, chunk_size=5)
        return jnp.sum(out)

    value, grads = jax.jit(jax.value_and_grad(objective, argnums=(0, 1, 2)))(
        d["inputs"], d["weight"], d["bias"]
    )
    assert float(value) == 0.0
    for g in grads:
        assert np.all(np.asarray(g) == 0)


def test_invalid_label_gives_nan_and_is_reported_with_checks():
    d = data()
    labels = d["labels"].at[4].set(V)
    assert np.isnan(fused(d["inputs"], d["weight"], labels))
    per_token = np.asarray(fused(d["inputs"], d["weight"], labels, reduction="none"))
    assert np.isnan(per_token[4]) and np.all(np.isfinite(np.delete(per_token, 4)))
    checked = checkify.checkify(lambda x, w, y: fused(x, w, y, checks=True))
    err, _ = checked(d["inputs"], d["weight"], labels)
    assert err.get() is not None and f"first offending value: {V}" in err.get()
    err, _ = checked(d["inputs"], d["weight"], d["labels"])
    assert err.get() is None
    jaxpr = jax.make_jaxpr(lambda x, w, y: fused(x, w, y))(d["inputs"], d["weight"], labels)
    assert not jaxpr.effects


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_accumulates_in_float32(dtype):
    d = data(dtype)
    value, grads = jax.jit(jax.value_and_grad(
        lambda x, w, b: fused(x, w, d["labels"], bias=b, chunk_size=5), argnums=(0, 1, 2)
    ))(d["inputs"], d["weight"], d["bias"])
    assert value.dtype == jnp.float32
    assert all(g.dtype == dtype for g in grads)
    up = {k: d[k].astype(jnp.float32) for k in ("inputs", "weight", "bias")}
    ref_value, ref_grads = jax.jit(jax.value_and_grad(
        lambda x, w, b: composition(x, w, d["labels"], bias=b), argnums=(0, 1, 2)
    ))(up["inputs"], up["weight"], up["bias"])
    # Products of half-precision numbers are exact in float32, so the loss matches float32
    # logits; the gradients pass through half-precision matmul operands and outputs.
    assert_close(value, ref_value, 1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        assert_close(g, r, 2e-2)


def test_float64_stays_float64_and_vmap_equals_batched():
    d = data(shape=(3, 4))
    out = jax.vmap(lambda x, y: fused(x, d["weight"], y, reduction="sum", chunk_size=3))(
        d["inputs"], d["labels"]
    )
    expected = [fused(d["inputs"][i], d["weight"], d["labels"][i], reduction="sum")
                for i in range(3)]
    assert out.dtype == jnp.float64
    assert_close(out, np.stack(expected), 1e-12)


def test_forward_mode_is_not_supported():
    d = data()
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda x: fused(x, d["weight"], d["labels"]), (d["inputs"],), (d["inputs"],))


@pytest.mark.parametrize(
    ("change", "error", "names"),
    [
        ({"weight": jnp.zeros((V, D + 1))}, ValueError, "weight must have shape"),
        ({"weight": jnp.zeros((V, D), jnp.float32)}, TypeError, "weight must have the dtype"),
        ({"labels": jnp.zeros((N,))}, TypeError, "labels must be an integer array"),
        ({"labels": jnp.zeros((N + 1,), jnp.int32)}, ValueError, "labels (integer class"),
        ({"bias": jnp.zeros((V + 1,))}, ValueError, "bias must have shape"),
        ({"class_weights": jnp.ones((V - 1,))}, ValueError, "class_weights must have shape"),
        ({"logit_softcap": 0.0}, ValueError, "logit_softcap must be > 0"),
        ({"logit_softcap": jnp.float64(2.0)}, TypeError, "logit_softcap must be a Python"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be >= 1"),
        ({"chunk_size": 2.0}, TypeError, "chunk_size must be a Python int"),
        ({"reduction": "avg"}, ValueError, "reduction must be one of"),
        ({"label_smoothing": 1.5}, ValueError, "label_smoothing must be in"),
        ({"where": jnp.ones((N + 1,), bool)}, ValueError, "where must broadcast"),
    ],
)
def test_mistakes_raise_naming_the_argument(change, error, names):
    d = data()
    args = {"inputs": d["inputs"], "weight": d["weight"], "labels": d["labels"]}
    args.update({k: v for k, v in change.items() if k in args})
    kwargs = {k: v for k, v in change.items() if k not in args}
    with pytest.raises(error) as info:
        fused(args["inputs"], args["weight"], args["labels"], **kwargs)
    assert names in str(info.value)


def test_memory_of_value_and_grad_is_an_eighth_of_the_naive_composition():
    """Compile-only (nothing runs): XLA's temporary memory at (N, D, V) = (8192, 1024, 131072)."""
    n, dim, vocab = 8192, 1024, 131072

    def naive(x, w, y):
        return optax.softmax_cross_entropy_with_integer_labels(x @ w.T, y).mean()

    def temp_bytes(loss):
        spec = jax.ShapeDtypeStruct
        compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(
            spec((n, dim), jnp.float32), spec((vocab, dim), jnp.float32), spec((n,), jnp.int32)
        ).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    ours, reference = temp_bytes(fused), temp_bytes(naive)
    # The logits alone are n·vocab float32 numbers; the naive composition keeps at least that.
    assert reference >= n * vocab * 4
    assert ours * 8 <= reference, f"fused {ours / 2**20:.0f} MiB, naive {reference / 2**20:.0f} MiB"
