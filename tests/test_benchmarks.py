"""The benchmark harness runs end to end in --quick mode, so it cannot rot."""

import json
import pathlib
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def test_quick_benchmark_writes_consistent_results(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import run
    finally:
        sys.path.remove(str(BENCHMARKS))
    out = run.main([
        "--quick", "--repeats", "2", "--dtype", "float32", "--no-progress",
        "--loss", "softmax_cross_entropy", "--loss", "squared_error", "--out", str(tmp_path),
    ])
    rows = out["rows"]
    assert {r["loss"] for r in rows} == {"softmax_cross_entropy", "squared_error"}
    for row in rows:
        med = row["median_s"]
        assert "jaxloss" in med and "optax" in med
        assert all(row["min_s"][k] <= med[k] <= row["max_s"][k] for k in med)
        # The roofline is a lower bound that the measured time cannot beat by much.
        assert row["ratios"]["roofline/jaxloss"] < 10
        np.testing.assert_allclose(
            row["ratios"]["jaxloss/optax"], med["jaxloss"] / med["optax"], rtol=1e-12
        )
        assert row["temp_bytes"]["jaxloss"] >= 0
    # squared_error in float32 compiles to optax's program; cross-entropy to another one.
    same = {r["loss"]: r["same_program_as_optax"] for r in rows}
    assert same == {"squared_error": True, "softmax_cross_entropy": False}
    saved = json.loads((tmp_path / "losses.json").read_text())
    assert len(saved["rows"]) == len(rows)
    assert (tmp_path / "losses.md").read_text().count("\n| softmax_cross_entropy") == 2
    assert (tmp_path / "losses_time_vs_size.png").stat().st_size > 10_000


def test_log_cosh_precision_script_reports_jaxloss_within_float32_rounding(capsys):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import log_cosh_precision
    finally:
        sys.path.remove(str(BENCHMARKS))
    rows = log_cosh_precision.main()
    assert [r["error"] for r in rows] == pytest.approx(log_cosh_precision.ERRORS, rel=1e-6)
    assert max(r["jaxloss"] for r in rows) < 2e-6
    assert "| 0.001 |" in capsys.readouterr().out
