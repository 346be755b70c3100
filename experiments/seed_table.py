"""The seed note's worked example: error and accuracy tie models X and Y, ACE and MSE do not.

Three samples of three classes (A, B, C); each model outputs probabilities. Classification
error and accuracy count mistakes but not by how much, so both models score the same; the
average cross-entropy (ACE) and the note's "MSE" (the multi-class Brier score: squared error
summed over classes, averaged over samples) show that model Y is the better trained. The
numbers are computed with jaxloss and printed beside the note's own.

Run from the repository root: ``python experiments/seed_table.py [--smoke]``.
"""

from __future__ import annotations

from typing import Any

import _common
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure  # a Figure renders PNGs with Agg, no GUI backend

import jaxloss

NAME = "seed_table"

# The note's table: rows are samples, columns the classes A, B, C.
OUTPUTS = {
    "X": [[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]],
    "Y": [[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.3]],
}
LABELS = [2, 1, 0]  # C, B, A: the one-hot label rows (0 0 1), (0 1 0), (1 0 0)

# The note's numbers, as printed there (two decimals).
SEED = {
    "classification error": {"X": 0.33, "Y": 0.33},
    "accuracy": {"X": 0.67, "Y": 0.67},
    "average cross-entropy": {"X": 1.38, "Y": 0.64},
    "MSE (Brier score)": {"X": 0.81, "Y": 0.34},
}


def metrics(probs: jnp.ndarray, labels: jnp.ndarray) -> dict[str, float]:
    """The four metrics of the note for one model's outputs."""
    # Cross-entropy takes logits; log-probabilities are logits whose softmax is the output.
    log_probs = jnp.log(probs)
    return {
        "classification error": float(jaxloss.classification_error(probs, labels)),
        "accuracy": float(jaxloss.accuracy(probs, labels)),
        "average cross-entropy": float(jaxloss.softmax_cross_entropy(log_probs, labels)),
        "MSE (Brier score)": float(jaxloss.brier_score(probs, labels)),
    }


def plot(ours: dict[str, dict[str, float]], out) -> None:
    names = list(SEED)
    k = np.arange(len(names))
    fig = Figure(figsize=(7.5, 3.8), layout="tight")
    ax = fig.subplots()
    for shift, model, color in ((-0.2, "X", "C0"), (0.2, "Y", "C1")):
        values = [ours[m][model] for m in names]
        bars = ax.bar(k + shift, values, width=0.4, color=color, label=f"model {model}")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(k, [n.replace(" (", "\n(") for n in names])
    ax.set(ylabel="value (cross-entropy in nats)", ylim=(0, 1.6),
           title="Error and accuracy tie X and Y; cross-entropy and MSE prefer Y")
    ax.legend()
    fig.savefig(out / "seed_table.png", dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _common.parser(__doc__.splitlines()[0]).parse_args(argv)
    out = _common.results_dir(NAME, args)
    labels = jnp.asarray(LABELS)
    ours = {name: {} for name in SEED}
    for model in _common.progress(OUTPUTS, desc="models", disable=args.no_progress):
        probs = jnp.asarray(OUTPUTS[model], dtype=jnp.float32)
        for name, value in metrics(probs, labels).items():
            ours[name][model] = value
    rows, agree = [], {}
    for name in SEED:
        agree[name] = all(round(ours[name][m], 2) == SEED[name][m] for m in ("X", "Y"))
        rows.append((name, ours[name]["X"], SEED[name]["X"], ours[name]["Y"], SEED[name]["Y"],
                     "yes" if agree[name] else "NO"))
    table = _common.markdown_table(
        ("metric", "X (jaxloss)", "X (seed)", "Y (jaxloss)", "Y (seed)",
         "agree to 2 decimals"),
        rows,
    )
    plot(ours, out)
    numbers = {"jaxloss": ours, "seed": SEED, "agree_to_2_decimals": agree}
    _common.write_results(out, "## The seed's models X and Y\n\n" + table, numbers)
    return numbers


if __name__ == "__main__":
    main()
