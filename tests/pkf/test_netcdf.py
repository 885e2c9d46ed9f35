"""netCDF output: CF metadata, round trips, xarray compatibility, resume after interruption."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from pkf.netcdf import NetCDFWriter, VariableSpec, package_version, read_attributes, read_netcdf

xarray = pytest.importorskip("xarray")

REPO_ROOT = Path(__file__).resolve().parents[2]


def specs_1d():
    return [
        VariableSpec("u", "m s-1", "ensemble mean of u", ("x",)),
        VariableSpec("V_u", "m2 s-2", "error variance of u", ("x",)),
        VariableSpec("u_members", "m s-1", "ensemble members of u", ("realization", "x")),
    ]


def record(k, nx=8, members=3):
    x = np.arange(nx)
    return {
        "u": np.sin(x + k),
        "V_u": np.full(nx, 1.0 + k),
        "u_members": np.outer(np.arange(members), x) + 10.0 * k,
    }


def create_1d(path, **kwargs):
    return NetCDFWriter.create(
        path,
        specs_1d(),
        {"x": np.arange(8) / 8},
        equations="d_t u = kappa d_x^2 u - u d_x u",
        dt=0.002,
        seed=2024,
        realizations=3,
        coord_units="m",
        record_units="s",
        **kwargs,
    )


def test_round_trip_1d_with_realizations(tmp_path):
    path = tmp_path / "burgers.nc"
    with create_1d(path) as writer:
        for k in range(3):
            assert writer.append(0.002 * k, record(k)) == k
    data = read_netcdf(path)
    assert data["u"].shape == (3, 8) and data["u_members"].shape == (3, 3, 8)
    for k in range(3):
        for name, value in record(k).items():
            np.testing.assert_array_equal(data[name][k], value)
    np.testing.assert_allclose(data["time"], [0.0, 0.002, 0.004])
    np.testing.assert_array_equal(data["realization"], [0, 1, 2])
    np.testing.assert_allclose(data["x"], np.arange(8) / 8)


def test_cf_attributes_present(tmp_path):
    path = tmp_path / "burgers.nc"
    create_1d(path).close()
    attributes = read_attributes(path)
    assert attributes["Conventions"] == "CF-1.8"
    assert attributes["equations"] == "d_t u = kappa d_x^2 u - u d_x u"
    assert attributes["dt"] == 0.002 and attributes["seed"] == 2024
    assert attributes["grid"].startswith("periodic; x: 8 points")
    assert attributes["pkfnet_version"] == package_version()
    with netCDF4.Dataset(path) as dataset:
        for name in ("u", "V_u", "u_members", "x", "time", "realization"):
            assert {"units", "long_name"} <= set(dataset.variables[name].ncattrs()), name
        assert dataset.variables["realization"].standard_name == "realization"
        assert dataset.dimensions["time"].isunlimited()


@pytest.mark.parametrize("fmt", ["NETCDF3_64BIT_OFFSET", "NETCDF4"])
def test_xarray_opens_2d_and_3d_files(tmp_path, fmt):
    for coords in (
        {"x": np.arange(6) / 6, "y": np.arange(4) / 4},
        {"x": np.arange(3.0), "y": np.arange(4.0), "z": np.arange(5.0)},
    ):
        dims = tuple(coords)
        path = tmp_path / f"field_{len(dims)}d.nc"
        spec = VariableSpec("V", "1", "error variance", dims)
        with NetCDFWriter.create(
            path, [spec], coords, equations="d_t u = 0", dt=0.1, seed=None, format=fmt
        ) as writer:
            for k in range(2):
                writer.append(0.1 * k, {"V": np.full([c.size for c in coords.values()], k)})
        with xarray.open_dataset(path) as dataset:
            assert dataset["V"].dims == ("time", *dims)
            assert dataset.sizes["time"] == 2
            np.testing.assert_array_equal(dataset["V"].values[1], 1.0)
            assert dataset.attrs["Conventions"] == "CF-1.8"
            assert dataset.attrs["seed"] == "None"
            assert dataset["V"].attrs["long_name"] == "error variance"


def test_xarray_opens_1d_file_with_realizations(tmp_path):
    path = tmp_path / "members.nc"
    with create_1d(path) as writer:
        writer.append(0.0, record(0))
    with xarray.open_dataset(path) as dataset:
        assert dataset["u_members"].dims == ("time", "realization", "x")
        assert dataset["u"].attrs["units"] == "m s-1"
        np.testing.assert_array_equal(dataset["u_members"].values[0], record(0)["u_members"])


def test_reopen_reports_records_and_appends(tmp_path):
    path = tmp_path / "resume.nc"
    with create_1d(path) as writer:
        for k in range(2):
            writer.append(0.002 * k, record(k))
    with NetCDFWriter.open(path) as writer:
        assert writer.n_records == 2
        assert writer.append(0.004, record(2)) == 2
    data = read_netcdf(path)
    np.testing.assert_array_equal(data["V_u"][:, 0], [1.0, 2.0, 3.0])
    with xarray.open_dataset(path) as dataset:
        assert dataset.sizes["time"] == 3


def test_incomplete_record_is_ignored_and_overwritten(tmp_path):
    path = tmp_path / "partial.nc"
    with create_1d(path) as writer:
        writer.append(0.0, record(0))
    with netCDF4.Dataset(path, "a") as dataset:  # a run killed in the middle of an append
        dataset.variables["u"][1] = np.full(8, -1.0)
    assert read_netcdf(path)["u"].shape == (1, 8)
    with NetCDFWriter.open(path) as writer:
        assert writer.n_records == 1
        writer.append(0.002, record(1))
    np.testing.assert_array_equal(read_netcdf(path)["u"][1], record(1)["u"])


def test_file_survives_a_killed_writer_process(tmp_path):
    path = tmp_path / "killed.nc"
    script = textwrap.dedent(
        f"""
        import numpy as np
        from pkf.netcdf import NetCDFWriter, VariableSpec
        spec = VariableSpec("V", "1", "error variance", ("x",))
        writer = NetCDFWriter.create({str(path)!r}, [spec], {{"x": np.arange(64) / 64}},
                                     equations="none", dt=1.0, seed=0)
        k = 0
        while True:
            writer.append(float(k), {{"V": np.full(64, float(k))}})
            print(k, flush=True)
            k += 1
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(20):
            process.stdout.readline()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    with NetCDFWriter.open(path) as writer:
        n = writer.n_records
        assert n >= 20
        writer.append(float(n), {"V": np.full(64, float(n))})
    data = read_netcdf(path)
    np.testing.assert_array_equal(data["time"], np.arange(n + 1))
    np.testing.assert_array_equal(data["V"][:, 0], np.arange(n + 1))
    with xarray.open_dataset(path) as dataset:
        assert dataset.sizes["time"] >= n + 1


