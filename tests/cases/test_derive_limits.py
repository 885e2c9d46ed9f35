"""The limits that bound ``pkfnet derive`` on equation text: derivative orders after evaluation,
dimension, fields, factors and terms, derived size and output; each refused quickly, in one
line naming the equation."""

from __future__ import annotations

import time

import pytest
import sympy as sp

import cases.parsing as parsing
from cases.cli import main
from cases.parsing import (
    LimitError,
    check_derivation_limits,
    check_derived_size,
    check_output_size,
    parse_equations,
)
from pkf import SymbolicPKF

D = "Derivative"


def _refused(argv, capsys, cause):
    start = time.perf_counter()
    assert main(["derive", *argv]) == 2
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert cause in err, err
    assert "trusted --file" in err
    return elapsed


def _field(dim, name="u"):
    return f"{name}({','.join(['t', *'xyz'[:dim]])})"


def _derivative(dim, order, name="u"):
    """A derivative of total order ``order`` spread over the ``dim`` axes."""
    counts = [order // dim + (axis < order % dim) for axis in range(dim)]
    spec = ",".join(f"({c},{n})" for c, n in zip("xyz", counts, strict=False) if n)
    return f"{D}({_field(dim, name)},{spec})" if spec else _field(dim, name)


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        # nested derivatives add up (the per-call order is 8 each)
        (f"Eq({D}(u(t,x),t), k*{D}({D}(u(t,x),(x,8)),(x,8)))", "(total 16)"),
        # a derivative inside a product inside a derivative
        (f"Eq({D}(u(t,x),t), {D}(u(t,x)*{D}(u(t,x),(x,5)),(x,5)))", "(total 10)"),
        # sympy would expand these before anything else could be checked
        ("Eq(Derivative(u(t,x),t), (a+b+c+d+e+f+g+h+i+j)**64*u(t,x))", "more than 1,000,000 terms"),
        (f"Eq({D}(u(t,x),t), {D}(u(t,x)*v(t,x)*w(t,x),(x,8)))", "up to 45 terms"),
        ("; ".join(f"Eq({D}(u{k}(t,x),t), u{k}(t,x))" for k in range(50)), "50 equations"),
    ],
)
def test_text_beyond_the_parse_limits_is_refused_before_evaluation(text, cause, capsys):
    assert _refused([text], capsys, cause) < 2.0


PRODUCT_OF_8 = "*".join(f"{D}(u(t,x),(x,{n}))" for n in range(1, 9))


@pytest.mark.parametrize(
    ("text", "form", "cause"),
    [
        (f"Eq({D}(u(t,x),t), k*{PRODUCT_OF_8})", "diffusion", "has 8 field factors"),
        (
            "; ".join(f"Eq({D}(u{k}(t,x),t), -{D}(u{k}(t,x),x))" for k in range(4)),
            "metric",
            "at most 3 fields",
        ),
        # each derivative call has order 1, the evaluated term U*d_xy(c) has order 2
        (
            f"Eq({D}(c(t,x,y,z),t), {D}(U(x,y,z)*{D}(c(t,x,y,z),x),y))",
            "diffusion",
            "the diffusion form in 3D allows at most 1 for one field; the metric form allows 3",
        ),
        # d(u**4) evaluates to 4*u**3*d(u): four field factors
        (f"Eq({D}(u(t,x),t), {D}(u(t,x)**4,x))", "metric", "4 field factors"),
        (f"Eq({D}(u(t,x),t), exp(u(t,x)*{D}(u(t,x),x)))", "metric", "4 field factors"),
    ],
)
def test_systems_beyond_the_derivation_limits_are_refused_before_deriving(
    text, form, cause, capsys
):
    assert _refused([text, "--form", form], capsys, cause) < 2.0


def test_four_coordinates_are_refused_by_the_cli_and_the_library(capsys):
    start = time.perf_counter()
    text = "Eq(Derivative(u(t,x,y,z,s),t), -Derivative(u(t,x,y,z,s),x))"
    assert main(["derive", text, "--form", "metric"]) == 2
    assert time.perf_counter() - start < 2.0
    err = capsys.readouterr().err.strip()
    assert err.startswith("pkfnet: error: cannot derive the PKF dynamics: equation 1: ")
    assert "4 spatial coordinates (x, y, z, s); the PKF is derived in 1 to 3 dimensions" in err
    t, x, y, z, s = sp.symbols("t x y z s")
    u = sp.Function("u")(t, x, y, z, s)
    with pytest.raises(ValueError, match="1 to 3 dimensions"):
        SymbolicPKF(sp.Eq(u.diff(t), -u.diff(x)))


@pytest.mark.parametrize("form", list(parsing.MAX_TERM_ORDER))
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("several", [False, True], ids=["one field", "several fields"])
def test_term_order_limit_admits_the_limit_and_refuses_one_more(form, dim, several):
    limit = parsing.MAX_TERM_ORDER[form][dim - 1][several]

    def system(order):
        # the order is split over two factors of two fields, as (order - order//2, order//2)
        other = "v" if several else "u"
        term = f"{_derivative(dim, order - order // 2)}*{_derivative(dim, order // 2, other)}"
        equations = [f"Eq({D}({_field(dim)},t), k*{term})"]
        if several:
            equations.append(f"Eq({D}({_field(dim, 'v')},t), -{_field(dim, 'v')})")
        return parse_equations("; ".join(equations))

    check_derivation_limits(system(limit), form)
    if limit < parsing.MAX_DERIVATIVE_ORDER:
        with pytest.raises(LimitError, match=f"order {limit + 1} .* at most {limit}"):
            check_derivation_limits(system(limit + 1), form)


