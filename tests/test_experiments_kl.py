"""The claims of experiments/cross_entropy_vs_kl.py and experiments/seed_table.py, on smoke runs.

Each script's ``main`` runs in-process with ``--smoke`` into a temporary folder; the claims are
asserted on the numbers it returns, against references computed here with numpy and scipy.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import math
import pathlib
import string
import sys

import numpy as np
import pytest
from scipy import integrate, stats

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import cross_entropy_vs_kl  # noqa: E402
import seed_table  # noqa: E402


def run(module, out: pathlib.Path, *extra: str) -> dict:
    return module.main(["--smoke", "--no-progress", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def kl_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cross_entropy_vs_kl")
    return out, run(cross_entropy_vs_kl, out)


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed_table")
    return out, run(seed_table, out)


def zen_frequencies() -> np.ndarray:
    """Letter frequencies a–z of the Zen of Python, counted here independently of the script."""
    with contextlib.redirect_stdout(io.StringIO()):
        import this
    text = codecs.decode(this.s, "rot13").lower()
    counts = np.array([sum(ch == c for ch in text) for c in string.ascii_lowercase], float)
    return counts / counts.sum()


def kl_numpy(p: np.ndarray, q: np.ndarray) -> float:
    support = p > 0
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


# Part 1: categorical p.


def test_default_p_is_the_zen_letter_frequencies(kl_run):
    cat = kl_run[1]["categorical"]
    assert cat["names"] == list(string.ascii_lowercase)
    np.testing.assert_allclose(cat["p"], zen_frequencies(), rtol=1e-12)
    p = zen_frequencies()
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    np.testing.assert_allclose(cat["entropy"], entropy, rtol=1e-6)


def test_cross_entropy_minus_kl_is_the_entropy_at_every_step(kl_run):
    cat = kl_run[1]["categorical"]
    # H(p) ≈ 2.85: float32 rounding of CE and KL is a few 1e-7.
    assert cat["max_abs_ce_minus_kl_minus_entropy"] < 1e-5


def test_the_two_fits_have_the_same_gradients_and_trajectories(kl_run):
    cat = kl_run[1]["categorical"]
    assert cat["max_abs_gradient"] > 1e-2  # the fits did move: the check is not vacuous
    assert cat["max_abs_gradient_difference"] <= 1e-6
    assert cat["max_abs_theta_difference"] <= 1e-6
    np.testing.assert_allclose(cat["q"]["cross_entropy"], cat["q"]["kl"], atol=1e-7)


@pytest.mark.parametrize("fit", ["cross_entropy", "kl"])
def test_both_fits_reach_p(kl_run, fit):
    cat = kl_run[1]["categorical"]
    p, q = np.array(cat["p"]), np.array(cat["q"][fit])
    np.testing.assert_allclose(q.sum(), 1.0, atol=1e-6)
    kl = kl_numpy(p, q)
    tv = 0.5 * np.abs(p - q).sum()
    assert kl < 1e-3 and tv < 1e-3
    np.testing.assert_allclose(cat["final_kl"][fit], kl, atol=1e-6)
    np.testing.assert_allclose(cat["final_tv"][fit], tv, atol=1e-7)
    # CE = KL + H(p) at the end too, with H(p) from numpy.
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    np.testing.assert_allclose(cat["final_cross_entropy"][fit], kl + entropy, atol=1e-5)


def test_user_vector_and_sgd(tmp_path):
    result = run(cross_entropy_vs_kl, tmp_path, "--p", "1,2,7", "--optimizer", "sgd",
                 "--steps", "300")
    cat = result["categorical"]
    np.testing.assert_allclose(cat["p"], [0.1, 0.2, 0.7], rtol=1e-12)
    np.testing.assert_allclose(cat["entropy"], -np.sum(np.array([.1, .2, .7]) * np.log(
        [.1, .2, .7])), rtol=1e-6)
    assert result["config"]["lr"] == cross_entropy_vs_kl.DEFAULT_LR["sgd"]
    assert cat["max_abs_ce_minus_kl_minus_entropy"] < 1e-5
    assert cat["max_abs_theta_difference"] <= 1e-6
    assert kl_numpy(np.array(cat["p"]), np.array(cat["q"]["kl"])) < 1e-3


def test_dirichlet_p_is_a_seeded_draw():
    args = cross_entropy_vs_kl.parse_args(["--p", "dirichlet", "--classes", "5", "--alpha", "0.5"])
    names, p = cross_entropy_vs_kl.target_distribution(args, np.random.default_rng(3))
    np.testing.assert_allclose(p, np.random.default_rng(3).dirichlet([0.5] * 5), rtol=1e-12)
    assert names == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("bad", ["0.5,-0.1,0.6", "0.5", "a,b", "0,0"])
def test_bad_user_vector_is_refused(tmp_path, bad):
    with pytest.raises(SystemExit, match="--p"):
        run(cross_entropy_vs_kl, tmp_path, "--p", bad)


# Part 2: continuous p.


def test_gaussian_fits_reach_the_mle_and_the_true_parameters(kl_run):
    g = kl_run[1]["gaussian"]
    mu, sigma = cross_entropy_vs_kl.GAUSSIAN_P
    assert g["true"] == {"mu": mu, "sigma": sigma}
    # Minimising the mean NLL gives the sample MLE: the mean and the 1/n standard deviation.
    np.testing.assert_allclose(g["cross_entropy_fit"]["mu"], g["mle"]["mu"], atol=1e-4)
    np.testing.assert_allclose(g["cross_entropy_fit"]["sigma"], g["mle"]["sigma"], atol=1e-4)
    # Minimising KL(p‖q) in closed form gives p's parameters.
    np.testing.assert_allclose(g["kl_fit"]["mu"], mu, atol=1e-4)
    np.testing.assert_allclose(g["kl_fit"]["sigma"], sigma, atol=1e-4)
    # The two differ by sampling error: within 4 standard errors (σ/√n, σ/√(2n)).
    n = g["samples"]
    assert abs(g["mle"]["mu"] - mu) < 4 * sigma / math.sqrt(n)
    assert abs(g["mle"]["sigma"] - sigma) < 4 * sigma / math.sqrt(2 * n)
    assert g["mle"]["mu"] != mu  # they are different fits, not one number reported twice


def mixture_pdf(x):
    return sum(w * stats.norm.pdf(x, m, s) for w, m, s in cross_entropy_vs_kl.MIXTURE_P)


def test_forward_kl_covers_both_modes(kl_run):
    fit = kl_run[1]["two_mode"]["forward_fit"]
    w, m, s = (np.array(c) for c in zip(*cross_entropy_vs_kl.MIXTURE_P, strict=True))
    mean = w @ m
    std = math.sqrt(w @ (s**2 + m**2) - mean**2)
    np.testing.assert_allclose(fit["mu"], mean, atol=2e-3)
    np.testing.assert_allclose(fit["sigma"], std, atol=2e-3)
    # The grid value against adaptive quadrature of ∫ p log(p/q) with scipy.
    q = stats.norm(fit["mu"], fit["sigma"])
    kl, _ = integrate.quad(
        lambda x: mixture_pdf(x) * (np.log(mixture_pdf(x)) - q.logpdf(x)), -12, 12, limit=200
    )
    np.testing.assert_allclose(fit["kl"], kl, atol=1e-4)


def test_reverse_kl_seeks_one_mode(kl_run):
    modes = kl_run[1]["two_mode"]
    fit = modes["reverse_fit"]
    assert modes["forward_fit"]["sigma"] > 2 * fit["sigma"]
    weight, mu, sigma = min(cross_entropy_vs_kl.MIXTURE_P, key=lambda c: abs(c[1] - fit["mu"]))
    np.testing.assert_allclose(fit["mu"], mu, atol=0.02)
    np.testing.assert_allclose(fit["sigma"], sigma, atol=0.02)
    # q sitting on one isolated mode of weight w has KL(q‖p) ≈ −log w.
    np.testing.assert_allclose(fit["kl"], -math.log(weight), atol=1e-3)
    q = stats.norm(fit["mu"], fit["sigma"])
    kl, _ = integrate.quad(
        lambda x: q.pdf(x) * (q.logpdf(x) - np.log(mixture_pdf(x))), -12, 12, limit=200
    )
    np.testing.assert_allclose(fit["kl"], kl, atol=1e-4)


def test_results_are_written(kl_run):
    out, result = kl_run
    for name in ("loss_curves", "q_vs_p", "trajectory_difference", "continuous"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    assert json.loads((out / "results.json").read_text())["categorical"]["q"] == (
        result["categorical"]["q"]
    )
    assert "H(p)" in (out / "results.md").read_text()


# The seed's worked example.

# Hand-computed from the seed note's table (../shared/seed/README.md): X outputs
# (.3 .3 .4), (.3 .4 .3), (.1 .2 .7) and Y outputs (.1 .2 .7), (.1 .7 .2), (.3 .4 .3)
# for labels C, B, A.
EXACT = {
    "classification error": {"X": 1 / 3, "Y": 1 / 3},
    "accuracy": {"X": 2 / 3, "Y": 2 / 3},
    "average cross-entropy": {
        "X": -(math.log(0.4) + math.log(0.4) + math.log(0.1)) / 3,
        "Y": -(math.log(0.7) + math.log(0.7) + math.log(0.3)) / 3,
    },
    "MSE (Brier score)": {"X": (0.54 + 0.54 + 1.34) / 3, "Y": (0.14 + 0.14 + 0.74) / 3},
}
PRINTED = {
    "classification error": {"X": 0.33, "Y": 0.33},
    "accuracy": {"X": 0.67, "Y": 0.67},
    "average cross-entropy": {"X": 1.38, "Y": 0.64},
    "MSE (Brier score)": {"X": 0.81, "Y": 0.34},
}


@pytest.mark.parametrize("metric", list(EXACT))
@pytest.mark.parametrize("model", ["X", "Y"])
def test_seed_table_matches_the_note(seed_run, metric, model):
    result = seed_run[1]
    value = result["jaxloss"][metric][model]
    np.testing.assert_allclose(value, EXACT[metric][model], atol=1e-6)
    assert round(value, 2) == PRINTED[metric][model]
    assert result["seed"][metric][model] == PRINTED[metric][model]
    assert result["agree_to_2_decimals"][metric] is True


def test_seed_table_results_are_written(seed_run):
    out, _ = seed_run
    assert (out / "seed_table.png").stat().st_size > 10_000
    text = (out / "results.md").read_text()
    assert text.count("| yes |") == 4 and "NO" not in text
