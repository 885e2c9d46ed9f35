"""The pkfnet command line: listing, running the default case, generating, user errors."""

import json
import subprocess
import sys

import pytest

from cases.cli import main

EQUATIONS_FILE = """
import sympy as sp
t, x = sp.symbols("t x")
u = sp.Function("u")(t, x)
equations = sp.Eq(sp.Derivative(u, t), sp.Symbol("kappa") * sp.Derivative(u, x, 2))
"""


def test_list_names_every_case(capsys):
    assert main(["list"]) == 0
    assert "diffusion2d" in capsys.readouterr().out


def test_unknown_case_fails_with_one_line(capsys):
    assert main(["run", "nonexistent"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pkfnet: error: unknown case 'nonexistent'")
    assert "\n" not in err


def test_unwritable_output_directory_is_reported(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["run", "diffusion2d", "--quick", "--out", str(blocker / "sub")]) == 2
    assert "cannot create output directory" in capsys.readouterr().err


def test_generate_writes_an_importable_module(tmp_path):
    source = tmp_path / "heat.py"
    source.write_text(EQUATIONS_FILE)
    target = tmp_path / "heat_model.py"
    assert main(["generate", str(source), "--class-name", "Heat1D", "-o", str(target)]) == 0
    text = target.read_text()
    assert "class Heat1D(GeneratedModel)" in text
    compile(text, str(target), "exec")


def test_run_diffusion2d_quick_writes_figure_netcdf_and_summary(tmp_path):
    out = tmp_path / "d2"
    result = subprocess.run(
        [sys.executable, "-m", "cases.cli", "run", "diffusion2d", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["relative_l2_distance"] <= 1e-12
    for name in ("fig4_diffusion2d.png", "fig4_diffusion2d.pdf", "diffusion2d.nc"):
        assert (out / name).stat().st_size > 0
    xarray = pytest.importorskip("xarray")
    with xarray.open_dataset(out / "diffusion2d.nc") as ds:
        assert ds["u_network"].shape == (100, 100)


def _pkfnet(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "cases.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def test_subcommands_in_a_subprocess_happy_paths(tmp_path):
    listing = _pkfnet("list")
    assert listing.returncode == 0 and "burgers" in listing.stdout
    source = tmp_path / "heat.py"
    source.write_text(EQUATIONS_FILE)
    generated = _pkfnet(
        "generate", str(source), "--class-name", "Heat1D", "-o", str(tmp_path / "h.py")
    )
    assert generated.returncode == 0 and (tmp_path / "h.py").exists()
    derived = _pkfnet(
        "derive", "Eq(Derivative(u(t,x),t), -c*Derivative(u(t,x),x))", "--form", "aspect"
    )
    assert derived.returncode == 0 and "none (the PKF system is closed)" in derived.stdout


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (["derive", "Eq(Derivative(u(t,x),t), u(t,x).__class__)"], "bad equation string"),
        (["run", "nonexistent"], "unknown case 'nonexistent'"),
        (
            ["run", "burgers", "--quick", "--out", "/proc/forbidden/out"],
            "cannot create output directory",
        ),
    ],
)
def test_user_errors_exit_nonzero_with_one_line(args, cause):
    result = _pkfnet(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and cause in lines[0], result.stderr
