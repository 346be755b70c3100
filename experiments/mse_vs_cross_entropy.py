"""MSE against cross-entropy on sigmoid and softmax outputs (the seed note's claims 5 and 6).

Three parts:

(a) The factor σ(z)(1 − σ(z)) that MSE on a sigmoid output carries in its gradient, with the
    seed's two points (output 0.6 → 0.24, output 0.95 → 0.0475), and the gradient of each loss
    with respect to the pre-activation z, computed by ``jax.grad``: MSE gives
    2(σ − y)σ(1 − σ), which vanishes when the output saturates on the wrong side; sigmoid
    cross-entropy gives σ − y, in which the factor has cancelled.
(b) Logistic regression trained by full-batch SGD from a saturated, confidently wrong start
    (large weights of the wrong sign): the number of steps to reach a target accuracy under
    each loss, and how it grows with the initial weight scale.
(c) The seed's claim 5 ("MSE over-weights the wrong samples"): per-sample gradient magnitudes
    of the Brier score (the seed's "MSE") and of cross-entropy for the seed table's models X
    and Y, with respect to the logits and to the output probabilities.

The dataset of (b) is synthetic and documented in ``make_dataset``. The cross-entropy of a
sigmoid output σ(z) is ``softmax_cross_entropy`` on the logits [0, z], since
softmax([0, z])₁ = σ(z).

    python experiments/mse_vs_cross_entropy.py            # default, under a minute
    python experiments/mse_vs_cross_entropy.py --smoke    # a few seconds, the tests' run
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

import jaxloss

matplotlib.use("Agg")
import _common  # noqa: E402  (experiments/ is on sys.path when a script runs)
import matplotlib.pyplot as plt  # noqa: E402

NAME = "mse_vs_cross_entropy"
SEED_POINTS = (0.6, 0.95)  # the seed's outputs; its factors are 0.24 and 0.0475
DTYPE = jnp.float32

# The seed table (claim 4): rows are the models' output probabilities over classes A, B, C.
SEED_LABELS = np.array([2, 1, 0])
SEED_MODELS = {
    "X": np.array([[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]]),
    "Y": np.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.3]]),
}


# ---------------------------------------------------------------------------------------------
# Losses of one sigmoid output, as functions of the pre-activation z.


def binary_logits(z: jax.Array) -> jax.Array:
    """The two-class logits [0, z], whose softmax is [1 − σ(z), σ(z)]."""
    return jnp.stack([jnp.zeros_like(z), z], axis=-1)


def mse_of_sigmoid(z: jax.Array, y: jax.Array) -> jax.Array:
    """Mean of (σ(z) − y)² over the batch."""
    return jaxloss.squared_error(jax.nn.sigmoid(z), y.astype(z.dtype))


def cross_entropy_of_sigmoid(z: jax.Array, y: jax.Array) -> jax.Array:
    """Mean of −[y log σ(z) + (1 − y) log(1 − σ(z))] over the batch."""
    return jaxloss.softmax_cross_entropy(binary_logits(z), y)


LOSSES = {"mse": mse_of_sigmoid, "cross_entropy": cross_entropy_of_sigmoid}


@jax.jit
def autodiff_part_a(z: jax.Array) -> dict[str, Any]:
    """σ'(z) and ∂ℓ/∂z of each loss for one example of target 0 and of target 1, by jax.grad."""

    def per_example(loss, target):
        # One example per call (a batch of one), so the mean is that example's loss.
        y = jnp.full((1,), target, dtype=jnp.int32)
        return jax.vmap(jax.grad(lambda zi: loss(zi[None], y)))(z)

    return {
        "factor": jax.vmap(jax.grad(jax.nn.sigmoid))(z),
        "grads": {t: {name: per_example(loss, t) for name, loss in LOSSES.items()}
                  for t in (0, 1)},
    }


