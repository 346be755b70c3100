"""MkDocs hooks: pages generated at build time from the package and the committed results.

- The API reference has one page per loss family, built from ``jaxloss.__all__`` and each
  name's ``__module__``: a new public loss appears on its family's page without editing the
  docs, and a module that is not in ``FAMILIES`` gets a page of its own.
- The experiments gallery lists each ``experiments/<name>.py`` with its command, and shows
  ``experiments/results/<name>/results.md`` and its PNG figures when they are committed.
- ``<!-- figures: NAME -->`` in a page is replaced by the figures of experiment NAME, or by
  a line naming the command that makes them, so a missing figure never breaks the build.
- A table row that links to ``[...][jaxloss.NAME]`` is dropped when NAME is not public, so
  a migration table can list losses that land later without breaking the build.
- A Benchmarks page is added when ``docs/benchmarks.md`` or ``benchmarks/results/`` exists.
- MathJax is served from the site when the ``django-static-mathjax`` package is installed,
  and from a CDN otherwise.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import logging
import pathlib
import re
import sys
from typing import NamedTuple

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
RESULTS = EXPERIMENTS / "results"
BENCHMARKS = ROOT / "benchmarks" / "results"
API_SECTION = "API reference"
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3.2.2/es5/tex-chtml.js"

log = logging.getLogger("mkdocs.hooks.jaxloss")


class Family(NamedTuple):
    slug: str
    title: str
    intro: str


# Known families in reading order. ``intro`` states what a reader needs to predict the output
# shape and the denominator of every loss on the page.
FAMILIES = {
    "jaxloss._regression": Family(
        "regression", "Regression",
        "Elementwise losses between real-valued `predictions` and `targets` of the same shape "
        "(no silent broadcasting). `reduction=\"none\"` returns the input's shape; `\"mean\"` "
        "divides by the total weight of the entries that count. See "
        "[Conventions](../conventions.md#reductions).",
    ),
    "jaxloss._classification": Family(
        "classification", "Classification",
        "Losses of a categorical prediction over a class `axis`. Integer `labels` are class "
        "indices, floating `labels` are target distributions. `reduction=\"none\"` returns "
        "the predictions' shape without `axis`. See "
        "[Conventions](../conventions.md#class-weights-and-ignore_index) for the denominators "
        "with class weights and `ignore_index`.",
    ),
    "jaxloss._divergence": Family(
        "divergences", "Divergences",
        "Divergences and entropies of categorical distributions over `axis`. "
        "`reduction=\"none\"` returns the input's shape without `axis`; `\"mean\"` divides by "
        "the total weight of the examples that count.",
    ),
    "jaxloss._margin": Family(
        "margin", "Margin",
        "Hinge-type losses of decision scores. Binary losses take ±1 labels of the scores' "
        "shape and reduce like elementwise losses; multiclass losses take integer labels and "
        "return the scores' shape without `axis` for `reduction=\"none\"`.",
    ),
    "jaxloss._metrics": Family(
        "metrics", "Metrics",
        "Argmax metrics. They follow the same reduction rule as the losses (so `\"mean\"` is "
        "a weighted fraction) and carry no gradient.",
    ),
    "jaxloss._reduce": Family(
        "reduction", "Reduction",
        "The one reduction and masking rule, public so that a loss written outside jaxloss "
        "reduces exactly like the built-in ones.",
    ),
    "jaxloss._linear_cross_entropy": Family(
        "large-vocabulary", "Large vocabulary",
        "Cross-entropy fused with the final linear layer, for vocabularies too large to "
        "hold the logits in memory.",
    ),
    "jaxloss._parallel": Family(
        "multi-device", "Multi-device",
        "Losses whose class axis is sharded across devices.",
    ),
}

# The experiments that the Theory page cites, in its order; any other script or results
# folder is listed after them.
KNOWN_EXPERIMENTS = {
    "cross_entropy_vs_kl": "Cross-entropy and KL minimisation agree up to H(p)",
    "seed_table": "The seed's worked table: models X and Y",
    "mse_vs_cross_entropy": "MSE stalls on saturated outputs, cross-entropy does not",
    "hinge_max_margin": "Hinge loss finds the maximum-margin separator",
    "mse_bias_variance": "MSE = bias² + variance",
}

_REF = re.compile(r"\]\[jaxloss\.(\w+)\]")
_FIGURES = re.compile(r"<!--\s*figures:\s*(?P<name>[\w-]+)(?:\s+(?P<glob>\S+))?\s*-->")


# ----------------------------------------------------------------------------- API pages


def _import_jaxloss():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("jaxloss")


def api_families() -> list[tuple[Family, list[str]]]:
    """Every name of ``jaxloss.__all__`` grouped by the family of the module defining it."""
    jaxloss = _import_jaxloss()
    groups: dict[str, list[str]] = {}
    for name in jaxloss.__all__:
        module = getattr(getattr(jaxloss, name), "__module__", None) or "jaxloss"
        groups.setdefault(module, []).append(name)
    known = [m for m in FAMILIES if m in groups]
    other = sorted(m for m in groups if m not in FAMILIES)
    result = [(FAMILIES[m], sorted(groups[m])) for m in known]
    for module in other:
        doc = (getattr(sys.modules.get(module), "__doc__", None) or "").strip()
        stem = module.rsplit(".", 1)[-1].strip("_") or "other"
        family = Family(stem.replace("_", "-"), stem.replace("_", " ").capitalize(),
                        doc.splitlines()[0] if doc else "")
        result.append((family, sorted(groups[module])))
    return result


def api_pages() -> dict[str, str]:
    """``{src_uri: markdown}`` of the API index and one page per family."""
    families = api_families()
    pages = {}
    index = [
        "# API reference",
        "",
        "Every public name of `jaxloss`, grouped by family. All losses follow the "
        "[signature contract](../conventions.md#the-signature-contract): arrays first, "
        "options keyword-only, and `where`, `weights` and `reduction` last.",
        "",
        "| name | family |",
        "|---|---|",
    ]
    rows = []
    for family, names in families:
        body = [f"# {family.title}", "", family.intro, ""]
        body += [f"::: jaxloss.{name}\n" for name in names]
        pages[f"api/{family.slug}.md"] = "\n".join(body)
        rows += [(name, family) for name in names]
    for name, family in sorted(rows, key=lambda r: r[0]):
        index.append(f"| [`{name}`][jaxloss.{name}] | [{family.title}]({family.slug}.md) |")
    pages["api/index.md"] = "\n".join(index) + "\n"
    return pages


# ----------------------------------------------------------------------------- experiments


def _docstring_summary(script: pathlib.Path) -> str:
    """The first paragraph of a script's module docstring, read without running it."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text()))
    except (OSError, SyntaxError):
        return ""
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ")