@pytest.mark.parametrize(
    ("rhs", "factors", "order"),
    [
        ("u(t,x)*Derivative(u(t,x),x)**2", 3, 2),
        ("k*U(x)*Derivative(U(x),x)*u(t,x)", 1, 0),  # U is a coefficient, not a field
        ("exp(u(t,x))", 2, 0),
        ("u(t,x)/Derivative(u(t,x),x)", 3, 2),
        ("sqrt(Derivative(u(t,x),(x,2)))", 2, 4),
        ("(u(t,x) + Derivative(u(t,x),(x,2)))**2*v(t,x)", 3, 4),
        ("sin(u(t,x)*v(t,x))", 4, 0),
    ],
)
def test_field_factors_and_order_of_a_term(rhs, factors, order):
    equations = parse_equations(f"Eq({D}(u(t,x),t), {rhs}); Eq({D}(v(t,x),t), 0)")
    fields = {sp.Function("u"), sp.Function("v")}
    term = equations[0].rhs.doit()
    assert parsing._factors_and_order(term, fields, {}) == (factors, order)


@pytest.mark.parametrize(
    "rhs",
    [
        "(a + u(t,x))**3",
        "Derivative(u(t,x)*v(t,x), (x,3))",
        "Derivative(exp(u(t,x)), (x,3))",
        "Derivative(u(t,x)**2*a(x), (x,2)) + b*(u(t,x) - v(t,x))**2",
        "Derivative(sqrt(a(x) + u(t,x)), x, x)",
        "Derivative(Derivative(u(t,x)*v(t,x), x)*w(t,x), x)",
        "(a + b)*(c + d)*(e - u(t,x))",
    ],
)
def test_term_estimate_bounds_sympys_own_expansion(rhs):
    (equation,) = parse_equations(f"Eq({D}(u(t,x),t), {rhs})")
    expanded = sp.expand(equation.rhs.doit(deep=True))
    assert parsing._term_counts(equation.rhs, {})[0] >= len(sp.Add.make_args(expanded))


def test_derived_size_limit_refuses_the_costly_form_and_points_to_the_metric_one():
    # two species advected by a 3D wind and reacting: cheap in the metric form only
    def advection(f):
        return " + ".join(
            f"{c}(x,y,z)*{D}({f}(t,x,y,z),{axis})" for c, axis in zip("UVW", "xyz", strict=True)
        )

    text = "; ".join(
        f"Eq({D}({f}(t,x,y,z),t), {advection(f)} + k*{g}(t,x,y,z))" for f, g in ("AB", "BA")
    )
    pkf = SymbolicPKF(parse_equations(text))
    size = sum(1 for eq in pkf.in_metric for _ in sp.preorder_traversal(eq.rhs))
    limits = parsing.MAX_DERIVED_SIZE
    assert limits["diffusion"][2] < size <= limits["metric"][2]
    with pytest.raises(LimitError, match=f"size {size:,} in the metric form .* --form metric"):
        check_derived_size(pkf, "diffusion")
    check_derived_size(pkf, "metric")


def test_a_large_coefficient_counts_by_its_size_not_its_terms(capsys):
    coefficient = "a(x)"
    for _ in range(45):
        coefficient = f"sin({coefficient})"
    text = f"Eq({D}(u(t,x),t), {coefficient}*{D}(u(t,x),(x,8)))"
    check_derivation_limits(parse_equations(text), "metric")  # one term, within the limits
    assert _refused([text, "--form", "metric"], capsys, "in the metric form (nodes") < 10.0


def test_output_limit(monkeypatch, capsys):
    check_output_size("x" * parsing.MAX_OUTPUT)
    with pytest.raises(LimitError, match="at most"):
        check_output_size("x" * (parsing.MAX_OUTPUT + 1))
    burgers = f"Eq({D}(u(t,x),t), -u(t,x)*{D}(u(t,x),x))"
    monkeypatch.setattr(parsing, "MAX_OUTPUT", 100)
    _refused([burgers], capsys, "cannot print the PKF dynamics: the output is")


def test_a_trusted_file_is_not_limited(tmp_path, capsys):
    text = f"Eq({D}(u(t,x),t), k*u(t,x)**2*{D}(u(t,x),x)**2)"
    with pytest.raises(LimitError, match="4 field factors"):
        check_derivation_limits(parse_equations(text), "metric")
    source = tmp_path / "quartic.py"
    source.write_text(
        "import sympy as sp\n"
        "t, x, k = sp.symbols('t x k')\n"
        "u = sp.Function('u')(t, x)\n"
        "equations = sp.Eq(u.diff(t), k * u**2 * u.diff(x)**2)\n"
    )
    assert main(["derive", "--file", str(source), "--form", "metric"]) == 0
    assert "PKF dynamics (metric form)" in capsys.readouterr().out
