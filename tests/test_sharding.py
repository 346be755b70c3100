"""Runs tests/multidevice/ on 8 simulated CPU devices, in a subprocess.

The device count is fixed when JAX starts, so the multi-device tests run in their own process
with XLA_FLAGS=--xla_force_host_platform_device_count=8; this process keeps one device. In
this process those tests are collected too, and skip themselves.
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FLAG = "--xla_force_host_platform_device_count=8"


def test_multidevice_tests_pass_on_8_simulated_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {FLAG}".strip()
    # Simulated devices are CPU devices; an accelerator would otherwise be the default.
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/multidevice"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500,
    )
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    # Skipping for want of devices would pass silently: the flag must have taken effect.
    assert "needs 8 devices" not in result.stdout, report
    assert " passed" in result.stdout, report
