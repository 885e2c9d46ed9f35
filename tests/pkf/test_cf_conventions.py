"""CF-1.8 compliance of pkfnet's netCDF files, checked by the ``cfchecker`` package.

The checker needs the UDUNITS-2 C library (through ``cfunits``; Debian: ``libudunits2-dev``,
installed by ``.ci/run``) and tables of standard names, area types and regions, which it would
download. Tests run offline, so they give it small local tables holding the real entries of the
standard names pkfnet uses (``time``, ``realization``): a file using any other standard name is
reported as an error, which is what we want to review.
"""

from __future__ import annotations

import re
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import sympy as sp
import xarray

from generator import NNModelBuilder
from generator.results import cf_labels, open_results
from pkf.dataset import build_dataset, open_training_set
from pkf.netcdf import NetCDFWriter, VariableSpec


def cosine_background(rng, model):
    """A smooth deterministic background (the CF check needs no randomness here)."""
    (x,) = model.grid
    return {"u": 0.25 * (1 + np.cos(2 * np.pi * x))}


STANDARD_NAMES = {"time": "s", "realization": "1"}


@pytest.fixture(scope="module")
def cf_check(tmp_path_factory):
    """``cf_check(path) -> {category: [messages]}`` over the file and its variables."""
    try:
        from cfchecker.cfchecks import CFChecker, CFVersion
    except Exception as error:  # cfunits raises FileNotFoundError without UDUNITS-2
        pytest.skip(
            f"the CF checker cannot run here ({type(error).__name__}: {error}); install the "
            "cfchecker package and the UDUNITS-2 library (Debian: apt-get install libudunits2-dev)"
        )
    tables = tmp_path_factory.mktemp("cf_tables")
    entries = "".join(
        f'<entry id="{name}"><canonical_units>{units}</canonical_units></entry>'
        for name, units in STANDARD_NAMES.items()
    )
    names = tables / "cf-standard-name-table.xml"
    names.write_text(
        '<?xml version="1.0"?><standard_name_table><version_number>84</version_number>'
        f"<last_modified>2024-01-19T15:55:10Z</last_modified>{entries}</standard_name_table>"
    )
    areas = tables / "area-type-table.xml"
    areas.write_text(
        '<?xml version="1.0"?><area_type_table><version_number>10</version_number>'
        '<date>2023-01-01</date><entry id="land"></entry></area_type_table>'
    )
    regions = tables / "standardized-region-list.xml"
    regions.write_text(
        '<?xml version="1.0"?><standard_region_table><version_number>4</version_number>'
        '<date>2023-01-01</date><entry id="global"></entry></standard_region_table>'
    )

    def check(path: Path) -> dict[str, list[str]]:
        checker = CFChecker(
            cfStandardNamesXML=str(names),
            cfAreaTypesXML=str(areas),
            cfRegionNamesXML=str(regions),
            version=CFVersion(),  # the version the file's Conventions attribute names
            silent=True,
        )
        results = checker.checker(str(path))
        found: dict[str, list[str]] = {}
        scopes = [("global", results["global"])] + list(results["variables"].items())
        for scope, messages in scopes:
            for category in ("FATAL", "ERROR", "WARN"):
                found.setdefault(category, []).extend(
                    f"{scope}: {m}" for m in messages.get(category, [])
                )
        return found

    return check


def assert_cf_valid(check, path: Path) -> None:
    found = check(path)
    assert found == {"FATAL": [], "ERROR": [], "WARN": []}, found


def assert_pkfnet_metadata(path: Path, record_dim: str) -> None:
    """What the checker does not check but every pkfnet file promises."""
    with netCDF4.Dataset(path) as dataset:
        attributes = dataset.ncattrs()
        assert {"Conventions", "title", "source", "history", "pkfnet_version"} <= set(attributes)
        for key in attributes:  # one naming scheme: snake_case (CF's own Conventions aside)
            assert key == "Conventions" or re.fullmatch(r"[a-z][a-z0-9_]*", key), key
        for name, variable in dataset.variables.items():
            if variable.dimensions[:1] == (record_dim,) and name != record_dim:
                assert "_FillValue" in variable.ncattrs(), name


@pytest.fixture(scope="module")
def models():
    t, x, y, kappa = sp.symbols("t x y kappa")
    u = sp.Function("u")(t, x)
    burgers = NNModelBuilder(
        [sp.Eq(u.diff(t), -u * u.diff(x) + kappa * u.diff(x, 2))], class_name="Burgers"
    ).build()(shape=32, lengths=1.0, kappa=0.0025)
    c = sp.Function("c")(t, x, y)
    wind = sp.Function("a")(x, y)
    advection = NNModelBuilder(
        [sp.Eq(c.diff(t), -wind * c.diff(x) + kappa * (c.diff(x, 2) + c.diff(y, 2)))],
        class_name="Advection2D",
    ).build()
    _, yy = np.meshgrid(np.arange(10) / 10, np.arange(8) / 8, indexing="ij")
    tracer = advection(
        shape=(10, 8), lengths=(1.0, 1.0), kappa=1e-3, a=0.1 + 0.05 * np.cos(2 * np.pi * yy)
    )
    return burgers, tracer


