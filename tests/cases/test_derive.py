"""``pkfnet derive`` and the safe equation parser behind it (untrusted equation strings)."""

from __future__ import annotations

import itertools
import os
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


def test_derive_reads_a_python_file_given_with_file_and_reports_a_closed_system(tmp_path, capsys):
    source = tmp_path / "advection.py"
    source.write_text(
        "import sympy as sp\n"
        "t, x = sp.symbols('t x')\n"
        "c, U = sp.Function('c')(t, x), sp.Function('U')(x)\n"
        "equations = [sp.Eq(c.diff(t), -U * c.diff(x))]\n"
    )
    assert main(["derive", "--file", str(source), "--form", "metric"]) == 0
    out = capsys.readouterr().out
    assert "PKF dynamics (metric form), 3 equations" in out
    assert "Unclosed terms: none" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["Eq(u(t, x), 1)"], "cannot derive the PKF dynamics: equation 1: "),
        (["Eq(x, y.__class__)"], "bad equation string: equation 1: attribute access"),
        (["--file", "missing_file.py"], "--file missing_file.py: no such file"),
        (
            ["Eq(Derivative(u(t,x),t), u(t,x)); Eq(Derivative(v(t,x),t), v(t,x)**'a')"],
            "bad equation string: equation 2: text literals",
        ),
    ],
)
def test_derive_user_errors_are_one_line_with_exit_status_2(argv, message, capsys):
    assert main(["derive", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pkfnet: error: {message}")
    assert "\n" not in err


def _evil_file(directory):
    """A Python file that leaves a marker when run; returns the marker's path."""
    marker = directory / "executed"
    (directory / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "import sympy as sp\n"
        "t, x = sp.symbols('t x')\n"
        "u = sp.Function('u')(t, x)\n"
        "equations = [sp.Eq(u.diff(t), -u.diff(x))]\n"
    )
    return marker


@pytest.mark.parametrize("command", ["derive", "generate"])
def test_an_argument_naming_a_python_file_is_equation_text_and_never_executed(command, tmp_path):
    marker = _evil_file(tmp_path)
    extra = ["-o", str(tmp_path / "model.py")] if command == "generate" else []
    result = subprocess.run(
        [sys.executable, "-m", "cases.cli", command, "evil.py", *extra],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("pkfnet: error: bad equation string: equation 1: ")
    assert not marker.exists()


def test_a_python_file_given_with_file_is_executed(tmp_path):
    marker = _evil_file(tmp_path)
    trusted = subprocess.run(
        [sys.executable, "-m", "cases.cli", "derive", "--file", "evil.py", "--form", "metric"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert trusted.returncode == 0, trusted.stderr
    assert marker.exists()


@pytest.mark.parametrize("command", ["derive", "generate"])
def test_help_says_that_file_executes_code_and_text_is_never_executed(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--file FILE" in text
    assert "EXECUTES the file's code" in text
    assert "never executed" in text


def test_derive_help_lists_the_limits_from_their_constants(capsys):
    with pytest.raises(SystemExit):
        main(["derive", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("MAX_LENGTH", "MAX_EQUATIONS", "MAX_DERIVATIVE_ORDER", "MAX_TERMS", "MAX_FIELDS"):
        assert str(getattr(cases.parsing, name)) in text, name
    assert f"at most {cases.parsing.MAX_FACTORS}" in text
    assert f"at most {cases.parsing.MAX_OUTPUT} characters" in text
    for form, orders in cases.parsing.MAX_TERM_ORDER.items():
        expected = ", ".join(f"{n}D {one}/{several}" for n, (one, several) in enumerate(orders, 1))
        assert f"{form}: {expected}" in text
    for form, sizes in cases.parsing.MAX_DERIVED_SIZE.items():
        expected = ", ".join(f"{n}D {k}" for n, k in enumerate(sizes, 1))
        assert f"{form}: {expected}" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["derive"],
        ["derive", BURGERS, "--file", "burgers.py"],
        ["generate", "-o", "model.py"],
        ["generate", BURGERS, "--file", "burgers.py", "-o", "model.py"],
    ],
)
def test_exactly_one_equation_source_is_required(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "--file" in capsys.readouterr().err


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


CHEMISTRY = {
    "A": "Eq(Derivative(A(t,x),t), -u(x)*Derivative(A(t,x),x) + k*B(t,x))",
    "B": "Eq(Derivative(B(t,x),t), -u(x)*Derivative(B(t,x),x) - k*A(t,x))",
    "C": "Eq(Derivative(C(t,x),t), -u(x)*Derivative(C(t,x),x) + A(t,x)*B(t,x))",
}


@pytest.mark.parametrize("names", ["AB", "ABC"])
@pytest.mark.parametrize("form", ["metric", "diffusion"])
def test_derive_output_is_the_same_for_every_order_of_the_equations(names, form, capsys):
    outputs = set()
    for order in itertools.permutations(names):
        assert main(["derive", "; ".join(CHEMISTRY[n] for n in order), "--form", form]) == 0
        outputs.add(capsys.readouterr().out)
    assert len(outputs) == 1
    (out,) = outputs
    assert "V_AB(t, x)" in out and "V_BA" not in out


def test_argument_from_an_undecodable_locale_is_read_as_utf8(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"}
    env.update(LC_ALL="C", LANG="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0")
    greek = "Eq(Derivative(α(t,x),t), -U(x)*Derivative(α(t,x),x))".encode()
    latin1 = "Eq(Derivative(é(t,x),t), 0)".encode("latin-1")
    ok = subprocess.run(
        [sys.executable.encode(), b"-m", b"cases.cli", b"derive", greek],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert b"\\u03b1" in ok.stdout
    bad = subprocess.run(
        [sys.executable.encode(), b"-m", b"cases.cli", b"derive", latin1],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        b"pkfnet: error: the equation text is neither in the terminal's encoding nor in UTF-8; "
        b"write it in UTF-8"
    ]


def test_text_with_undecodable_characters_is_refused_in_one_line():
    with pytest.raises(ValueError, match="undecodable character at position 14"):
        parse_equations("Eq(Derivative(\udcce(t, x), t), 0)")
