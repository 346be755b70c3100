"""Hinge loss finds the maximum-margin separator (the seed note's claim 7).

A linear classifier s(x) = w·x + b trained with ``jaxloss.hinge_loss`` plus a small L2 penalty,
mean_i max(0, 1 − y_i s(x_i)) + (λ/2)‖w‖², by optax on separable 2-D data, is compared with the
hard-margin SVM, min ½‖w‖² subject to y_i(w·x_i + b) ≥ 1, solved independently as a quadratic
programme with scipy's SLSQP. For separable data and λ small enough the regularised hinge
optimum *is* the hard-margin SVM, so the geometric margins min_i y_i s(x_i)/‖w‖ and the
directions w/‖w‖ should agree. Logistic regression (cross-entropy of σ(s), same penalty and
optimiser) is trained beside it for contrast, and a sweep over λ shows where the agreement
starts.

    python experiments/hinge_max_margin.py            # default, under a minute
    python experiments/hinge_max_margin.py --smoke    # a few seconds, the tests' run
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from scipy.optimize import minimize

import jaxloss

matplotlib.use("Agg")
import _common  # noqa: E402  (experiments/ is on sys.path when a script runs)
import matplotlib.pyplot as plt  # noqa: E402

NAME = "hinge_max_margin"
DTYPE = jnp.float32
LAMBDAS = [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4]


def make_dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n/2 points per class, x | y ~ N(y·(1.5, 1), 0.8²·I), y ∈ {−1, +1}, kept only where
    y·(u·x) ≥ 0.4 with u = (0.6, 0.8): the classes are separable by construction."""
    rng = np.random.default_rng(seed)
    center, u = np.array([1.5, 1.0]), np.array([0.6, 0.8])
    xs, ys = [], []
    for label in (1, -1):
        kept = np.empty((0, 2))
        while len(kept) < n // 2:
            draw = label * center + 0.8 * rng.normal(size=(n, 2))
            kept = np.concatenate([kept, draw[label * (draw @ u) >= 0.4]])
        xs.append(kept[: n // 2])
        ys.append(np.full(n // 2, label))
    return np.concatenate(xs), np.concatenate(ys)


def hard_margin_svm(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The primal hard-margin SVM, min ½‖w‖² s.t. y_i(w·x_i + b) ≥ 1, by SLSQP."""
    constraint = {
        "type": "ineq",
        "fun": lambda v: y * (x @ v[:2] + v[2]) - 1,
        "jac": lambda v: np.c_[y[:, None] * x, y],
    }
    result = minimize(
        lambda v: 0.5 * v[:2] @ v[:2], np.zeros(3), jac=lambda v: np.r_[v[:2], 0.0],
        constraints=[constraint], method="SLSQP", options={"ftol": 1e-12, "maxiter": 1000},
    )
    if not result.success:
        raise RuntimeError(f"the hard-margin QP did not converge: {result.message}")
    return result.x[:2], float(result.x[2])


def hinge_objective(scores: jax.Array, y: jax.Array) -> jax.Array:
    return jaxloss.hinge_loss(scores, y)


def logistic_objective(scores: jax.Array, y: jax.Array) -> jax.Array:
    # softmax([0, s])₁ = σ(s): the cross-entropy of a sigmoid output on labels (y + 1)/2.
    logits = jnp.stack([jnp.zeros_like(scores), scores], axis=-1)
    return jaxloss.softmax_cross_entropy(logits, (y + 1) // 2)


OBJECTIVES = {"hinge": hinge_objective, "logistic": logistic_objective}


def fit(x: jax.Array, y: jax.Array, lambdas: jax.Array, objective: str, steps: int, lr: float):
    """Adam with a cosine-decayed learning rate on loss + (λ/2)‖w‖², one fit per λ (vmap)."""
    loss = OBJECTIVES[objective]
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))

    def run(lam):
        def total(params):
            penalty = 0.5 * lam * jnp.sum(jnp.square(params["w"]))
            return loss(x @ params["w"] + params["b"], y) + penalty

        def step(carry, _):
            params, state = carry
            updates, state = opt.update(jax.grad(total)(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        params = {"w": jnp.zeros(2, dtype=DTYPE), "b": jnp.zeros((), dtype=DTYPE)}
        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return params["w"], params["b"]

    # optax's Adam and schedules mix its integer step count with floats, which a strict
    # dtype-promotion setting (as in the test suite) rejects; allow it for this trace.
    with jax.numpy_dtype_promotion("standard"):
        w, b = jax.jit(jax.vmap(run))(lambdas)
    return np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)


def geometric_margin(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> float:
    """min_i y_i(w·x_i + b)/‖w‖: negative if some point is misclassified."""
    return float(np.min(y * (x @ w + b)) / np.linalg.norm(w))


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def figure(x, y, svm, fits, lam, sweep, svm_margin, path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 6))
    w_svm, b_svm = svm
    for label, color, marker in ((1, "tab:blue", "o"), (-1, "tab:red", "s")):
        left.scatter(*x[y == label].T, c=color, marker=marker, s=18, label=f"y = {label:+d}")
    support = np.abs(y * (x @ w_svm + b_svm) - 1) < 1e-4
    left.scatter(*x[support].T, s=140, facecolors="none", edgecolors="k", linewidths=1.2,
                 label=f"QP support vectors ({int(support.sum())})")
    lo, hi = x.min(axis=0) - 0.5, x.max(axis=0) + 0.5
    t = np.linspace(lo[0], hi[0], 2)

    def line(w, b, offset, **style):
        left.plot(t, (offset - b - w[0] * t) / w[1], **style)

    w_h, b_h = fits["hinge"]
    line(w_h, b_h, 0, color="k", lw=2, label=f"hinge + L2 (λ = {lam:g})")
    line(w_h, b_h, 1, color="k", ls="--", lw=1, label="hinge margins s = ±1")
    line(w_h, b_h, -1, color="k", ls="--", lw=1)
    line(w_svm, b_svm, 0, color="tab:orange", ls=":", lw=2.5, label="hard-margin SVM (QP)")
    w_l, b_l = fits["logistic"]
    line(w_l, b_l, 0, color="tab:green", lw=1.5, label=f"logistic + L2 (λ = {lam:g})")
    left.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xlabel="x₁", ylabel="x₂",
             title="Separable data: decision boundaries", aspect="equal")
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)

    for name, color in (("hinge", "k"), ("logistic", "tab:green")):
        right.plot(sweep["lambdas"], sweep[name], "o-", color=color, label=f"{name} + L2")
    right.axhline(svm_margin, color="tab:orange", ls=":", lw=2, label="hard-margin SVM (QP)")
    right.set(xscale="log", xlabel="L2 strength λ (log scale)",
              ylabel="geometric margin min yᵢ s(xᵢ)/‖w‖ (units of x)",
              title="Margin of the trained classifier against λ")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--lam", type=float, default=1e-3, help="L2 strength λ of the main fit")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps")
    parser.add_argument("--lr", type=float, default=0.1, help="initial Adam learning rate")
    args = parser.parse_args(argv)
    out = _common.results_dir(NAME, args)
    n = 40 if args.smoke else 100
    steps = args.steps or 3000

    x_np, y_np = make_dataset(n, args.seed)
    w_svm, b_svm = hard_margin_svm(x_np, y_np)
    svm_margin = 1 / float(np.linalg.norm(w_svm))
    lambdas = sorted({*LAMBDAS, args.lam}, reverse=True)
    x = jnp.asarray(x_np, dtype=DTYPE)
    y = jnp.asarray(y_np)  # the default integer type, the type of an argmax

    sweep: dict[str, Any] = {"lambdas": lambdas}
    fits, rows = {}, []
    for name in _common.progress(OBJECTIVES, desc="fitting", disable=args.no_progress):
        w, b = fit(x, y, jnp.asarray(lambdas, dtype=DTYPE), name, steps, args.lr)
        sweep[name] = [geometric_margin(wi, bi, x_np, y_np) for wi, bi in zip(w, b, strict=True)]
        i = lambdas.index(args.lam)
        fits[name] = (w[i], float(b[i]))
        margin = sweep[name][i]
        rows.append((f"{name} + L2 (λ = {args.lam:g})", margin, margin / svm_margin - 1,
                     1 - cosine(w[i], w_svm), float(b[i] / np.linalg.norm(w[i]))))
    rows.append(("hard-margin SVM (SLSQP)", svm_margin, 0.0, 0.0,
                 float(b_svm / np.linalg.norm(w_svm))))
    support = int(np.sum(np.abs(y_np * (x_np @ w_svm + b_svm) - 1) < 1e-4))

    path = out / "boundaries.png"
    figure(x_np, y_np, (w_svm, b_svm), fits, args.lam, sweep, svm_margin, path)
    table = "\n".join([
        f"{n} separable points in 2-D, {steps} Adam steps (cosine-decayed learning rate from "
        f"{args.lr}); {support} support vectors in the QP solution.", "",
        _common.markdown_table(
            ["classifier", "geometric margin", "relative to SVM", "1 − cos(w, w_SVM)", "b/‖w‖"],
            rows),
        "", "Geometric margin against λ:", "",
        _common.markdown_table(
            ["λ", "hinge", "logistic"],
            [(lam, sweep["hinge"][i], sweep["logistic"][i]) for i, lam in enumerate(lambdas)]),
    ])
    numbers = {
        "n": n, "steps": steps, "lam": args.lam, "support_vectors": support,
        "svm": {"w": w_svm.tolist(), "b": b_svm, "margin": svm_margin,
                "offset": float(b_svm / np.linalg.norm(w_svm))},
        **{name: {"w": w.tolist(), "b": b, "margin": sweep[name][i],
                  "offset": float(b / np.linalg.norm(w)), "cosine": cosine(w, w_svm)}
           for name, (w, b) in fits.items()},
        "sweep": sweep,
        "figures": {"boundaries": path.name},
    }
    _common.write_results(out, table, numbers)
    return numbers


if __name__ == "__main__":
    main()
