"""The example of docs/multi_device.md runs on 8 devices, and the page shows it verbatim."""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "examples" / "multi_device_training.py"
PAGE = ROOT / "docs" / "multi_device.md"


def test_page_shows_the_script_verbatim():
    assert SCRIPT.read_text().strip() in PAGE.read_text(), (
        f"{PAGE.name} must contain {SCRIPT.relative_to(ROOT)} verbatim in a code block"
    )


@pytest.mark.skipif(
    jax.device_count() < 8,
    reason=f"needs 8 devices, found {jax.device_count()}: tests/test_sharding.py runs this "
    "folder in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8",
)
def test_example_trains_on_a_data_by_model_mesh():
    spec = importlib.util.spec_from_file_location("multi_device_training", SCRIPT)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    # conftest's strict promotion checks jaxloss; optax's adam mixes a Python float and an int.
    with jax.numpy_dtype_promotion("standard"):
        result = example.main(["--steps", "40"])
    assert result["last_loss"] < 0.7 * result["first_loss"], result
    # The vocabulary-parallel loss (mesh 2 x 4) equals softmax_cross_entropy on the full logits.
    np.testing.assert_allclose(result["vocab_parallel"], result["cross_entropy"], rtol=1e-5)
    assert 0 <= result["accuracy"] <= 1
