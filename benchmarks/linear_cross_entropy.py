"""Benchmark: fused linear + softmax cross-entropy against the naive composition.

Two figures, both for ``jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))`` (gradients with
respect to the inputs and the weight):

- XLA's temporary memory, from ``.lower(...).compile().memory_analysis()`` (compile only,
  nothing runs), at (N, D, V) = (8192, 1024, 131072) float32 and as V grows;
- run time at (N, D, V) = (4096, 256, 32768) float32 on the default device, after a warm-up,
  with the two sides alternated (A B A B ...) so that both see the same machine load; the
  median, minimum and maximum of each side and the ratio of the medians. Compile time is
  reported separately. The process's CPU time per call is recorded beside the wall-clock
  time: on a shared machine it varies much less with the load of other processes.

The naive composition materialises the logits and applies
``optax.softmax_cross_entropy_with_integer_labels(...).mean()``: a fixed baseline that does
not change when jaxloss's own cross-entropy does.

    python benchmarks/linear_cross_entropy.py            # the full run
    python benchmarks/linear_cross_entropy.py --quick    # fewer sizes and repeats

Results go to benchmarks/results/linear_cross_entropy.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
MEMORY_SIZE = (8192, 1024, 131072)
TIMING_SIZE = (4096, 256, 32768)


def fused(inputs, weight, labels):
    return jaxloss.linear_softmax_cross_entropy(inputs, weight, labels)


def naive(inputs, weight, labels):
    return optax.softmax_cross_entropy_with_integer_labels(inputs @ weight.T, labels).mean()


LOSSES = {"fused": fused, "naive": naive}


def lower(loss, n, d, v, dtype=jnp.float32):
    spec = jax.ShapeDtypeStruct
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(
        spec((n, d), dtype), spec((v, d), dtype), spec((n,), jnp.int32)
    )


def temp_mib(loss, n, d, v):
    stats = lower(loss, n, d, v).compile().memory_analysis()
    return stats.temp_size_in_bytes / 2**20


def memory_table(vocab_sizes):
    n, d, _ = MEMORY_SIZE
    rows = []
    for v in vocab_sizes:
        fused_mib, naive_mib = temp_mib(fused, n, d, v), temp_mib(naive, n, d, v)
        rows.append({
            "N": n, "D": d, "V": v, "logits_mib": n * v * 4 / 2**20,
            "fused_mib": fused_mib, "naive_mib": naive_mib, "ratio": fused_mib / naive_mib,
        })
        print(f"memory V={v}: fused {fused_mib:.0f} MiB, naive {naive_mib:.0f} MiB", flush=True)
    return rows


def timing(repeats, warmup, seed):
    n, d, v = TIMING_SIZE
    rng = np.random.default_rng(seed)
    args = (
        jnp.asarray(rng.normal(size=(n, d)), jnp.float32),
        jnp.asarray(rng.normal(size=(v, d)) / np.sqrt(d), jnp.float32),
        jnp.asarray(rng.integers(0, v, size=n), jnp.int32),
    )
    compiled, compile_s = {}, {}
    for name, loss in LOSSES.items():
        start = time.perf_counter()
        compiled[name] = lower(loss, n, d, v).compile()
        compile_s[name] = time.perf_counter() - start
    values = {name: jax.block_until_ready(f(*args)) for name, f in compiled.items()}
    for _ in range(warmup):
        for f in compiled.values():
            jax.block_until_ready(f(*args))
    seconds = {name: [] for name in compiled}
    cpu_seconds = {name: [] for name in compiled}
    for _ in range(repeats):
        for name, f in compiled.items():  # alternated: fused, naive, fused, naive, ...
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(f(*args))
            seconds[name].append(time.perf_counter() - start)
            cpu_seconds[name].append(time.process_time() - start_cpu)
    (loss_f, grads_f), (loss_n, grads_n) = values["fused"], values["naive"]
    agreement = max(
        abs(float(loss_f - loss_n)) / abs(float(loss_n)),
        *(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
          for a, b in zip(grads_f, grads_n, strict=True)),
    )
    summary = {
        name: {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s),
               "median_cpu_s": statistics.median(cpu_seconds[name]),
               "compile_s": compile_s[name], "runs": s, "cpu_runs": cpu_seconds[name]}
        for name, s in seconds.items()
    }
    return {
        "N": n, "D": d, "V": v, "repeats": repeats, "warmup": warmup, "sides": summary,
        "median_ratio": summary["fused"]["median_s"] / summary["naive"]["median_s"],
        "median_cpu_ratio": summary["fused"]["median_cpu_s"] / summary["naive"]["median_cpu_s"],
        "max_relative_difference": agreement,
    }


def machine():
    device = jax.devices()[0]
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "jax": jax.__version__,
        "device": f"{device.platform}: {device.device_kind}",
    }


def markdown(numbers):
    m, t = numbers["machine"], numbers["timing"]
    lines = [
        "# linear_softmax_cross_entropy vs the naive composition",
        "",
        f"Machine: {m['device']}, {m['cpu_count']} CPUs ({m['processor']}), jax {m['jax']}; "
        f"load average at start {m['load_average_at_start'][0]:.1f}.",
        "",
        "## XLA temporary memory of jax.value_and_grad (compile only), float32",
        "",
        "| N | D | V | logits (MiB) | fused (MiB) | naive (MiB) | fused / naive |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['N']} | {r['D']} | {r['V']} | {r['logits_mib']:.0f} | {r['fused_mib']:.0f} "
        f"| {r['naive_mib']:.0f} | {r['ratio']:.3f} |"
        for r in numbers["memory"]
    ]
    lines += [
        "",
        f"## Run time of jitted value_and_grad at (N, D, V) = ({t['N']}, {t['D']}, {t['V']}), "
        "float32",
        "",
        f"{t['warmup']} warm-up calls each, then {t['repeats']} alternated calls each.",
        "",
        "| side | median (ms) | min (ms) | max (ms) | median CPU time (ms) | compile (s) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {s['median_s'] * 1e3:.1f} | {s['min_s'] * 1e3:.1f} | "
        f"{s['max_s'] * 1e3:.1f} | {s['median_cpu_s'] * 1e3:.1f} | {s['compile_s']:.2f} |"
        for name, s in t["sides"].items()
    ]
    lines += [
        "",
        f"Median ratio fused / naive: **{t['median_ratio']:.3f}** in wall-clock time, "
        f"{t['median_cpu_ratio']:.3f} in CPU time. Largest relative difference of the loss and "
        f"gradients between the two: {t['max_relative_difference']:.1e}.",
        "",
    ]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two vocabulary sizes, 3 repeats")
    p.add_argument("--repeats", type=int, default=None, help="alternated calls per side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = p.parse_args()
    vocab_sizes = [32768, 131072] if args.quick else [8192, 32768, 131072, 262144]
    repeats = args.repeats or (3 if args.quick else 15)
    numbers = {
        "machine": machine(),
        "quick": args.quick,
        "memory": memory_table(vocab_sizes),
        "timing": timing(repeats, warmup=1 if args.quick else 3, seed=args.seed),
    }
    text = markdown(numbers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "linear_cross_entropy.md").write_text(text)
    (args.out / "linear_cross_entropy.json").write_text(json.dumps(numbers, indent=2) + "\n")
    print(text)
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
