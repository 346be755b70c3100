"""The seed note's claims 2, 5, 6 and 7, asserted on the smoke runs of the experiments.

Each experiment's ``main`` runs once per module (``--smoke``, into a temporary folder); the
tests check its numbers against independent references: the seed's own numbers, textbook
closed forms evaluated in numpy, and a brute-force search for the maximum margin.
"""

import importlib
import json
import math
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def load(name):
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    return importlib.import_module(name)


def run_smoke(name, tmp_path_factory):
    out = tmp_path_factory.mktemp(name)
    numbers = load(name).main(["--smoke", "--no-progress", "--out", str(out)])
    return numbers, out


def assert_outputs(numbers, out):
    assert "|---|" in (out / "results.md").read_text()
    assert json.loads((out / "results.json").read_text()).keys() == numbers.keys()
    for name in numbers["figures"].values():
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# mse_vs_cross_entropy: claims 5 and 6.


@pytest.fixture(scope="module")
def mse_ce(tmp_path_factory):
    return run_smoke("mse_vs_cross_entropy", tmp_path_factory)


def test_mse_ce_writes_its_results(mse_ce):
    assert_outputs(*mse_ce)


def test_sigmoid_factor_at_the_seeds_points(mse_ce):
    numbers, _ = mse_ce
    # The seed's numbers: 0.6·0.4 = 0.24 and 0.95·0.05 = 0.0475.
    assert numbers["seed_factor"]["0.6"] == pytest.approx(0.24, abs=1e-6)
    assert numbers["seed_factor"]["0.95"] == pytest.approx(0.0475, abs=1e-6)


def test_pre_activation_gradients_match_the_closed_forms():
    mod = load("mse_vs_cross_entropy")
    s = np.array([1e-4, 0.05, 0.3, 0.5, 0.6, 0.95, 0.9999])
    result = mod.autodiff_part_a(jnp.asarray(np.log(s / (1 - s)), dtype=jnp.float32))
    np.testing.assert_allclose(result["factor"], s * (1 - s), rtol=1e-5, atol=1e-7)
    for y in (0, 1):
        # MSE on σ(z): ∂(σ − y)²/∂z = 2(σ − y)σ(1 − σ); cross-entropy: σ − y.
        np.testing.assert_allclose(
            result["grads"][y]["mse"], 2 * (s - y) * s * (1 - s), rtol=1e-4, atol=1e-7
        )
        np.testing.assert_allclose(result["grads"][y]["cross_entropy"], s - y, rtol=1e-4,
                                   atol=1e-6)


def test_cross_entropy_recovers_and_mse_stalls(mse_ce):
    t = mse_ce[0]["training"]
    assert t["initial_accuracy"] < 0.1  # a confidently wrong start
    assert t["steps_to_target"]["cross_entropy"] is not None
    assert t["steps_to_target"]["cross_entropy"] <= 20
    assert t["final_accuracy"]["cross_entropy"] >= t["target"]
    assert t["steps_to_target"]["mse"] is None  # not within the smoke's 400 steps
    assert t["final_accuracy"]["mse"] < 0.5
    # The saturated start leaves MSE's weight gradient a hundredth of cross-entropy's or less.
    assert t["initial_grad_norm"]["mse"] < 0.01 * t["initial_grad_norm"]["cross_entropy"]


def test_mse_stall_grows_with_saturation(mse_ce):
    t = mse_ce[0]["training"]
    budget = t["steps"] + 1
    ce = t["sweep_steps_to_target"]["cross_entropy"]
    mse = [budget if s is None else s for s in t["sweep_steps_to_target"]["mse"]]
    assert all(s is not None for s in ce)
    assert all(m >= c for m, c in zip(mse, ce, strict=True))
    assert mse == sorted(mse) and mse[-1] == budget and mse[0] < budget
    # At the largest scale MSE needs at least 20 times the steps of cross-entropy.
    assert mse[-1] >= 20 * ce[-1]


def seed_reference(probs, label):
    """Per-sample gradient norms in closed form (numpy), for probs (S, C) and labels (S,)."""
    y = np.eye(probs.shape[-1])[label]
    jac = np.einsum("sc,cd->scd", probs, np.eye(probs.shape[-1])) - np.einsum(
        "sc,sd->scd", probs, probs
    )  # ∂softmax/∂z = diag(p) − p pᵀ
    tangent = np.eye(probs.shape[-1]) - 1 / probs.shape[-1]
    return {
        "ce_grad_logits": np.linalg.norm(probs - y, axis=-1),
        "brier_grad_logits": np.linalg.norm(np.einsum("scd,sd->sc", jac, 2 * (probs - y)), axis=-1),
        "ce_grad_probs": np.linalg.norm((-y / probs) @ tangent, axis=-1),
        "brier_grad_probs": np.linalg.norm(2 * (probs - y), axis=-1),
    }


@pytest.mark.parametrize("model", ["X", "Y"])
def test_seed_table_gradients_match_numpy(mse_ce, model):
    mod = load("mse_vs_cross_entropy")
    got = mse_ce[0]["seed_table"][model]
    for key, want in seed_reference(mod.SEED_MODELS[model], mod.SEED_LABELS).items():
        np.testing.assert_allclose(got[key], want, rtol=1e-5, err_msg=key)
    # The seed's own per-sample Brier values (claim 4): 0.54, 0.54, 1.34 and 0.14, 0.14, 0.74.
    seed_brier = {"X": [0.54, 0.54, 1.34], "Y": [0.14, 0.14, 0.74]}[model]
    np.testing.assert_allclose(got["brier"], seed_brier, atol=1e-6)


