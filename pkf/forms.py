"""Conversion between the metric (g), aspect (s = g^-1) and diffusion (nu = g^-1 / 2) forms.

A tensor trend converts by d_t s = -s (d_t g) s and d_t nu = -2 nu (d_t g) nu; a tensor and its
derivatives convert by g = s^-1 and d_i g = -g (d_i s) g.  In 2D/3D the inverse is written
adj(Y)/det(Y) with det(Y) kept as a placeholder symbol D, and every numerator is reduced
modulo det(Y) (lexicographic division by its leading monomial), so that the results are
canonical sums of polynomial / det(Y)^n terms with the smallest powers of det(Y).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable
from functools import cache
from typing import Literal

import sympy as sp

from pkf.naming import FieldSymbols, NameRegistry

__all__ = ["FORMS", "DeterminantDivision", "PKFForm", "TensorForm", "field_forms", "relation"]

PKFForm = Literal["metric", "aspect", "diffusion"]
"""Which tensor parametrises the correlations: metric g, aspect s = g^-1 or diffusion nu = s/2."""
FORMS: tuple[PKFForm, ...] = ("metric", "aspect", "diffusion")


def relation(source: PKFForm, target: PKFForm) -> tuple[Literal["inverse", "scale"], sp.Rational]:
    """How a tensor of ``source`` form is written with the ``target`` tensor Y.

    Returns ``("inverse", a)`` for X = a Y^-1 or ``("scale", a)`` for X = a Y.

    Examples
    --------
    >>> relation("metric", "diffusion")
    ('inverse', 1/2)
    >>> relation("aspect", "diffusion")
    ('scale', 2)
    """
    for form in (source, target):
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")
    to_aspect = {"aspect": sp.S.One, "diffusion": sp.Rational(2)}
    if source == target:
        return "scale", sp.S.One
    if "metric" in (source, target):
        other = target if source == "metric" else source
        # g = (c Y)^-1 with s = c Y, or (c X) = g^-1  =>  X = (1/c) g^-1
        return "inverse", 1 / to_aspect[other]
    return "scale", to_aspect[target] / to_aspect[source]


class TensorForm:
    """One field's tensor in one form, with the machinery to rewrite other forms into it.

    Parameters
    ----------
    field : FieldSymbols
        The field.
    form : PKFForm
        'metric', 'aspect' or 'diffusion'.
    coordinates : sequence of sympy.Symbol
        Spatial coordinates.
    registry : NameRegistry
        Where the names of the internal inverse placeholders are claimed.

    Examples
    --------
    >>> from pkf.naming import build_field_symbols
    >>> t, x = sp.symbols("t x")
    >>> u = build_field_symbols("u", sp.Function("u")(t, x), (t, x), (x,), NameRegistry())
    >>> nu = TensorForm(u, "diffusion", (x,), NameRegistry())
    >>> nu.rewrite(u.metric[0, 0], "metric")
    1/(2*nu_u_xx(t, x))
    """

    def __init__(
        self,
        field: FieldSymbols,
        form: PKFForm,
        coordinates: Iterable[sp.Symbol],
        registry: NameRegistry,
    ) -> None:
        self.field = field
        self.form = form
        self.coordinates = tuple(coordinates)
        self.matrix: sp.Matrix = field.tensor(form)
        self.n = self.matrix.shape[0]
        self.division = DeterminantDivision(self.matrix, f"{field.name}_{form}")
        self.det_symbol = self.division.det_symbol
        args = field.mean.args
        if self.n == 1:
            self.inverse = sp.Matrix([[1 / self.matrix[0, 0]]])
            self._inverse_values: dict[sp.Expr, sp.Expr] = {}
        else:
            entries = {}
            for i in range(self.n):
                for j in range(i, self.n):
                    name = registry.claim(f"inv_{field.tensor_names[form][(i, j)]}")
                    entries[(i, j)] = entries[(j, i)] = sp.Function(name)(*args)
            self.inverse = sp.Matrix(self.n, self.n, lambda i, j: entries[(i, j)])
            adjugate = self.matrix.adjugate()
            self._inverse_values = {
                entries[(i, j)]: sp.expand(adjugate[i, j]) / self.det_symbol
                for i in range(self.n)
                for j in range(i, self.n)
            }
        self._inverse_derivative = cache(self._inverse_derivative_uncached)

    # -- rewriting other forms ------------------------------------------------------------
    def rewrite(self, expr: sp.Expr, source: PKFForm) -> sp.Expr:
        """Rewrite the ``source``-form tensor of this field in ``expr`` with this form."""
        kind, factor = relation(source, self.form)
        if source == self.form:
            return expr
        substituted = expr.xreplace(self.substitution(expr, source, kind, factor))
        return self.substitute_determinant(self.expand_inverses(substituted))

    def substitution(
        self,
        expr: sp.Expr,
        source: PKFForm,
        kind: Literal["inverse", "scale"],
        factor: sp.Expr,
    ) -> dict[sp.Expr, sp.Expr]:
        """Map of the source tensor's entries and their derivatives in ``expr`` (before
        :meth:`expand_inverses`, i.e. with inverse placeholders)."""
        source_matrix = self.field.tensor(source)
        index = {source_matrix[i, j]: (i, j) for i in range(self.n) for j in range(i, self.n)}
        mapping: dict[sp.Expr, sp.Expr] = {}
        for atom in expr.atoms(sp.Derivative, sp.core.function.AppliedUndef):
            base = atom.expr if isinstance(atom, sp.Derivative) else atom
            if base not in index:
                continue
            i, j = index[base]
            alpha = self._multi_index(atom)
            if kind == "inverse":
                mapping[atom] = factor * self._inverse_derivative(i, j, alpha)
            else:
                mapping[atom] = factor * self._derivative(self.matrix[i, j], alpha)
        return mapping

    def tensor_trend(self, metric_trend: sp.Matrix) -> sp.Matrix:
        """d_t Y from d_t g (before :meth:`expand_inverses`): -(1/b) Y (d_t g) Y with Y = b g^-1."""
        if self.form == "metric":
            return metric_trend
        _, b = relation("metric", self.form)
        return -(1 / b) * self.matrix * metric_trend * self.matrix

    def _multi_index(self, atom: sp.Expr) -> tuple[int, ...]:
        alpha = [0] * len(self.coordinates)
        if isinstance(atom, sp.Derivative):
            for var, count in atom.variable_count:
                alpha[self.coordinates.index(var)] += int(count)
        return tuple(alpha)

    def _derivative(self, expr: sp.Expr, alpha: tuple[int, ...]) -> sp.Expr:
        variables = [self.coordinates[a] for a, k in enumerate(alpha) for _ in range(k)]
        return sp.diff(expr, *variables) if variables else expr

    def _inverse_derivative_uncached(self, i: int, j: int, alpha: tuple[int, ...]) -> sp.Expr:
        """d^alpha (Y^-1)_ij written with the inverse entries W and derivatives of Y."""
        if not any(alpha):
            return self.inverse[i, j]
        axis = next(a for a, k in enumerate(alpha) if k)
        lower = tuple(k - (a == axis) for a, k in enumerate(alpha))
        previous = self._inverse_derivative(min(i, j), max(i, j), lower)
        x = self.coordinates[axis]
        if self.n == 1:
            return sp.expand(sp.diff(previous, x))
        d_inverse = -self.inverse * sp.diff(self.matrix, x) * self.inverse
        first = {sp.Derivative(self.inverse[k, m], x): d_inverse[k, m] for k, m in self._upper()}
        return sp.expand(sp.diff(previous, x).xreplace(first))

    def _upper(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(self.n) for j in range(i, self.n)]

    # -- canonical form modulo det ----------------------------------------------------------
    def expand_inverses(self, expr: sp.Expr) -> sp.Expr:
        """Replace the inverse placeholders by adj(Y)/D, expand and reduce modulo det(Y)."""
        if self.n == 1:
            return sp.expand(expr)
        return self.reduce_modulo_determinant(sp.expand(expr.xreplace(self._inverse_values)))

    def substitute_determinant(self, expr: sp.Expr) -> sp.Expr:
        """Replace the determinant placeholder D by det(Y)."""
        return self.division.substitute_determinant(expr)

    def reduce_modulo_determinant(self, expr: sp.Expr) -> sp.Expr:
        """Write ``expr`` (expanded, with D) as sum_n r_n / D^n, r_n reduced modulo det."""
        return self.division.reduce_modulo_determinant(expr)


class DeterminantDivision:
    """Canonical sums of polynomial / det(Y)^n terms for a symmetric matrix Y.

    ``det_symbol`` stands for det(Y) while expressions are built; :meth:`reduce` divides
    every numerator by det(Y) (lexicographic order of the upper entries of Y) so that each
    remainder is unique and powers of det(Y) are as small as possible.

    Examples
    --------
    >>> a, b, c = sp.symbols("a b c")
    >>> division = DeterminantDivision(sp.Matrix([[a, b], [b, c]]), "s")
    >>> D = division.det_symbol
    >>> reduced = division.reduce_modulo_determinant(sp.expand((a * c - b**2 + a) / D**2))
    >>> division.substitute_determinant(reduced)
    a/(a*c - b**2)**2 + 1/(a*c - b**2)
    """

    def __init__(self, matrix: sp.Matrix, label: str) -> None:
        self.matrix = matrix
        self.n = matrix.shape[0]
        self.det_symbol = sp.Dummy(f"det_{label}")
        self.components = [matrix[i, j] for i in range(self.n) for j in range(i, self.n)]
        self.determinant = sp.expand(matrix.det()) if self.n > 1 else matrix[0, 0]
        poly = sp.Poly(self.determinant, *self.components)
        terms = sorted(poly.terms(), reverse=True)
        (self._leading, leading_coeff), self._tail = terms[0], terms[1:]
        if leading_coeff != 1:  # pragma: no cover - determinants have a unit leading term
            raise ValueError(f"unexpected determinant {self.determinant}")

    def substitute_determinant(self, expr: sp.Expr) -> sp.Expr:
        """Replace the determinant placeholder D by det(Y)."""
        if self.n == 1:
            return expr
        return expr.xreplace({self.det_symbol: self.determinant})

    def reduce_modulo_determinant(self, expr: sp.Expr) -> sp.Expr:
        """Write ``expr`` (expanded, with D) as sum_n r_n / D^n, r_n reduced modulo det."""
        if self.n == 1 or not expr.has(self.det_symbol):
            return expr
        comps = {c: k for k, c in enumerate(self.components)}
        levels: dict[int, dict[tuple[int, ...], list[sp.Expr]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for term in sp.Add.make_args(expr):
            mono = [0] * len(self.components)
            coeff: list[sp.Expr] = []
            level = 0
            for base, exponent in term.as_powers_dict().items():
                if base == self.det_symbol and exponent.is_Integer:
                    level = -int(exponent)
                elif base in comps and exponent.is_Integer and exponent > 0:
                    mono[comps[base]] = int(exponent)
                else:
                    coeff.append(base**exponent)
            if level < 0:
                coeff.append(self.det_symbol ** (-level))
                level = 0
            levels[level][tuple(mono)].append(sp.Mul(*coeff))
        result: list[sp.Expr] = []
        for level in range(max(levels, default=0), -1, -1):
            for exponents, coeff in self._divide(levels, level):
                monomial = sp.Mul(*(c**k for c, k in zip(self.components, exponents, strict=True)))
                scale = self.det_symbol ** (-level)
                result.extend(t * scale for t in sp.Add.make_args(sp.expand(coeff * monomial)))
        return sp.Add(*result)

    def _divide(self, levels, level: int) -> list[tuple[tuple[int, ...], sp.Expr]]:
        """Divide the numerator of level ``level`` by det; quotients go one level down."""
        bucket = levels[level]
        heap = [tuple(-k for k in mono) for mono in bucket]
        heapq.heapify(heap)
        seen = set(bucket)
        remainder = []
        while heap:
            mono = tuple(-k for k in heapq.heappop(heap))
            coeff = sp.expand(sp.Add(*bucket[mono]))
            if coeff == 0:
                continue
            quotient = tuple(m - k for m, k in zip(mono, self._leading, strict=True))
            if level == 0 or min(quotient) < 0:
                remainder.append((mono, coeff))
                continue
            levels[level - 1][quotient].append(coeff)
            for tail_mono, tail_coeff in self._tail:
                target = tuple(q + k for q, k in zip(quotient, tail_mono, strict=True))
                bucket[target].append(-tail_coeff * coeff)
                if target not in seen:
                    seen.add(target)
                    heapq.heappush(heap, tuple(-k for k in target))
        return remainder


def field_forms(
    fields: Iterable[FieldSymbols], coordinates: Iterable[sp.Symbol], registry: NameRegistry
) -> dict[PKFForm, dict[str, TensorForm]]:
    """TensorForm objects for every field and form: ``result[form][field.name]``."""
    coordinates = tuple(coordinates)
    fields = list(fields)
    return {
        form: {f.name: TensorForm(f, form, coordinates, registry) for f in fields} for form in FORMS
    }
