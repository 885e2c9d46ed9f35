"""The expectation operator E[.] as a sympy function, and random (error) functions.

``Expectation`` is linear: it distributes over sums and pulls out every factor that contains
no random function.  Random functions are undefined sympy functions created with
:func:`random_function`; they carry a ``random`` flag that survives pickling.
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef

__all__ = ["Expectation", "is_random", "random_function"]


def random_function(name: str) -> sp.core.function.UndefinedFunction:
    """An undefined sympy function flagged as random (its E[.] is not itself).

    Examples
    --------
    >>> t, x = sp.symbols("t x")
    >>> eps = random_function("eps")(t, x)
    >>> is_random(eps), is_random(sp.Function("u")(t, x))
    (True, False)
    """
    return sp.Function(name, random=True)


def is_random(expr: sp.Expr) -> bool:
    """Whether ``expr`` contains a random function (see :func:`random_function`)."""
    return any(getattr(f.func, "random", False) for f in expr.atoms(AppliedUndef))


class Expectation(sp.Function):
    """Expectation operator E[X]: linear, deterministic factors are taken out.

    Derivatives commute with it (``diff(E[X], x) == E[diff(X, x)]``); an unevaluated
    ``Derivative(E[X], x, y)`` keeps all its variables.

    Examples
    --------
    >>> t, x = sp.symbols("t x")
    >>> eps, u = random_function("eps")(t, x), sp.Function("u")(t, x)
    >>> Expectation(2 * u * eps**2 + u)
    2*u(t, x)*Expectation(eps(t, x)**2) + u(t, x)
    """

    nargs = 1

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        if arg.is_Add:
            return sp.Add(*(cls(term) for term in arg.args))
        if not is_random(arg):
            return arg
        if arg.is_Mul:
            deterministic = [f for f in arg.args if not is_random(f)]
            if deterministic:
                random = [f for f in arg.args if is_random(f)]
                return sp.Mul(*deterministic) * cls(sp.Mul(*random))
        return None

    def _eval_derivative(self, s: sp.Symbol) -> sp.Expr:
        return Expectation(sp.diff(self.args[0], s))

    def _eval_is_commutative(self) -> bool:
        return True

    def _latex(self, printer, *args) -> str:
        inner = printer._print(self.args[0])
        return rf"\mathbb{{E}}\left[{inner}\right]"

    def _pretty(self, printer, *args):
        from sympy.printing.pretty.stringpict import prettyForm

        inner = printer._print(self.args[0])
        return prettyForm(*prettyForm("E").right(prettyForm(*inner.parens("[", "]"))))
