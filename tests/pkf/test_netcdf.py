"""netCDF output: CF metadata, round trips, resume, verification, locking and failed writes."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from pkf.netcdf import (
    CorruptFileError,
    NetCDFWriter,
    OutputLock,
    OutputLockedError,
    VariableSpec,
    package_version,
    read_attributes,
    read_netcdf,
    verify_file,
)

xarray = pytest.importorskip("xarray")

REPO_ROOT = Path(__file__).resolve().parents[2]


def specs_1d():
    return [
        VariableSpec("u", "m s-1", "ensemble mean of u", ("x",)),
        VariableSpec("V_u", "m2 s-2", "error variance of u", ("x",)),
        VariableSpec("u_members", "m s-1", "ensemble members of u", ("member", "x")),
    ]


def record(k, nx=8, members=3):
    x = np.arange(nx)
    return {
        "u": np.sin(x + 10.0 * k),  # every value distinct: a bit flip names one record
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
        members=3,
        coord_units="m",
        record_units="s",
        **kwargs,
    )


def write_records(path, count):
    with create_1d(path) as writer:
        for k in range(count):
            writer.append(0.002 * k, record(k))


def byte_offset(path, value, dtype=">f8"):
    """Offset of the only occurrence of ``value`` (big-endian, as classic netCDF stores it)."""
    content = Path(path).read_bytes()
    needle = np.array(value, dtype=dtype).tobytes()
    assert content.count(needle) == 1, "the value to alter must occur once in the file"
    return content.index(needle)


def flip_bit(path, offset):
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0x01]))


def test_round_trip_1d_with_members(tmp_path):
    path = tmp_path / "burgers.nc"
    write_records(path, 3)
    data = read_netcdf(path)
    assert data["u"].shape == (3, 8) and data["u_members"].shape == (3, 3, 8)
    for k in range(3):
        for name, value in record(k).items():
            np.testing.assert_array_equal(data[name][k], value)
    np.testing.assert_allclose(data["time"], [0.0, 0.002, 0.004])
    np.testing.assert_array_equal(data["member"], [0, 1, 2])
    np.testing.assert_allclose(data["x"], np.arange(8) / 8)
    assert "record_checksum" not in data
    assert verify_file(path).ok


def test_cf_attributes_present(tmp_path):
    path = tmp_path / "burgers.nc"
    create_1d(path).close()
    attributes = read_attributes(path)
    assert attributes["Conventions"] == "CF-1.8"
    assert attributes["equations"] == "d_t u = kappa d_x^2 u - u d_x u"
    assert attributes["dt"] == 0.002 and attributes["seed"] == 2024
    assert attributes["grid"].startswith("periodic; x: 8 points")
    assert attributes["pkfnet_version"] == package_version()
    assert "created by pkfnet" in attributes["history"]
    with netCDF4.Dataset(path) as dataset:
        for name in ("u", "V_u", "u_members", "x", "time", "member", "record_checksum"):
            assert {"units", "long_name"} <= set(dataset.variables[name].ncattrs()), name
        for name in ("u", "V_u", "u_members", "record_checksum"):
            assert "_FillValue" in dataset.variables[name].ncattrs(), name
        assert dataset.variables["member"].standard_name == "realization"
        # elapsed time in seconds: CF reserves standard_name "time" for units with a reference
        assert dataset.variables["time"].units == "s"
        assert "standard_name" not in dataset.variables["time"].ncattrs()
        assert dataset.dimensions["time"].isunlimited()


def test_dimensionless_time_has_no_time_standard_name(tmp_path):
    path = tmp_path / "model_time.nc"
    spec = VariableSpec("V", "1", "error variance", ("x",))
    NetCDFWriter.create(path, [spec], {"x": np.arange(4.0)}, equations="", dt=1.0, seed=0).close()
    with netCDF4.Dataset(path) as dataset:
        time_variable = dataset.variables["time"]
        assert time_variable.units == "1"
        assert "standard_name" not in time_variable.ncattrs()


@pytest.mark.parametrize("fmt", ["NETCDF3_64BIT_OFFSET", "NETCDF4"])
def test_xarray_opens_2d_and_3d_files(tmp_path, fmt):
    for coords in (
        {"y": np.arange(4) / 4, "x": np.arange(6) / 6},
        {"z": np.arange(5.0), "y": np.arange(4.0), "x": np.arange(3.0)},
    ):
        dims = tuple(coords)
        path = tmp_path / f"field_{len(dims)}d.nc"
        spec = VariableSpec("V", "1", "error variance", dims)
        with NetCDFWriter.create(
            path, [spec], coords, equations="d_t u = 0", dt=0.1, seed=None, format=fmt
        ) as writer:
            for k in range(2):
                writer.append(0.1 * k, {"V": np.full([c.size for c in coords.values()], k)})
        assert verify_file(path).ok
        with xarray.open_dataset(path) as dataset:
            assert dataset["V"].dims == ("time", *dims)
            assert dataset.sizes["time"] == 2
            np.testing.assert_array_equal(dataset["V"].values[1], 1.0)
            assert dataset.attrs["Conventions"] == "CF-1.8"
            assert dataset.attrs["seed"] == "None"
            assert dataset["V"].attrs["long_name"] == "error variance"


def test_xarray_opens_1d_file_with_members(tmp_path):
    path = tmp_path / "members.nc"
    with create_1d(path) as writer:
        writer.append(0.0, record(0))
    with xarray.open_dataset(path) as dataset:
        assert dataset["u_members"].dims == ("time", "member", "x")
        assert dataset["u"].attrs["units"] == "m s-1"
        np.testing.assert_array_equal(dataset["u_members"].values[0], record(0)["u_members"])


def test_reopen_reports_records_and_appends(tmp_path):
    path = tmp_path / "resume.nc"
    write_records(path, 2)
    with NetCDFWriter.open(path) as writer:
        assert writer.n_records == 2
        assert writer.append(0.004, record(2)) == 2
    data = read_netcdf(path)
    np.testing.assert_array_equal(data["V_u"][:, 0], [1.0, 2.0, 3.0])
    with xarray.open_dataset(path) as dataset:
        assert dataset.sizes["time"] == 3


def test_incomplete_record_is_ignored_and_overwritten(tmp_path):
    path = tmp_path / "partial.nc"
    write_records(path, 1)
    with netCDF4.Dataset(path, "a") as dataset:  # a run killed in the middle of an append
        dataset.variables["u"][1] = np.full(8, -1.0)
    assert read_netcdf(path)["u"].shape == (1, 8)
    assert verify_file(path).ok  # records beyond the claim are not checked
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
    assert verify_file(path).ok
    with NetCDFWriter.open(path) as writer:  # the kill released the lock
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
        static=[(VariableSpec("kappa", "1", "diffusivity", ()), 0.0025)],
        attributes={"ensembles": 400},
    ) as writer:
        writer.append(0, {"V_in": np.ones(5), "V_out": 2 * np.ones(5)})
    with xarray.open_dataset(path) as dataset:
        assert dataset["V_out"].dims == ("sample", "x")
        assert dataset.attrs["seed"] == str(2**40)  # beyond 32 bits: stored as text
        assert dataset.attrs["ensembles"] == 400
        assert float(dataset["kappa"]) == 0.0025


def test_writer_errors_are_specific(tmp_path):
    path = tmp_path / "errors.nc"
    with pytest.raises(FileNotFoundError, match="no such file to resume"):
        NetCDFWriter.open(path)
    assert not path.exists()  # netCDF4's mode "a" alone would have created an empty file
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
            [VariableSpec("u", "1", "u", ("y", "x"))],
            {"x": np.arange(3.0)},
            equations="",
            dt=1.0,
            seed=0,
        )
    assert not (tmp_path / "bad.nc").exists()
    with pytest.raises(ValueError, match="managed by NetCDFWriter"):
        create_1d(tmp_path / "bad.nc", attributes={"complete_records": 3})
    with pytest.raises(ValueError, match=r"static\['c'\]: expected shape \(8,\)"):
        create_1d(tmp_path / "bad.nc", static=[(VariableSpec("c", "1", "c", ("x",)), [1.0])])
    assert not (tmp_path / "bad.nc").exists()


def test_package_version_falls_back_when_not_installed(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    package_version.cache_clear()
    try:
        assert package_version() == "0+unknown"
    finally:
        package_version.cache_clear()


# -- verification: checksums, truncation, claims beyond the data ---------------------------------


def test_flipped_bit_in_a_record_is_named_on_read(tmp_path):
    path = tmp_path / "flipped.nc"
    write_records(path, 4)
    flip_bit(path, byte_offset(path, record(2)["u"][5]) + 7)
    verification = verify_file(path)
    assert dict(verification.problems) == {2: ("u",)}
    assert verification.verified == 2 and not verification.ok
    with pytest.raises(CorruptFileError, match=r"record 2: u\b") as caught:
        read_netcdf(path)
    assert caught.value.verification.problems == verification.problems


def test_flipped_bit_in_a_coordinate_or_constant_is_named(tmp_path):
    path = tmp_path / "constant.nc"
    with create_1d(path, static=[(VariableSpec("kappa", "1", "kappa", ()), 0.0025)]) as writer:
        writer.append(0.0, record(0))
    flip_bit(path, byte_offset(path, 0.0025) + 7)
    flip_bit(path, byte_offset(path, 3 / 8) + 7)
    assert verify_file(path).static_problems == ("x", "kappa")
    with pytest.raises(CorruptFileError, match="variables x, kappa fail their checksum"):
        read_netcdf(path)


def test_truncated_file_fails_verification_and_resumes_from_the_last_good_record(tmp_path):
    path = tmp_path / "truncated.nc"
    write_records(path, 10)
    size = path.stat().st_size
    os.truncate(path, int(size * 0.6))
    verification = verify_file(path)
    assert verification.claimed == 10 and 3 <= verification.verified < 10
    assert set(verification.problems) == set(range(verification.verified, 10))
    assert "fail their checksum" in verification.describe()
    with pytest.raises(CorruptFileError):
        read_netcdf(path)
    with pytest.raises(CorruptFileError, match="verify=False"):
        NetCDFWriter.open(path)
    with NetCDFWriter.open(path, verify=False) as writer:
        writer.truncate(writer.verify().verified)
        for k in range(writer.n_records, 10):
            writer.append(0.002 * k, record(k))
    data = read_netcdf(path)
    for k in range(10):
        np.testing.assert_array_equal(data["u_members"][k], record(k)["u_members"])


def test_claim_beyond_the_data_is_detected(tmp_path):
    path = tmp_path / "overclaimed.nc"
    write_records(path, 3)
    with netCDF4.Dataset(path, "a") as dataset:
        dataset.variables["u"][4] = np.ones(8)  # the header now holds 5 records, 3 and 4 unwritten
        dataset.setncattr("complete_records", np.int32(7))
    verification = verify_file(path)
    assert verification.on_disk == 5 and verification.verified == 3
    assert set(verification.problems) == {3, 4, 5, 6}
    assert "records 5-6 are claimed complete" in verification.describe()
    assert "records 3-4:" in verification.describe()
    with pytest.raises(CorruptFileError, match="claimed complete"):
        read_netcdf(path)
    with pytest.raises(CorruptFileError, match="claimed complete"):
        NetCDFWriter.open(path)  # appending after a bogus claim would keep it
    OutputLock(path).acquire().release()  # the refusal released the lock


# -- one writer at a time --------------------------------------------------------------------


def test_second_writer_is_refused_with_the_path_and_holder_pid(tmp_path):
    path = tmp_path / "locked.nc"
    write_records(path, 1)
    script = textwrap.dedent(
        f"""
        import sys
        from pkf.netcdf import NetCDFWriter
        writer = NetCDFWriter.open({str(path)!r})
        print("holding", flush=True)
        sys.stdin.readline()
        writer.close()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(OutputLockedError, match=f"process {holder.pid}") as caught:
            NetCDFWriter.open(path)
        assert str(path) in str(caught.value) and caught.value.pid == holder.pid
        with pytest.raises(OutputLockedError):
            create_1d(path, overwrite=True)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdin.close()
        holder.stdout.close()
    with NetCDFWriter.open(path) as writer:  # released: the next writer gets it
        writer.append(0.002, record(1))
        with pytest.raises(OutputLockedError, match=str(os.getpid())):
            OutputLock(path).acquire()  # refused in the same process too
    assert read_netcdf(path)["u"].shape == (2, 8)


