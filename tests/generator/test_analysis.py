"""System analysis: classification of functions, ordering, and errors naming the culprit."""

import subprocess
import sys

import pytest
import sympy as sp

from generator import NNModelBuilder, PDESystem

t, x, y, z = sp.symbols("t x y z")


def test_classifies_prognostic_constant_exogenous_functions_and_constants():
    u = sp.Function("u")(t, x)
    v = sp.Function("v")(t, x)
    kappa = sp.Function("kappa")(x)
    forcing = sp.Function("forcing")(t, x)
    a, b = sp.symbols("a b")
    system = PDESystem.from_equations(
        [
            sp.Eq(sp.Derivative(u, t), a * kappa * sp.Derivative(u, x, 2) + forcing),
            sp.Eq(sp.Derivative(v, t), -b * u * sp.Derivative(v, x)),
        ]
    )
    assert system.prognostic_functions == ["u", "v"]
    assert system.constant_functions == ["kappa"]
    assert system.exogenous_functions == ["forcing"]
    assert sorted(system.constants) == ["a", "b"]
    assert system.coordinate_names == ("x",)
    assert system.dimension == 1


def test_time_may_be_any_symbol_at_any_argument_position():
    tau = sp.Symbol("tau")
    u = sp.Function("u")(x, y, tau)
    system = PDESystem.from_equations(sp.Eq(sp.Derivative(u, tau), sp.Derivative(u, y)))
    assert system.time == tau
    assert system.coordinate_names == ("x", "y")
    assert [(d.name, d.orders) for d in system.derivatives] == [("D_u_y1", (0, 1))]


def test_derivatives_of_products_are_expanded():
    u = sp.Function("u")(t, x)
    k = sp.Function("k")(x)
    system = PDESystem.from_equations(
        sp.Eq(sp.Derivative(u, t), sp.Derivative(k * sp.Derivative(u, x), x))
    )
    trend = system.trends["u"]
    expected = sp.Symbol("D_k_x1") * sp.Symbol("D_u_x1") + sp.Symbol("k") * sp.Symbol("D_u_x2")
    assert sp.expand(trend - expected) == 0


def test_three_dimensional_system_is_analysed():
    c = sp.Function("c")(t, x, y, z)
    system = PDESystem.from_equations(
        sp.Eq(sp.Derivative(c, t), sp.Derivative(c, x, y, z) + sp.Derivative(c, z, 2))
    )
    assert system.dimension == 3
    assert {d.orders for d in system.derivatives} == {(1, 1, 1), (0, 0, 2)}


def test_ordering_is_deterministic_across_processes():
    script = (
        "import sympy as sp;from generator.builder import NNModelBuilder;"
        "t,x=sp.symbols('t x');u=sp.Function('u')(t,x);"
        "fs=[sp.Function(n)(x) for n in 'pqrsw'];cs=sp.symbols('a b c d e');"
        "rhs=sum(f*c*sp.Derivative(u,x,k+1) for k,(f,c) in enumerate(zip(fs,cs)));"
        "print(NNModelBuilder(sp.Eq(sp.Derivative(u,t),rhs),'M').code)"
    )
    codes = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "TF_CPP_MIN_LOG_LEVEL": "3"},
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(codes) == 1


def test_non_evolution_equation_is_rejected_naming_it():
    u = sp.Function("u")(t, x)
    with pytest.raises(ValueError, match=r"equation 2: .*not an evolution equation"):
        PDESystem.from_equations([sp.Eq(sp.Derivative(u, t), u), sp.Eq(sp.Derivative(u, x), u)])
    with pytest.raises(ValueError, match=r"equation 1: .*not an evolution equation"):
        PDESystem.from_equations(sp.Eq(u, u**2))


def test_field_on_a_coordinate_the_domain_lacks_is_rejected():
    u = sp.Function("u")(t, x)
    k = sp.Function("k")(x, y)
    with pytest.raises(ValueError, match=r"'k' depends on coordinate y"):
        PDESystem.from_equations(sp.Eq(sp.Derivative(u, t), k * u))


def test_derivative_along_missing_coordinate_is_rejected():
    u = sp.Function("u")(t, x)
    with pytest.raises(ValueError, match="'w' depends on coordinate y"):
        PDESystem.from_equations(
            sp.Eq(sp.Derivative(u, t), sp.Derivative(sp.Function("w")(t, x, y), y))
        )


def test_unsupported_function_is_rejected_naming_it():
    u = sp.Function("u")(t, x)
    with pytest.raises(ValueError, match=r"unsupported function 'erf'"):
        PDESystem.from_equations(sp.Eq(sp.Derivative(u, t), sp.erf(u)))


def test_time_derivative_on_the_right_is_rejected():
    u = sp.Function("u")(t, x)
    with pytest.raises(ValueError, match="time derivative"):
        PDESystem.from_equations(sp.Eq(sp.Derivative(u, t), sp.Derivative(u, t, x)))


def test_two_equations_for_one_field_are_rejected():
    u = sp.Function("u")(t, x)
    with pytest.raises(ValueError, match="second evolution equation for 'u'"):
        PDESystem.from_equations([sp.Eq(sp.Derivative(u, t), u), sp.Eq(sp.Derivative(u, t), -u)])


def test_builder_rejects_bad_class_name_and_accuracy():
    u = sp.Function("u")(t, x)
    eq = sp.Eq(sp.Derivative(u, t), sp.Derivative(u, x))
    with pytest.raises(ValueError, match="identifier"):
        NNModelBuilder(eq, class_name="not valid")
    with pytest.raises(ValueError, match="accuracy"):
        NNModelBuilder(eq, accuracy=3)
