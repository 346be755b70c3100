"""Tests of the documentation site: coverage of the API, runnable examples, generated pages.

The docs pages' ``pycon`` blocks run as doctests and their ``python`` blocks are executed, so
a number written on a page cannot drift from what the library computes. The hand-computed
numbers in the text beside them are checked here against independent expressions.
"""

from __future__ import annotations

import doctest
import importlib.util
import math
import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import jaxloss

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
_FENCE = re.compile(r"^```(?P<lang>\w+)[^\n]*\n(?P<body>.*?)^```\s*$", re.M | re.S)


def _load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


def _blocks(page: pathlib.Path, lang: str) -> list[str]:
    return [m["body"] for m in _FENCE.finditer(page.read_text()) if m["lang"] == lang]


# ----------------------------------------------------------------------------- API reference


def test_every_public_name_is_in_the_api_reference():
    pages = hooks.api_pages()
    entries = {
        line.removeprefix("::: jaxloss.").strip()
        for text in pages.values()
        for line in text.splitlines()
        if line.startswith("::: jaxloss.")
    }
    missing = sorted(set(jaxloss.__all__) - entries)
    assert not missing, f"public names without an API reference entry: {missing}"
    assert entries <= set(jaxloss.__all__), "the API reference documents a non-public name"


def test_every_api_page_is_in_the_nav():
    class Config:
        nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
        docs_dir = str(DOCS)
        extra_javascript: list[str] = []

    config = hooks.on_config(Config())
    api = next(e["API reference"] for e in config.nav if "API reference" in e)
    in_nav = {next(iter(e.values())) if isinstance(e, dict) else e for e in api}
    assert in_nav == set(hooks.api_pages())


def test_each_family_page_lists_its_own_modules_names():
    for family, names in hooks.api_families():
        for name in names:
            module = getattr(jaxloss, name).__module__
            if module in hooks.FAMILIES:
                assert hooks.FAMILIES[module] == family


def test_unknown_module_gets_its_own_page(monkeypatch):
    def fake():
        """A loss from a module the docs do not know yet."""

    fake.__module__ = "jaxloss._ranking"
    monkeypatch.setattr(jaxloss, "pairwise_fake", fake, raising=False)
    monkeypatch.setattr(jaxloss, "__all__", [*jaxloss.__all__, "pairwise_fake"])
    pages = hooks.api_pages()
    assert "::: jaxloss.pairwise_fake" in pages["api/ranking.md"]


# ----------------------------------------------------------------------------- page examples


@pytest.fixture
def reader_config():
    """JAX's default configuration, which a reader who copies an example has.

    tests/conftest.py turns on float64 and strict promotion for the library's tests; the
    pages' examples are written for the defaults. Tracebacks are not filtered, because JAX
    appends a note about filtered frames to the message that a doctest compares.
    """
    names = ("jax_enable_x64", "jax_numpy_dtype_promotion", "jax_numpy_rank_promotion",
             "jax_traceback_filtering")
    previous = {name: getattr(jax.config, name) for name in names}
    for name, value in zip(names, (False, "standard", "allow", "off"), strict=True):
        jax.config.update(name, value)
    yield
    for name, value in previous.items():
        jax.config.update(name, value)


_failures: list[str] = []


def _report(text: str) -> None:
    _failures.append(text)


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "pycon")], ids=lambda p: p.name)
def test_page_doctests(page, reader_config):
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    namespace: dict = {}
    for i, block in enumerate(_blocks(page, "pycon")):
        test = parser.get_doctest(block, namespace, f"{page.name}[{i}]", str(page), 0)
        runner.run(test, clear_globs=False, out=_report)
        namespace = test.globs
    result = runner.summarize(verbose=False)
    report = "".join(_failures)
    _failures.clear()
    assert result.failed == 0, f"{result.failed} example(s) failed in {page.name}:\n{report}"
    assert result.attempted > 0


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "python")], ids=lambda p: p.name)
def test_page_python_blocks_run(page, reader_config, capsys):
    # A page is read top to bottom: its blocks build on each other.
    namespace = {"__name__": "docs_example"}
    for block in _blocks(page, "python"):
        if block.lstrip().startswith("loss(predictions") or "optax" in block:
            continue  # the signature template; the training loop has its own test below
        exec(compile(block, str(page), "exec"), namespace)


def test_quickstart_training_loop_learns(reader_config, capsys):
    block = next(b for b in _blocks(DOCS / "index.md", "python") if "optax" in b)
    namespace = {"__name__": "docs_example"}
    exec(compile(block, "index.md", "exec"), namespace)
    # The labels are a linear function of x, so a linear model fits them almost perfectly.
    assert float(namespace["accuracy"]) > 0.95
    assert float(namespace["loss"]) < 0.2


