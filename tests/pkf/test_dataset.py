"""build_dataset: content, xarray reader, deterministic resume after SIGINT / SIGKILL, and every
way a rerun could lose or mix data (settings, truncation, corruption, concurrency, full disk)."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from pkf import EnsembleForecast, build_dataset
from pkf.dataset import (
    _initial_members,
    callable_fingerprint,
    ensemble_seed,
    open_training_set,
)
from pkf.netcdf import (
    CorruptFileError,
    NetCDFWriter,
    OutputLockedError,
    _lock_holder,
    read_attributes,
    read_netcdf,
    verify_file,
)
from pkf.sampling import gaussian_correlation

xarray = pytest.importorskip("xarray")

REPO_ROOT = Path(__file__).resolve().parents[2]

# Small Burgers dataset shared by the in-process builds and the subprocesses.
SETUP = """
import os
import time
import sympy as sp
import numpy as np
from generator import NNModelBuilder
from pkf import sample_errors
from pkf.dataset import callable_fingerprint


def smooth_background(amplitude=0.25):
    # random backgrounds: a cosine plus a smooth random perturbation (seeded by rng)

    def background(rng, model):
        (x,) = model.grid
        perturbation = sample_errors(model.shape, model.lengths, 1, 0.1, 0.025**2, seed=rng)
        return {"u": amplitude * (1 + np.cos(2 * np.pi * x)) + perturbation[0]}

    return background


t, x, kappa = sp.symbols("t x kappa")
u = sp.Function("u")(t, x)
Burgers = NNModelBuilder(
    [sp.Eq(u.diff(t), -u * u.diff(x) + kappa * u.diff(x, 2))], class_name="Burgers"
).build()
model = Burgers(shape=32, lengths=1.0, dtype="float64", kappa=0.0025)
base = smooth_background()
SETTINGS = dict(ensembles=12, members=8, error_variance=0.005**2, correlation=0.1,
                dt=0.002, steps=10, window=(5, 10), seed=7, progress=False)


def slow_background(rng, model):
    time.sleep(0.4)  # makes the build slow enough to be interrupted mid-way
    return base(rng, model)


def gated_background(rng, model):
    while not os.path.exists(os.environ["PKF_TEST_GATE"]):  # holds the build (and its lock)
        time.sleep(0.05)
    return base(rng, model)


# Both compute what `base` computes: they say so, so that a resume with `base` is accepted.
slow_background.fingerprint = callable_fingerprint(base)
gated_background.fingerprint = callable_fingerprint(base)
"""
namespace: dict = {}
exec(SETUP, namespace)
PAIRS = 5


def build(path: Path, **changes) -> Path:
    settings = {**namespace["SETTINGS"], **changes}
    model = settings.pop("model", namespace["model"])
    background = settings.pop("background", namespace["base"])
    return build_dataset(path, model, background=background, **settings)


def complete_records(path: Path) -> int:
    try:
        return int(read_attributes(path)["complete_records"])
    except (OSError, KeyError):
        return 0


def run_build(path: Path, background: str, env: dict | None = None) -> subprocess.Popen:
    script = SETUP + textwrap.dedent(
        f"""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from pkf import build_dataset
        build_dataset({str(path)!r}, model, background={background}, **SETTINGS)
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_and_interrupt(path: Path, sig: int, after_records: int) -> int:
    # A shell that starts jobs in the background (as CI runners may) leaves SIGINT ignored,
    # and children inherit that: restore Python's handler so SIGINT acts as Ctrl-C does.
    process = run_build(path, "slow_background")
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
        process.stderr.close()
    return complete_records(path)


def assert_same_file_content(path: Path, reference: Path) -> None:
    actual, expected = read_netcdf(path), read_netcdf(reference)
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
    with netCDF4.Dataset(path) as a, netCDF4.Dataset(reference) as b:
        n = int(a.complete_records)
        assert n == int(b.complete_records)
        np.testing.assert_array_equal(a["record_checksum"][:n], b["record_checksum"][:n])


def byte_offset(path: Path, value: float) -> int:
    content = path.read_bytes()
    needle = np.array(value, dtype=">f8").tobytes()
    assert content.count(needle) == 1, "the value to alter must occur once in the file"
    return content.index(needle)