# -- failed writes: disk full ----------------------------------------------------------------


@pytest.mark.parametrize("step", ["_write_block", "_flush_data", "_reserve"])
def test_failed_write_keeps_the_claim_and_resumes(tmp_path, monkeypatch, step):
    path = tmp_path / "full.nc"
    write_records(path, 2)

    def runtime_error(self, *args):  # netCDF-C reports a full disk without errno
        raise RuntimeError("No space left on device")

    def no_space(self, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def sync_then_no_space(self):  # netCDF's buffers reach the system, then fsync fails
        self._dataset.sync()
        no_space(self)

    if step == "_write_block":
        monkeypatch.setattr(NetCDFWriter, "_write_block", runtime_error)
    elif step == "_flush_data":  # the data flush fails: the claim must not move
        monkeypatch.setattr(NetCDFWriter, "_flush", sync_then_no_space)
    else:
        monkeypatch.setattr(NetCDFWriter, "_reserve", no_space)
    writer = NetCDFWriter.open(path)
    with pytest.raises(OSError, match="free disk space") as caught:
        writer.append(0.004, record(2))
    writer.close()
    assert caught.value.errno == errno.ENOSPC
    assert str(path) in str(caught.value) and "first 2 records" in str(caught.value)
    monkeypatch.undo()
    verification = verify_file(path)
    assert verification.ok and verification.claimed == 2
    with NetCDFWriter.open(path) as writer:
        writer.append(0.004, record(2))
    np.testing.assert_array_equal(read_netcdf(path)["V_u"][:, 0], [1.0, 2.0, 3.0])


FILL_DISK = """
import sys
import numpy as np
from pkf.netcdf import NetCDFWriter, VariableSpec
if sys.argv[2] == "no-reserve":  # let netCDF-C itself hit the full disk
    NetCDFWriter._reserve = lambda self, stop: None
spec = VariableSpec("V", "1", "error variance", ("x",))
try:
    writer = NetCDFWriter.open(sys.argv[1])
except FileNotFoundError:
    writer = NetCDFWriter.create(sys.argv[1], [spec], {"x": np.arange(1000) / 1000},
                                 equations="none", dt=1.0, seed=0)
with writer:
    for k in range(writer.n_records, 100):
        writer.append(float(k), {"V": np.full(1000, float(k))})
"""


def run_fill_disk(path, mode, preexec_fn=None):
    return subprocess.run(
        [sys.executable, "-c", FILL_DISK, str(path), mode],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec_fn,
    )


def assert_clean_failure_then_resume(path, result, errno_name, free_space):
    assert result.returncode == 1, result.stderr  # an exception, not a crash (-11: SIGSEGV)
    assert f"OSError: [Errno {getattr(errno, errno_name)}]" in result.stderr
    assert str(path) in result.stderr and "rerun to resume" in result.stderr
    verification = verify_file(path)
    assert verification.ok and 0 < verification.claimed < 100
    free_space()
    assert run_fill_disk(path, "reserve").returncode == 0
    data = read_netcdf(path)
    np.testing.assert_array_equal(data["V"][:, 0], np.arange(100))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 256 KiB filesystem (tmpfs), or a skip when this user may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8); the logic is covered above")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("mode", ["reserve", "no-reserve"])
