"""Symbolic derivation of the parametric Kalman filter (PKF) dynamics of a sympy system.

From ``d_t u = F(u, d u, ...)`` it derives the second-order mean equations, the variance,
cross-covariance and metric-tensor trends (then the aspect and diffusion forms), reduces all
expectations exactly (:mod:`pkf.identities`) and hands the result to the code generator with
the unclosed terms as closure slots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from typing import Literal

import sympy as sp
from sympy.core.function import AppliedUndef

from generator.analysis import PDESystem, python_identifier
from pkf.forms import FORMS, PKFForm, TensorForm, field_forms, relation
from pkf.identities import ExpectationReducer, binomial, sub_indices
from pkf.naming import FieldSymbols, NameRegistry, build_field_symbols
from pkf.quasi_gaussian import QuasiGaussianClosure, quasi_gaussian_closure

__all__ = ["MAX_DIMENSION", "ClosureHandling", "SymbolicPKF"]

#: Most spatial coordinates a PKF system may have (the PKF is derived in 1D, 2D and 3D).
MAX_DIMENSION = 3

ClosureHandling = Literal["slot", "zero"]
"""What :meth:`SymbolicPKF.to_generator` makes of an unclosed term without a closure: an
exogenous function (a slot for a closure model) or zero."""

MultiIndex = tuple[int, ...]
Atom = tuple[int, MultiIndex]  # (field index, derivative multi-index)


@dataclass(frozen=True)
class _Trend:
    """One derived equation: d_t lhs = rhs (rhs uses closure placeholders)."""

    kind: str  # 'mean', 'variance', 'covariance' or 'tensor'
    lhs: sp.Expr
    rhs: sp.Expr
    field: int = -1
    component: tuple[int, int] = (0, 0)


class SymbolicPKF:
    """Parametric Kalman filter dynamics of a system ``d_t u = F(u, d_x u, ...)``.

    Parameters
    ----------
    equations : sympy.Eq or iterable of sympy.Eq
        ``Eq(Derivative(u(t, x, ...), t), rhs)`` for each prognostic field; the time
        variable is the symbol differentiated on the left-hand side (any name, any argument
        position), the other arguments are the 1 to 3 spatial coordinates (see
        :data:`MAX_DIMENSION`).  Functions without the time argument are constant fields,
        free symbols are constants.  An object with an ``equations`` attribute (e.g. a
        generator system) is accepted too.

    Raises
    ------
    ValueError
        One line naming the equation (counted from 1 in the order given): the system is
        first analysed by :meth:`generator.analysis.PDESystem.from_equations` (its errors
        come unchanged), then refused if an equation is diagnostic (no time derivative on
        the left), if the prognostic fields do not all have the same arguments in the same
        order, or if there are fewer than 1 or more than 3 spatial coordinates.

    Notes
    -----
    The result does not depend on the order of the equations: the fields are taken in the
    sorted order of their names (Python string order, so ``"A" < "B" < "a"``).
    :attr:`fields`, the cross-covariances ``V_AB`` (named with ``A < B``), the unclosed cross
    terms ``E[eps_A d^c eps_B]`` (derivatives on the later field ``B``), :attr:`unclosed_terms`
    and the derived equations (means, then variances, cross-covariances and tensors, each
    group in field order) all follow this order.

    Examples
    --------
    >>> t, x, kappa = sp.symbols("t x kappa")
    >>> u = sp.Function("u")(t, x)
    >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    >>> pkf.in_diffusion[0].rhs
    kappa*Derivative(u(t, x), (x, 2)) - u(t, x)*Derivative(u(t, x), x) - Derivative(V_u(t, x), x)/2
    >>> pkf.unclosed_terms
    [Expectation(eps_u(t, x)*Derivative(eps_u(t, x), (x, 4)))]
    """

    def __init__(self, equations: sp.Eq | Iterable[sp.Eq]) -> None:
        self._parse(_as_equation_list(equations))
        self._closures: dict[sp.Expr, sp.Expr] = {}
        self._cov_cache: dict[tuple, sp.Expr] = {}
        self._sqrt_cache: dict[tuple[int, MultiIndex], sp.Expr] = {}
        self._form_cache: dict[PKFForm, list[tuple[sp.Expr, sp.Expr]]] = {}

    # -- parsing ---------------------------------------------------------------------------
    def _parse(self, equations: list[sp.Eq]) -> None:
        """Validate the system (generator analysis, then the PKF's own requirements) and set
        up the fields in sorted name order."""
        system = PDESystem.from_equations(equations)
        for k, eq in enumerate(equations, 1):
            if not isinstance(eq.lhs, sp.Derivative):
                raise ValueError(
                    f"equation {k}: {eq} is a diagnostic equation; the PKF needs one evolution "
                    f"equation Eq(Derivative(f({system.time}, ...), {system.time}), rhs) per "
                    f"field: substitute {eq.lhs} into the other equations"
                )
        means = [eq.lhs.expr for eq in equations]
        self._args = means[0].args
        for k, mean in enumerate(means, 1):
            if mean.args != self._args:
                raise ValueError(
                    f"equation {k}: {mean} has arguments {mean.args}, equation 1 has "
                    f"{self._args}; give every prognostic field the same arguments, in the "
                    "same order"
                )
        self.time: sp.Symbol = system.time
        self.coordinates: tuple[sp.Symbol, ...] = tuple(a for a in self._args if a != self.time)
        if not 1 <= len(self.coordinates) <= MAX_DIMENSION:
            raise ValueError(
                f"equation 1: {means[0]} has {len(self.coordinates)} spatial coordinates "
                f"({', '.join(map(str, self.coordinates)) or 'none'}); the PKF is derived in "
                f"1 to {MAX_DIMENSION} dimensions: give the fields 1 to {MAX_DIMENSION} "
                "coordinates besides the time"
            )
        order = sorted(range(len(equations)), key=lambda k: means[k].func.__name__)
        self._equations = [equations[k] for k in order]
        self._numbers = [k + 1 for k in order]  # 1-based position in the user's list
        means = [means[k] for k in order]
        names = [m.func.__name__ for m in means]
        self._index = {m.func: k for k, m in enumerate(means)}
        for eq, number in zip(self._equations, self._numbers, strict=True):
            for f in eq.rhs.atoms(AppliedUndef):
                if f.func in self._index and f.args != self._args:
                    raise ValueError(
                        f"equation {number}: {f} must be written with the arguments of its "
                        f"equation, {f.func(*self._args)}"
                    )
        taken = set(names)
        for eq in self._equations:
            taken |= {f.func.__name__ for f in eq.atoms(AppliedUndef)}
            taken |= {str(s) for s in eq.free_symbols}
        self._registry = NameRegistry(taken)
        self._field_list = [
            build_field_symbols(
                python_identifier(n), m, self._args, self.coordinates, self._registry
            )
            for n, m in zip(names, means, strict=True)
        ]
        self._names = names
        self.fields: dict[str, FieldSymbols] = dict(zip(names, self._field_list, strict=True))
        self._covariances = {
            (i, j): sp.Function(
                self._registry.claim(f"V_{self._field_list[i].name}{self._field_list[j].name}")
            )(*self._args)
            for i, j in combinations(range(len(names)), 2)
        }
        self._reducer = ExpectationReducer(
            self._field_list, self.coordinates, self._covariances, self._registry
        )
        self._forms: dict[PKFForm, dict[str, TensorForm]] = field_forms(
            self._field_list, self.coordinates, self._registry
        )

    # -- public API ------------------------------------------------------------------------
    def covariance(self, first: str, second: str) -> sp.Expr:
        """The cross-covariance field V_fh of two distinct prognostic fields.

        Examples
        --------
        >>> t, x = sp.symbols("t x")
        >>> u, v = sp.Function("u")(t, x), sp.Function("v")(t, x)
        >>> SymbolicPKF([sp.Eq(u.diff(t), v), sp.Eq(v.diff(t), -u)]).covariance("v", "u")
        V_uv(t, x)
        """
        for name in (first, second):
            if name not in self.fields:
                raise ValueError(f"{name!r} is not a prognostic field; fields: {self._names}")
        i, j = sorted((self._names.index(first), self._names.index(second)))
        if i == j:
            raise ValueError(f"covariance of {first!r} with itself is its variance")
        return self._covariances[(i, j)]

    def reduce_expectations(self, expr: sp.Expr) -> sp.Expr:
        """Reduce the expectations of normalised errors in ``expr`` with the identities.

        Examples
        --------
        >>> t, x = sp.symbols("t x")
        >>> u = sp.Function("u")(t, x)
        >>> from pkf.expectation import Expectation
        >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), 0))
        >>> eps = pkf.fields["u"].epsilon
        >>> pkf.reduce_expectations(Expectation(eps.diff(x) ** 2))
        g_u_xx(t, x)
        """
        return self._reducer.reduce(expr)

    @cached_property
    def in_metric(self) -> list[sp.Eq]:
        """PKF dynamics with the metric tensor g (means, variances, covariances, g_ij)."""
        return self._expectation_equations("metric")

    @cached_property
    def in_aspect(self) -> list[sp.Eq]:
        """PKF dynamics with the aspect tensor s = g^-1."""
        return self._expectation_equations("aspect")

    @cached_property
    def in_diffusion(self) -> list[sp.Eq]:
        """PKF dynamics with the diffusion tensor nu = g^-1 / 2."""
        return self._expectation_equations("diffusion")

    @cached_property
    def unclosed_terms(self) -> list[sp.Expr]:
        """The expectations left after reduction, ordered and without duplicates."""
        present = set().union(*(t.rhs.atoms(AppliedUndef) for t in self._metric_system))
        return [u.expectation for u in self._reducer.unclosed if u.placeholder in present]

    @property
    def closure_slots(self) -> dict[sp.Expr, sp.Expr]:
        """Unclosed term -> the exogenous function ``closure_..(t, x, ...)`` standing for it."""
        terms = self.unclosed_terms
        slots = {u.expectation: u.placeholder for u in self._reducer.unclosed}
        return {term: slots[term] for term in terms}

    def set_closure(self, closures: Mapping[sp.Expr, sp.Expr]) -> None:
        """Close unclosed terms; each expression may use the metric, aspect or diffusion form.

        Examples
        --------
        >>> t, x, kappa = sp.symbols("t x kappa")
        >>> u = sp.Function("u")(t, x)
        >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2)))
        >>> nu = pkf.fields["u"].diffusion[0, 0]
        >>> pkf.set_closure({pkf.unclosed_terms[0]: 3 / (4 * nu**2)})
        """
        slots = self.closure_slots
        for term, expr in closures.items():
            if term not in slots:
                raise ValueError(
                    f"set_closure: {term} is not an unclosed term of this system; "
                    f"unclosed terms: {self.unclosed_terms}"
                )
            try:  # strict: text is never evaluated as code
                self._closures[slots[term]] = sp.sympify(expr, strict=True)
            except sp.SympifyError:
                raise ValueError(
                    f"set_closure: the closure of {term} is {type(expr).__name__} {expr!r}; give "
                    "a sympy expression or a number (text is not parsed)"
                ) from None

    def quasi_gaussian_closure(self, term: sp.Expr, prefix: str = "a") -> QuasiGaussianClosure:
        """Quasi-Gaussian proposal (aspect form) for an unclosed term E[eps_u d^alpha eps_u].

        Examples
        --------
        >>> t, x, kappa = sp.symbols("t x kappa")
        >>> u = sp.Function("u")(t, x)
        >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2)))
        >>> pkf.quasi_gaussian_closure(pkf.unclosed_terms[0]).coefficients
        (a_0, a_1, a_2)
        """
        for unclosed in self._reducer.unclosed:
            if unclosed.expectation == term:
                if unclosed.first != unclosed.second:
                    raise ValueError(f"no quasi-Gaussian proposal for the cross term {term}")
                aspect = self._field_list[unclosed.first].aspect
                return quasi_gaussian_closure(aspect, self.coordinates, unclosed.orders, prefix)
        raise ValueError(f"{term} is not an unclosed term of this system")

    def to_generator(
        self, form: PKFForm = "diffusion", closure: ClosureHandling = "slot"
    ) -> list[sp.Eq]:
        """Equations ``Eq(Derivative(f(t, x), t), rhs)`` ready for the code generator.

        Parameters
        ----------
        form : {'diffusion', 'aspect', 'metric'}
            Which tensor parametrises the correlations.
        closure : {'slot', 'zero'}
            What becomes of the unclosed terms without a closure (see :meth:`set_closure`):
            an exogenous function ``closure_u_x4(t, x)`` or zero.

        Examples
        --------
        >>> t, x, kappa = sp.symbols("t x kappa")
        >>> u = sp.Function("u")(t, x)
        >>> eqs = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2))).to_generator()
        >>> eqs[-1].rhs.has(sp.Function("closure_u_x4")(t, x))
        True
        """
        if closure not in ("slot", "zero"):
            raise ValueError(f"closure must be 'slot' or 'zero', not {closure!r}")
        system = self._form_system(form)
        replacement: dict[sp.Expr, sp.Expr] = {}
        for unclosed in self._reducer.unclosed:
            slot = unclosed.placeholder
            if slot in self._closures:
                replacement[slot] = self._closure_in_form(self._closures[slot], form)
            elif closure == "zero":
                replacement[slot] = sp.S.Zero
        equations = []
        for lhs, rhs in system:
            rhs = self._canonical_form(_replace_functions(rhs, replacement), form, substituted=True)
            lhs = sp.Derivative(lhs, self.time)
            equations.append(sp.Eq(lhs, self._with_determinants(rhs, form), evaluate=False))
        return equations

    # -- derivation ------------------------------------------------------------------------
    @cached_property
    def _linearised(self) -> list[tuple[sp.Expr, dict[Atom, sp.Expr], dict]]:
        """Per equation: the rhs, its first and second derivatives in the field atoms."""
        result = []
        symbols: dict[Atom, sp.Dummy] = {}
        for eq, number in zip(self._equations, self._numbers, strict=True):
            rhs = eq.rhs
            if any(not isinstance(d.expr, AppliedUndef) for d in rhs.atoms(sp.Derivative)):
                rhs = rhs.doit()
            atoms = self._field_atoms(rhs)
            for key in atoms.values():
                symbols.setdefault(key, sp.Dummy(f"z{key[0]}_{''.join(map(str, key[1]))}"))
            forward = {atom: symbols[key] for atom, key in atoms.items()}
            back = {symbols[key]: atom for atom, key in atoms.items()}
            rhs_z = rhs.xreplace(forward)
            stray = [f for f in rhs_z.atoms(AppliedUndef) if f.func in self._index]
            if stray:  # pragma: no cover - the generator's analysis refuses such arguments
                raise ValueError(f"equation {number}: cannot linearise around {stray[0]}")
            keys = sorted(set(atoms.values()))
            first, second = {}, {}
            for a, key_a in enumerate(keys):
                d_a = sp.diff(rhs_z, symbols[key_a])
                if d_a == 0:
                    continue
                first[key_a] = d_a.xreplace(back)
                for key_b in keys[a:]:
                    d_ab = sp.diff(d_a, symbols[key_b])
                    if d_ab != 0:
                        second[(key_a, key_b)] = d_ab.xreplace(back)
            result.append((rhs, first, second))
        return result

    def _field_atoms(self, rhs: sp.Expr) -> dict[sp.Expr, Atom]:
        """The prognostic fields and their derivatives in ``rhs`` (checked by _parse)."""
        atoms: dict[sp.Expr, Atom] = {}
        for d in rhs.atoms(sp.Derivative):
            if d.expr.func not in self._index:
                continue
            alpha = [0] * len(self.coordinates)
            for var, count in d.variable_count:
                alpha[self.coordinates.index(var)] += int(count)
            atoms[d] = (self._index[d.expr.func], tuple(alpha))
        for f in rhs.atoms(AppliedUndef):
            if f.func in self._index:
                atoms[f] = (self._index[f.func], (0,) * len(self.coordinates))
        return atoms

    def _sqrt_variance(self, f: int, alpha: MultiIndex) -> sp.Expr:
        key = (f, alpha)
        if key not in self._sqrt_cache:
            self._sqrt_cache[key] = self._reducer.derivative(
                sp.sqrt(self._field_list[f].variance), alpha
            )
        return self._sqrt_cache[key]

    def _cov(self, a: Atom, b: Atom) -> sp.Expr:
        """E[d^alpha e_f d^beta e_h] for the errors e = sqrt(V) eps."""
        if a > b:
            a, b = b, a
        if (a, b) not in self._cov_cache:
            (f, alpha), (h, beta) = a, b
            total = []
            for gamma in sub_indices(alpha):
                for delta in sub_indices(beta):
                    e = self._reducer.product(f, gamma, h, delta)
                    if e != 0:
                        weight = binomial(alpha, gamma) * binomial(beta, delta)
                        sqrt_f = self._sqrt_variance(f, _minus(alpha, gamma))
                        sqrt_h = self._sqrt_variance(h, _minus(beta, delta))
                        total.append(weight * sqrt_f * sqrt_h * e)
            self._cov_cache[(a, b)] = sp.Add(*total)
        return self._cov_cache[(a, b)]

    @cached_property
    def _metric_system(self) -> list[_Trend]:
        zero = (0,) * len(self.coordinates)
        trends: list[_Trend] = []
        variance_trends = []
        for f, (rhs, _, second) in enumerate(self._linearised):
            terms = [rhs]
            for (a, b), d2 in second.items():
                terms.append((d2 if a != b else d2 / 2) * self._cov(a, b))
            trends.append(_Trend("mean", self._field_list[f].mean, sp.expand(sp.Add(*terms)), f))
        for f, (_, first, _) in enumerate(self._linearised):
            v_dot = sp.expand(2 * sp.Add(*(d * self._cov(a, (f, zero)) for a, d in first.items())))
            variance_trends.append(v_dot)
            trends.append(_Trend("variance", self._field_list[f].variance, v_dot, f))
        for (f, h), cov in self._covariances.items():
            first_f, first_h = self._linearised[f][1], self._linearised[h][1]
            terms = [d * self._cov(a, (h, zero)) for a, d in first_f.items()]
            terms += [d * self._cov((f, zero), b) for b, d in first_h.items()]
            trends.append(_Trend("covariance", cov, sp.expand(sp.Add(*terms))))
        for f, field in enumerate(self._field_list):
            g_dot = self._metric_trend(f, variance_trends[f])
            for (i, j), value in g_dot.items():
                trends.append(_Trend("tensor", field.metric[i, j], value, f, (i, j)))
        return trends

    def _metric_trend(self, f: int, v_dot: sp.Expr) -> dict[tuple[int, int], sp.Expr]:
        """d_t g_ij = E[d_i(d_t eps) d_j eps] + (i <-> j) with d_t eps = sum A d^gamma eps_h."""
        n = len(self.coordinates)
        zero = (0,) * n
        first = self._linearised[f][1]
        inv_sqrt = 1 / sp.sqrt(self._field_list[f].variance)
        coeffs: dict[Atom, list[sp.Expr]] = defaultdict(list)
        for (h, alpha), d in first.items():
            for gamma in sub_indices(alpha):
                weight = binomial(alpha, gamma) * self._sqrt_variance(h, _minus(alpha, gamma))
                coeffs[(h, gamma)].append(weight * d * inv_sqrt)
        coeffs[(f, zero)].append(-v_dot / (2 * self._field_list[f].variance))
        units = [tuple(int(k == i) for k in range(n)) for i in range(n)]
        trend = {}
        for i in range(n):
            for j in range(i, n):
                terms = []
                for (h, gamma), parts in coeffs.items():
                    a = sp.Add(*parts)
                    for p, q in ((i, j), (j, i)):
                        shifted = _plus(gamma, units[p])
                        terms.append(a * self._reducer.product(h, shifted, f, units[q]))
                        e = self._reducer.product(h, gamma, f, units[q])
                        if e != 0:
                            terms.append(sp.diff(a, self.coordinates[p]) * e)
                trend[(i, j)] = sp.expand(sp.Add(*terms))
        return trend

    # -- forms -----------------------------------------------------------------------------
    def _form_system(self, form: PKFForm) -> list[tuple[sp.Expr, sp.Expr]]:
        if form not in self._form_cache:
            self._form_cache[form] = self._convert_system(form)
        return self._form_cache[form]

    def _convert_system(self, form: PKFForm) -> list[tuple[sp.Expr, sp.Expr]]:
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")
        system = self._metric_system
        if form == "metric":
            return [(t.lhs, t.rhs) for t in system]
        converted = []
        tensor_trends: dict[int, dict[tuple[int, int], sp.Expr]] = defaultdict(dict)
        for trend in system:
            rhs = self._substitute(trend.rhs, "metric", form)
            if trend.kind == "tensor":
                tensor_trends[trend.field][trend.component] = rhs
            else:
                converted.append((trend.lhs, self._canonical_form(rhs, form)))
        for f, components in tensor_trends.items():
            n = len(self.coordinates)
            g_dot = sp.Matrix(n, n, lambda i, j, c=components: c[(min(i, j), max(i, j))])
            tensor_form = self._forms[form][self._field_list[f].name]
            y_dot = tensor_form.tensor_trend(g_dot)
            for i in range(n):
                for j in range(i, n):
                    lhs = tensor_form.matrix[i, j]
                    converted.append((lhs, self._canonical_form(y_dot[i, j], form)))
        return converted

    def _substitute(self, expr: sp.Expr, source: PKFForm, target: PKFForm) -> sp.Expr:
        """Rewrite the ``source`` tensors of all fields in ``expr`` with the ``target`` ones
        (inverse placeholders left for :meth:`_canonical_form`)."""
        if source == target:
            return expr
        kind, factor = relation(source, target)
        mapping = {}
        for tensor_form in self._forms[target].values():
            mapping.update(tensor_form.substitution(expr, source, kind, factor))
        return expr.xreplace(mapping) if mapping else expr

    def _canonical_form(self, expr: sp.Expr, form: PKFForm, substituted: bool = False) -> sp.Expr:
        expr = sp.expand(expr)
        for tensor_form in self._forms[form].values():
            expr = (
                tensor_form.expand_inverses(expr)
                if not substituted
                else tensor_form.reduce_modulo_determinant(expr)
            )
        return expr

    def _with_determinants(self, expr: sp.Expr, form: PKFForm) -> sp.Expr:
        for tensor_form in self._forms[form].values():
            expr = tensor_form.substitute_determinant(expr)
        return expr

    def _closure_in_form(self, expr: sp.Expr, form: PKFForm) -> sp.Expr:
        for source in FORMS:
            expr = self._substitute(expr, source, form)
        return self._canonical_form(expr, form)

    def _expectation_equations(self, form: PKFForm) -> list[sp.Eq]:
        system = self._form_system(form)
        back = {u.placeholder: u.expectation for u in self._reducer.unclosed}
        return [
            sp.Eq(
                sp.Derivative(lhs, self.time),
                self._with_determinants(rhs.xreplace(back), form),
                evaluate=False,
            )
            for lhs, rhs in system
        ]


def _minus(alpha: MultiIndex, beta: MultiIndex) -> MultiIndex:
    return tuple(a - b for a, b in zip(alpha, beta, strict=True))


def _plus(alpha: MultiIndex, beta: MultiIndex) -> MultiIndex:
    return tuple(a + b for a, b in zip(alpha, beta, strict=True))


def _replace_functions(expr: sp.Expr, replacement: Mapping[sp.Expr, sp.Expr]) -> sp.Expr:
    """Replace functions and their derivatives (derivatives of the replacement evaluated)."""
    if not replacement:
        return expr
    mapping = dict(replacement)
    for d in expr.atoms(sp.Derivative):
        if d.expr in replacement:
            mapping[d] = sp.diff(replacement[d.expr], *d.variables)
    return expr.xreplace(mapping)


def _as_equation_list(equations) -> list[sp.Eq]:
    """One equation, an iterable of them, or an object with an ``equations`` attribute."""
    if isinstance(equations, sp.Eq):
        return [equations]
    if hasattr(equations, "equations"):
        equations = equations.equations
    return list(equations)
