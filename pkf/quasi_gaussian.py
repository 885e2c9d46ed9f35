"""Quasi-Gaussian closure proposal for the unclosed terms E[eps d^alpha eps].

A locally Gaussian correlation rho(x, x + d) = exp(-d^T (s(x) + s(x + d))^-1 d) (s the aspect
tensor; 1D: exp(-d^2 / (s(x) + s(x + d)))) expanded in d gives
E[eps d^alpha eps] = alpha! [d^alpha] rho with alpha! = prod_i alpha_i!.  Replacing each
rational coefficient by an unknown gives a template whose coefficients can be learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import factorial, prod

import sympy as sp

from pkf.forms import DeterminantDivision

__all__ = ["QuasiGaussianClosure", "quasi_gaussian_closure", "quasi_gaussian_expectation"]


@dataclass(frozen=True)
class QuasiGaussianClosure:
    """A closure proposal and its template.

    Attributes
    ----------
    expression : sympy.Expr
        The quasi-Gaussian value of the term, in aspect form.
    template : sympy.Expr
        ``expression`` with each rational coefficient replaced by a free symbol.
    coefficients : tuple of sympy.Symbol
        The free symbols of ``template``, in order.
    values : dict
        Their quasi-Gaussian values (``template.subs(values) == expression``).
    """

    expression: sp.Expr
    template: sp.Expr
    coefficients: tuple[sp.Symbol, ...]
    values: dict[sp.Symbol, sp.Rational]


def quasi_gaussian_expectation(
    aspect: sp.Matrix, coordinates: Sequence[sp.Symbol], orders: Sequence[int]
) -> sp.Expr:
    """E[eps d^orders eps] for a locally Gaussian correlation of aspect tensor ``aspect``.

    Parameters
    ----------
    aspect : sympy.Matrix (n, n)
        Symmetric matrix of functions of the coordinates (e.g. ``pkf.fields['u'].aspect``).
    coordinates : sequence of n sympy.Symbol
    orders : sequence of n int
        The derivative multi-index alpha.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> s = sp.Function("s")(x)
    >>> quasi_gaussian_expectation(sp.Matrix([[s]]), (x,), (2,))
    -1/s(x)
    """
    aspect = sp.Matrix(aspect)
    n = len(coordinates)
    alpha = tuple(int(k) for k in orders)
    if aspect.shape != (n, n) or len(alpha) != n:
        raise ValueError(f"aspect {aspect.shape} and orders {alpha} do not match {n} coordinates")
    symbols = {(i, j): sp.Dummy(f"w{i}{j}") for i in range(n) for j in range(i, n)}
    inverse_symbols = sp.Matrix(n, n, lambda i, j: symbols[(min(i, j), max(i, j))])
    zero = (0,) * n
    # polynomials in the separation d, kept as {monomial: coefficient}, truncated to
    # monomials <= alpha (the only ones that can contribute to the d^alpha coefficient)
    half_inverse = [[{zero: inverse_symbols[i, j] / 2} for j in range(n)] for i in range(n)]
    increment: list[list[dict]] = [[{} for _ in range(n)] for _ in range(n)]  # s(x + d) - s(x)
    for beta in _monomials_below(alpha):
        if 1 <= sum(beta) <= sum(alpha) - 2:
            weight = sp.Rational(1, prod(factorial(b) for b in beta))
            variables = [coordinates[k] for k, b in enumerate(beta) for _ in range(b)]
            for i in range(n):
                for j in range(n):
                    increment[i][j][beta] = weight * sp.diff(aspect[i, j], *variables)
    # (2 s + M)^-1 = P - P M P + P M P M P - ...,  P = (2 s)^-1
    inverse, power = half_inverse, half_inverse
    for _ in range(max(sum(alpha) - 2, 0)):
        power = _matmul(_matmul(power, increment, alpha), half_inverse, alpha)
        power = [[{m: -c for m, c in entry.items()} for entry in row] for row in power]
        inverse = [
            [_add(a, b) for a, b in zip(ra, rb, strict=True)]
            for ra, rb in zip(inverse, power, strict=True)
        ]
    quadratic: dict = {}
    for i in range(n):
        for j in range(n):
            shift = tuple(int(k == i) + int(k == j) for k in range(n))
            shifted = {_plus(m, shift): c for m, c in inverse[i][j].items()}
            quadratic = _add(quadratic, _truncate(shifted, alpha))
    series, term = {zero: sp.S.One}, {zero: sp.S.One}
    for j in range(1, sum(alpha) // 2 + 1):
        term = {m: -c / j for m, c in _mul(term, quadratic, alpha).items()}
        series = _add(series, term)
    value = prod(factorial(k) for k in alpha) * series.get(alpha, sp.S.Zero)
    return _inverse_to_aspect(sp.expand(value), aspect, inverse_symbols)


def _monomials_below(alpha: tuple[int, ...]) -> list[tuple[int, ...]]:
    if not alpha:
        return [()]
    return [(b,) + rest for b in range(alpha[0] + 1) for rest in _monomials_below(alpha[1:])]


def _plus(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _truncate(p: dict, alpha: tuple[int, ...]) -> dict:
    return {m: c for m, c in p.items() if all(x <= y for x, y in zip(m, alpha, strict=True))}


def _add(p: dict, q: dict) -> dict:
    result = dict(p)
    for m, c in q.items():
        result[m] = result.get(m, sp.S.Zero) + c
    return result


def _mul(p: dict, q: dict, alpha: tuple[int, ...]) -> dict:
    result: dict = {}
    for mp, cp in p.items():
        for mq, cq in q.items():
            m = _plus(mp, mq)
            if all(x <= y for x, y in zip(m, alpha, strict=True)):
                result[m] = result.get(m, sp.S.Zero) + cp * cq
    return {m: sp.expand(c) for m, c in result.items()}


def _matmul(a: list, b: list, alpha: tuple[int, ...]) -> list:
    n = len(a)
    return [
        [_sum_polys([_mul(a[i][k], b[k][j], alpha) for k in range(n)]) for j in range(n)]
        for i in range(n)
    ]


def _sum_polys(polys: list[dict]) -> dict:
    result: dict = {}
    for p in polys:
        result = _add(result, p)
    return result


def _inverse_to_aspect(expr: sp.Expr, aspect: sp.Matrix, inverse_symbols: sp.Matrix) -> sp.Expr:
    n = aspect.shape[0]
    if n == 1:
        return sp.expand(expr.xreplace({inverse_symbols[0, 0]: 1 / aspect[0, 0]}))
    division = DeterminantDivision(aspect, "quasi_gaussian")
    adjugate = aspect.adjugate()
    values = {
        inverse_symbols[i, j]: sp.expand(adjugate[i, j]) / division.det_symbol
        for i in range(n)
        for j in range(i, n)
    }
    return division.substitute_determinant(
        division.reduce_modulo_determinant(sp.expand(expr.xreplace(values)))
    )


def closure_template(expr: sp.Expr, prefix: str = "a") -> QuasiGaussianClosure:
    """Replace each rational coefficient of the expanded ``expr`` by a symbol ``prefix_k``.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> s = sp.Function("s")(x)
    >>> closure_template(3 / s**2 + s.diff(x) ** 2 / (2 * s**3)).template
    a_0*Derivative(s(x), x)**2/s(x)**3 + a_1/s(x)**2
    """
    terms = sp.Add.make_args(sp.expand(expr))
    ordered = sorted(terms, key=lambda term: sp.default_sort_key(term.as_coeff_Mul()[1]))
    template, values = [], {}
    for k, term in enumerate(ordered):
        coeff, rest = term.as_coeff_Mul()
        symbol = sp.Symbol(f"{prefix}_{k}")
        values[symbol] = coeff
        template.append(symbol * rest)
    return QuasiGaussianClosure(sp.expand(expr), sp.Add(*template), tuple(values), values)


def quasi_gaussian_closure(
    aspect: sp.Matrix,
    coordinates: Sequence[sp.Symbol],
    orders: Sequence[int],
    prefix: str = "a",
) -> QuasiGaussianClosure:
    """Quasi-Gaussian proposal for E[eps d^orders eps] and its template.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> s = sp.Function("s")(x)
    >>> proposal = quasi_gaussian_closure(sp.Matrix([[s]]), (x,), (4,))
    >>> proposal.expression
    3*Derivative(s(x), (x, 2))/s(x)**2 + 3/s(x)**2 - 3*Derivative(s(x), x)**2/s(x)**3
    >>> proposal.coefficients
    (a_0, a_1, a_2)
    """
    return closure_template(quasi_gaussian_expectation(aspect, coordinates, orders), prefix)
