"""Training on several devices with jaxloss: a batch-sharded model with a vocabulary-parallel head.

The mesh has a "data" axis, which splits the batch, and a "model" axis, which splits the
output layer along the vocabulary. The loss runs inside jax.shard_map, where each device holds
its rows of the batch and its rows of the output layer; it computes their logits chunk by
chunk, so the logits never exist whole on any device. Everything else is jax.jit on sharded
arrays.

    python docs/examples/multi_device_training.py
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python docs/examples/multi_device_training.py

On several hosts, start the same command on every host with --multi-host (docs/multi_device.md).
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss

FEATURES, WIDTH, VOCAB = 16, 64, 256
BATCH = 64  # the global batch, summed over all hosts
IGNORE = -100  # label of padding positions


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--model-parallel", type=int, default=4,
                   help="devices that share one copy of the batch and split the vocabulary")
    p.add_argument("--multi-host", action="store_true",
                   help="connect the processes of several hosts first (jax.distributed)")
    p.add_argument("--coordinator", default=None,
                   help="address:port of process 0; found automatically on Slurm, MPI, TPU")
    p.add_argument("--num-processes", type=int, default=None)
    p.add_argument("--process-id", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def init(key: jax.Array) -> dict[str, jax.Array]:
    k_hidden, k_out = jax.random.split(key)
    return {
        "hidden": jax.random.normal(k_hidden, (FEATURES, WIDTH), jnp.float32) / FEATURES**0.5,
        "out": jax.random.normal(k_out, (VOCAB, WIDTH), jnp.float32) / WIDTH**0.5,
    }


# Where each parameter lives: the output layer (one row per token of the vocabulary) is
# split along the vocabulary.
PARAM_SPECS = {"hidden": P(), "out": P("model", None)}


@jax.shard_map(in_specs=(P("data", None), P("model", None), P("data")), out_specs=P())
def vocab_parallel_loss(hidden: jax.Array, w_out: jax.Array, labels: jax.Array) -> jax.Array:
    """The global mean cross-entropy; runs once per device on its block of the problem."""
    # This device's examples against this device's rows of the output layer: the loss forms
    # their logits a chunk of examples at a time.
    total = jaxloss.vocab_parallel_linear_softmax_cross_entropy(
        hidden, w_out, labels, axis_name="model", ignore_index=IGNORE, reduction="sum"
    )
    count = jnp.sum(labels != IGNORE, dtype=total.dtype)
    # The batch is split over "data": add up the sums and the counts of all its shards.
    return jax.lax.psum(total, "data") / jnp.maximum(jax.lax.psum(count, "data"), 1)


def features(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return jnp.tanh(x @ params["hidden"])


def loss_fn(params: dict[str, jax.Array], batch: dict[str, jax.Array]) -> jax.Array:
    return vocab_parallel_loss(features(params, batch["x"]), params["out"], batch["labels"])


optimizer = optax.adam(1e-2)


@jax.jit
def train_step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@jax.jit
def evaluate(params, batch):
    """Any jaxloss function works on batch-sharded arrays under jit, with global means."""
    logits = features(params, batch["x"]) @ params["out"].T  # sharded over ("data", "model")
    # A loss over classes needs each example's classes on one device: gather the vocabulary
    # (this all-gather of the logits is what vocab_parallel_loss avoids).
    logits = jax.sharding.reshard(logits, P("data", None))
    counts = batch["labels"] != IGNORE
    return {
        "cross_entropy": jaxloss.softmax_cross_entropy(logits, batch["labels"]),
        "accuracy": jaxloss.accuracy(logits, batch["labels"], where=counts),
    }


def host_batch(mesh, seed: int, step: int) -> dict[str, jax.Array]:
    """This host's share of a global batch, assembled into arrays sharded over "data"."""
    teacher = np.random.default_rng(seed).normal(size=(FEATURES, VOCAB))  # same on every host
    rng = np.random.default_rng([seed, step, jax.process_index()])
    local = BATCH // jax.process_count()
    x = rng.normal(size=(local, FEATURES)).astype(np.float32)
    labels = np.argmax(x @ teacher, axis=-1).astype(np.int32)
    labels[rng.random(local) < 0.1] = IGNORE  # padding: these positions do not count
    return {
        "x": jax.make_array_from_process_local_data(NamedSharding(mesh, P("data", None)), x),
        "labels": jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), labels),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse(argv)
    if args.multi_host:
        # Before any other JAX call. Afterwards jax.devices() lists every host's devices.
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    model = math.gcd(jax.device_count(), args.model_parallel)
    mesh = jax.make_mesh((jax.device_count() // model, model), ("data", "model"))
    say = print if jax.process_index() == 0 else (lambda *a: None)
    say(f"{jax.process_count()} process(es), mesh {dict(mesh.shape)}")

    with jax.set_mesh(mesh):
        shardings = {k: NamedSharding(mesh, s) for k, s in PARAM_SPECS.items()}
        params = jax.jit(init, out_shardings=shardings)(jax.random.key(args.seed))
        opt_state = jax.jit(optimizer.init)(params)
        losses = []
        for step in range(args.steps):
            batch = host_batch(mesh, args.seed, step)
            params, opt_state, loss = train_step(params, opt_state, batch)
            losses.append(float(loss))
            if step % 50 == 0 or step == args.steps - 1:
                say(f"step {step:4d}  loss {losses[-1]:.4f}")

        held_out = host_batch(mesh, args.seed, step=args.steps)  # a batch no step trained on
        metrics = {k: float(v) for k, v in evaluate(params, held_out).items()}
        parallel = float(jax.jit(loss_fn)(params, held_out))
    say(f"held out: vocab-parallel loss {parallel:.6f}, softmax_cross_entropy on the full "
        f"logits {metrics['cross_entropy']:.6f}, accuracy {metrics['accuracy']:.3f}")
    return {"first_loss": losses[0], "last_loss": losses[-1], "vocab_parallel": parallel,
            **metrics}


if __name__ == "__main__":
    main()
