"""Physical dimensions of PKF quantities and of any sympy expression built from them.

A :class:`Dimension` is a vector of rational exponents over named base dimensions: length
``L``, time ``T`` and one unit ``U_f`` per prognostic field ``f``.  A
:class:`DimensionSystem` assigns a dimension to every named quantity (fields, PKF statistics,
closure slots, constants) and evaluates the dimension of an expression, failing with an
error that names the unknown symbol or the inconsistent sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp
from sympy.core.function import AppliedUndef

from pkf.expectation import Expectation

__all__ = [
    "DIMENSIONLESS",
    "LENGTH",
    "TIME",
    "Dimension",
    "DimensionError",
    "DimensionSystem",
    "Quantity",
    "field_unit",
]


class DimensionError(ValueError):
    """An expression has no consistent dimension (unknown symbol, mixed sum, ...)."""


class Dimension:
    """Product of base dimensions raised to rational powers (immutable, hashable).

    Parameters
    ----------
    exponents : mapping base name -> exponent (int or Fraction); zero exponents are dropped.

    Examples
    --------
    >>> nu = LENGTH**2
    >>> str(nu), str(1 / nu**2), str(field_unit("u") ** 2 / LENGTH)
    ('L^2', 'L^-4', 'L^-1 U_u^2')
    >>> (LENGTH / LENGTH).is_dimensionless
    True
    """

    __slots__ = ("_exponents",)

    def __init__(self, exponents: Mapping[str, int | Fraction] | None = None) -> None:
        items = ((str(b), Fraction(e)) for b, e in (exponents or {}).items())
        self._exponents: tuple[tuple[str, Fraction], ...] = tuple(
            sorted((b, e) for b, e in items if e != 0)
        )

    @property
    def exponents(self) -> dict[str, Fraction]:
        """Base name -> nonzero exponent."""
        return dict(self._exponents)

    def exponent(self, base: str) -> Fraction:
        """Exponent of ``base`` (zero when absent)."""
        return self.exponents.get(base, Fraction(0))

    @property
    def is_dimensionless(self) -> bool:
        return not self._exponents

    def __mul__(self, other: Dimension) -> Dimension:
        if not isinstance(other, Dimension):
            return NotImplemented
        result = self.exponents
        for base, e in other._exponents:
            result[base] = result.get(base, Fraction(0)) + e
        return Dimension(result)

    def __pow__(self, power: int | Fraction) -> Dimension:
        power = Fraction(power)
        return Dimension({b: e * power for b, e in self._exponents})

    def __truediv__(self, other: Dimension) -> Dimension:
        if not isinstance(other, Dimension):
            return NotImplemented
        return self * other**-1

    def __rtruediv__(self, other: int) -> Dimension:
        if other != 1:
            return NotImplemented
        return self**-1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dimension) and self._exponents == other._exponents

    def __hash__(self) -> int:
        return hash(self._exponents)

    def __str__(self) -> str:
        if not self._exponents:
            return "1"
        return " ".join(b if e == 1 else f"{b}^{e}" for b, e in self._exponents)

    def __repr__(self) -> str:
        return f"Dimension({str(self)})"


DIMENSIONLESS = Dimension()
LENGTH = Dimension({"L": 1})
TIME = Dimension({"T": 1})


def field_unit(name: str) -> Dimension:
    """The base unit ``U_name`` of the prognostic field ``name``.

    >>> field_unit("u")
    Dimension(U_u)
    """
    return Dimension({f"U_{name}": 1})


@dataclass(frozen=True)
class Quantity:
    """A named quantity: its dimension, whether it is strictly positive, and its role.

    ``positive`` quantities (variances, diagonal metric/aspect/diffusion components) may
    appear with negative powers in closure dictionaries; ``role`` is informative
    ('mean', 'variance', 'covariance', 'metric', 'aspect', 'diffusion', 'error',
    'closure', 'constant').
    """

    dimension: Dimension
    positive: bool = False
    role: str = ""


class DimensionSystem:
    """Dimensions of named quantities and of the sympy expressions built from them.

    Parameters
    ----------
    quantities : mapping name -> :class:`Quantity` or :class:`Dimension`; names are those
        of sympy symbols or undefined functions (``'nu_u_xx'`` for ``nu_u_xx(t, x)``).
    coordinates : names of the spatial coordinates (dimension ``L`` each).
    time : name of the time variable (dimension ``T``).

    Examples
    --------
    >>> t, x = sp.symbols("t x")
    >>> nu = sp.Function("nu")(t, x)
    >>> system = DimensionSystem({"nu": Quantity(LENGTH**2, positive=True)}, ("x",), "t")
    >>> system.of(nu.diff(x, 2) / nu**2)
    Dimension(L^-4)
    """

    def __init__(
        self,
        quantities: Mapping[str, Quantity | Dimension],
        coordinates: Iterable[str] = ("x",),
        time: str = "t",
    ) -> None:
        self.coordinates = tuple(str(c) for c in coordinates)
        self.time = str(time)
        self._quantities: dict[str, Quantity] = {}
        for name, value in quantities.items():
            self._quantities[str(name)] = value if isinstance(value, Quantity) else Quantity(value)
        clash = {self.time, *self.coordinates} & set(self._quantities)
        if clash:
            raise ValueError(f"{sorted(clash)} are coordinates or time, not quantities")

    @classmethod
    def from_pkf(
        cls,
        pkf,
        constants: Mapping[str, Dimension] | None = None,
        units: Mapping[str, Dimension] | None = None,
    ) -> DimensionSystem:
        """The dimensions of every quantity of a :class:`pkf.SymbolicPKF` system.

        Mean ``f`` [U_f] (or ``units[f]``), variance ``V_f`` [U_f^2], cross-covariance
        ``V_fh`` [U_f U_h], metric ``g`` [L^-2], aspect ``s`` and diffusion ``nu`` [L^2],
        normalised errors ``eps_f`` dimensionless, each closure slot the dimension of its
        unclosed term (e.g. ``closure_u_x4`` [L^-4]).

        Parameters
        ----------
        pkf : pkf.SymbolicPKF
        constants : dimensions of the constants (e.g. ``{"kappa": LENGTH**2 / TIME}``);
            a constant left out is an error only when an expression uses it.
        units : optional dimension of each field's mean instead of its own unit ``U_f``.

        Examples
        --------
        >>> from pkf import SymbolicPKF
        >>> t, x, kappa = sp.symbols("t x kappa")
        >>> u = sp.Function("u")(t, x)
        >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
        >>> system = DimensionSystem.from_pkf(pkf)
        >>> system.of(pkf.unclosed_terms[0]), system.of(pkf.fields["u"].variance)
        (Dimension(L^-4), Dimension(U_u^2))
        """
        units = dict(units or {})
        quantities: dict[str, Quantity] = {}
        field_units = {}
        for name, field in pkf.fields.items():
            unit = units.pop(name, field_unit(name))
            field_units[name] = unit
            quantities[_name(field.mean)] = Quantity(unit, role="mean")
            quantities[_name(field.variance)] = Quantity(unit**2, positive=True, role="variance")
            quantities[_name(field.epsilon)] = Quantity(DIMENSIONLESS, role="error")
            for role, power in (("metric", -2), ("aspect", 2), ("diffusion", 2)):
                matrix = field.tensor(role)
                for i in range(matrix.rows):
                    for j in range(i, matrix.cols):
                        quantities[_name(matrix[i, j])] = Quantity(
                            LENGTH**power, positive=i == j, role=role
                        )
        if units:
            raise ValueError(f"units given for unknown field(s) {sorted(units)}")
        names = list(pkf.fields)
        for a, first in enumerate(names):
            for second in names[a + 1 :]:
                quantities[_name(pkf.covariance(first, second))] = Quantity(
                    field_units[first] * field_units[second], role="covariance"
                )
        for name, dim in (constants or {}).items():
            quantities[str(name)] = Quantity(dim, role="constant")
        coordinates = tuple(str(c) for c in pkf.coordinates)
        system = cls(quantities, coordinates, str(pkf.time))
        for term, slot in pkf.closure_slots.items():
            system._quantities[_name(slot)] = Quantity(system.of(term), role="closure")
        return system

    def with_quantities(self, quantities: Mapping[str, Quantity | Dimension]) -> DimensionSystem:
        """A copy with more (or redefined) quantities."""
        return DimensionSystem({**self._quantities, **quantities}, self.coordinates, self.time)

    def quantity(self, expr: sp.Expr | str) -> Quantity:
        """The :class:`Quantity` of a symbol, function or name."""
        name = expr if isinstance(expr, str) else _name(expr)
        if name in self._quantities:
            return self._quantities[name]
        raise DimensionError(
            f"unknown quantity {name!r}: no dimension given for it; known quantities are "
            f"{sorted(self._quantities)}"
        )

    def is_positive(self, expr: sp.Expr) -> bool:
        """Whether ``expr`` (a symbol or undifferentiated function) is a positive quantity."""
        return self.quantity(expr).positive

    def of(self, expr: sp.Expr) -> Dimension:
        """Dimension of a sympy expression of the known quantities.

        Raises
        ------
        DimensionError
            Naming the unknown symbol, or the two terms of a sum with different dimensions,
            or a non-numeric power of a dimensional quantity.
        """
        return self._of(sp.sympify(expr))

    def _of(self, expr: sp.Expr) -> Dimension:
        if isinstance(expr, sp.Eq):
            left, right = self._of(expr.lhs), self._of(expr.rhs)
            if left != right:
                raise DimensionError(f"{expr.lhs} is [{left}] but {expr.rhs} is [{right}]")
            return left
        if expr.is_number:
            return DIMENSIONLESS
        if isinstance(expr, sp.Symbol):
            return self._symbol(expr)
        if isinstance(expr, AppliedUndef):
            return self.quantity(expr).dimension
        if isinstance(expr, sp.Derivative):
            dim = self._of(expr.expr)
            for variable, count in expr.variable_count:
                dim = dim / self._symbol(variable) ** int(count)
            return dim
        if isinstance(expr, sp.Mul):
            dim = DIMENSIONLESS
            for factor in expr.args:
                dim = dim * self._of(factor)
            return dim
        if isinstance(expr, sp.Pow):
            base = self._of(expr.base)
            if expr.exp.is_Rational:
                return base ** Fraction(int(expr.exp.p), int(expr.exp.q))
            if base.is_dimensionless and self._of(expr.exp).is_dimensionless:
                return DIMENSIONLESS
            raise DimensionError(f"{expr}: power {expr.exp} of a quantity of dimension [{base}]")
        if isinstance(expr, sp.Add):
            terms = expr.args
            dims = [self._of(term) for term in terms]
            for term, dim in zip(terms[1:], dims[1:], strict=True):
                if dim != dims[0]:
                    raise DimensionError(
                        f"sum mixes dimensions: {terms[0]} is [{dims[0]}] but {term} is [{dim}]"
                    )
            return dims[0]
        if isinstance(expr, sp.Abs):
            return self._of(expr.args[0])
        if isinstance(expr, Expectation):
            return self._of(expr.args[0])
        if isinstance(expr, sp.Function) and expr.args:
            for arg in expr.args:
                dim = self._of(arg)
                if not dim.is_dimensionless:
                    raise DimensionError(f"{expr}: argument {arg} is [{dim}], not dimensionless")
            return DIMENSIONLESS
        raise DimensionError(f"cannot give a dimension to {expr!r} ({type(expr).__name__})")

    def _symbol(self, symbol: sp.Symbol) -> Dimension:
        name = str(symbol)
        if name in self.coordinates:
            return LENGTH
        if name == self.time:
            return TIME
        if name in self._quantities:
            return self._quantities[name].dimension
        if getattr(symbol, "trainable", None) is not None:  # generator.TrainableScalar
            return DIMENSIONLESS
        raise DimensionError(
            f"unknown symbol {name!r}: give its dimension (e.g. constants={{{name!r}: ...}})"
        )


def _name(expr: sp.Expr) -> str:
    if isinstance(expr, AppliedUndef):
        return expr.func.__name__
    if isinstance(expr, sp.Symbol):
        return expr.name
    raise DimensionError(f"{expr} is not a symbol or an undefined function")