# ----------------------------------------------------------------------------- hand-computed


def test_quickstart_numbers():
    # The Home page's per-row cross-entropies, by the log-sum-exp formula in its text.
    first = math.log(math.exp(2) + math.exp(0.5) + math.exp(-1)) - 2
    second = math.log(2 + math.exp(3)) - 3
    assert (round(first, 4), round(second, 4)) == (0.2413, 0.0949)
    assert round((first + second) / 2, 4) == 0.1681


def test_conventions_where_weights_numbers():
    # The Conventions page's table for squared errors (1, 4, 9, 16), computed with numpy.
    loss = np.array([1.0, 4.0, 9.0, 16.0])
    mask = np.array([1.0, 1.0, 0.0, 1.0])
    w = np.array([1.0, 2.0, 0.5, 0.0])
    assert loss.mean() == 7.5
    assert (loss * mask).sum() / mask.sum() == 7.0
    assert round((loss * w).sum() / w.sum(), 3) == 3.857
    assert (loss * w * mask).sum() / (w * mask).sum() == 3.0


def test_conventions_class_weight_numbers():
    # The Conventions page's cross-entropy table, from the closed forms in its text.
    ln2 = math.log(2)
    assert round(5 * ln2, 4) == 3.4657
    assert round(5 * ln2 / 3, 4) == 1.1552
    assert round(3 * ln2, 4) == 2.0794
    assert round(7 * ln2 / 5, 4) == 0.9704
    assert round(9 * ln2 / 6, 4) == 1.0397
    assert round(7 * ln2 / 3, 4) == 1.6173


def test_conventions_denominators_match_torch():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    logq = torch.log(torch.tensor([[0.5, 0.25, 0.25]] * 4, dtype=torch.float64))
    y = torch.tensor([0, 1, 2, -100])
    c = torch.tensor([3.0, 1.0, 1.0], dtype=torch.float64)
    assert math.isclose(f.cross_entropy(logq, y).item(), 5 * math.log(2) / 3)
    assert math.isclose(f.cross_entropy(logq, y, weight=c).item(), 7 * math.log(2) / 5)
    onehot = torch.eye(3, dtype=torch.float64)
    assert math.isclose(f.cross_entropy(logq[:3], onehot, weight=c).item(), 7 * math.log(2) / 3)
    assert math.isnan(f.cross_entropy(logq[:1], torch.tensor([-100])).item())


def test_theory_seed_table_numbers():
    # The seed's table, from the expressions written on the Theory page (numpy only).
    x = np.array([[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]])
    y = np.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.3]])
    labels = np.array([2, 1, 0])
    onehot = np.eye(3)[labels]
    for probs, ace, brier, per_sample in [
        (x, 1.38, 0.81, [0.54, 0.54, 1.34]),
        (y, 0.64, 0.34, [0.14, 0.14, 0.74]),
    ]:
        assert round(-np.log(probs[np.arange(3), labels]).mean(), 2) == ace
        assert np.allclose(((probs - onehot) ** 2).sum(axis=1), per_sample)
        assert round(((probs - onehot) ** 2).sum(axis=1).mean(), 2) == brier


def test_theory_sigmoid_gradient_factors():
    # The seed's two points of output·(1 − output), and the page's gradients at a = 0.95.
    assert math.isclose(0.6 * 0.4, 0.24)
    assert math.isclose(0.95 * 0.05, 0.0475)
    z = math.log(0.95 / 0.05)  # sigmoid(z) = 0.95
    a = 1 / (1 + math.exp(-z))
    assert math.isclose(2 * (a - 0) * a * (1 - a), 0.09025)
    assert math.isclose(a - 0, 0.95)


