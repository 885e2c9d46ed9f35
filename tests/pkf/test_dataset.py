"""build_dataset: content, xarray compatibility, deterministic resume after SIGINT / SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pkf import EnsembleForecast, build_dataset, read_netcdf
from pkf.dataset import _initial_members, ensemble_seed
from pkf.netcdf import read_attributes

xarray = pytest.importorskip("xarray")

REPO_ROOT = Path(__file__).resolve().parents[2]

# Small Burgers dataset shared by the in-process builds and the subprocess that gets killed.
SETUP = """
import time
import sympy as sp
from generator import NNModelBuilder
from pkf import burgers_background

t, x, kappa = sp.symbols("t x kappa")
u = sp.Function("u")(t, x)
Burgers = NNModelBuilder(
    [sp.Eq(u.diff(t), -u * u.diff(x) + kappa * u.diff(x, 2))], class_name="Burgers"
).build()
model = Burgers(shape=32, lengths=1.0, dtype="float64", kappa=0.0025)
base = burgers_background()
SETTINGS = dict(ensembles=12, members=8, error_variance=0.005**2, correlation=0.1,
                dt=0.002, steps=10, window=(5, 10), seed=7, progress=False)


def slow_background(rng, model):
    time.sleep(0.4)  # makes the build slow enough to be interrupted mid-way
    return base(rng, model)
"""
namespace: dict = {}
exec(SETUP, namespace)


def build(path: Path) -> Path:
    return build_dataset(
        path, namespace["model"], background=namespace["base"], **namespace["SETTINGS"]
    )


def complete_records(path: Path) -> int:
    try:
        return int(read_attributes(path)["complete_records"])
    except (OSError, KeyError):
        return 0


def start_and_interrupt(path: Path, sig: int, after_records: int) -> int:
    # A shell that starts jobs in the background (as CI runners may) leaves SIGINT ignored,
    # and children inherit that: restore Python's handler so SIGINT acts as Ctrl-C does.
    script = SETUP + textwrap.dedent(
        f"""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from pkf import build_dataset
        build_dataset({str(path)!r}, model, background=slow_background, **SETTINGS)
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while complete_records(path) < after_records:
            assert process.poll() is None, "the build stopped before it could be interrupted"
            assert time.monotonic() < deadline, "the build made no progress"
            time.sleep(0.05)
        process.send_signal(sig)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return complete_records(path)


def test_dataset_holds_consecutive_step_statistics_and_opens_with_xarray(tmp_path):
    path = build(tmp_path / "burgers.nc")
    settings = namespace["SETTINGS"]
    data = read_netcdf(path)
    pairs = settings["window"][1] - settings["window"][0]
    assert data["u"].shape == (settings["ensembles"] * pairs, 32)
    np.testing.assert_array_equal(data["ensemble"], np.repeat(np.arange(12), pairs))
    np.testing.assert_array_equal(data["step"], np.tile(np.arange(5, 10), 12))
    np.testing.assert_allclose(data["time"], data["step"] * settings["dt"])
    # the pairs chain: the next state of step k is the state of step k + 1
    same = data["step"][1:] == data["step"][:-1] + 1
    for name in ("u", "V_u", "nu_u_xx"):
        np.testing.assert_array_equal(data[name + "_next"][:-1][same], data[name][1:][same])
    # ensemble 3 equals its own forecast from the per-ensemble seed
    model = namespace["model"]
    rng = np.random.default_rng(ensemble_seed(settings["seed"], 3))
    initial = _initial_members(
        model, rng, namespace["base"], 8, {"u": settings["error_variance"]}, {"u": 0.1}
    )
    times = np.arange(11) * settings["dt"]
    result = EnsembleForecast(model, 8, progress=False).run(times, initial, times[5:11])
    rows = data["ensemble"] == 3
    np.testing.assert_allclose(data["V_u"][rows], result.variance("u")[:-1], rtol=1e-13)
    np.testing.assert_allclose(
        data["nu_u_xx_next"][rows], result.diffusion("u")[1:, 0, 0], rtol=1e-13
    )
    with xarray.open_dataset(path) as dataset:
        assert dataset["nu_u_xx"].dims == ("sample", "x")
        assert dataset["V_u"].attrs["long_name"].startswith("error variance of u")
        assert dataset.attrs["Conventions"] == "CF-1.8"
        assert int(dataset.attrs["build_members"]) == 8
    # a complete file is left as is; other settings are refused
    assert build(path) == path
    with pytest.raises(ValueError, match="other build settings"):
        build_dataset(
            path,
            model,
            background=namespace["base"],
            **{**settings, "members": 9},
        )


def test_interrupted_build_resumes_to_the_uninterrupted_file(tmp_path):
    reference = read_netcdf(build(tmp_path / "reference.nc"))
    path = tmp_path / "resumed.nc"
    pairs, total = 5, 12 * 5
    after_sigint = start_and_interrupt(path, signal.SIGINT, after_records=2 * pairs)
    assert 2 * pairs <= after_sigint < total and after_sigint % pairs == 0
    after_kill = start_and_interrupt(path, signal.SIGKILL, after_records=after_sigint + pairs)
    assert after_sigint < after_kill < total
    build(path)
    resumed = read_netcdf(path)
    assert sorted(resumed) == sorted(reference)
    for name, value in reference.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)
