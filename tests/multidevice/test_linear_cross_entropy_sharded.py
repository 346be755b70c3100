"""The fused linear cross-entropy on tokens split over devices, chunked on each device.

With the tokens sharded over explicit mesh axes, linear_softmax_cross_entropy scans over
chunks of every device's own tokens; the scanned axis is never the sharded one. The reference
is the same loss on one device, itself tested against softmax_cross_entropy on the full logits
(tests/test_linear_cross_entropy.py). tests/test_sharding.py runs this folder on 8 devices.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss

DEVICES = 8
pytestmark = pytest.mark.skipif(
    jax.device_count() < DEVICES,
    reason=f"needs {DEVICES} devices, found {jax.device_count()}: tests/test_sharding.py runs "
    "this folder in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8",
)

DIM, CLASSES = 6, 24


def _problem(seed: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Seeded tokens: the first two masked by ``where`` and holding NaN, two ignored."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(*shape, DIM)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=shape).astype(np.int32)
    where = np.ones(shape, bool)
    flat_where, flat_inputs, flat_labels = where.reshape(-1), inputs.reshape(-1, DIM), \
        labels.reshape(-1)
    flat_where[:2] = False
    flat_inputs[:2] = np.nan
    flat_labels[5:7] = -100
    return {
        "inputs": inputs, "labels": labels, "where": where,
        "weights": rng.uniform(0.5, 2.0, shape).astype(np.float32),
        "weight": (rng.normal(size=(CLASSES, DIM)) / 3).astype(np.float32),
        "bias": rng.normal(size=CLASSES).astype(np.float32),
        "cotangent": rng.normal(size=shape).astype(np.float32),
    }


def _value_and_grads(a, reduction, **options):
    """(value, d inputs, d weight, d bias) of the loss; "none" is contracted with a cotangent."""

    def objective(inputs, weight, bias):
        out = jaxloss.linear_softmax_cross_entropy(
            inputs, weight, a["labels"], bias=bias, where=a["where"], weights=a["weights"],
            reduction=reduction, **options,
        )
        return jnp.sum(out * a["cotangent"]) if reduction == "none" else out

    value, grads = jax.value_and_grad(objective, argnums=(0, 1, 2))(
        a["inputs"], a["weight"], a["bias"]
    )
    return value, *grads


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("chunk_size", [None, 2, 3], ids=lambda c: f"chunk={c}")
@pytest.mark.parametrize("shape", [(32,), (8, 5)], ids=lambda s: "x".join(map(str, s)))
def test_sharded_tokens_equal_one_device(shape, chunk_size, reduction):
    # (32,) is 4 tokens per device: chunks of 3 need padding on every device. (8, 5) splits
    # the first of two token axes; 5 tokens per device.
    a = _problem(0, shape)
    expected = jax.jit(functools.partial(
        _value_and_grads, reduction=reduction, chunk_size=chunk_size, label_smoothing=0.1,
    ))({k: jax.device_put(v, jax.devices()[0]) for k, v in a.items()})
    mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(mesh):
        tokens = NamedSharding(mesh, P("data"))
        # The output layer is left unplaced (a plain array under set_mesh): it is replicated.
        placed = {k: (jax.device_put(v, tokens) if k not in ("weight", "bias") else v)
                  for k, v in a.items()}
        actual = jax.jit(functools.partial(
            _value_and_grads, reduction=reduction, chunk_size=chunk_size, label_smoothing=0.1,
        ))(placed)
        assert jax.typeof(actual[1]).sharding.spec[0] == "data"  # d inputs stays sharded
    assert np.isfinite(expected[0])
    for name, got, want in zip(("value", "inputs", "weight", "bias"), actual, expected,
                               strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-5, atol=1e-6,
                                   err_msg=name)
    # Masked tokens hold NaN inputs: exactly zero gradient there.
    d_inputs = np.asarray(actual[1]).reshape(-1, DIM)
    assert np.all(d_inputs[:2] == 0)


def test_vocab_parallel_inside_a_shard_map_over_the_vocabulary_only():
    """The batch split over an explicit "data" axis outside a shard_map that is manual over
    "model" only: the fused vocabulary-parallel loss chunks each data shard's tokens."""
    a = _problem(1, (16,))
    del a["where"], a["weights"], a["bias"]
    a["inputs"] = np.nan_to_num(a["inputs"])
    labels = a["labels"]
    expected = jax.value_and_grad(
        lambda x, w: jaxloss.linear_softmax_cross_entropy(x, w, labels), argnums=(0, 1)
    )(a["inputs"], a["weight"])
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)

    @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P(), P("model", None), P()),
                       out_specs=P(), axis_names={"model"})
    def loss(x, w, y):
        return jaxloss.vocab_parallel_linear_softmax_cross_entropy(
            x, w, y, axis_name="model", chunk_size=3
        )

    with jax.set_mesh(mesh):
        x = jax.device_put(a["inputs"], NamedSharding(mesh, P("data", None)))
        w = jax.device_put(a["weight"], NamedSharding(mesh, P("model", None)))
        y = jax.device_put(labels, NamedSharding(mesh, P("data")))
        value, (d_x, d_w) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, w, y)
    np.testing.assert_allclose(value, expected[0], rtol=2e-5)
    np.testing.assert_allclose(d_x, expected[1][0], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(d_w, expected[1][1], rtol=2e-5, atol=1e-6)


def test_the_weight_gradient_is_summed_across_devices_once_not_per_chunk():
    """Inside the scan (an HLO while loop) nothing is communicated; the weight gradient's
    all-reduce happens once, after it."""
    a = _problem(2, (64,))
    mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(AxisType.Explicit,))

    def loss(inputs, weight, labels):
        return jaxloss.linear_softmax_cross_entropy(inputs, weight, labels, chunk_size=2)

    with jax.set_mesh(mesh):
        tokens = NamedSharding(mesh, P("data"))
        args = (jax.device_put(np.nan_to_num(a["inputs"]), tokens), a["weight"],
                jax.device_put(a["labels"], tokens))
        text = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(*args).compile().as_text()
    computations = re.split(r"\n(?=\S)", text)
    bodies = {name for name in re.findall(r"while\(.*?body=(%[\w.\-]+)", text)}
    assert bodies, "the chunks are not a loop: the test would check nothing"
    for computation in computations:
        name = computation.split(" ", 1)[0]
        if name in bodies:
            assert not re.search(r"all-reduce(?:-start)?\(", computation), computation[:2000]
    # The weight gradient, (CLASSES, DIM), is all-reduced once outside the loop.
    assert re.search(rf"f32\[{CLASSES},{DIM}\]\{{1,0\}} all-reduce(?:-start)?\(", text)
