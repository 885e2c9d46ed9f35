"""``pkfnet derive`` and the safe equation parser behind it (untrusted equation strings)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import sympy as sp

import cases.parsing
from cases.cli import main
from cases.parsing import MAX_NESTING, parse_equations

BURGERS = "Eq(Derivative(u(t,x),t), -u(t,x)*Derivative(u(t,x),x) + kappa*Derivative(u(t,x),x,2))"
t, x, kappa = sp.symbols("t x kappa")
u = sp.Function("u")(t, x)

MALICIOUS = [
    "__import__('os').system('touch pwned')",
    "().__class__",
    "().__class__.__base__.__subclasses__()",
    "(lambda: 0)()",
    "Eq(x, (lambda: 0)())",
    "Eq(x, u.real)",
    "Eq(x, y.__class__)",
    "Eq(x, __builtins__)",
    "Eq(x, _private)",
    "Eq(x, open('pwned', 'w'))",
    "Eq(x, getattr(x, 'func'))",
    "Eq(x, Function('__import__')(x))",
    "import os",
    "Eq(x, [c for c in y])",
    "Eq(x, u[0])",
    "Eq(x, Eq(y, z, evaluate=True))",
    "Eq(x, Integer(2))",
]


def test_burgers_string_parses_to_the_sympy_equation():
    expected = sp.Eq(u.diff(t), -u * u.diff(x) + kappa * u.diff(x, 2))
    assert parse_equations(BURGERS) == [expected]


def test_several_equations_names_constants_and_explicit_constructors():
    text = (
        "Eq(Derivative(Function('A')(t, x), t), -U(x)*Derivative(A(t, x), x) + B(t, x));"
        "Eq(Derivative(B(t, x), t), Symbol('k')*sqrt(2)*exp(-x**2)/pi - Rational(1, 2)*A(t, x))"
    )
    first, second = parse_equations(text)
    a, b, U = (sp.Function(n) for n in ("A", "B", "U"))
    assert first.rhs == -U(x) * a(t, x).diff(x) + b(t, x)
    k = sp.Symbol("k")
    assert sp.simplify(second.rhs - (k * sp.sqrt(2) * sp.exp(-(x**2)) / sp.pi - a(t, x) / 2)) == 0
    assert parse_equations("[Eq(x, y), Eq(y, x)]") == [sp.Eq(x, sp.Symbol("y"))] + [
        sp.Eq(sp.Symbol("y"), x)
    ]


@pytest.mark.parametrize("text", MALICIOUS)
def test_unsafe_text_is_rejected_before_sympy_parses_it(text, monkeypatch):
    def unreachable(*args, **kwargs):
        raise AssertionError(f"sympy's parser reached for {text!r}")

    monkeypatch.setattr(cases.parsing, "parse_expr", unreachable)
    with pytest.raises(ValueError, match="allowed|reserved|identifier|may be called"):
        parse_equations(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Eq(x, 2**(10**10))", "exponent"),
        ("Eq(x, -(2**64)**64**2)", "exponent"),
        ("Eq(x, ((((10**64)**64)**64)**64)**64)", "too large"),
        ("Eq(Derivative(u(t, x), (x, 10**9)), 0)", "order"),
        ("Eq(x, " + "-" * 5000 + "x)", "nested"),
        ("Eq(x, " + "-" * 150 + "x)", "nested"),
        ("Eq(x, " + "f(" * 120 + "x" + ")" * 121, "nested"),
        ("x" * 20_000, "characters"),
        ("Derivative(u(t, x), t) == 0", "Eq"),
        ("Eq(x, 'text')", "text literals"),
        ("Eq(Derivative(u(t, x), t), Eq(y, z))", "inside an equation"),
    ],
)
def test_expensive_or_malformed_text_is_refused_quickly(text, reason):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=reason):
        parse_equations(text)
    assert time.perf_counter() - start < 2.0


def test_derive_prints_burgers_system_and_its_unclosed_term(capsys):
    assert main(["derive", BURGERS]) == 0
    out = capsys.readouterr().out
    assert "PKF dynamics (diffusion form), 3 equations" in out
    assert "Unclosed terms (1)" in out
    assert "eps" in out.split("Unclosed terms (1)")[1]


def test_derive_latex_in_aspect_form(capsys):
    assert main(["derive", BURGERS, "--form", "aspect", "--latex"]) == 0
    out = capsys.readouterr().out
    assert r"\frac{\partial}{\partial t} s_{u xx}" in out
    unclosed = out.split("Unclosed terms (1):")[1]
    assert r"\mathbb{E}\left[" in unclosed
    assert r"\frac{\partial^{4}}{\partial x^{4}}" in unclosed


def test_derive_reads_a_python_file_and_reports_a_closed_system(tmp_path, capsys):
    source = tmp_path / "advection.py"
    source.write_text(
        "import sympy as sp\n"
        "t, x = sp.symbols('t x')\n"
        "c, U = sp.Function('c')(t, x), sp.Function('U')(x)\n"
        "equations = [sp.Eq(c.diff(t), -U * c.diff(x))]\n"
    )
    assert main(["derive", str(source), "--form", "metric"]) == 0
    out = capsys.readouterr().out
    assert "PKF dynamics (metric form), 3 equations" in out
    assert "Unclosed terms: none" in out


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("Eq(u(t, x), 1)", "cannot derive the PKF dynamics: equation 0"),
        ("Eq(x, y.__class__)", "bad equation string: attribute access"),
        ("missing_file.py", "no such file"),
    ],
)
def test_derive_user_errors_are_one_line_with_exit_status_2(argument, message, capsys):
    assert main(["derive", argument]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pkfnet: error: {message}")
    assert "\n" not in err


def test_derive_refuses_code_injection_without_running_it(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cases.cli", "derive", "__import__('os').system('touch pwned')"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("pkfnet: error: bad equation string")
    assert not (tmp_path / "pwned").exists()


def test_unknown_called_names_are_sympy_functions_not_python_builtins():
    (equation,) = parse_equations("Eq(Derivative(u(t, x), t), eval(x) + print(t) + exec(u(t, x)))")
    called = {f.func.__name__ for f in equation.rhs.atoms(sp.core.function.AppliedUndef)}
    assert called == {"eval", "print", "exec", "u"}


def test_nesting_below_the_limit_is_parsed():
    depth = MAX_NESTING - 10
    (equation,) = parse_equations("Eq(Derivative(u(t, x), t), " + "-" * depth + "u(t, x))")
    expected = -1 if depth % 2 else 1
    assert equation.rhs == expected * sp.Function("u")(*sp.symbols("t x"))