def test_training_sets_pass_the_cf_checker_1d_and_2d(cf_check, models, tmp_path):
    burgers, tracer = models
    one = build_dataset(
        tmp_path / "burgers.nc",
        burgers,
        ensembles=2,
        members=6,
        background=cosine_background,
        error_variance=0.005**2,
        correlation=0.1,
        dt=0.002,
        steps=4,
        window=(1, 4),
        seed=0,
        progress=False,
    )
    two = build_dataset(
        tmp_path / "tracer.nc",
        tracer,
        ensembles=2,
        members=6,
        background=lambda rng, model: {"c": np.ones(model.shape)},
        error_variance=0.01,
        correlation=0.15,
        dt=0.01,
        steps=3,
        window=(0, 3),
        seed=1,
        progress=False,
    )
    for path in (one, two):
        assert_cf_valid(cf_check, path)
        assert_pkfnet_metadata(path, "sample")
    samples = open_training_set(two)
    assert samples["nu_c_xy"].dims == ("sample", "y", "x")  # CF order, x fastest
    assert samples["a"].dims == ("y", "x")  # the constant wind field is stored with the data
    np.testing.assert_array_equal(samples["a"].values, tracer.get_constant("a").T)
    assert float(samples["kappa"]) == 1e-3
    with netCDF4.Dataset(two) as dataset:
        assert "standard_name" not in dataset["time"].ncattrs()  # dimensionless model time
        assert dataset["time"].units == "1"


@pytest.mark.parametrize(
    ("record_units", "standard_name"), [("s", None), ("hours since 2000-01-01", "time")]
)
def test_writer_files_pass_the_cf_checker(cf_check, tmp_path, record_units, standard_name):
    path = tmp_path / "forecast.nc"
    specs = [
        VariableSpec("V_u", "m2 s-2", "error variance of u", ("y", "x")),
        VariableSpec("u_members", "m s-1", "members of u", ("member", "y", "x")),
    ]
    with NetCDFWriter.create(
        path,
        specs,
        {"y": np.arange(4) / 4, "x": np.arange(6) / 6},
        equations="d_t u = 0",
        dt=60.0,
        seed=3,
        record_units=record_units,
        coord_units="m",
        members=2,
        static=[(VariableSpec("kappa", "m2 s-1", "diffusivity", ()), 0.1)],
    ) as writer:
        for k in range(2):
            writer.append(float(k), {"V_u": np.ones((4, 6)), "u_members": np.zeros((2, 4, 6))})
    assert_cf_valid(cf_check, path)
    assert_pkfnet_metadata(path, "time")
    with netCDF4.Dataset(path) as dataset:
        assert dataset["time"].units == record_units
        assert getattr(dataset["time"], "standard_name", None) == standard_name


def test_assimilation_cycles_pass_the_cf_checker(cf_check, tmp_path):
    from pkf import SymbolicPKF
    from pkf.assimilation import EnKFSetup, ObservationNetwork, run_cycles

    t, x = sp.symbols("t x")
    c = sp.Function("c")(t, x)
    wind = sp.Function("w")(x)
    equation = sp.Eq(c.diff(t), -wind * c.diff(x))
    n = 32
    w = 1 + 0.2 * np.sin(2 * np.pi * np.arange(n) / n)
    tracer = NNModelBuilder(equation, "CFTracer").build()(shape=n, lengths=1.0, w=w)
    pkf_model = NNModelBuilder(
        SymbolicPKF(equation).to_generator(form="aspect"), "CFTracerPKF"
    ).build()(shape=n, lengths=1.0, w=w)
    result = run_cycles(
        tracer,
        pkf_model,
        {"c": np.zeros(n), "V_c": np.ones(n), "s_c_xx": np.full(n, 0.1**2)},
        ObservationNetwork("c", np.arange(0, n, 4), 0.25),
        window=0.05,
        cycles=2,
        dt=0.01,
        ensembles=[EnKFSetup(8)],
    )
    path = tmp_path / "cycles.nc"
    cf_labels(result.dataset).to_netcdf(path)  # what the cases write
    assert_cf_valid(cf_check, path)
    assert_pkfnet_metadata(path, "cycle")
    back = open_results(path)
    assert list(back["filter"].values) == ["kf", "pkf", "pkf_order1", "enkf_8", "kf_projected"]
    xarray.testing.assert_identical(
        back["V_c"].sel(filter="pkf", stage="analysis"),
        result.dataset["V_c"].sel(filter="pkf", stage="analysis"),
    )