def test_sample_record_dimension_for_datasets(tmp_path):
    path = tmp_path / "pairs.nc"
    specs = [
        VariableSpec("V_in", "1", "variance at step k", ("x",)),
        VariableSpec("V_out", "1", "variance at step k + 1", ("x",)),
    ]
    with NetCDFWriter.create(
        path,
        specs,
        {"x": np.arange(5.0)},
        equations="burgers",
        dt=0.002,
        seed=2**40,
        record_dim="sample",
        record_dtype="i4",
        attributes={"ensembles": 400, "kappa": 0.0025},
    ) as writer:
        writer.append(0, {"V_in": np.ones(5), "V_out": 2 * np.ones(5)})
    with xarray.open_dataset(path) as dataset:
        assert dataset["V_out"].dims == ("sample", "x")
        assert dataset.attrs["seed"] == str(2**40)  # beyond 32 bits: stored as text
        assert dataset.attrs["kappa"] == 0.0025


def test_writer_errors_are_specific(tmp_path):
    path = tmp_path / "errors.nc"
    create_1d(path).close()
    with pytest.raises(FileExistsError, match="NetCDFWriter.open"):
        create_1d(path)
    create_1d(path, overwrite=True).close()
    with NetCDFWriter.open(path) as writer:
        bad = record(0) | {"u": np.zeros(7)}
        with pytest.raises(ValueError, match=r"data\['u'\]: expected shape \(8,\)"):
            writer.append(0.0, bad)
        with pytest.raises(ValueError, match="every record variable"):
            writer.append(0.0, {"u": np.zeros(8)})
    with pytest.raises(ValueError, match=r"unknown dims \['y'\]"):
        NetCDFWriter.create(
            tmp_path / "bad.nc",
            [VariableSpec("u", "1", "u", ("x", "y"))],
            {"x": np.arange(3.0)},
            equations="",
            dt=1.0,
            seed=0,
        )
    assert not (tmp_path / "bad.nc").exists()
    with pytest.raises(ValueError, match="managed by NetCDFWriter"):
        create_1d(tmp_path / "bad.nc", attributes={"complete_records": 3})


def test_package_version_falls_back_when_not_installed(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert package_version() == "0+unknown"
