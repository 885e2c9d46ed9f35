"""Exact reduction of expectations of normalised errors to the PKF parameters.

For normalised errors eps_f (E[eps]=0, E[eps^2]=1) the expectation of a product of two
derivatives, E[d^a eps_f d^b eps_h], is reduced with the product rule
E[d^a e d^b e'] = d_i E[d^(a-i) e d^b e'] - E[d^(a-i) e d^(b+i) e'] down to terms
E[eps_f d^c eps_h].  For one field these are 1, 0, -g_ij for |c| = 0, 1, 2; every odd order
follows from the lower orders by the symmetry E[d^c eps eps] = E[eps d^c eps]
(|c| = 3 gives E[eps d_kij eps] = -(d_i g_kj + d_j g_ik + d_k g_ij)/2); even orders >= 4 are
unclosed.  For two fields E[eps_f eps_h] = V_fh/sqrt(V_f V_h) and E[eps_f d^c eps_h], |c| >= 1,
are unclosed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from math import comb, prod

import sympy as sp

from pkf.expectation import Expectation
from pkf.naming import FieldSymbols, NameRegistry, multi_index_label

__all__ = ["ExpectationReducer", "UnclosedTerm", "binomial", "sub_indices"]

MultiIndex = tuple[int, ...]


def binomial(alpha: MultiIndex, beta: MultiIndex) -> int:
    """Multi-index binomial coefficient prod_i C(alpha_i, beta_i)."""
    return prod(comb(a, b) for a, b in zip(alpha, beta, strict=True))


@cache
def sub_indices(alpha: MultiIndex) -> tuple[MultiIndex, ...]:
    """All multi-indices beta <= alpha (componentwise), in lexicographic order."""
    if not alpha:
        return ((),)
    tails = sub_indices(alpha[1:])
    return tuple((b,) + tail for b in range(alpha[0] + 1) for tail in tails)


def _unit(n: int, axis: int) -> MultiIndex:
    return tuple(int(i == axis) for i in range(n))


def _add(alpha: MultiIndex, beta: MultiIndex) -> MultiIndex:
    return tuple(a + b for a, b in zip(alpha, beta, strict=True))


def _sub(alpha: MultiIndex, beta: MultiIndex) -> MultiIndex:
    return tuple(a - b for a, b in zip(alpha, beta, strict=True))


def _axes(alpha: MultiIndex) -> list[int]:
    """Axis list of a multi-index: (1, 2) -> [0, 1, 1]."""
    return [axis for axis, count in enumerate(alpha) for _ in range(count)]


@dataclass(frozen=True)
class UnclosedTerm:
    """An expectation the identities cannot reduce: E[eps_f d^c eps_h].

    ``placeholder`` is the function of (t, x, ...) standing for it during the derivation;
    its name (e.g. ``closure_u_x4``) is the closure-slot name given to the generator.
    """

    first: int
    second: int
    orders: MultiIndex
    expectation: sp.Expr
    placeholder: sp.Expr

    @property
    def sort_key(self) -> tuple:
        return (self.first, self.second, sum(self.orders), tuple(-o for o in self.orders))


class ExpectationReducer:
    """Reduce expectations of products of error derivatives to V, V_fh, g and unclosed terms.

    Parameters
    ----------
    fields : sequence of FieldSymbols
        The prognostic fields, in order (this order decides which field of a pair carries
        the derivatives in the unclosed cross terms).
    coordinates : sequence of sympy.Symbol
        Spatial coordinates.
    covariances : mapping (i, j) -> sympy.Expr, i < j
        Cross-covariance functions V_fh.
    registry : NameRegistry
        Where the closure-slot names are claimed.

    Examples
    --------
    >>> from pkf.naming import build_field_symbols
    >>> t, x = sp.symbols("t x")
    >>> u = build_field_symbols("u", sp.Function("u")(t, x), (t, x), (x,), NameRegistry())
    >>> r = ExpectationReducer([u], (x,), {}, NameRegistry())
    >>> r.product(0, (1,), 0, (1,))
    g_u_xx(t, x)
    """

    def __init__(
        self,
        fields: Sequence[FieldSymbols],
        coordinates: Sequence[sp.Symbol],
        covariances: Mapping[tuple[int, int], sp.Expr],
        registry: NameRegistry,
    ) -> None:
        self.fields = list(fields)
        self.coordinates = tuple(coordinates)
        self.covariances = dict(covariances)
        self._registry = registry
        self._coord_names = [str(c) for c in self.coordinates]
        self._unclosed: dict[tuple[int, int, MultiIndex], UnclosedTerm] = {}
        self._cache: dict[tuple, sp.Expr] = {}
        self._epsilon_index = {f.epsilon.func: i for i, f in enumerate(self.fields)}

    @property
    def unclosed(self) -> list[UnclosedTerm]:
        """Unclosed terms met so far, in a stable order."""
        return sorted(self._unclosed.values(), key=lambda term: term.sort_key)

    def derivative(self, expr: sp.Expr, alpha: MultiIndex) -> sp.Expr:
        """Spatial derivative d^alpha of ``expr``."""
        if not any(alpha):
            return expr
        return sp.diff(expr, *(self.coordinates[a] for a in _axes(alpha)))

    def product(self, f: int, alpha: MultiIndex, h: int, beta: MultiIndex) -> sp.Expr:
        """E[d^alpha eps_f  d^beta eps_h] in terms of the parameters (cached)."""
        if f > h or (f == h and (sum(alpha), alpha) > (sum(beta), beta)):
            f, alpha, h, beta = h, beta, f, alpha
        key = (f, alpha, h, beta)
        if key not in self._cache:
            self._cache[key] = self._product(f, alpha, h, beta)
        return self._cache[key]

    def _product(self, f: int, alpha: MultiIndex, h: int, beta: MultiIndex) -> sp.Expr:
        if not any(alpha):
            return self._base(f, h, beta)
        axis = next(i for i, a in enumerate(alpha) if a)
        unit = _unit(len(alpha), axis)
        lower = _sub(alpha, unit)
        moved = self.derivative(self.product(f, lower, h, beta), unit)
        return moved - self.product(f, lower, h, _add(beta, unit))

    def _base(self, f: int, h: int, c: MultiIndex) -> sp.Expr:
        """E[eps_f d^c eps_h]."""
        order = sum(c)
        if f != h:
            if order == 0:
                cov = self.covariances[(f, h)]
                return cov / (sp.sqrt(self.fields[f].variance) * sp.sqrt(self.fields[h].variance))
            return self._placeholder(f, h, c)
        if order == 0:
            return sp.S.One
        if order == 1:
            return sp.S.Zero
        if order == 2:
            i, j = _axes(c)
            return -self.fields[f].metric[i, j]
        if order % 2 == 0:
            return self._placeholder(f, h, c)
        # odd order: E[d^c eps eps] = sum_b C(c,b) (-1)^|b| d^(c-b) E[eps d^b eps]
        total = sp.S.Zero
        for b in sub_indices(c):
            if b != c:
                term = self.derivative(self.product(f, (0,) * len(c), f, b), _sub(c, b))
                total += binomial(c, b) * (-1) ** sum(b) * term
        return total / 2

    def _placeholder(self, f: int, h: int, c: MultiIndex) -> sp.Expr:
        key = (f, h, c)
        if key not in self._unclosed:
            label = multi_index_label(self._coord_names, c)
            first, second = self.fields[f], self.fields[h]
            pair = first.name if f == h else f"{first.name}_{second.name}"
            name = self._registry.claim(f"closure_{pair}_{label}")
            placeholder = sp.Function(name)(*first.mean.args)
            derivative = self.derivative(second.epsilon, c)
            self._unclosed[key] = UnclosedTerm(
                f, h, c, Expectation(first.epsilon * derivative), placeholder
            )
        return self._unclosed[key].placeholder

    def reduce(self, expr: sp.Expr) -> sp.Expr:
        """Replace every Expectation in ``expr`` by its reduced form.

        Handles expectations of one or two (derivatives of) normalised errors; unclosed
        results are returned as Expectation objects.

        Raises
        ------
        ValueError
            If an expectation involves more than two random factors or an unknown one.
        """
        replaced = expr.replace(
            lambda e: isinstance(e, Expectation), lambda e: self._reduce_one(e.args[0])
        )
        back = {u.placeholder: u.expectation for u in self._unclosed.values()}
        return sp.expand(replaced.xreplace(back))

    def _reduce_one(self, arg: sp.Expr) -> sp.Expr:
        factors: list[tuple[int, MultiIndex]] = []
        for base, exponent in arg.as_powers_dict().items():
            if not (exponent.is_Integer and exponent > 0):
                raise ValueError(f"cannot reduce E[{arg}]: power {exponent} of {base}")
            factors.extend([self._error_factor(base, arg)] * int(exponent))
        if len(factors) == 1:
            return sp.S.Zero
        if len(factors) != 2:
            raise ValueError(f"cannot reduce E[{arg}]: only products of two errors are known")
        (f, alpha), (h, beta) = factors
        return self.product(f, alpha, h, beta)

    def _error_factor(self, factor: sp.Expr, arg: sp.Expr) -> tuple[int, MultiIndex]:
        base = factor.expr if isinstance(factor, sp.Derivative) else factor
        if base.func not in self._epsilon_index:
            raise ValueError(f"cannot reduce E[{arg}]: {factor} is not a normalised error")
        alpha = [0] * len(self.coordinates)
        if isinstance(factor, sp.Derivative):
            for var, count in factor.variable_count:
                if var not in self.coordinates:
                    raise ValueError(f"cannot reduce E[{arg}]: derivative in {var}")
                alpha[self.coordinates.index(var)] += int(count)
        return self._epsilon_index[base.func], tuple(alpha)