def part_a(grid_size: int) -> dict[str, Any]:
    outputs = np.concatenate([np.linspace(0.0, 1.0, grid_size + 2)[1:-1], SEED_POINTS])
    z = jnp.asarray(np.log(outputs) - np.log1p(-outputs), dtype=DTYPE)
    result = jax.tree.map(lambda v: np.asarray(v, dtype=np.float64), autodiff_part_a(z))
    factor, seed_factor = result["factor"][:grid_size], result["factor"][grid_size:]
    outputs = outputs[:grid_size]
    grads = jax.tree.map(lambda v: v[:grid_size], result["grads"])
    # Deviation of the autodiff gradients from the textbook forms, over both targets.
    closed = {
        "mse": lambda y: 2 * (outputs - y) * outputs * (1 - outputs),
        "cross_entropy": lambda y: outputs - y,
    }
    deviation = {
        name: max(float(np.max(np.abs(grads[t][name] - closed[name](t)))) for t in (0, 1))
        for name in LOSSES
    }
    return {
        "outputs": outputs,
        "factor": factor,
        "factor_deviation": float(np.max(np.abs(factor - outputs * (1 - outputs)))),
        "seed_factor": {str(o): float(f) for o, f in zip(SEED_POINTS, seed_factor, strict=True)},
        "grads": grads,
        "grad_deviation": deviation,
    }


# ---------------------------------------------------------------------------------------------
# (b) Logistic regression from a saturated, confidently wrong start.


def make_dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two Gaussian classes in 2-D: y ~ Bernoulli(1/2), x | y ~ N(±μ, I) with μ = (1.5, 0.5).

    The Bayes classifier is sign(μ·x), with accuracy Φ(|μ|) ≈ 0.943.
    """
    rng = np.random.default_rng(seed)
    mu = np.array([1.5, 0.5])
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, mu, -mu)
    return x, y, mu


def train(x: jax.Array, y: jax.Array, w0: jax.Array, loss_name: str, steps: int, lr: float):
    """Full-batch SGD on one loss from each row of initial weights ``w0``, side by side.

    Returns, per start and per step, the accuracy, the loss and the weight-gradient norm.
    """
    loss = LOSSES[loss_name]
    opt = optax.sgd(lr)

    def objective(params):
        return loss(x @ params["w"] + params["b"], y)

    def step(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(objective)(params)
        updates, state = opt.update(grad, state, params)
        params = optax.apply_updates(params, updates)
        acc = jaxloss.accuracy(binary_logits(x @ params["w"] + params["b"]), y)
        return (params, state), (acc, value, jnp.linalg.norm(grad["w"]))

    def run(w):
        params = {"w": w, "b": jnp.zeros((), dtype=DTYPE)}
        _, history = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return history

    return [np.asarray(h, dtype=np.float64) for h in jax.jit(jax.vmap(run))(w0)]


def steps_to(accuracy: np.ndarray, target: float) -> int | None:
    """First step (1-based) after which the accuracy is at least ``target``; None if never."""
    hit = np.flatnonzero(accuracy >= target)
    return int(hit[0]) + 1 if hit.size else None


def part_b(n: int, steps: int, lr: float, scale: float, scales: list[float], target: float,
           seed: int, show: bool) -> dict[str, Any]:
    x_np, y_np, mu = make_dataset(n, seed)
    x = jnp.asarray(x_np, dtype=DTYPE)
    y = jnp.asarray(y_np)  # the default integer type, the type of an argmax
    direction = mu / np.linalg.norm(mu)
    scales = sorted({*scales, scale})
    # The wrong sign of the Bayes direction: every example is confidently misclassified.
    w0 = -np.outer(scales, direction)
    main_run = scales.index(scale)
    z0 = x_np @ w0[main_run]
    s0 = 1 / (1 + np.exp(-z0))
    runs, sweep = {}, {}
    for name in _common.progress(LOSSES, desc="training", disable=not show):
        acc, value, gnorm = train(x, y, jnp.asarray(w0, dtype=DTYPE), name, steps, lr)
        sweep[name] = [steps_to(a, target) for a in acc]
        runs[name] = {"accuracy": acc[main_run], "loss": value[main_run],
                      "grad_norm": gnorm[main_run], "steps_to_target": sweep[name][main_run]}
    return {
        "n": n, "steps": steps, "lr": lr, "scale": scale, "target": target,
        "bayes_accuracy": 0.5 * (1 + math.erf(np.linalg.norm(mu) / math.sqrt(2))),
        "initial_accuracy": float(np.mean((z0 > 0) == (y_np == 1))),
        "initial_mean_factor": float(np.mean(s0 * (1 - s0))),
        "runs": runs, "scales": scales, "sweep": sweep,
    }


# ---------------------------------------------------------------------------------------------
# (c) Per-sample gradients on the seed table.


@jax.jit
def seed_gradients(probs: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Per-sample losses and gradient norms of cross-entropy and Brier, by ``jax.grad``.

    With respect to the logits z = log p (so that softmax(z) = p), and with respect to the
    output probabilities p, projected onto the simplex's tangent space (the loss is only
    defined on the simplex, so a change of Σp has no meaning). ``probs`` is (models, samples,
    classes) and every result is (models, samples).
    """
    z = jnp.log(probs)

    # reduction="sum": row i of the gradient is the gradient of sample i's loss alone.
    def ce_z(z):
        return jaxloss.softmax_cross_entropy(z, labels, reduction="sum")

    def brier_z(z):
        return jaxloss.brier_score(jax.nn.softmax(z), labels, reduction="sum")

    def ce_p(p):
        return ce_z(jnp.log(p))

    def brier_p(p):
        return jaxloss.brier_score(p, labels, reduction="sum")

    def tangent_norm(g):
        return jnp.linalg.norm(g - jnp.mean(g, axis=-1, keepdims=True), axis=-1)

    return {
        "ce": jaxloss.softmax_cross_entropy(z, labels, reduction="none"),
        "brier": jaxloss.brier_score(probs, labels, reduction="none"),
        "ce_grad_logits": jnp.linalg.norm(jax.grad(ce_z)(z), axis=-1),
        "brier_grad_logits": jnp.linalg.norm(jax.grad(brier_z)(z), axis=-1),
        "ce_grad_probs": tangent_norm(jax.grad(ce_p)(probs)),
        "brier_grad_probs": tangent_norm(jax.grad(brier_p)(probs)),
    }