def test_theory_bias_variance_numbers():
    # MSE of s²_k = Σ(x − x̄)²/k for Gaussian samples: closed form against a seeded Monte Carlo.
    n, sigma2, reps = 10, 1.0, 200_000
    rng = np.random.default_rng(0)
    samples = rng.normal(0.0, math.sqrt(sigma2), size=(reps, n))
    ss = ((samples - samples.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    for k, closed_form, printed in [(n - 1, 2 / (n - 1), 0.2222), (n, (2 * n - 1) / n**2, 0.19),
                                    (n + 1, 2 / (n + 1), 0.1818)]:
        estimate = ss / k
        bias2 = (estimate.mean() - sigma2) ** 2
        mse = ((estimate - sigma2) ** 2).mean()
        assert math.isclose(mse, closed_form, rel_tol=0.02)
        assert math.isclose(mse, bias2 + estimate.var(), rel_tol=1e-9)
        assert round(closed_form, 4) == printed


def test_theory_kl_identity_numbers():
    p = np.array([0.5, 0.25, 0.25])
    h_pq = -np.sum(p * np.log(np.full(3, 1 / 3)))
    h_p = -np.sum(p * np.log(p))
    assert round(h_pq, 4) == 1.0986 and round(h_p, 4) == 1.0397
    assert round(h_pq - h_p, 4) == 0.0589


# ----------------------------------------------------------------------------- migration claims


def test_migration_optax_mappings():
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(6, 4)))
    labels = jnp.asarray(rng.integers(0, 4, size=6))
    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(6, 4))))
    none = {"reduction": "none"}
    np.testing.assert_allclose(
        jaxloss.softmax_cross_entropy(logits, labels, **none),
        optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels), rtol=1e-12)
    np.testing.assert_allclose(
        jaxloss.softmax_cross_entropy(logits, probs, **none),
        optax.losses.softmax_cross_entropy(logits, probs), rtol=1e-12)
    np.testing.assert_allclose(
        jaxloss.kl_divergence(logits, probs, **none),
        optax.losses.kl_divergence(jax.nn.log_softmax(logits), probs), rtol=1e-10)
    p, t = logits[:, 0], logits[:, 1]
    np.testing.assert_allclose(jaxloss.squared_error(p, t, **none),
                               optax.losses.squared_error(p, t), rtol=1e-12)
    np.testing.assert_allclose(0.5 * jaxloss.squared_error(p, t, **none),
                               optax.losses.l2_loss(p, t), rtol=1e-12)
    pm = jnp.where(labels % 2 == 0, 1, -1)
    np.testing.assert_allclose(jaxloss.hinge_loss(p, pm, **none),
                               optax.losses.hinge_loss(p, pm), rtol=1e-12)
    np.testing.assert_allclose(jaxloss.multiclass_hinge_loss(logits, labels, **none),
                               optax.losses.multiclass_hinge_loss(logits, labels), rtol=1e-12)
    # optax's where masks classes (shape of logits); jaxloss's masks examples.
    class_mask = jnp.ones((6, 4), bool).at[:, 3].set(False)
    masked = optax.losses.softmax_cross_entropy_with_integer_labels(
        logits, jnp.minimum(labels, 2), where=class_mask)
    np.testing.assert_allclose(
        masked, jaxloss.softmax_cross_entropy(logits[:, :3], jnp.minimum(labels, 2), **none),
        rtol=1e-12)
    # Invalid indices: optax wraps -1 to the last class and gives NaN for C; jaxloss NaN for both.
    z3 = jnp.array([[1.0, 2.0, 3.0]] * 2)
    bad = jnp.array([-1, 3])
    wrapped = optax.losses.softmax_cross_entropy_with_integer_labels(z3, bad)
    assert float(wrapped[0]) == pytest.approx(float(jaxloss.softmax_cross_entropy(
        z3[:1], jnp.array([2]))))
    assert bool(jnp.isnan(wrapped[1]))
    assert bool(jnp.all(jnp.isnan(jaxloss.softmax_cross_entropy(z3, bad, reduction="none"))))
    # Half precision: optax returns bfloat16, jaxloss float32.
    half = z3.astype(jnp.bfloat16)
    assert optax.losses.softmax_cross_entropy_with_integer_labels(
        half, jnp.array([0, 1])).dtype == jnp.bfloat16
    assert jaxloss.softmax_cross_entropy(half, jnp.array([0, 1])).dtype == jnp.float32
    # A -inf logit on a class the target does not use: optax's value is NaN, jaxloss's finite.
    z = jnp.array([[0.0, -jnp.inf]])
    target = jnp.array([[1.0, 0.0]])
    assert bool(jnp.isnan(optax.losses.softmax_cross_entropy(z, target)[0]))
    assert float(jaxloss.softmax_cross_entropy(z, target)) == 0.0