def flip_bit(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0x01]))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted 12-ensemble build (read only: copy it to alter it)."""
    return build(tmp_path_factory.mktemp("reference") / "reference.nc")


@pytest.fixture
def copy_of_reference(reference, tmp_path) -> Path:
    path = tmp_path / "copy.nc"
    shutil.copyfile(reference, path)
    return path


# -- content ---------------------------------------------------------------------------------


def test_dataset_holds_consecutive_step_statistics_and_opens_with_xarray(reference):
    settings = namespace["SETTINGS"]
    samples = open_training_set(reference)
    assert samples["u"].dims == ("sample", "x") and samples["u"].shape == (12 * PAIRS, 32)
    assert set(samples.data_vars) == {
        "u",
        "u_next",
        "V_u",
        "V_u_next",
        "nu_u_xx",
        "nu_u_xx_next",
        "kappa",
    }
    np.testing.assert_array_equal(samples["ensemble"], np.repeat(np.arange(12), PAIRS))
    np.testing.assert_array_equal(samples["step"], np.tile(np.arange(5, 10), 12))
    np.testing.assert_allclose(samples["time"], samples["step"] * settings["dt"])
    # the pairs chain: the next state of step k is the state of step k + 1
    same = samples["step"].values[1:] == samples["step"].values[:-1] + 1
    for name in ("u", "V_u", "nu_u_xx"):
        nxt, now = samples[name + "_next"].values, samples[name].values
        np.testing.assert_array_equal(nxt[:-1][same], now[1:][same])
    # ensemble 3 equals its own forecast from the per-ensemble seed
    model = namespace["model"]
    rng = np.random.default_rng(ensemble_seed(settings["seed"], 3))
    initial = _initial_members(
        model, rng, namespace["base"], 8, {"u": settings["error_variance"]}, {"u": 0.1}
    )
    times = np.arange(11) * settings["dt"]
    forecast = EnsembleForecast(model, 8, progress=False).run(times, initial, times[5:11])
    statistics = forecast.to_dataset()
    rows = samples.where(samples.ensemble == 3, drop=True)
    np.testing.assert_allclose(rows["V_u"], statistics["V_u"][:-1], rtol=1e-13)
    np.testing.assert_allclose(rows["nu_u_xx_next"], statistics["nu_u_xx"][1:], rtol=1e-13)
    # metadata: constants stored with the data, provenance and fingerprint as attributes
    assert float(samples["kappa"]) == 0.0025
    assert samples["V_u"].attrs["long_name"].startswith("error variance of u")
    assert samples["x"].attrs["units"] == "1"
    assert samples["time"].attrs["units"] == "1" and "standard_name" not in samples["time"].attrs
    attrs = samples.attrs
    assert attrs["Conventions"] == "CF-1.8" and "created by pkfnet" in attrs["history"]
    assert attrs["ensemble_size"] == 8 and attrs["model"] == "Burgers"
    assert attrs["time_scheme"] == "rk4" and attrs["dtype"] == "float64"
    assert attrs["seed"] == 7 and attrs["dt"] == 0.002
    assert attrs["background"].startswith("sha256:")
    assert set(attrs["fingerprint_keys"].split()) >= {
        "model_source_sha256",
        "model_values_sha256",
        "error_variance_u",
        "correlation_u",
        "chunk_sizes",
        "pkfnet_version",
    }
    # read_netcdf still reads the same numbers
    data = read_netcdf(reference)
    np.testing.assert_array_equal(data["nu_u_xx"], samples["nu_u_xx"].values)


def test_complete_file_is_left_as_is(copy_of_reference, reference):
    before = copy_of_reference.read_bytes()
    assert build(copy_of_reference) == copy_of_reference
    assert copy_of_reference.read_bytes() == before


@pytest.mark.slow
def test_interrupted_build_resumes_to_the_uninterrupted_file(reference, tmp_path):
    path = tmp_path / "resumed.nc"
    total = 12 * PAIRS
    after_sigint = start_and_interrupt(path, signal.SIGINT, after_records=2 * PAIRS)
    assert 2 * PAIRS <= after_sigint < total and after_sigint % PAIRS == 0
    after_kill = start_and_interrupt(path, signal.SIGKILL, after_records=after_sigint + PAIRS)
    assert after_sigint < after_kill < total
    build(path)
    assert_same_file_content(path, reference)


# -- 10. a rerun with other settings never mixes ensembles -----------------------------------


def other_models():
    Burgers = namespace["Burgers"]
    t, x, kappa = namespace["t"], namespace["x"], namespace["kappa"]
    u = namespace["u"]
    from generator import NNModelBuilder

    Viscous = NNModelBuilder(
        [namespace["sp"].Eq(u.diff(t), -u * u.diff(x) + 2 * kappa * u.diff(x, 2))],
        class_name="Burgers",
    ).build()
    return {
        "kappa": Burgers(shape=32, lengths=1.0, dtype="float64", kappa=0.003),
        "euler": Burgers(shape=32, lengths=1.0, dtype="float64", kappa=0.0025, time_scheme="euler"),
        "float32": Burgers(shape=32, lengths=1.0, dtype="float32", kappa=0.0025),
        "equations": Viscous(shape=32, lengths=1.0, dtype="float64", kappa=0.0025),
    }


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("small") / "small.nc", ensembles=2)


def mismatches():
    base = namespace["base"]
    smooth_background = namespace["smooth_background"]

    return [
        ("error_variance", {"error_variance": 0.006**2}, "error_variance_u: stored '2.5e-05'"),
        ("variance field", {"error_variance": np.full(32, 0.005**2)}, "error_variance_u"),
        ("correlation", {"correlation": 0.12}, "correlation_u: stored '0.1', requested '0.12'"),
        ("correlation function", {"correlation": gaussian_correlation(0.1)}, "correlation_u"),
        ("background", {"background": smooth_background(amplitude=0.3)}, "background"),
        ("background code", {"background": lambda rng, model: base(rng, model)}, "background"),
        ("members", {"members": 9}, "ensemble_size: stored '8', requested '9'"),
        ("seed", {"seed": 8}, "seed: stored '7', requested '8'"),
        ("dt", {"dt": 0.001}, "dt: stored '0.002', requested '0.001'"),
        ("steps", {"steps": 11}, "steps: stored '10', requested '11'"),
        ("window", {"window": (4, 9)}, "window_first: stored '5', requested '4'"),
        ("chunking", {"memory_budget": 1}, "chunk_sizes: stored '8', requested '1 1 1 1 1"),
    ]


@pytest.mark.parametrize("label", [m[0] for m in mismatches()])
def test_rerun_with_other_build_settings_is_refused_naming_them(small_file, label):
    _, changes, message = next(m for m in mismatches() if m[0] == label)
    before = small_file.read_bytes()
    with pytest.raises(ValueError, match="built with other settings") as caught:
        build(small_file, ensembles=2, **changes)
    assert message in str(caught.value)
    assert small_file.read_bytes() == before


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("kappa", "model_values_sha256: stored"),
        ("euler", "time_scheme: stored 'rk4', requested 'euler'"),
        ("float32", "dtype: stored 'float64', requested 'float32'"),
        ("equations", "model_source_sha256: stored"),
    ],
)
def test_rerun_with_another_model_is_refused_naming_the_difference(small_file, label, message):
    model = other_models()[label]
    with pytest.raises(ValueError, match="built with other settings") as caught:
        build(small_file, ensembles=2, model=model)
    assert message in str(caught.value)
    if label == "equations":
        assert "equations: stored" in str(caught.value)


def test_file_built_elsewhere_is_refused_naming_device_versions_and_units(small_file, tmp_path):
    path = tmp_path / "elsewhere.nc"
    shutil.copyfile(small_file, path)
    stored = read_attributes(path)
    other = "GPU" if stored["compute_device"] == "CPU" else "CPU"
    with netCDF4.Dataset(path, "a") as dataset:  # as if built on another machine
        dataset.setncattr("compute_device", other)
        dataset.setncattr("tensorflow_version", "0.0.0")
        dataset.setncattr("time_units", "s")
        dataset.setncattr("fingerprint_keys", stored["fingerprint_keys"] + " time_units")
    with pytest.raises(ValueError, match="built with other settings") as caught:
        build(path, ensembles=3)
    message = str(caught.value)
    assert f"compute_device: stored '{other}', requested '{stored['compute_device']}'" in message
    assert "tensorflow_version: stored '0.0.0'" in message
    assert "time_units: stored 's', requested (absent)" in message


def test_larger_ensembles_extend_the_file_to_the_fresh_build(reference, tmp_path):
    path = build(tmp_path / "grown.nc", ensembles=5)
    assert complete_records(path) == 5 * PAIRS
    build(path)  # ensembles=12: seven more, each from its own seed
    assert_same_file_content(path, reference)
    with pytest.raises(ValueError, match="holds 12 complete ensembles, more than"):
        build(path, ensembles=10)


def test_callable_fingerprint_follows_code_closures_and_custom_fingerprints(tmp_path):
    smooth_background = namespace["smooth_background"]
    fingerprint = callable_fingerprint
    assert fingerprint(smooth_background()) == fingerprint(smooth_background())
    assert fingerprint(smooth_background()) != fingerprint(smooth_background(0.3))
    assert fingerprint(gaussian_correlation(0.1)) != fingerprint(gaussian_correlation(0.2))

    def power(x, p=2):
        return x**p

    def power_cubed(x, p=3):
        return x**p

    assert fingerprint(power) != fingerprint(power_cubed)  # same code, other default
    assert fingerprint(functools.partial(power, p=2)) != fingerprint(functools.partial(power, p=3))
    weights = np.arange(4.0)
    scaled = lambda x: weights * x  # noqa: E731
    before = fingerprint(scaled)
    weights = np.arange(5.0)  # a new closure value: a new fingerprint
    assert fingerprint(scaled) != before

    class Scaled:
        def __init__(self, factor):
            self.factor = factor

        def __call__(self, x):
            return self.factor * x

    assert fingerprint(Scaled(2.0)) == fingerprint(Scaled(2.0)) != fingerprint(Scaled(3.0))

    def custom(rng, model):
        return {}

    custom.fingerprint = "my background v2"
    assert fingerprint(custom) == "my background v2"
    assert fingerprint(lambda: custom) != fingerprint(lambda: power)  # nested: hashed with it
    custom.fingerprint = lambda: {"version": 3}
    assert fingerprint(custom) == '{"version": 3}'
    generator = np.random.default_rng(0)
    with pytest.raises(TypeError, match="give it a 'fingerprint' attribute"):
        fingerprint(lambda: generator.random())
    with pytest.raises(TypeError, match="give it a 'fingerprint' attribute"):
        build(tmp_path / "never.nc", background=lambda rng, model, g=generator: {})
    assert not (tmp_path / "never.nc").exists()


# -- 9. truncated files and claims beyond the data -------------------------------------------


def test_truncated_file_is_rebuilt_from_the_last_verified_ensemble(copy_of_reference, reference):
    path = copy_of_reference
    os.truncate(path, int(path.stat().st_size * 0.6))
    with pytest.raises(CorruptFileError, match="fail their checksum") as caught:
        open_training_set(path)
    first_bad = caught.value.verification.verified
    assert 0 < first_bad < 12 * PAIRS
    with pytest.warns(RuntimeWarning, match=f"rebuilding from ensemble {first_bad // PAIRS}"):
        build(path)
    assert_same_file_content(path, reference)
    assert open_training_set(path).sizes["sample"] == 12 * PAIRS


def test_claim_beyond_the_data_is_rebuilt(reference, tmp_path):
    path = build(tmp_path / "overclaimed.nc", ensembles=10)
    fill = netCDF4.default_fillvals["f8"]
    with netCDF4.Dataset(path, "a") as dataset:  # header holds 56 records, 50-55 never written
        dataset.variables["u"][55] = np.full(32, fill)
        dataset.setncattr("complete_records", np.int32(60))
    verification = verify_file(path)
    assert verification.verified == 50 and set(verification.problems) == set(range(50, 60))
    with pytest.raises(CorruptFileError, match="records 56-59 are claimed complete"):
        open_training_set(path)
    with pytest.warns(RuntimeWarning, match="rebuilding from ensemble 10"):
        build(path)
    assert_same_file_content(path, reference)
    assert not (open_training_set(path)["u"] > 1e30).any()


# -- 13. silent corruption inside a finished file --------------------------------------------


def test_flipped_bit_is_named_on_read_and_repaired_on_resume(copy_of_reference, reference):
    path = copy_of_reference
    # sample 15 is step 5 of ensemble 3: its V_u is no other sample's V_u_next, so occurs once
    value = open_training_set(path)["V_u"].values[15, 5]
    flip_bit(path, byte_offset(path, value) + 7)  # least significant bit of the mantissa
    with pytest.raises(CorruptFileError, match=r"record 15: V_u\b"):
        open_training_set(path)
    with pytest.raises(CorruptFileError, match=r"record 15: V_u\b"):
        read_netcdf(path)
    with pytest.warns(RuntimeWarning, match="record 15: V_u"):
        kept = open_training_set(path, on_corrupt="drop")
    assert kept.sizes["sample"] == 12 * PAIRS - 1 and 15 not in kept["sample"].values
    with pytest.warns(RuntimeWarning, match="rebuilding from ensemble 3"):
        build(path)
    assert_same_file_content(path, reference)


def test_flipped_bit_in_a_stored_constant_is_refused(copy_of_reference):
    path = copy_of_reference
    flip_bit(path, byte_offset(path, 0.0025) + 7)
    with pytest.raises(CorruptFileError, match="variables kappa fail their checksum"):
        open_training_set(path)
    with pytest.raises(CorruptFileError, match="Remove the file and build it anew"):
        build(path)


# -- 11. one build of a path at a time -------------------------------------------------------


@pytest.mark.slow
def test_concurrent_build_of_the_same_path_is_refused(reference, tmp_path):
    path = tmp_path / "shared.nc"
    gate = tmp_path / "go"
    first = run_build(path, "gated_background", {"PKF_TEST_GATE": str(gate)})
    try:
        deadline = time.monotonic() + 120
        lock = Path(str(path) + ".lock")
        while not lock.exists() or _lock_holder(lock) != first.pid:
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first build never took the lock"
            time.sleep(0.05)
        with pytest.raises(OutputLockedError, match=f"process {first.pid}") as caught:
            build(path)
        assert str(path) in str(caught.value)
        second = run_build(path, "base")
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 1
        assert "OutputLockedError" in stderr and str(path) in stderr
        assert f"process {first.pid}" in stderr
        gate.touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        gate.touch()
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stderr.close()
    assert_same_file_content(path, reference)


# -- 12. full disk ---------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["data flush", "claim flush", "netCDF write"])
def test_failed_write_keeps_verified_ensembles_and_resumes(
    reference, tmp_path, monkeypatch, failing
):
    path = tmp_path / "full.nc"
    calls = {"count": 0}
    flush, write_block = NetCDFWriter._flush, NetCDFWriter._write_block
    # flushes alternate data / claim for each ensemble; fail during the fourth ensemble
    fail_at = {"data flush": 7, "claim flush": 8}.get(failing)

    def failing_flush(self):
        calls["count"] += 1
        if calls["count"] == fail_at:
            self._dataset.sync()  # what netCDF buffered reaches the system; fsync then fails
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        flush(self)

    def failing_write(self, start, *args):
        if start == 3 * PAIRS:
            raise RuntimeError("No space left on device")
        write_block(self, start, *args)

    if fail_at:
        monkeypatch.setattr(NetCDFWriter, "_flush", failing_flush)
    else:
        monkeypatch.setattr(NetCDFWriter, "_write_block", failing_write)
    with pytest.raises(OSError, match="free disk space") as caught:
        build(path)
    assert caught.value.errno == errno.ENOSPC and str(path) in str(caught.value)
    monkeypatch.undo()
    verification = verify_file(path)
    assert verification.ok
    # the claim moves only after the data are on disk: the data flush failing keeps 3 ensembles
    assert verification.claimed == (4 if failing == "claim flush" else 3) * PAIRS
    build(path)
    assert_same_file_content(path, reference)


@pytest.mark.slow
def test_full_disk_on_a_real_filesystem_is_a_clean_error_and_resumes(reference, tmp_path):
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8); the logic is tested above")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        path = disk / "full.nc"
        process = run_build(path, "base")
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, stderr  # an exception, not a crash
        assert "No space left on device" in stderr and str(path) in stderr
        verification = verify_file(path)
        assert verification.ok and 0 < verification.claimed < 12 * PAIRS
        assert verification.claimed % PAIRS == 0
        subprocess.run(["mount", "-o", "remount,size=1m", str(disk)], check=True)
        build(path)
        assert_same_file_content(path, reference)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_rollout_samples_follow_each_ensemble_in_time():
    import xarray as xr

    from pkf.dataset import rollout_samples

    rng = np.random.default_rng(0)
    ensembles, steps, points = 3, 7, 5

    def value(e, k):
        """A field whose value encodes (ensemble, step, point)."""
        return 1000 * e[:, None] + k[:, None] + np.arange(points)[None, :] / 10

    ensemble = np.repeat(np.arange(ensembles), steps)
    step = np.tile(np.arange(10, 10 + steps), ensembles)
    shuffle = rng.permutation(len(ensemble))
    data = {}
    for f in ("u", "V_u"):
        data[f] = (("sample", "x"), value(ensemble, step)[shuffle])
        data[f"{f}_next"] = (("sample", "x"), value(ensemble, step + 1)[shuffle])
    samples = xr.Dataset(
        data, coords={"ensemble": ("sample", ensemble[shuffle]), "step": ("sample", step[shuffle])}
    )
    inputs, targets = rollout_samples(samples, ("u", "V_u"), steps=3, stride=2)
    starts = [0, 2, 4]
    assert inputs["u"].shape == (ensembles * len(starts), points)
    assert targets["V_u"].shape == (ensembles * len(starts), 3, points)
    for n, (e, s0) in enumerate((e, s0) for e in range(ensembles) for s0 in starts):
        k = np.array([10 + s0])
        np.testing.assert_array_equal(inputs["V_u"][n], value(np.array([e]), k)[0])
        for j in range(3):
            np.testing.assert_array_equal(targets["u"][n, j], value(np.array([e]), k + j + 1)[0])
    with pytest.raises(ValueError, match="consecutive steps"):
        rollout_samples(samples, ("u",), steps=8, stride=1)
