"""Dictionaries of candidate closure terms: dimensionally consistent monomials.

:func:`dictionary` enumerates the products of integer powers of fields and of their spatial
derivatives that have exactly the dimension of an unclosed term (optionally with its parity
under x -> -x); :func:`quasi_gaussian_proposal` gives the terms of the quasi-Gaussian
closure with their theoretical coefficients, in any PKF form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import product
from typing import TYPE_CHECKING

import sympy as sp
from sympy.core.function import AppliedUndef

from closures.dimensions import Dimension, DimensionError, DimensionSystem
from pkf.expectation import Expectation
from pkf.forms import FORMS, PKFForm

if TYPE_CHECKING:
    from pkf.derivation import SymbolicPKF

__all__ = [
    "Factor",
    "Proposal",
    "candidate_factors",
    "dictionary",
    "monomial_exponents",
    "quasi_gaussian_proposal",
    "reflection_parity",
]


@dataclass(frozen=True)
class Factor:
    """One building block of a monomial: a field or one of its derivatives.

    Attributes
    ----------
    expr : the sympy factor (``nu(t, x)`` or ``Derivative(nu(t, x), (x, 2))``).
    field : the undifferentiated field.
    orders : derivative order per coordinate (all zero for the field itself).
    dimension : its :class:`~closures.dimensions.Dimension`.
    invertible : True for an undifferentiated positive field (any integer power allowed);
        False otherwise (non-negative powers only, counted in the degree).
    """

    expr: sp.Expr
    field: sp.Expr
    orders: tuple[int, ...]
    dimension: Dimension
    invertible: bool

    @property
    def derivative_order(self) -> int:
        return sum(self.orders)


def candidate_factors(
    fields: Iterable[sp.Expr], dimensions: DimensionSystem, max_derivative_order: int
) -> list[Factor]:
    """The fields and their derivatives up to ``max_derivative_order``, in dictionary order.

    Each field (in the given order) is followed by its derivatives by increasing total
    order, then by decreasing multi-index (``x2, x1y1, y2``); a field only gets derivatives
    in the coordinates it depends on.

    Examples
    --------
    >>> from closures.dimensions import LENGTH, Quantity
    >>> t, x = sp.symbols("t x")
    >>> nu = sp.Function("nu")(t, x)
    >>> system = DimensionSystem({"nu": Quantity(LENGTH**2, positive=True)})
    >>> [str(f.expr) for f in candidate_factors([nu], system, 2)]
    ['nu(t, x)', 'Derivative(nu(t, x), x)', 'Derivative(nu(t, x), (x, 2))']
    """
    if max_derivative_order < 0:
        raise ValueError(f"max_derivative_order must be >= 0, got {max_derivative_order}")
    coordinates = [sp.Symbol(c) for c in dimensions.coordinates]
    factors: list[Factor] = []
    seen = set()
    for field in fields:
        field = sp.sympify(field)
        if not isinstance(field, (AppliedUndef, sp.Symbol)):
            raise ValueError(f"field {field} is not a function like nu(t, x) or a symbol")
        if field in seen:
            raise ValueError(f"field {field} is listed twice")
        seen.add(field)
        quantity = dimensions.quantity(field)
        own = [c for c in coordinates if isinstance(field, AppliedUndef) and c in field.args]
        n = len(coordinates)
        for total in range(max_derivative_order + 1):
            if total and not own:
                break
            for orders in sorted(_multi_indices(n, total), reverse=True):
                if any(o and c not in own for o, c in zip(orders, coordinates, strict=True)):
                    continue
                variables = [(c, o) for c, o in zip(coordinates, orders, strict=True) if o]
                expr = sp.Derivative(field, *variables) if variables else field
                dim = dimensions.of(expr)
                factors.append(
                    Factor(expr, field, orders, dim, invertible=quantity.positive and total == 0)
                )
    return factors


def dictionary(
    term: sp.Expr | Dimension,
    fields: Sequence[sp.Expr],
    dimensions: DimensionSystem | object,
    max_derivative_order: int = 2,
    max_degree: int = 2,
    parity: bool = True,
    max_power: int | None = None,
) -> list[sp.Expr]:
    """Monomials of the fields and their derivatives with exactly the dimension of ``term``.

    A monomial is a product of integer powers of the :func:`candidate_factors`. The
    enumeration is finite because:

    * derivatives and fields that are not positive (means, covariances, off-diagonal tensor
      components) only appear with non-negative powers, and the total of these powers, the
      *degree*, is at most ``max_degree`` (the paper's three terms have degrees 0, 1, 2);
    * positive fields (variances, diagonal metric / aspect / diffusion components) may have
      any integer power, which the dimension then fixes: with one positive field per
      independent dimension (e.g. ``nu`` [L^2] and ``V`` [U^2]) the powers are unique, and
      a term is kept only if they are integers.  If the positive fields admit a
      dimensionless ratio (``nu`` and ``s`` together, say), ``max_power`` must bound the
      absolute value of their powers.

    So with a mean ``u`` among the fields only combinations in which its unit cancels
    (e.g. ``u**2 / V``) appear.  With ``parity=True`` a monomial is kept only if it has the
    parity of ``term`` under each reflection x_i -> -x_i (every field counted even: each
    derivative in x_i, and each coordinate symbol x_i, flips the sign); a
    :class:`Dimension` target is taken as even.

    Parameters
    ----------
    term : an unclosed term (e.g. ``pkf.unclosed_terms[0]``), any expression of known
        dimension, or a :class:`Dimension`.
    fields : fields the terms are built from (e.g. ``[nu, V, u]``), in the order used to
        sort the result.
    dimensions : a :class:`DimensionSystem`, or a :class:`pkf.SymbolicPKF` (then
        ``DimensionSystem.from_pkf(pkf)``).
    max_derivative_order : highest total derivative order of a factor.
    max_degree : highest degree (total power of non-invertible factors).
    parity : keep only terms with the parity of ``term``.
    max_power : bound on the absolute power of each positive field (None: fixed by the
        dimension; required when that does not fix it).

    Returns
    -------
    list of sympy monomials with unit coefficient, without duplicates, sorted by degree,
    then total derivative order (sum of orders times powers), then by the powers of the
    non-invertible factors in :func:`candidate_factors` order (larger powers of earlier
    factors first), then likewise by the powers of the positive fields.

    Examples
    --------
    >>> from pkf import SymbolicPKF
    >>> t, x, kappa = sp.symbols("t x kappa")
    >>> u = sp.Function("u")(t, x)
    >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    >>> nu = pkf.fields["u"].diffusion[0, 0]
    >>> dictionary(pkf.unclosed_terms[0], [nu], pkf)  # doctest: +NORMALIZE_WHITESPACE
    [nu_u_xx(t, x)**(-2), Derivative(nu_u_xx(t, x), (x, 2))/nu_u_xx(t, x)**2,
     Derivative(nu_u_xx(t, x), x)**2/nu_u_xx(t, x)**3,
     Derivative(nu_u_xx(t, x), (x, 2))**2/nu_u_xx(t, x)**2]
    """
    system = _as_dimension_system(dimensions)
    if max_degree < 0:
        raise ValueError(f"max_degree must be >= 0, got {max_degree}")
    if max_power is not None and max_power < 0:
        raise ValueError(f"max_power must be >= 0, got {max_power}")
    target = term if isinstance(term, Dimension) else system.of(term)
    n = len(system.coordinates)
    target_parity = (0,) * n if isinstance(term, Dimension) else reflection_parity(term, system)
    factors = candidate_factors(fields, system, max_derivative_order)
    signed = [f for f in factors if not f.invertible]
    positive = [f for f in factors if f.invertible]
    solve = _power_solver(positive, target, signed, max_power)
    found = []
    for powers in _bounded_compositions(len(signed), max_degree):
        dim = Dimension()
        for factor, p in zip(signed, powers, strict=True):
            dim = dim * factor.dimension**p
        if parity:
            signature = tuple(
                sum(f.orders[i] * p for f, p in zip(signed, powers, strict=True)) % 2
                for i in range(n)
            )
            if signature != target_parity:
                continue
        for positive_powers in solve(target / dim):
            exponents = dict(zip(signed, powers, strict=True))
            exponents.update(zip(positive, positive_powers, strict=True))
            found.append([exponents[f] for f in factors])
    found.sort(key=lambda e: _sort_key(e, factors))
    return [sp.Mul(*(f.expr**p for f, p in zip(factors, e, strict=True))) for e in found]


def monomial_exponents(monomial: sp.Expr) -> dict[sp.Expr, int]:
    """Factor -> integer power of a monomial (numeric coefficient dropped).

    >>> x = sp.Symbol("x")
    >>> nu = sp.Function("nu")(x)
    >>> monomial_exponents(3 * nu.diff(x) ** 2 / nu**3)
    {Derivative(nu(x), x): 2, nu(x): -3}
    """
    _, rest = sp.sympify(monomial).as_coeff_Mul()
    result: dict[sp.Expr, int] = {}
    for factor in sp.Mul.make_args(rest):
        base, power = factor.as_base_exp()
        if not power.is_Integer or base.is_number:
            raise ValueError(f"{monomial} is not a monomial with integer powers ({factor})")
        result[base] = result.get(base, 0) + int(power)
    return dict(sorted(result.items(), key=lambda item: sp.default_sort_key(item[0]), reverse=True))


def reflection_parity(expr: sp.Expr, dimensions: DimensionSystem) -> tuple[int, ...]:
    """Parity (0 even, 1 odd) of ``expr`` under each reflection x_i -> -x_i.

    Fields count as even; each derivative in x_i and each factor x_i flips the sign.

    Raises
    ------
    ValueError if a sum mixes parities.

    >>> from closures.dimensions import DIMENSIONLESS
    >>> x = sp.Symbol("x")
    >>> f = sp.Function("f")(x)
    >>> system = DimensionSystem({"f": DIMENSIONLESS})
    >>> reflection_parity(f.diff(x) * f.diff(x, 2), system)
    (1,)
    """
    coordinates = [sp.Symbol(c) for c in dimensions.coordinates]
    return tuple(_parity(sp.sympify(expr), c) for c in coordinates)


@dataclass(frozen=True)
class Proposal:
    """A closure proposal: ``expression == sum(c * t for c, t in zip(coefficients, terms))``."""

    terms: list[sp.Expr]
    coefficients: list[sp.Rational]

    @property
    def expression(self) -> sp.Expr:
        return sp.Add(*(c * t for c, t in zip(self.coefficients, self.terms, strict=True)))

    @classmethod
    def from_expression(cls, expression: sp.Expr) -> Proposal:
        """Split a sum of rational multiples of monomials into terms and coefficients.

        Terms are sorted as in :func:`dictionary` (degree in the derivatives, then
        derivative order, then sympy's order).

        >>> x = sp.Symbol("x")
        >>> nu = sp.Function("nu")(x)
        >>> Proposal.from_expression(nu.diff(x, 2) / nu**2 + sp.Rational(3, 4) / nu**2)
        Proposal(terms=[nu(x)**(-2), Derivative(nu(x), (x, 2))/nu(x)**2], coefficients=[3/4, 1])
        """
        pairs = [t.as_coeff_Mul() for t in sp.Add.make_args(sp.expand(expression))]
        pairs.sort(key=lambda pair: _generic_key(pair[1]))
        return cls([t for _, t in pairs], [sp.Rational(c) for c, _ in pairs])


def quasi_gaussian_proposal(
    pkf: SymbolicPKF, term: sp.Expr, form: PKFForm = "diffusion"
) -> Proposal:
    """The quasi-Gaussian closure of ``term`` as terms and theoretical coefficients.

    Wraps :meth:`pkf.SymbolicPKF.quasi_gaussian_closure` (aspect form) and rewrites it in
    ``form`` (``s = 2 nu``, ``s = g^-1``); terms are sorted as in :func:`dictionary`.

    Examples
    --------
    >>> from pkf import SymbolicPKF
    >>> t, x, kappa = sp.symbols("t x kappa")
    >>> u = sp.Function("u")(t, x)
    >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    >>> proposal = quasi_gaussian_proposal(pkf, pkf.unclosed_terms[0], "diffusion")
    >>> proposal.coefficients
    [3/4, 3/2, -3/2]
    """
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")
    expression = pkf.quasi_gaussian_closure(term).expression
    for field in pkf.fields.values():
        aspect = field.aspect
        if form == "diffusion":
            target = 2 * field.diffusion
        elif form == "metric":
            target = field.metric.inv()
        else:
            target = aspect
        mapping = {
            aspect[i, j]: target[i, j] for i in range(aspect.rows) for j in range(i, aspect.cols)
        }
        expression = expression.subs(mapping)
    return Proposal.from_expression(expression.doit())


# -- internals ---------------------------------------------------------------------------
def _as_dimension_system(dimensions) -> DimensionSystem:
    if isinstance(dimensions, DimensionSystem):
        return dimensions
    if hasattr(dimensions, "closure_slots") and hasattr(dimensions, "fields"):
        return DimensionSystem.from_pkf(dimensions)
    raise TypeError(
        f"dimensions must be a DimensionSystem or a SymbolicPKF, not {type(dimensions).__name__}"
    )


def _multi_indices(n: int, total: int) -> list[tuple[int, ...]]:
    if n == 0:
        return [()] if total == 0 else []
    return [
        (first, *rest)
        for first in range(total + 1)
        for rest in _multi_indices(n - 1, total - first)
    ]


def _bounded_compositions(n: int, bound: int) -> Iterable[tuple[int, ...]]:
    """All non-negative integer n-vectors with sum <= bound."""
    for total in range(bound + 1):
        yield from _multi_indices(n, total)


def _power_solver(positive: list[Factor], target: Dimension, signed: list[Factor], max_power):
    """A function: residual dimension -> list of integer power vectors of the positive fields."""
    bases = sorted(
        set(target.exponents).union(*(f.dimension.exponents for f in [*positive, *signed]))
    )
    matrix = sp.Matrix(
        len(bases), len(positive), lambda b, k: _rational(positive[k].dimension.exponent(bases[b]))
    )
    unique = matrix.rank() == len(positive)
    if not unique and max_power is None:
        null = matrix.nullspace()[0]
        ratio = sp.Mul(*(f.expr**c for f, c in zip(positive, null, strict=True)))
        raise DimensionError(
            f"the positive fields admit the dimensionless combination {ratio}: their powers "
            "are not fixed by the dimension; pass max_power to bound them"
        )
    if unique:
        pseudo = (matrix.T * matrix).inv() * matrix.T if positive else sp.zeros(0, len(bases))

        def solve(residual: Dimension) -> list[tuple[int, ...]]:
            rhs = sp.Matrix([_rational(residual.exponent(b)) for b in bases])
            powers = pseudo * rhs
            if matrix * powers != rhs or not all(p.is_integer for p in powers):
                return []
            powers = tuple(int(p) for p in powers)
            if max_power is not None and any(abs(p) > max_power for p in powers):
                return []
            return [powers]

        return solve

    box = list(product(range(-max_power, max_power + 1), repeat=len(positive)))

    def search(residual: Dimension) -> list[tuple[int, ...]]:
        found = []
        for powers in box:
            dim = Dimension()
            for factor, p in zip(positive, powers, strict=True):
                dim = dim * factor.dimension**p
            if dim == residual:
                found.append(powers)
        return found

    return search


def _rational(value: Fraction) -> sp.Rational:
    return sp.Rational(value.numerator, value.denominator)


def _sort_key(exponents: list[int], factors: list[Factor]) -> tuple:
    pairs = list(zip(exponents, factors, strict=True))
    degree = sum(e for e, f in pairs if not f.invertible)
    order = sum(e * f.derivative_order for e, f in pairs)
    signed = tuple(-e for e, f in pairs if not f.invertible)
    return degree, order, signed, tuple(-e for e, f in pairs if f.invertible)


def _generic_key(monomial: sp.Expr) -> tuple:
    powers = monomial_exponents(monomial)
    degree = sum(p for b, p in powers.items() if isinstance(b, sp.Derivative))
    order = sum(p * b.derivative_count for b, p in powers.items() if isinstance(b, sp.Derivative))
    return degree, order, sp.default_sort_key(monomial)


def _parity(expr: sp.Expr, coordinate: sp.Symbol) -> int:
    if expr.is_number:
        return 0
    if expr == coordinate:
        return 1
    if isinstance(expr, (sp.Symbol, AppliedUndef)):
        return 0
    if isinstance(expr, sp.Derivative):
        count = sum(int(c) for v, c in expr.variable_count if v == coordinate)
        return (_parity(expr.expr, coordinate) + count) % 2
    if isinstance(expr, sp.Mul):
        return sum(_parity(a, coordinate) for a in expr.args) % 2
    if isinstance(expr, sp.Pow):
        if not expr.exp.is_Integer:
            if _parity(expr.base, coordinate):
                raise ValueError(f"{expr}: non-integer power of an odd expression")
            return 0
        return (_parity(expr.base, coordinate) * int(expr.exp)) % 2
    if isinstance(expr, sp.Add):
        parities = {_parity(a, coordinate) for a in expr.args}
        if len(parities) > 1:
            raise ValueError(f"{expr} mixes even and odd terms under {coordinate} -> -{coordinate}")
        return parities.pop()
    if isinstance(expr, Expectation):
        return _parity(expr.args[0], coordinate)
    if isinstance(expr, sp.Function):
        parities = {_parity(a, coordinate) for a in expr.args}
        if parities - {0}:
            raise ValueError(f"{expr}: cannot give a reflection parity to a function of odd terms")
        return 0
    raise ValueError(f"cannot give a reflection parity to {expr!r}")