@pytest.mark.filterwarnings("ignore:reduction. .mean. divides:UserWarning")
def test_migration_torch_mappings():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5, 4))
    labels = rng.integers(0, 4, size=5)
    probs = rng.dirichlet(np.ones(4), size=5)
    tl, ty, tp = torch.tensor(logits), torch.tensor(labels), torch.tensor(probs)
    jl, jy, jp = jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(probs)
    # kl_div takes log q first and p second; its "batchmean" is jaxloss's "mean".
    assert math.isclose(f.kl_div(f.log_softmax(tl, dim=1), tp, reduction="batchmean").item(),
                        float(jaxloss.kl_divergence(jl, jp)), rel_tol=1e-10)
    assert math.isclose(f.kl_div(f.log_softmax(tl, dim=1), tp, reduction="mean").item(),
                        float(jaxloss.kl_divergence(jl, jp)) / 4, rel_tol=1e-10)
    # multi_margin_loss is Weston–Watkins divided by the number of classes.
    assert math.isclose(
        f.multi_margin_loss(tl, ty).item(),
        float(jaxloss.multiclass_hinge_loss(jl, jy, kind="weston_watkins")) / 4, rel_tol=1e-10)
    assert math.isclose(f.mse_loss(tl, tl.flip(0)).item(),
                        float(jaxloss.squared_error(jl, jl[::-1])), rel_tol=1e-12)
    # Classes on dim 1: axis=1.
    t3 = rng.normal(size=(2, 4, 3))
    y3 = rng.integers(0, 4, size=(2, 3))
    assert math.isclose(f.cross_entropy(torch.tensor(t3), torch.tensor(y3)).item(),
                        float(jaxloss.softmax_cross_entropy(jnp.asarray(t3), jnp.asarray(y3),
                                                            axis=1)), rel_tol=1e-12)
    # Categorical(probs).entropy() is entropy(..., reduction="none").
    np.testing.assert_allclose(torch.distributions.Categorical(probs=tp).entropy().numpy(),
                               jaxloss.entropy(jp, reduction="none"), rtol=1e-12)


# ----------------------------------------------------------------------------- the hooks


@pytest.fixture
def results(tmp_path, monkeypatch):
    root = tmp_path / "experiments"
    (root / "results" / "seed_table" / "smoke").mkdir(parents=True)
    monkeypatch.setattr(hooks, "EXPERIMENTS", root)
    monkeypatch.setattr(hooks, "RESULTS", root / "results")
    (root / "seed_table.py").write_text('"""Reproduce the seed table.\n\nMore."""\n')
    return root / "results"


def test_gallery_shows_committed_results(results):
    folder = results / "seed_table"
    (folder / "results.md").write_text("# Seed\n\n| model | ACE |\n|---|---|\n| X | 1.38 |\n\n"
                                       "![bars](bars.png) [raw](raw.csv) [gone](gone.csv)\n")
    (folder / "raw.csv").write_text("a,b\n")
    (folder / "bars.png").write_bytes(b"\x89PNG")
    (folder / "other.png").write_bytes(b"\x89PNG")
    (folder / "smoke" / "hidden.png").write_bytes(b"\x89PNG")
    page = hooks.gallery_page()
    section = page.split("{#seed_table}")[1].split("\n## ")[0]
    assert "python experiments/seed_table.py" in section
    assert "Reproduce the seed table." in section and "More." not in section
    assert "### Seed" in section and "| X | 1.38 |" in section
    assert "](figures/seed_table/bars.png)" in section
    assert section.count("bars.png") == 1  # not shown twice
    assert "](figures/seed_table/other.png)" in section
    assert "[raw](figures/seed_table/raw.csv)" in section
    assert "[gone](gone.csv)" in section  # not a file of the folder: left for mkdocs to report
    assert "hidden.png" not in page
    # Every cited experiment has an anchor, with or without results.
    for name in hooks.KNOWN_EXPERIMENTS:
        assert f"{{#{name}}}" in page


def test_figure_markers(results):
    (results / "hinge_max_margin").mkdir()
    (results / "hinge_max_margin" / "boundary.png").write_bytes(b"\x89PNG")
    (results / "hinge_max_margin" / "margins.png").write_bytes(b"\x89PNG")
    text = "a\n<!-- figures: hinge_max_margin boundary -->\nb\n<!-- figures: mse_bias_variance -->"

    class Page:
        class file:
            src_uri = "theory.md"

    out = hooks.on_page_markdown(text, page=Page, config=None, files=None)
    assert "](figures/hinge_max_margin/boundary.png)" in out
    assert "margins.png" not in out
    assert "`python experiments/mse_bias_variance.py`" in out
    assert "<!--" not in out


def test_theory_page_marks_a_figure_for_every_cited_experiment():
    text = (DOCS / "theory.md").read_text()
    for name in hooks.KNOWN_EXPERIMENTS:
        assert f"<!-- figures: {name}" in text, name
        assert f"(experiments.md#{name})" in text, name