def experiment_names() -> list[str]:
    """Experiments with a script or committed results: the cited ones first, then the rest."""
    found = {p.stem for p in EXPERIMENTS.glob("*.py") if not p.stem.startswith("_")}
    if RESULTS.is_dir():
        found |= {p.name for p in RESULTS.iterdir() if p.is_dir() and p.name != "smoke"}
    return list(KNOWN_EXPERIMENTS) + sorted(found - set(KNOWN_EXPERIMENTS))


def figures(name: str, pattern: str = "*.png") -> list[pathlib.Path]:
    """The committed PNG figures of experiment ``name`` (smoke runs excluded)."""
    folder = RESULTS / name
    if not folder.is_dir():
        return []
    if not pattern.endswith(".png"):
        pattern += ".png"
    return sorted(p for p in folder.glob("*.png") if fnmatch.fnmatch(p.name, pattern))


def figure_uri(png: pathlib.Path) -> str:
    """Where a results figure lives in the site, relative to the docs root."""
    return f"figures/{png.parent.name}/{png.name}"


def _caption(png: pathlib.Path) -> str:
    return png.stem.replace("_", " ").replace("-", " ")


def figure_markdown(name: str, pattern: str = "*.png", prefix: str = "") -> str:
    """Markdown that shows the figures of an experiment, or says which command makes them."""
    pngs = figures(name, pattern)
    if not pngs:
        return (
            f"*The figure for this section is made by `python experiments/{name}.py`; it "
            "appears here once that experiment's results are committed.*"
        )
    return "\n\n".join(f"![{_caption(p)}]({prefix}{figure_uri(p)})" for p in pngs)


