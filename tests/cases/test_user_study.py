"""``pkfnet study FILE.toml``: the shipped examples in --quick form, one-line errors for bad
study files (nothing written), and the initial PKF state against numpy."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cases.study_file import StudyFileError, load_study
from cases.user_study import initial_pkf_state, prepare

STUDIES = Path(__file__).resolve().parents[2] / "docs" / "studies"

GOOD = """\
[dynamics]
equations = [
  "Eq(Derivative(c(t, x), t), -u(x)*Derivative(c(t, x), x) + kappa*Derivative(c(t, x), (x, 2)))",
]
constants = { kappa = 0.001 }

[domain]
shape = 64

[fields]
u = "1 + 0.3*sin(2*pi*x)"

[initial]
c = "exp(-(x - 0.5)**2 / (2*0.1**2))"

[errors.c]
variance = "0.01*(1 + 0.5*cos(2*pi*x))"
length_scale = 0.08

[closure]
expression = "3/(4*nu_c_xx**2)"

[run]
dt = 0.002
final_time = 0.1
members = 50
"""


def _study(args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "cases.cli", "study", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def _write(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the shipped examples ------------------------------------------------------------------
#: Per example: the figures written and the closure. The quick runs have 100-200 members, so
#: V and the length-scales carry 10-15 % of sampling noise: the bounds are loose (25 %).
EXAMPLES = {
    "advection_diffusion_1d": ({"profiles"}, "P18", "c"),
    "advection_diffusion_2d": ({"maps", "anisotropy"}, "quasi-gaussian", "c"),
    "kuramoto_sivashinsky": ({"profiles"}, "quasi-gaussian", "u"),
}


@pytest.mark.slow
@pytest.mark.parametrize("example", list(EXAMPLES))
def test_example_quick_run_writes_the_documented_files(tmp_path, example):
    figures, closure, field = EXAMPLES[example]
    out = tmp_path / "out"
    result = _study([STUDIES / f"{example}.toml", "--quick", "--out", out, "--quiet"])
    assert result.returncode == 0, result.stderr
    names = {p.name for p in out.iterdir()}
    expected = {"study.nc", "summary.json"} | {
        f"{stem}.{ext}" for stem in {"errors", *figures} for ext in ("png", "pdf")
    }
    assert expected <= names, names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["closure"] == closure
    final = summary["final_relative_l2_error"]
    assert all(v is None or np.isfinite(v) for v in final.values()), final
    assert final[f"V_{field}"] < 0.25 and final[f"L_{field}_x"] < 0.25, final


# -- the initial state, against numpy ------------------------------------------------------
def test_initial_pkf_state_is_the_expressions_evaluated_on_the_grid(tmp_path):
    study = prepare(load_study(_write(tmp_path, GOOD)))
    state = initial_pkf_state(study)
    x = np.arange(64) / 64
    np.testing.assert_allclose(state["c"], np.exp(-((x - 0.5) ** 2) / (2 * 0.1**2)), rtol=1e-14)
    np.testing.assert_allclose(state["V_c"], 0.01 * (1 + 0.5 * np.cos(2 * np.pi * x)), rtol=1e-14)
    np.testing.assert_allclose(state["nu_c_xx"], np.full(64, 0.08**2 / 2), rtol=1e-14)
    assert set(state) == {"c", "V_c", "nu_c_xx"}


def test_expression_closure_is_set_in_the_generated_equations(tmp_path):
    study = prepare(load_study(_write(tmp_path, GOOD)))
    assert not any(
        eq.rhs.has(*study.file.pkf.closure_slots.values()) for eq in study.closed_equations
    )


# -- bad study files -----------------------------------------------------------------------
BAD = [
    (
        "unknown key",
        ("[domain]\nshape = 64", "[domain]\nshape = 64\npoints = 3"),
        "domain.points",
        9,
    ),
    ("missing key", ("members = 50\n", ""), "run", 23),
    ("wrong type", ("length_scale = 0.08", 'length_scale = "long"'), "errors.c.length_scale", 18),
    ("bad value", ("members = 50", "members = 1"), "run.members", 26),
    (
        "code in an equation",
        ("-u(x)*Derivative", "__import__('os').system('true')*Derivative"),
        "dynamics.equations",
        2,
    ),
    (
        "code in a field expression",
        ('u = "1 + 0.3*sin(2*pi*x)"', 'u = "x.__class__"'),
        "fields.u",
        11,
    ),
    (
        "an initial mean not finite on the grid",
        ('c = "exp(-(x - 0.5)**2 / (2*0.1**2))"', 'c = "log(x)"'),
        "initial.c",
        14,
    ),
    (
        "a variance not positive on the grid",
        ('variance = "0.01*(1 + 0.5*cos(2*pi*x))"', 'variance = "0.01*cos(2*pi*x)"'),
        "errors.c.variance",
        17,
    ),
    (
        "otherwise without a name",
        ('expression = "3/(4*nu_c_xx**2)"', 'expression = "3/(4*nu_c_xx**2)"\notherwise = "zero"'),
        "closure.otherwise",
        22,
    ),
    (
        "code in a closure expression",
        ('expression = "3/(4*nu_c_xx**2)"', 'expression = "exec(1)"'),
        "closure.expression",
        21,
    ),
]


@pytest.mark.parametrize(("kind", "edit", "key", "line"), BAD, ids=[b[0] for b in BAD])
def test_bad_study_file_is_one_line_naming_key_and_line(tmp_path, kind, edit, key, line):
    text = GOOD.replace(*edit)
    assert text != GOOD
    path = _write(tmp_path, text)
    with pytest.raises(StudyFileError) as info:
        prepare(load_study(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}, line {line}: {key}:"), message


@pytest.mark.slow
def test_cli_bad_study_file_exits_2_and_writes_nothing(tmp_path):
    path = _write(tmp_path, GOOD.replace('u = "1 + 0.3*sin(2*pi*x)"', 'u = "lambda: 0"'))
    out = tmp_path / "out"
    result = _study([path, "--out", out])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pkfnet: error: "), result.stderr
    assert "line 11: fields.u: bad expression: lambda not allowed in expressions" in lines[0]
    assert not out.exists()


def test_toml_syntax_error_names_the_file(tmp_path):
    path = _write(tmp_path, GOOD.replace("shape = 64", "shape = = 64"))
    with pytest.raises(StudyFileError, match=r"study.toml: invalid TOML: .*line 8"):
        load_study(path)


def test_named_closure_that_does_not_apply_is_refused(tmp_path):
    text = GOOD.replace('expression = "3/(4*nu_c_xx**2)"', 'name = "P18"').replace(
        "[domain]\nshape = 64", "[domain]\nshape = 64"
    )
    heat2d = (
        text.replace("c(t, x)", "c(t, x, y)")
        .replace("-u(x)*Derivative(c(t, x, y), x) + ", "")
        .replace("(x, 2)))", "(x, 2)) + kappa*Derivative(c(t, x, y), (y, 2)))")
        .replace("shape = 64", "shape = [16, 16]")
        .replace('u = "1 + 0.3*sin(2*pi*x)"\n', "")
        .replace("[fields]\n", "")
    )
    with pytest.raises(StudyFileError, match=r"closure.name: "):
        prepare(load_study(_write(tmp_path, heat2d)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x.__class__", "attribute access not allowed in expressions"),
        ("lambda: x", "lambda not allowed in expressions"),
        ("__import__('os')", "names starting with '_' are not allowed"),
        ("open(x)", "open(...) not allowed in an expression"),
        ("y + 1", "unknown name 'y'"),
        ("x**1000", "exponent 1000 too large"),
    ],
)
def test_parse_expression_refuses_code_and_unknown_names(text, message):
    import sympy as sp

    from cases.parsing import parse_expression

    with pytest.raises(ValueError, match=re.escape(message)):
        parse_expression(text, {"x": sp.Symbol("x")})


# -- learned coefficients ------------------------------------------------------------------
def test_learned_coefficients_file_closes_like_the_named_closure(tmp_path):
    """A FitResult JSON with the P18 terms and coefficients (1, 3/4, -2) closes the PKF as
    ``name = "P18"`` does; its terms are read as text (restricted parser), never evaluated."""
    import sympy as sp

    from closures.fitting import FitResult

    t, x = sp.symbols("t x")
    nu = sp.Function("nu_c_xx")(t, x)
    terms = [nu.diff(x, 2) / nu**2, 1 / nu**2, nu.diff(x) ** 2 / nu**3]
    FitResult(terms, np.array([1.0, 0.75, -2.0]), "lstsq", None, 0.0).to_json(
        tmp_path / "learned.json"
    )
    closure = 'expression = "3/(4*nu_c_xx**2)"'
    learned = prepare(
        load_study(_write(tmp_path, GOOD.replace(closure, 'coefficients = "learned.json"')))
    )
    named = prepare(load_study(_write(tmp_path, GOOD.replace(closure, 'name = "P18"'), "p18.toml")))
    assert learned.file.closure.describe() == "coefficients learned.json"
    for a, b in zip(learned.closed_equations, named.closed_equations, strict=True):
        assert sp.simplify(a.rhs - b.rhs) == 0, (a.lhs, sp.simplify(a.rhs - b.rhs))
    # a term with code in it is refused, naming the file's term
    data = json.loads((tmp_path / "learned.json").read_text())
    data["terms_text"][1] = "__import__('os').getcwd()"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(StudyFileError, match=r"closure.coefficients: .*bad.json: term 1"):
        load_study(_write(tmp_path, GOOD.replace(closure, 'coefficients = "bad.json"'), "b.toml"))
    with pytest.raises(StudyFileError, match="cannot read"):
        load_study(_write(tmp_path, GOOD.replace(closure, 'coefficients = "none.json"'), "c.toml"))
