"""jit benchmarks of jaxloss against optax and PyTorch, with a memory-bandwidth roofline.

For each loss that has an optax or torch equivalent, at sizes that matter, in float32 and
bfloat16, this measures jitted ``value_and_grad`` with respect to the predictions:

- run time: warm-up, then repeats with the implementations alternated (A B C, B C A, ...)
  so that drift on a shared machine falls on every side alike; median, min and max of the
  time per call, each sample averaging enough back-to-back calls to last about 50 ms;
- compile time, separately (``lower`` + ``compile``);
- XLA's temporary memory (``compiled.memory_analysis().temp_size_in_bytes``);
- a roofline: the bytes the loss must move (read the inputs once, write the gradient once)
  divided by this machine's copy bandwidth for that many bytes (measured per row, with
  every core, warm: rows of a few MiB run from the caches), the fastest time possible.

torch runs forward plus backward on the CPU with as many threads as XLA uses. Ratios are the
headline (jaxloss/optax, jaxloss/torch, roofline/jaxloss), each from one run.

    python benchmarks/run.py            # full run, a few minutes on 2 cores
    python benchmarks/run.py --quick    # seconds: tiny sizes, for the tests
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import platform
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss

RESULTS = pathlib.Path(__file__).resolve().parent / "results"

CLASSIFICATION_SIZES = [(4096, 10), (4096, 1000), (4096, 32768)]
REGRESSION_SIZES = [(1 << 20,), (1 << 24,)]
QUICK_CLASSIFICATION_SIZES = [(64, 10), (64, 100)]
QUICK_REGRESSION_SIZES = [(4096,), (16384,)]


@dataclasses.dataclass(frozen=True)
class Case:
    """One loss and its peers. Each callable maps (predictions, *rest) to a scalar mean."""

    name: str
    kind: str  # "classification" (index labels), "distribution", "regression", "binary"
    jaxloss: Callable[..., Any]
    optax: Callable[..., Any] | None
    torch: Callable[..., Any] | None


def _optax():
    try:
        import optax
    except ImportError:  # pragma: no cover - optax is in the dev and experiments extras
        return None
    return optax.losses


def _torch():
    try:
        import torch
        import torch.nn.functional as F  # noqa: N812
    except ImportError:
        return None, None
    return torch, F


def cases() -> list[Case]:
    """The benchmarked losses; a loss whose peer is missing here is benchmarked without it."""
    ox = _optax()
    torch, F = _torch()  # noqa: N806
    out = [
        Case(
            "softmax_cross_entropy", "classification",
            lambda z, y: jaxloss.softmax_cross_entropy(z, y),
            ox and (lambda z, y: ox.softmax_cross_entropy_with_integer_labels(z, y).mean()),
            F and (lambda z, y: F.cross_entropy(z, y)),
        ),
        Case(
            "kl_divergence", "distribution",
            lambda z, p: jaxloss.kl_divergence(z, p),
            ox and (lambda z, p: ox.kl_divergence(jax.nn.log_softmax(z), p).mean()),
            F and (lambda z, p: F.kl_div(F.log_softmax(z, dim=-1), p, reduction="batchmean")),
        ),
        Case(
            "multiclass_hinge_loss", "classification",
            lambda s, y: jaxloss.multiclass_hinge_loss(s, y, kind="weston_watkins"),
            None,
            F and (lambda s, y: F.multi_margin_loss(s, y) * s.shape[-1]),
        ),
        Case(
            "squared_error", "regression",
            lambda p, t: jaxloss.squared_error(p, t),
            ox and (lambda p, t: ox.squared_error(p, t).mean()),
            F and (lambda p, t: F.mse_loss(p, t)),
        ),
        Case(
            "hinge_loss", "binary",
            lambda s, y: jaxloss.hinge_loss(s, y),
            ox and (lambda s, y: ox.hinge_loss(s, y).mean()),
            None,
        ),
    ]
    extra = {
        "absolute_error": (
            "regression", None, F and (lambda p, t: F.l1_loss(p, t)),
        ),
        "huber_loss": (
            "regression", ox and (lambda p, t: ox.huber_loss(p, t).mean()),
            F and (lambda p, t: F.huber_loss(p, t)),
        ),
        "log_cosh": (
            "regression", ox and (lambda p, t: ox.log_cosh(p, t).mean()), None,
        ),
        "sigmoid_binary_cross_entropy": (
            "binary01", ox and (lambda z, y: ox.sigmoid_binary_cross_entropy(z, y).mean()),
            F and (lambda z, y: F.binary_cross_entropy_with_logits(z, y)),
        ),
    }
    for name, (kind, ox_fn, torch_fn) in extra.items():
        fn = getattr(jaxloss, name, None)
        if fn is not None:
            out.append(Case(name, kind, lambda a, b, fn=fn: fn(a, b), ox_fn, torch_fn))
    return out


def make_inputs(kind: str, size: tuple[int, ...], rng: np.random.Generator):
    """Float32 numpy inputs (predictions, targets) for a case of this kind and size."""
    if kind in ("classification", "distribution"):
        n, c = size
        z = rng.normal(size=(n, c)).astype(np.float32)
        if kind == "classification":
            return z, rng.integers(0, c, size=n).astype(np.int32)
        p = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
        return z, p
    x = rng.normal(size=size).astype(np.float32)
    if kind == "regression":
        return x, rng.normal(size=size).astype(np.float32)
    if kind == "binary":
        return x, np.where(rng.random(size) < 0.5, -1.0, 1.0).astype(np.float32)
    return x, (rng.random(size) < 0.5).astype(np.float32)  # binary01


def copy_bandwidth(nbytes: int = 1 << 27, repeats: int = 7) -> float:
    """Memory copy bandwidth in bytes/s (read + write) for a buffer of ``nbytes``.

    A copy of 4 MiB or more is split over one thread per core (numpy's copy releases the
    GIL), as XLA's CPU backend uses every core; the median of back-to-back repeats, so a
    buffer that fits in the caches is measured warm, as the losses are.
    """
    # Below a few MiB a thread hand-off costs more than the copy: copy in this thread.
    threads = (os.cpu_count() or 1) if nbytes >= 1 << 22 else 1
    src = np.ones(max(nbytes // 4, threads), dtype=np.float32)
    dst = np.empty_like(src)
    parts = list(zip(np.array_split(dst, threads), np.array_split(src, threads), strict=True))
    times = []
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats + 1):  # the first copy touches the pages; it is not timed
            t0 = time.perf_counter()
            if threads == 1:
                np.copyto(dst, src)
            else:
                list(pool.map(lambda d_s: np.copyto(*d_s), parts))
            times.append(time.perf_counter() - t0)
    return 2 * src.nbytes / statistics.median(times[1:])


def program_text(compiled) -> str:
    """The compiled XLA program without names, source locations and metadata.

    Two implementations with the same text run the same machine code, so any difference in
    their times is measurement noise: a calibration of the table's ratios.
    """
    text = compiled.as_text()
    if "StackFrames" in text:  # the debug tables that precede the computations
        text = text[text.index("\n\n", text.index("StackFrames")):]
    text = re.sub(r", metadata=\{[^}]*\}", "", text)
    text = re.sub(r"%[\w.\-]+", "%v", text)
    return "\n".join(line for line in text.splitlines() if line.strip())


def _jax_runner(fn, x, y):
    value_and_grad = jax.jit(jax.value_and_grad(fn))
    t0 = time.perf_counter()
    compiled = value_and_grad.lower(x, y).compile()
    compile_s = time.perf_counter() - t0
    memory = compiled.memory_analysis()
    temp = int(memory.temp_size_in_bytes) if memory is not None else None

    def run():
        jax.block_until_ready(compiled(x, y))

    return run, compile_s, temp, program_text(compiled)


def _torch_runner(fn, x_np, y_np, dtype):
    torch, _ = _torch()
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    x = torch.tensor(x_np, dtype=tdtype, requires_grad=True)
    y = torch.tensor(y_np)
    if y.is_floating_point():
        y = y.to(tdtype)
    else:
        y = y.long()

    def run():
        x.grad = None
        loss = fn(x, y)
        loss.backward()

    run()  # fails here, not mid-measurement, if torch lacks this dtype
    return run


def measure(
    case: Case, size, dtype: str, repeats: int, rng, min_sample_s: float = 0.05
) -> dict[str, Any]:
    """Times every implementation of one case at one size and dtype, alternated."""
    x_np, y_np = make_inputs(case.kind, size, rng)
    jdtype = jnp.dtype(dtype)
    x = jnp.asarray(x_np, dtype=jdtype)
    y = jnp.asarray(y_np, dtype=jdtype) if y_np.dtype.kind == "f" else jnp.asarray(y_np)
    runners, compile_s, temp, programs = {}, {}, {}, {}
    for impl, fn in (("jaxloss", case.jaxloss), ("optax", case.optax)):
        if fn is not None:
            runners[impl], compile_s[impl], temp[impl], programs[impl] = _jax_runner(fn, x, y)
    if case.torch is not None:
        try:
            runners["torch"] = _torch_runner(case.torch, x_np, y_np, dtype)
        except (RuntimeError, TypeError) as err:  # e.g. an op without a bfloat16 CPU kernel
            print(f"  torch skipped for {case.name} {size} {dtype}: {err}")
    once = {}
    for impl, run in runners.items():  # warm-up, and a first estimate of the time per call
        run()
        t0 = time.perf_counter()
        run()
        once[impl] = time.perf_counter() - t0
    # Calls per sample: enough that the fastest implementation's sample lasts ~min_sample_s,
    # so that millisecond calls are not at the mercy of one scheduler tick. Every
    # implementation makes the same number of calls per sample.
    number = max(1, min(100, round(min_sample_s / max(min(once.values()), 1e-6))))
    times: dict[str, list[float]] = {impl: [] for impl in runners}
    order = list(runners)
    for r in range(repeats):
        rotated = order[r % len(order):] + order[: r % len(order)]
        for impl in rotated:
            run = runners[impl]
            t0 = time.perf_counter()
            for _ in range(number):
                run()
            times[impl].append((time.perf_counter() - t0) / number)
    moved = x.nbytes + y.nbytes + x.nbytes  # read the inputs once, write the gradient once
    # The bound for this row: a copy that moves as many bytes, read and written, in the same
    # cache regime (an input of a few MiB stays in cache between back-to-back calls).
    bandwidth = copy_bandwidth(moved // 2)
    return {
        "loss": case.name,
        "size": list(size),
        "dtype": dtype,
        "bytes_moved": int(moved),
        "copy_bandwidth_Bps": bandwidth,
        "calls_per_sample": number,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "min_s": {k: min(v) for k, v in times.items()},
        "max_s": {k: max(v) for k, v in times.items()},
        "compile_s": compile_s,
        "temp_bytes": temp,
        "same_program_as_optax": (
            programs["jaxloss"] == programs["optax"] if "optax" in programs else None
        ),
    }


def _ratio(a, b):
    return None if a is None or b is None else a / b


def summarise(rows: list[dict[str, Any]]) -> str:
    """The markdown table: ratios first, then the medians they come from."""
    header = [
        "loss", "size", "dtype", "jaxloss/optax", "jaxloss/torch", "roofline/jaxloss",
        "jaxloss median (ms)", "optax median (ms)", "torch median (ms)",
        "compile jaxloss/optax (s)", "XLA temp jaxloss/optax (MiB)", "same program as optax",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def fmt(v, spec):
        return "–" if v is None else format(v, spec)

    for row in rows:
        med = row["median_s"]
        roof = row["bytes_moved"] / row["copy_bandwidth_Bps"]
        row["roofline_s"] = roof
        row["ratios"] = {
            "jaxloss/optax": _ratio(med.get("jaxloss"), med.get("optax")),
            "jaxloss/torch": _ratio(med.get("jaxloss"), med.get("torch")),
            "roofline/jaxloss": _ratio(roof, med.get("jaxloss")),
        }
        comp, temp = row["compile_s"], row["temp_bytes"]
        mib = [None if temp.get(k) is None else temp[k] / 2**20 for k in ("jaxloss", "optax")]
        lines.append("| " + " | ".join([
            row["loss"], "×".join(map(str, row["size"])), row["dtype"],
            fmt(row["ratios"]["jaxloss/optax"], ".2f"),
            fmt(row["ratios"]["jaxloss/torch"], ".2f"),
            fmt(row["ratios"]["roofline/jaxloss"], ".2f"),
            fmt(med.get("jaxloss") and med["jaxloss"] * 1e3, ".3g"),
            fmt(med.get("optax") and med["optax"] * 1e3, ".3g"),
            fmt(med.get("torch") and med["torch"] * 1e3, ".3g"),
            f"{fmt(comp.get('jaxloss'), '.2f')} / {fmt(comp.get('optax'), '.2f')}",
            f"{fmt(mib[0], '.1f')} / {fmt(mib[1], '.1f')}",
            {True: "yes", False: "no", None: "–"}[row["same_program_as_optax"]],
        ]) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: pathlib.Path) -> None:
    """Time against size, one line per implementation, one panel per loss (float32)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({r["loss"] for r in rows})
    cols = min(3, len(names))
    nrows = -(-len(names) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.3 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        sub = [r for r in rows if r["loss"] == name and r["dtype"] == "float32"]
        sizes = [int(np.prod(r["size"])) for r in sub]
        for impl, style in (("jaxloss", "o-"), ("optax", "s--"), ("torch", "^:")):
            pts = [
                (s, r["median_s"][impl])
                for s, r in zip(sizes, sub, strict=True)
                if impl in r["median_s"]
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=impl)
        ax.plot(sizes, [r["roofline_s"] for r in sub], "k-", lw=0.8, alpha=0.5, label="roofline")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("elements in predictions")
        ax.set_ylabel("value+grad time (s, median)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("jitted value_and_grad, float32 (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (seconds)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation")
    p.add_argument("--loss", action="append", help="only these losses (repeatable)")
    p.add_argument("--dtype", action="append", choices=["float32", "bfloat16"])
    p.add_argument("--out", type=pathlib.Path, default=None)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    repeats = args.repeats or (3 if args.quick else 15)
    min_sample_s = 0.005 if args.quick else 0.05
    dtypes = args.dtype or ["float32", "bfloat16"]
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    torch, _ = _torch()
    if torch is not None:
        # The same number of threads as XLA's CPU backend uses (all cores).
        torch.set_num_threads(os.cpu_count() or 1)

    plan = []
    for case in cases():
        if args.loss and case.name not in args.loss:
            continue
        if case.kind in ("classification", "distribution"):
            sizes = QUICK_CLASSIFICATION_SIZES if args.quick else CLASSIFICATION_SIZES
        else:
            sizes = QUICK_REGRESSION_SIZES if args.quick else REGRESSION_SIZES
        plan += [(case, size, dtype) for size in sizes for dtype in dtypes]

    from tqdm.auto import tqdm

    bandwidth = copy_bandwidth(1 << 22 if args.quick else 1 << 27)
    rng = np.random.default_rng(0)
    rows = []
    for case, size, dtype in tqdm(plan, desc="benchmarks", disable=args.no_progress):
        rows.append(measure(case, size, dtype, repeats, rng, min_sample_s))
    table = summarise(rows)
    machine = {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "torch": torch.__version__ if torch is not None else None,
        "copy_bandwidth_GBps": bandwidth / 1e9,
        "repeats": repeats,
        "min_sample_s": min_sample_s,
    }
    header = (
        f"Machine: {machine['cpu_count']} CPU cores ({machine['processor']}), "
        f"jax {machine['jax']} on {machine['backend']}, torch {machine['torch']}; "
        f"copy bandwidth {machine['copy_bandwidth_GBps']:.1f} GB/s for 128 MiB (each row's "
        "roofline uses the bandwidth measured for its own byte count); "
        f"{repeats} alternated repeats per implementation, each sample about "
        f"{min_sample_s * 1e3:.0f} ms or more of back-to-back calls.\n\n"
        "Ratios below 1 mean jaxloss is faster (jaxloss/optax, jaxloss/torch); "
        "roofline/jaxloss is the fraction of the bandwidth bound reached.\n\n"
    )
    title = "## Losses: jitted value and gradient against optax and PyTorch\n\n"
    (out / "losses.md").write_text(title + header + table + "\n")
    (out / "losses.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    plot(rows, out / "losses_time_vs_size.png")
    print(header + table)
    print(f"\nresults written to {out}")
    return {"machine": machine, "rows": rows}


if __name__ == "__main__":
    main()