def test_seed_table_wrong_sample_by_hand(mse_ce):
    x = mse_ce[0]["seed_table"]["X"]
    # Model X, sample 3: p = (0.1, 0.2, 0.7), label A; p − y = (−0.9, 0.2, 0.7).
    assert x["ce_grad_logits"][2] == pytest.approx(math.sqrt(0.81 + 0.04 + 0.49), rel=1e-6)
    assert x["brier_grad_probs"][2] == pytest.approx(2 * math.sqrt(1.34), rel=1e-6)
    assert x["ce"][2] == pytest.approx(-math.log(0.1), rel=1e-6)


@pytest.mark.parametrize("model", ["X", "Y"])
@pytest.mark.parametrize("where", ["logits", "probs"])
def test_claim5_cross_entropy_weights_the_wrong_sample_more(mse_ce, model, where):
    # The seed says MSE focuses on the wrong samples; the gradients say cross-entropy does more.
    share = mse_ce[0]["seed_table"][model]["wrong_share"]
    assert share[f"ce_grad_{where}"] > share[f"brier_grad_{where}"]


# ---------------------------------------------------------------------------------------------
# hinge_max_margin: claim 7.


@pytest.fixture(scope="module")
def hinge(tmp_path_factory):
    return run_smoke("hinge_max_margin", tmp_path_factory)


def test_hinge_writes_its_results(hinge):
    assert_outputs(*hinge)


def brute_force_margin(x, y):
    """max over unit directions u of (min_{y=+1} u·x − max_{y=−1} u·x)/2, by a grid search
    over the angle of u, refined once around the best angle."""

    def search(theta):
        proj = x @ np.stack([np.cos(theta), np.sin(theta)])
        gap = (proj[y == 1].min(axis=0) - proj[y == -1].max(axis=0)) / 2
        return theta[np.argmax(gap)], gap.max()

    step = 2 * np.pi / 100_000
    best, _ = search(np.arange(100_000) * step)
    best, margin = search(best + np.linspace(-2 * step, 2 * step, 100_001))
    return margin, np.array([np.cos(best), np.sin(best)])


def test_qp_margin_matches_a_brute_force_search(hinge):
    numbers, _ = hinge
    x, y = load("hinge_max_margin").make_dataset(numbers["n"], 0)
    margin, direction = brute_force_margin(x, y)
    assert numbers["svm"]["margin"] == pytest.approx(margin, rel=1e-6)
    w = np.array(numbers["svm"]["w"])
    assert w @ direction / np.linalg.norm(w) == pytest.approx(1.0, abs=1e-8)


def test_hinge_recovers_the_maximum_margin(hinge):
    numbers, _ = hinge
    svm, h = numbers["svm"], numbers["hinge"]
    assert h["margin"] == pytest.approx(svm["margin"], rel=0.01)
    assert h["cosine"] > 0.9999
    assert h["offset"] == pytest.approx(svm["offset"], abs=0.01 * svm["margin"])


def test_logistic_boundary_has_a_smaller_margin(hinge):
    numbers, _ = hinge
    assert 0 < numbers["logistic"]["margin"] < 0.95 * numbers["svm"]["margin"]


def test_margin_reaches_the_svm_only_for_small_lambda(hinge):
    numbers, _ = hinge
    sweep, svm = numbers["sweep"], numbers["svm"]["margin"]
    small = [m for lam, m in zip(sweep["lambdas"], sweep["hinge"], strict=True) if lam <= 3e-3]
    assert small and all(m == pytest.approx(svm, rel=0.01) for m in small)
    assert sweep["hinge"][0] < 0.9 * svm  # λ = 0.1 trades margin for a smaller ‖w‖


# ---------------------------------------------------------------------------------------------
# mse_bias_variance: claim 2.


@pytest.fixture(scope="module")
def bias_variance(tmp_path_factory):
    return run_smoke("mse_bias_variance", tmp_path_factory)


def test_bias_variance_writes_its_results(bias_variance):
    assert_outputs(*bias_variance)


def test_closed_forms_by_hand():
    mod = load("mse_bias_variance")
    # n = 2, σ² = 4: MSE 2σ⁴/(n−1) = 32, (2n−1)σ⁴/n² = 12, 2σ⁴/(n+1) = 32/3.
    assert mod.closed_form(2, 1, 4.0)["mse"] == pytest.approx(32.0)
    assert mod.closed_form(2, 2, 4.0)["mse"] == pytest.approx(12.0)
    assert mod.closed_form(2, 3, 4.0)["mse"] == pytest.approx(32 / 3)
    assert mod.closed_form(10, 9, 4.0)["bias2"] == 0.0


def test_mse_is_bias_squared_plus_variance(bias_variance):
    numbers, _ = bias_variance
    for n in numbers["ns"]:
        for est in numbers["results"][str(n)].values():
            if isinstance(est, dict):
                mc = est["mc"]
                assert mc["mse"] == pytest.approx(mc["bias2"] + mc["variance"], rel=1e-5)


def test_monte_carlo_agrees_with_the_closed_forms(bias_variance):
    numbers, _ = bias_variance
    for n in numbers["ns"]:
        for name in ("n-1", "n", "n+1"):
            est = numbers["results"][str(n)][name]
            assert abs(est["z"]) < 4, (n, name, est["z"])
            assert est["mc"]["mse"] == pytest.approx(est["exact"]["mse"], rel=0.05)


def test_the_unbiased_estimator_does_not_have_the_lowest_mse(bias_variance):
    numbers, _ = bias_variance
    for n in numbers["ns"]:
        r = numbers["results"][str(n)]
        assert r["n+1"]["mc"]["mse"] < r["n"]["mc"]["mse"] < r["n-1"]["mc"]["mse"]
        assert r["lowest_mse"] == "n+1"
        assert abs(r["n-1"]["mc"]["bias2"]) < 0.01 * r["n-1"]["mc"]["variance"]
