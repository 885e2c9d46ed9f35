"""Ensembles and training sets on Dask distributed: the same numbers and files as in-process.

One ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` serves the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

distributed = pytest.importorskip("distributed")

from generator import NNModelBuilder  # noqa: E402
from pkf import EnsembleForecast, build_dataset, sample_errors  # noqa: E402
from pkf.cluster import connect, local_cluster  # noqa: E402
from pkf.netcdf import read_netcdf  # noqa: E402

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
t, x = sp.symbols("t x")
u = sp.Function("u")(t, x)


@pytest.fixture(scope="module")
def client():
    client = local_cluster(2)
    yield client
    cluster = client.cluster
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def burgers():
    kappa = sp.Symbol("kappa")
    cls = NNModelBuilder(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)), "Burgers").build()
    return cls(shape=32, kappa=0.0025)


def slow_background(delay):
    def background(rng, model):
        time.sleep(delay)  # keeps tasks long enough to kill a worker among them
        (grid,) = model.grid
        noise = sample_errors(model.shape, model.lengths, 1, 0.1, 0.025**2, seed=rng)[0]
        return {"u": 0.25 * (1 + np.cos(2 * np.pi * grid)) + noise}

    background.fingerprint = "test background"
    return background


SETTINGS = dict(
    members=8,
    error_variance=0.005**2,
    correlation=0.1,
    dt=0.002,
    steps=10,
    window=(5, 10),
    seed=7,
    progress=False,
)


def assert_same_data(path: Path, reference: Path) -> None:
    actual, expected = read_netcdf(path), read_netcdf(reference)
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)


def test_distributed_ensemble_equals_the_in_process_one(client, burgers):
    x0 = 0.25 * (1 + np.cos(2 * np.pi * np.arange(32) / 32))
    members = {"u": x0 + sample_errors(32, 1.0, 60, 0.1, 0.005**2, seed=1)}
    times = np.arange(51) * 0.002
    chunks = (13, 13, 13, 13, 8)  # uneven: padded chunks too
    local = EnsembleForecast(burgers, 60, chunks=chunks, progress=False, save_members=True)
    remote = EnsembleForecast(
        burgers, 60, chunks=chunks, progress=False, save_members=True, client=client
    )
    a = local.run(times, members, times[::10]).to_dataset()
    b = remote.run(times, members, times[::10]).to_dataset()
    for name in a.data_vars:
        if "members" in name:
            continue
        scale = float(np.abs(a[name]).max()) or 1.0
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-12 * scale, err_msg=name)
    assert hasattr(b["u_members"].data, "dask")  # saved members stay on the workers, lazily
    np.testing.assert_array_equal(b["u_members"].values, a["u_members"].values)


def test_distributed_ensemble_with_boundary_errors_equals_the_in_process_one(client):
    """A bounded model (inflow perturbed by time-correlated errors, open outflow) on two
    workers: the workers draw each chunk's boundary series from the members' seeds, so the
    statistics are those of the in-process run."""
    from generator.boundaries import Dirichlet, Outflow
    from pkf import BoundaryErrors

    c = sp.Symbol("c")
    model_class = NNModelBuilder(
        sp.Eq(u.diff(t), -c * u.diff(x)),
        "InflowTransport",
        boundaries={"x": (Dirichlet(None), Outflow())},
    ).build()
    model = model_class(shape=41, c=1.0, boundary_values={"x": (0.0, None)})
    members = {"u": sample_errors(41, 41 / 40, 30, 0.1, 0.25, seed=2)}
    times = np.arange(81) * 0.0125
    errors = {("u", "x", "low"): BoundaryErrors(0.0, variance=0.5, time_scale=0.1, seed=5)}
    chunks = (8, 8, 8, 6)
    local = EnsembleForecast(model, 30, chunks=chunks, progress=False)
    remote = EnsembleForecast(model, 30, chunks=chunks, progress=False, client=client)
    a = local.run(times, members, times[::20], boundary_errors=errors).to_dataset()
    b = remote.run(times, members, times[::20], boundary_errors=errors).to_dataset()
    assert float(a["V_u"].isel(time=-1, x=0)) > 0  # the inflow is perturbed
    for name in ("u", "V_u", "L_u_x"):
        scale = float(np.nanmax(np.abs(a[name]))) or 1.0
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-12 * scale, err_msg=name)


def test_distributed_dataset_is_the_serial_file(client, burgers, tmp_path):
    background = slow_background(0.0)
    serial = build_dataset(
        tmp_path / "serial.nc", burgers, ensembles=6, background=background, **SETTINGS
    )
    remote = build_dataset(
        tmp_path / "remote.nc",
        burgers,
        ensembles=6,
        background=background,
        client=client,
        **SETTINGS,
    )
    assert_same_data(remote, serial)


def test_a_killed_worker_does_not_change_the_file(client, burgers, tmp_path):
    import threading

    background = slow_background(0.3)
    serial = build_dataset(
        tmp_path / "serial.nc", burgers, ensembles=12, background=background, **SETTINGS
    )
    victim = next(iter(client.run(os.getpid).values()))
    path = tmp_path / "remote.nc"
    killed_at: list[float] = []

    def kill_a_worker_mid_build():
        while _records(path) < 5:  # the build is under way: tasks are running on both
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        killed_at.append(time.monotonic())

    killer = threading.Thread(target=kill_a_worker_mid_build, daemon=True)
    killer.start()
    build_dataset(path, burgers, ensembles=12, background=background, client=client, **SETTINGS)
    finished_at = time.monotonic()
    killer.join(timeout=5)
    assert killed_at and killed_at[0] < finished_at, "the worker was not killed mid-build"
    assert_same_data(path, serial)
    client.wait_for_workers(2, timeout=120)  # the nanny restarts it, for the next tests


SCRIPT = """
import signal, sys, time, numpy as np, sympy as sp
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from test_cluster import slow_background, SETTINGS
from generator import NNModelBuilder
from pkf import build_dataset
from pkf.cluster import local_cluster
if __name__ == "__main__":
    t, x, kappa = sp.symbols("t x kappa")
    u = sp.Function("u")(t, x)
    cls = NNModelBuilder(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)), "Burgers").build()
    client = local_cluster(2)
    build_dataset({path!r}, cls(shape=32, kappa=0.0025), ensembles=10,
                  background=slow_background(0.5), client=client, **SETTINGS)
