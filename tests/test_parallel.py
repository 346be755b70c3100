"""The vocabulary-parallel losses on one device: their errors, and one shard equals the loss.

Their multi-device behaviour is tested in tests/multidevice/test_vocab_parallel.py and
tests/multidevice/test_vocab_parallel_linear.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss

LOGITS = np.array([[2.0, 0.5, -1.0, 0.0], [0.0, 0.0, 3.0, 1.0], [1.0, -2.0, 0.5, 0.5]])


def _on_one_shard(logits, labels, **options):
    """The loss inside shard_map over a one-device "vocab" axis."""
    mesh = jax.make_mesh((1,), ("vocab",))
    loss = functools.partial(
        jaxloss.vocab_parallel_softmax_cross_entropy, axis_name="vocab", **options
    )
    logits_spec = P(None, "vocab")
    labels_spec = logits_spec if np.ndim(labels) == 2 else P()
    f = jax.shard_map(loss, mesh=mesh, in_specs=(logits_spec, labels_spec), out_specs=P())
    return jax.jit(f)(jax.device_put(logits, NamedSharding(mesh, logits_spec)),
                      jax.device_put(labels, NamedSharding(mesh, labels_spec)))


def test_outside_shard_map_the_error_names_the_axis():
    with pytest.raises(ValueError, match=r"axis_name='vocab' is not bound.*shard_map"):
        jaxloss.vocab_parallel_softmax_cross_entropy(LOGITS, np.array([0, 2, 1]),
                                                     axis_name="vocab")


@pytest.mark.parametrize("axis_name", [0, ("vocab", 1), ()])
def test_axis_name_must_be_names(axis_name):
    with pytest.raises(TypeError, match="axis_name must be a mesh axis name"):
        jaxloss.vocab_parallel_softmax_cross_entropy(LOGITS, np.array([0, 2, 1]),
                                                     axis_name=axis_name)


def test_class_weights_must_be_the_local_slice():
    with pytest.raises(ValueError, match=r"class_weights must be this device's slice.*\(4,\)"
                                         r".*received \(5,\)"):
        _on_one_shard(LOGITS, np.array([0, 2, 1]), class_weights=jnp.ones(5))


def test_labels_shape_is_checked():
    with pytest.raises(ValueError, match=r"labels .*must have shape \(3,\).*received \(2,\)"):
        _on_one_shard(LOGITS, np.array([0, 2]))


@pytest.mark.parametrize("targets", [False, True], ids=["index", "probabilities"])
def test_one_shard_equals_the_numpy_formula(targets):
    eps, zeta, classes = 0.1, 0.01, LOGITS.shape[1]
    index = np.array([0, 2, 3])
    p = np.eye(classes)[index]
    if targets:
        p = np.full(LOGITS.shape, 0.1) + 0.6 * p
    lse = scipy.special.logsumexp(LOGITS, axis=-1)
    # H((1 - eps) p + eps / C, softmax(z)) + zeta lse^2, with -log q_k = lse - z_k.
    smoothed = (1 - eps) * p + eps / classes
    expected = np.sum(smoothed * (lse[:, None] - LOGITS), axis=-1) + zeta * lse**2
    actual = _on_one_shard(LOGITS, p if targets else index, label_smoothing=eps, z_loss=zeta,
                           reduction="none")
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


# vocab_parallel_linear_softmax_cross_entropy: hidden states and this device's rows of the weight.
INPUTS = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
WEIGHT = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5], [0.5, 0.5]])


def _linear_on_one_shard(inputs, weight, labels, **options):
    """The fused loss inside shard_map over a one-device "vocab" axis; per-class options too."""
    mesh = jax.make_mesh((1,), ("vocab",))
    per_class = {k: v for k, v in options.items() if k in ("bias", "class_weights")}
    static = {k: v for k, v in options.items() if k not in per_class}

    def local(x, w, y, a):
        return jaxloss.vocab_parallel_linear_softmax_cross_entropy(
            x, w, y, axis_name="vocab", **a, **static
        )

    specs = (P(), P("vocab", None), P(), {k: P("vocab") for k in per_class})
    f = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())
    args = (inputs, weight, labels, per_class)
    return jax.jit(f)(*jax.tree.map(lambda a, s: jax.device_put(a, NamedSharding(mesh, s)),
                                    args, specs))


def test_fused_outside_shard_map_the_error_names_the_axis_and_the_layout():
    with pytest.raises(ValueError, match=r"axis_name='vocab' is not bound: call "
                                         r"vocab_parallel_linear_softmax_cross_entropy inside "
                                         r"jax\.shard_map.*in_specs=P\('vocab', None\)"):
        jaxloss.vocab_parallel_linear_softmax_cross_entropy(
            INPUTS, WEIGHT, np.array([0, 2, 1]), axis_name="vocab"
        )


@pytest.mark.parametrize("name", ["bias", "class_weights"])
def test_fused_per_class_arrays_must_match_the_local_rows(name):
    with pytest.raises(ValueError, match=rf"{name} must have shape \(4,\), one .* per row of "
                                         r"weight; received \(5,\)"):
        _linear_on_one_shard(INPUTS, WEIGHT, np.array([0, 2, 1]), **{name: jnp.ones(5)})


def test_fused_one_shard_equals_the_numpy_formula():
    eps, zeta, bias = 0.1, 0.01, np.array([0.5, -0.5, 0.0, 1.0])
    labels = np.array([0, 3, 2])
    logits = INPUTS @ WEIGHT.T + bias
    lse = scipy.special.logsumexp(logits, axis=-1)
    smoothed = (1 - eps) * np.eye(4)[labels] + eps / 4
    expected = np.sum(smoothed * (lse[:, None] - logits), axis=-1) + zeta * lse**2
    actual = _linear_on_one_shard(INPUTS, WEIGHT, labels, bias=bias, label_smoothing=eps,
                                  z_loss=zeta, reduction="none", chunk_size=2)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)