def part_c() -> dict[str, Any]:
    probs = np.stack(list(SEED_MODELS.values()))
    labels = np.broadcast_to(SEED_LABELS, probs.shape[:-1])
    values = seed_gradients(jnp.asarray(probs, dtype=DTYPE), jnp.asarray(labels, jnp.int32))
    out = {}
    for m, model in enumerate(SEED_MODELS):
        g = {k: np.asarray(v[m], dtype=np.float64) for k, v in values.items()}
        wrong = np.argmax(probs[m], axis=-1) != SEED_LABELS
        # The wrong sample's share of the model's total: how much of the update it drives.
        g["wrong_share"] = {k: float(np.sum(v[wrong]) / np.sum(v)) for k, v in g.items()}
        g["correct"] = ~wrong
        out[model] = g
    return out


# ---------------------------------------------------------------------------------------------
# Figures and tables.

COLORS = {"mse": "tab:red", "cross_entropy": "tab:blue"}
LABELS = {"mse": "MSE on σ(z)", "cross_entropy": "cross-entropy on σ(z)"}


def figure_gradients(a: dict[str, Any], path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    o = a["outputs"]
    left.plot(o, a["factor"], color="k", label="σ'(z) = σ(1 − σ), by jax.grad")
    for point, value in a["seed_factor"].items():
        left.plot(float(point), value, "o", color="tab:orange", ms=7)
        left.annotate(f"output {point} → {value:.4g}", (float(point), value),
                      textcoords="offset points", xytext=(-120 if float(point) > 0.9 else 8, 8))
    left.set(xlabel="output σ(z)", ylabel="factor σ(z)(1 − σ(z))",
             title="The factor in MSE's gradient")
    left.legend(loc="lower center")
    for name in LOSSES:
        right.plot(o, np.abs(a["grads"][1][name]), color=COLORS[name], label=LABELS[name])
    right.set_yscale("log")
    right.axvspan(0, 0.1, color="0.9")
    right.text(0.02, 2e-2, "confidently\nwrong", fontsize=8)
    right.set(xlabel="output σ(z) (target y = 1)", ylabel="|∂ℓ/∂z| (log scale)",
              title="Gradient w.r.t. the pre-activation z")
    right.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_training(b: dict[str, Any], path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    steps = np.arange(1, b["steps"] + 1)
    for name, run in b["runs"].items():
        hit = run["steps_to_target"]
        label = f"{LABELS[name]} ({hit if hit else '>' + str(b['steps'])} steps to target)"
        axes[0].plot(steps, run["accuracy"], color=COLORS[name], label=label)
        axes[1].plot(steps, run["loss"], color=COLORS[name], label=LABELS[name])
        axes[2].plot(steps, run["grad_norm"], color=COLORS[name], label=LABELS[name])
    axes[0].axhline(b["target"], color="0.5", ls=":", label=f"target accuracy {b['target']}")
    axes[0].set(xscale="log", xlabel="SGD step (log scale)", ylabel="training accuracy",
                title=f"From w = −{b['scale']:g}·μ/|μ| (all wrong)")
    axes[1].set(xscale="log", yscale="log", xlabel="SGD step (log scale)",
                ylabel="training loss (log scale)", title="Each run's own loss")
    axes[2].set(xscale="log", yscale="log", xlabel="SGD step (log scale)",
                ylabel="‖∂loss/∂w‖ (log scale)", title="Weight-gradient norm")
    for ax in axes:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_sweep(b: dict[str, Any], path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    budget = b["steps"]
    for name, hits in b["sweep"].items():
        reached = [(s, h) for s, h in zip(b["scales"], hits, strict=True) if h is not None]
        missed = [s for s, h in zip(b["scales"], hits, strict=True) if h is None]
        if reached:
            ax.plot(*zip(*reached, strict=True), "o-", color=COLORS[name], label=LABELS[name])
        if missed:
            ax.plot(missed, [budget] * len(missed), "x", ms=9, color=COLORS[name],
                    label=f"{LABELS[name]}: not reached in {budget} steps")
    ax.set(yscale="log", xlabel="initial weight scale s (w₀ = −s·μ/|μ|)",
           ylabel=f"SGD steps to {b['target']:.0%} accuracy (log scale)",
           title="Steps to recover from a confidently wrong start")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_seed(c: dict[str, Any], path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    keys = [("ce_grad_logits", "brier_grad_logits", "w.r.t. the logits"),
            ("ce_grad_probs", "brier_grad_probs", "w.r.t. the probabilities (tangent)")]
    for ax, (ce_key, brier_key, title) in zip(axes, keys, strict=True):
        ticks, names = [], []
        for m, (model, g) in enumerate(c.items()):
            for i in range(len(SEED_LABELS)):
                x0 = m * 4 + i
                ticks.append(x0)
                names.append(f"{model}{i + 1}\n{'right' if g['correct'][i] else 'WRONG'}")
                ax.bar(x0 - 0.2, g[ce_key][i], 0.4, color=COLORS["cross_entropy"],
                       label="cross-entropy" if x0 == 0 else None)
                ax.bar(x0 + 0.2, g[brier_key][i], 0.4, color=COLORS["mse"],
                       label="Brier (the seed's MSE)" if x0 == 0 else None)
        ax.set_xticks(ticks, names, fontsize=8)
        ax.set(xlabel="model and sample", ylabel="per-sample gradient norm",
               title=f"Seed table: gradient {title}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def seed_verdict(c: dict[str, Any]) -> str:
    """Says, from the numbers, which loss gives the wrong sample the larger gradient share."""
    rows, ce_more = [], []
    for model, g in c.items():
        for where, name in (("logits", "logits z"), ("probs", "probabilities p")):
            share = g["wrong_share"]
            ce, brier = share[f"ce_grad_{where}"], share[f"brier_grad_{where}"]
            rows.append((model, name, ce, brier))
            ce_more.append(ce > brier)
    table = _common.markdown_table(
        ["model", "gradient w.r.t.", "wrong sample's share, CE", "wrong sample's share, Brier"],
        rows)
    if all(ce_more):
        verdict = ("In every case cross-entropy, not the Brier score (the seed's MSE), gives the "
                   "wrong sample the larger share of the gradient: claim 5 is not borne out by "
                   "these gradients.")
    elif not any(ce_more):
        verdict = "In every case the Brier score gives the wrong sample the larger share."
    else:
        verdict = "The larger share goes to different losses in different cases."
    return table + "\n\n" + verdict


def tables(a, b, c) -> str:
    seed_rows = [(o, 0.0 + o * (1 - o), a["seed_factor"][str(o)]) for o in SEED_POINTS]
    out = ["## (a) The factor σ(1 − σ) at the seed's outputs", "",
           _common.markdown_table(["output", "seed's o(1 − o)", "σ'(z) by jax.grad"], seed_rows),
           "",
           "Largest deviation of jax.grad from the closed forms over the grid: "
           f"σ'(z) {a['factor_deviation']:.2g}, MSE 2(σ−y)σ(1−σ) "
           f"{a['grad_deviation']['mse']:.2g}, cross-entropy σ−y "
           f"{a['grad_deviation']['cross_entropy']:.2g}.", "",
           "## (b) Logistic regression from a confidently wrong start", "",
           f"{b['n']} points, two Gaussian classes N(±μ, I), μ = (1.5, 0.5) (Bayes accuracy "
           f"{b['bayes_accuracy']:.3f}); full-batch SGD, learning rate {b['lr']}, "
           f"w₀ = −{b['scale']:g}·μ/|μ|, b₀ = 0: initial accuracy {b['initial_accuracy']:.3f}, "
           f"mean σ(1−σ) at the start {b['initial_mean_factor']:.2g}.", ""]
    rows = []
    for name, run in b["runs"].items():
        hit = run["steps_to_target"]
        rows.append((LABELS[name], hit if hit else f"not in {b['steps']}",
                     float(run["accuracy"][-1]), float(run["grad_norm"][0])))
    out += [_common.markdown_table(
        ["loss", f"steps to {b['target']:.0%} accuracy", f"accuracy after {b['steps']} steps",
         "initial ‖∂loss/∂w‖"], rows), ""]
    hits = {k: r["steps_to_target"] for k, r in b["runs"].items()}
    if hits["mse"] and hits["cross_entropy"]:
        out += [f"MSE needs {hits['mse'] / hits['cross_entropy']:.0f} times as many steps as "
                "cross-entropy to reach the target from this start.", ""]
    sweep_rows = [(s, *(b["sweep"][k][i] or f">{b['steps']}" for k in LOSSES))
                  for i, s in enumerate(b["scales"])]
    out += ["Steps to the target against the initial weight scale s:", "",
            _common.markdown_table(["s", "MSE", "cross-entropy"], sweep_rows), "",
            "## (c) Per-sample gradient norms on the seed table", ""]
    rows = []
    for model, g in c.items():
        for i in range(len(SEED_LABELS)):
            rows.append((model, i + 1, "yes" if g["correct"][i] else "no",
                         float(g["ce"][i]), float(g["brier"][i]),
                         float(g["ce_grad_logits"][i]), float(g["brier_grad_logits"][i]),
                         float(g["ce_grad_probs"][i]), float(g["brier_grad_probs"][i])))
    out += [_common.markdown_table(
        ["model", "sample", "correct", "CE", "Brier", "‖∇_z CE‖", "‖∇_z Brier‖",
         "‖∇_p CE‖", "‖∇_p Brier‖"], rows), "",
            "The wrong sample's share of the model's summed per-sample gradient norms:", "",
            seed_verdict(c)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="SGD step budget")
    parser.add_argument("--lr", type=float, default=1.0, help="SGD learning rate")
    parser.add_argument("--scale", type=float, default=10.0,
                        help="initial weight scale of the wrong-sign start")
    parser.add_argument("--target", type=float, default=0.9, help="target accuracy")
    args = parser.parse_args(argv)
    out = _common.results_dir(NAME, args)
    steps = args.steps or (400 if args.smoke else 3000)
    n = 256 if args.smoke else 512
    scales = [0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]

    a = part_a(grid_size=199 if args.smoke else 999)
    b = part_b(n, steps, args.lr, args.scale, scales, args.target, args.seed,
               show=not args.no_progress)
    c = part_c()

    figures = {"gradients": out / "gradients.png", "training": out / "training.png",
               "sweep": out / "sweep.png", "seed_gradients": out / "seed_gradients.png"}
    figure_gradients(a, figures["gradients"])
    figure_training(b, figures["training"])
    figure_sweep(b, figures["sweep"])
    figure_seed(c, figures["seed_gradients"])

    numbers = {
        "seed_factor": a["seed_factor"],
        "factor_deviation": a["factor_deviation"],
        "grad_deviation": a["grad_deviation"],
        "training": {
            **{k: b[k] for k in ("n", "steps", "lr", "scale", "target", "bayes_accuracy",
                                 "initial_accuracy", "initial_mean_factor", "scales")},
            "steps_to_target": {k: r["steps_to_target"] for k, r in b["runs"].items()},
            "final_accuracy": {k: float(r["accuracy"][-1]) for k, r in b["runs"].items()},
            "initial_grad_norm": {k: float(r["grad_norm"][0]) for k, r in b["runs"].items()},
            "sweep_steps_to_target": b["sweep"],
        },
        "seed_table": {
            model: {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in g.items()}
            for model, g in c.items()
        },
        "figures": {k: v.name for k, v in figures.items()},
    }
    _common.write_results(out, tables(a, b, c), numbers)
    return numbers


if __name__ == "__main__":
    main()