def _embedded_results(name: str, text: str) -> tuple[str, set[str]]:
    """``results.md`` with headings demoted under the gallery's and figure links re-pointed."""
    used = set()

    def relink(match: re.Match) -> str:
        if not (RESULTS / name / match.group(2)).is_file():
            return match.group(0)
        used.add(match.group(2))
        return f"]({figure_uri(RESULTS / name / match.group(2))})"

    text = re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", text, flags=re.M)
    text = re.sub(r"\]\((\./)?([\w.-]+\.\w+)\)", relink, text)
    return text.strip(), used


def gallery_page() -> str:
    """The Experiments page: command, description, table and figures of each experiment."""
    lines = [
        "# Experiments",
        "",
        "Each experiment is a script in `experiments/` with explicit seeds. It prints a table "
        "and writes `results.md`, `results.json` and PNG figures to "
        "`experiments/results/<name>/`; this page shows whatever results are committed. "
        "`--smoke` runs a seconds-long version (written to `.../<name>/smoke/`, not shown "
        "here).",
        "",
        "Run one with the `experiments` extra installed:",
        "",
        "```bash",
        'pip install -e ".[experiments]"',
        "python experiments/cross_entropy_vs_kl.py",
        "```",
        "",
    ]
    for name in experiment_names():
        script = EXPERIMENTS / f"{name}.py"
        folder = RESULTS / name
        title = KNOWN_EXPERIMENTS.get(name, name.replace("_", " ").capitalize())
        lines += [f"## {title} {{#{name}}}", ""]
        summary = _docstring_summary(script) if script.exists() else ""
        if summary:
            lines += [summary, ""]
        lines += ["```bash", f"python experiments/{name}.py", "```", ""]
        results_md = folder / "results.md"
        used: set[str] = set()
        if results_md.exists():
            text, used = _embedded_results(name, results_md.read_text())
            lines += [text, ""]
        if (folder / "results.json").exists() and "results.json" not in used:
            lines += [f"The numbers as JSON: [results.json](figures/{name}/results.json).", ""]
        pngs = [p for p in figures(name) if p.name not in used]
        lines += [f"![{_caption(p)}]({figure_uri(p)})\n" for p in pngs]
        if not results_md.exists() and not figures(name):
            lines += ["No results of this experiment are committed in this build.", ""]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- benchmarks


def benchmarks_page() -> str | None:
    """The Benchmarks page: ``benchmarks/README.md`` (how to run and read the benchmarks,
    and why jaxloss is slower where it is), then the tables and figures of
    ``benchmarks/results/``, if any exist."""
    if not BENCHMARKS.is_dir():
        return None
    tables = sorted(BENCHMARKS.glob("*.md"))
    pngs = sorted(BENCHMARKS.glob("*.png"))
    if not tables and not pngs:
        return None
    lines = [
        "# Benchmarks",
        "",
        "Measured by `benchmarks/` and committed under `benchmarks/results/`. Ratios come "
        "from implementations timed side by side in one run, on the machine the tables name.",
        "",
    ]
    readme = BENCHMARKS.parent / "README.md"
    if readme.exists():
        # The README's own title is the page's; its sections follow the introduction.
        body = re.sub(r"\A# [^\n]*\n", "", readme.read_text())
        lines += [body.strip(), "", "## Results", ""]
    for table in tables:
        text = re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 1) + " ",
                      table.read_text(), flags=re.M)
        lines += [text.strip(), ""]
    lines += [f"![{_caption(p)}](figures/benchmarks/{p.name})\n" for p in pngs]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- MathJax


