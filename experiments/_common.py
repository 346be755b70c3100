"""Shared plumbing for the experiment scripts: arguments, results folder, tables, progress."""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every experiment shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="a seconds-long run for the tests")
    p.add_argument("--seed", type=int, default=0, help="the random seed")
    p.add_argument(
        "--out", type=pathlib.Path, default=None,
        help="results folder (default: experiments/results/<name>/, smoke runs in .../smoke/)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def results_dir(name: str, args: argparse.Namespace) -> pathlib.Path:
    """The folder an experiment writes to, created if needed."""
    out = args.out or (RESULTS / name / "smoke" if args.smoke else RESULTS / name)
    out.mkdir(parents=True, exist_ok=True)
    return out


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats are printed with 4 significant digits."""

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(out: pathlib.Path, table: str, numbers: dict[str, Any]) -> None:
    """Writes ``results.md`` and ``results.json`` and prints the table."""
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps(numbers, indent=2, default=float) + "\n")
    print(table)
    print(f"\nresults written to {out}")


def progress(iterable: Iterable[Any], *, total: int | None = None, desc: str = "",
             disable: bool = False) -> Iterable[Any]:
    """A tqdm progress bar (plain iteration when tqdm is missing or the bar is disabled)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the experiments extra
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=disable)
