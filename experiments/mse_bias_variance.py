"""MSE = bias² + variance, by Monte Carlo, for three estimators of a Gaussian variance.

The seed note (claim 2) says a good estimator has a small MSE, which needs both a small bias
and a small variance. For n Gaussian samples with variance σ² and S = Σ_i (x_i − x̄)², the
estimators S/k for k = n − 1 (unbiased), k = n (maximum likelihood) and k = n + 1 are compared.
Each is computed on R independent samples of size n; its MSE against σ² is measured with
``jaxloss.squared_error`` and compared with bias² + variance of the same R estimates, and with
the closed forms: S/σ² ~ χ²(n − 1), so

    bias = ((n − 1)/k − 1) σ²,  variance = 2(n − 1) σ⁴ / k²,

giving MSE 2σ⁴/(n − 1), (2n − 1)σ⁴/n² and 2σ⁴/(n + 1): the unbiased estimator has the
largest MSE of the three, and dividing by n + 1 gives the smallest MSE of any S/k.

    python experiments/mse_bias_variance.py            # default, under a minute
    python experiments/mse_bias_variance.py --smoke    # a few seconds, the tests' run
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import jaxloss

matplotlib.use("Agg")
import _common  # noqa: E402  (experiments/ is on sys.path when a script runs)
import matplotlib.pyplot as plt  # noqa: E402

NAME = "mse_bias_variance"
DTYPE = jnp.float32
# Divisor k of S = Σ(x − x̄)² as an offset from n.
ESTIMATORS = {"n-1": -1, "n": 0, "n+1": 1}
LABELS = {"n-1": "S/(n−1), unbiased", "n": "S/n, maximum likelihood",
          "n+1": "S/(n+1), minimum MSE"}


def closed_form(n: int, k: int, sigma2: float) -> dict[str, float]:
    """Bias², variance and MSE of S/k for n Gaussian samples of variance σ²."""
    bias = ((n - 1) / k - 1) * sigma2
    variance = 2 * (n - 1) * sigma2**2 / k**2
    return {"bias2": bias**2, "variance": variance, "mse": bias**2 + variance}


@functools.partial(jax.jit, static_argnames=("ns", "replicates", "sigma"))
def estimates(key: jax.Array, ns: tuple[int, ...], replicates: int,
              sigma: float) -> dict[str, jax.Array]:
    """The three estimates, shape (len(ns), replicates), for each sample size in ``ns``.

    One draw of (replicates, max(ns)) Gaussians; the sample of size n is its first n columns,
    so replicates are independent and sample sizes share draws (common random numbers).
    """
    x = sigma * jax.random.normal(key, (replicates, max(ns)), dtype=DTYPE)
    s = jnp.stack([
        jnp.sum(jnp.square(x[:, :n] - jnp.mean(x[:, :n], axis=1, keepdims=True)), axis=1)
        for n in ns
    ])
    n = jnp.asarray(ns, dtype=DTYPE)[:, None]
    return {name: s / (n + offset) for name, offset in ESTIMATORS.items()}


def measure(est: jax.Array, sigma2: float) -> dict[str, float]:
    """MSE by jaxloss; bias², variance and the MSE's standard error by numpy in float64."""
    truth = jnp.full(est.shape, sigma2, dtype=est.dtype)
    mse = float(jaxloss.squared_error(est, truth))
    e = np.asarray(est, dtype=np.float64)
    bias2 = (np.mean(e) - sigma2) ** 2
    variance = np.var(e)  # ddof=0: the decomposition of the empirical MSE is then exact
    stderr = np.std((e - sigma2) ** 2, ddof=1) / np.sqrt(e.size)
    return {"mse": mse, "bias2": float(bias2), "variance": float(variance),
            "residual": float(mse - (bias2 + variance)), "mse_stderr": float(stderr)}