def local_mathjax() -> pathlib.Path | None:
    """The es5 folder of MathJax 3 from the django-static-mathjax package, if installed."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or spec.origin is None:
        return None
    es5 = pathlib.Path(spec.origin).parent / "static" / "mathjax" / "es5"
    return es5 if (es5 / "tex-chtml.js").exists() else None


# The parts of MathJax that tex-chtml.js loads: itself, its fonts, and the TeX extensions,
# menu and accessibility modules it fetches on demand.
_MATHJAX_PARTS = ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions",
                  "ui", "a11y")


# ----------------------------------------------------------------------------- the hooks


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    nav = config.nav or []
    for i, entry in enumerate(nav):
        if isinstance(entry, dict) and API_SECTION in entry:
            children = ["api/index.md"] + [
                {family.title: f"api/{family.slug}.md"} for family, _ in api_families()
            ]
            nav[i] = {API_SECTION: children}
    has_benchmarks = (pathlib.Path(config.docs_dir) / "benchmarks.md").exists() or (
        benchmarks_page() is not None
    )
    if has_benchmarks:
        at = next((i for i, e in enumerate(nav) if isinstance(e, dict) and "Changelog" in e),
                  len(nav))
        nav.insert(at, {"Benchmarks": "benchmarks.md"})
    script = "assets/mathjax/tex-chtml.js" if local_mathjax() else MATHJAX_CDN
    if local_mathjax() is None:
        log.info("django-static-mathjax is not installed: MathJax is loaded from %s", script)
    config.extra_javascript.append(script)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for uri, text in api_pages().items():
        files.append(File.generated(config, uri, content=text))
    files.append(File.generated(config, "experiments.md", content=gallery_page()))
    for name in experiment_names():
        folder = RESULTS / name
        # Every file of the results folder, so that results.md may link to any of them.
        shown = sorted(p for p in folder.glob("*") if p.is_file() and p.name != "results.md")
        for path in shown:
            files.append(File.generated(config, f"figures/{name}/{path.name}",
                                        abs_src_path=str(path)))
    page = benchmarks_page()
    if page is not None and files.get_file_from_path("benchmarks.md") is None:
        files.append(File.generated(config, "benchmarks.md", content=page))
        for png in sorted(BENCHMARKS.glob("*.png")):
            files.append(File.generated(config, f"figures/benchmarks/{png.name}",
                                        abs_src_path=str(png)))
    es5 = local_mathjax()
    if es5 is not None:
        for part in _MATHJAX_PARTS:
            paths = [es5 / part] if (es5 / part).is_file() else sorted((es5 / part).rglob("*"))
            for path in paths:
                if path.is_file():
                    uri = f"assets/mathjax/{path.relative_to(es5).as_posix()}"
                    files.append(File.generated(config, uri, abs_src_path=str(path)))
        license_file = es5.parent / "LICENSE"
        if license_file.exists():
            files.append(File.generated(config, "assets/mathjax/LICENSE",
                                        abs_src_path=str(license_file)))
    return files


def drop_rows_of_missing_names(markdown: str) -> str:
    """Removes the table rows that link to a ``jaxloss`` name this version does not have."""
    public = set(_import_jaxloss().__all__)

    def keep(line: str) -> bool:
        if not line.lstrip().startswith("|"):
            return True
        return all(name in public for name in _REF.findall(line))

    return "".join(line for line in markdown.splitlines(keepends=True) if keep(line))


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    prefix = "../" * page.file.src_uri.count("/")
    markdown = drop_rows_of_missing_names(markdown)
    return _FIGURES.sub(
        lambda m: figure_markdown(m.group("name"), m.group("glob") or "*.png", prefix), markdown
    )