"""


def test_interrupted_distributed_build_resumes_to_the_serial_file(client, burgers, tmp_path):
    path = tmp_path / "resumed.nc"
    script = SCRIPT.format(tests=str(Path(__file__).parent), path=str(path))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while not (path.exists() and _records(path) >= 5):
            assert process.poll() is None, "the distributed build stopped before the interrupt"
            assert time.monotonic() < deadline, "the distributed build made no progress"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    interrupted = _records(path)
    assert 5 <= interrupted < 50
    background = slow_background(0.0)
    build_dataset(path, burgers, ensembles=10, background=background, client=client, **SETTINGS)
    serial = build_dataset(
        tmp_path / "serial.nc", burgers, ensembles=10, background=background, **SETTINGS
    )
    assert_same_data(path, serial)


def _records(path: Path) -> int:
    from pkf.netcdf import read_attributes

    try:
        return int(read_attributes(path)["complete_records"])
    except (OSError, KeyError):
        return 0


def test_an_unreachable_scheduler_is_a_one_line_error():
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler at 'tcp://127"):
        connect("tcp://127.0.0.1:9", timeout="2s")
    assert time.monotonic() - start < 60  # bounded, not a hang
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cases.cli",
            "run",
            "burgers",
            "--quick",
            "--scheduler",
            "tcp://127.0.0.1:9",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pkfnet: error: cannot reach the Dask")