def figure(results: dict[str, Any], ns: list[int], path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = dict(zip(ESTIMATORS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    dense = np.arange(min(ns), max(ns) + 1)
    sigma2 = results["sigma2"]
    unbiased = np.array([closed_form(int(m), int(m) - 1, sigma2)["mse"] for m in dense])
    for name, offset in ESTIMATORS.items():
        mc = np.array([results[n][name]["mc"]["mse"] for n in ns])
        exact = np.array([closed_form(int(m), int(m) + offset, sigma2)["mse"] for m in dense])
        left.plot(dense, exact, color=colors[name], lw=1)
        left.plot(ns, mc, "o", color=colors[name], label=LABELS[name])
        right.plot(dense, exact / unbiased, color=colors[name], lw=1)
        right.plot(ns, mc / unbiased[np.searchsorted(dense, ns)], "o", color=colors[name],
                   label=LABELS[name])
    left.set(yscale="log", ylabel="MSE of the estimate of σ² (log scale)",
             title=f"MSE against n (σ² = {sigma2:g}): Monte Carlo dots, closed-form lines")
    right.axhline(1, color="0.6", lw=0.8)
    right.set(ylabel="MSE / closed-form MSE of S/(n−1)",
              title="Relative MSE: the unbiased estimator is the worst")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("sample size n (log scale)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, default=2.0,
                        help="the Gaussian's standard deviation σ")
    parser.add_argument("--replicates", type=int, default=None, help="Monte Carlo replicates R")
    args = parser.parse_args(argv)
    out = _common.results_dir(NAME, args)
    replicates = args.replicates or (20_000 if args.smoke else 200_000)
    ns = [2, 3, 5, 10, 20, 50] if args.smoke else [2, 3, 5, 10, 20, 50, 100]
    sigma2 = args.sigma**2

    results: dict[Any, Any] = {"sigma2": sigma2, "replicates": replicates, "ns": ns}
    rows = []
    draws = estimates(jax.random.key(args.seed), tuple(ns), replicates, args.sigma)
    for i, n in enumerate(_common.progress(ns, desc="sample sizes", disable=args.no_progress)):
        results[n] = {}
        for name in ESTIMATORS:
            mc = measure(draws[name][i], sigma2)
            exact = closed_form(n, n + ESTIMATORS[name], sigma2)
            results[n][name] = {"mc": mc, "exact": exact,
                                "z": (mc["mse"] - exact["mse"]) / mc["mse_stderr"]}
            rows.append((n, name, mc["bias2"], exact["bias2"], mc["variance"], exact["variance"],
                         mc["mse"], exact["mse"], mc["residual"],
                         results[n][name]["z"]))
        results[n]["lowest_mse"] = min(results[n], key=lambda e: results[n][e]["mc"]["mse"])

    path = out / "mse_vs_n.png"
    figure(results, ns, path)
    worst = max(abs(r[8]) / r[6] for r in rows)
    table = "\n".join([
        f"σ² = {sigma2:g}, R = {replicates} Monte Carlo replicates per n (seed {args.seed}); "
        "MC = Monte Carlo, CF = closed form; z = (MSE_MC − MSE_CF)/standard error; "
        "residual = MSE − (bias² + variance).", "",
        _common.markdown_table(
            ["n", "divisor", "bias² MC", "bias² CF", "variance MC", "variance CF", "MSE MC",
             "MSE CF", "residual", "z"], rows),
        "", f"Largest |residual| / MSE: {worst:.2g}. Lowest MSE at every n: "
        + ", ".join(f"n={n}: S/({results[n]['lowest_mse']})" for n in ns) + ".",
    ])
    numbers = {
        "sigma2": sigma2, "replicates": replicates, "ns": ns,
        "results": {str(n): results[n] for n in ns},
        "max_relative_residual": worst,
        "figures": {"mse_vs_n": path.name},
    }
    _common.write_results(out, table, numbers)
    return numbers


if __name__ == "__main__":
    main()