def test_full_disk_is_a_clean_error_and_the_file_resumes(small_tmpfs, mode):
    path = small_tmpfs / "full.nc"
    result = run_fill_disk(path, mode)

    def grow():
        subprocess.run(["mount", "-o", "remount,size=2m", str(small_tmpfs)], check=True)

    assert_clean_failure_then_resume(path, result, "ENOSPC", grow)
    assert "No space left on device" in result.stderr


def test_header_on_a_full_disk_is_a_clean_error_leaving_no_file(small_tmpfs):
    descriptor = os.open(small_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the filesystem
        while True:
            os.write(descriptor, b"\0" * 1024)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
    path = small_tmpfs / "header.nc"
    result = run_fill_disk(path, "reserve")
    assert result.returncode == 1, result.stderr
    assert f"OSError: [Errno 28] {path}: " in result.stderr
    assert "failed (No space left on device). Free disk space" in result.stderr
    assert not path.exists() and not Path(str(path) + ".part").exists()


def test_file_size_limit_is_a_clean_error_and_the_file_resumes(tmp_path):
    resource = pytest.importorskip("resource")
    path = tmp_path / "limited.nc"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    started = time.monotonic()
    result = run_fill_disk(path, "reserve", preexec_fn=limit)
    assert_clean_failure_then_resume(path, result, "EFBIG", lambda: None)
    assert time.monotonic() - started < 60
