"""Symbolic analysis of a system of evolution equations.

Turns sympy equations ``Eq(Derivative(u(t, x), t), rhs)`` into a :class:`PDESystem`:
the time variable, spatial coordinates, prognostic / constant / exogenous functions,
constants, every spatial derivative the right-hand sides need, and the right-hand sides
rewritten as plain algebra of named symbols, ready for code generation.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import sympy
from sympy.core.function import AppliedUndef

from .symbols import TrainableScalar

__all__ = [
    "RESERVED_NAMES",
    "RESERVED_PREFIXES",
    "PDESystem",
    "DerivativeSpec",
    "python_identifier",
    "SUPPORTED_FUNCTIONS",
]

#: Names the generated code and the model constructor use for themselves: a field, constant or
#: trainable scalar may not be called so.
RESERVED_NAMES = frozenset(
    {
        "ops",
        "keras",
        "self",
        "fields",
        "constants",
        "TrendLayer",
        "GeneratedModel",
        "shape",
        "lengths",
        "dtype",
        "time_scheme",
        "jit_compile",
        "time_units",
        "length_units",
        "boundary_values",
    }
)
#: Prefixes of the generated code's own names (``trend_u`` locals, ``pkfnet_trend`` layers).
RESERVED_PREFIXES = ("trend_", "pkfnet_")

#: Elementwise functions the generator translates, mapped to their keras.ops names.
SUPPORTED_FUNCTIONS: dict[type, str] = {
    sympy.exp: "exp",
    sympy.log: "log",
    sympy.sin: "sin",
    sympy.cos: "cos",
    sympy.tanh: "tanh",
    sympy.Abs: "abs",
}

_ALLOWED_ATOMS = (sympy.Symbol, sympy.Number, sympy.NumberSymbol)


def python_identifier(name: str) -> str:
    r"""Turn a sympy function or symbol name into a Python identifier.

    LaTeX decorations are dropped (``\kappa_{11}`` → ``kappa_11``); other characters that
    cannot appear in an identifier become underscores.

    >>> python_identifier(r"\kappa_{11}")
    'kappa_11'
    """
    cleaned = name.replace("\\", "").replace("{", "").replace("}", "")
    cleaned = re.sub(r"\W", "_", cleaned).strip("_")
    if not cleaned.isidentifier() or keyword.iskeyword(cleaned):
        raise ValueError(f"name {name!r} cannot be turned into a Python identifier")
    return cleaned


def check_not_reserved(name: str, kind: str) -> None:
    """Refuse a user name the generated code uses itself (see :data:`RESERVED_NAMES`).

    >>> check_not_reserved("ops", "constant")
    Traceback (most recent call last):
    ...
    ValueError: constant 'ops': the name is reserved by the generated code; rename it (e.g. 'ops_')
    """
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        raise ValueError(
            f"{kind} '{name}': the name is reserved by the generated code; rename it "
            f"(e.g. '{name}_')"
        )


@dataclass(frozen=True)
class DerivativeSpec:
    """One spatial derivative of one field.

    Attributes
    ----------
    field : the field's identifier (e.g. ``"u"``).
    orders : derivative order along each domain coordinate, e.g. ``(1, 0)`` for ∂x in 2D.
    name : the identifier used in generated code, e.g. ``"D_u_x1"``.
    """

    field: str
    orders: tuple[int, ...]
    name: str


@dataclass
class PDESystem:
    """Analysed system of evolution equations.

    Build it with :meth:`PDESystem.from_equations`. Every list is ordered by the order of the
    equations and of first appearance in them, never by set iteration.
    """

    equations: list[sympy.Eq]
    time: sympy.Symbol
    coordinates: tuple[sympy.Symbol, ...]
    prognostic_functions: list[str]
    constant_functions: list[str]
    exogenous_functions: list[str]
    constants: list[str]
    derivatives: list[DerivativeSpec]
    trends: dict[str, sympy.Expr]
    function_coordinates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    diagnostics: dict[str, sympy.Expr] = field(default_factory=dict)
    trainable_scalars: list[tuple[str, float, bool]] = field(default_factory=list)

    @property
    def diagnostic_functions(self) -> list[str]:
        """Diagnostic fields, in dependency order (each computed from those before it)."""
        return list(self.diagnostics)

    @property
    def dimension(self) -> int:
        """Number of spatial coordinates (1, 2 or 3)."""
        return len(self.coordinates)

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.coordinates)

    def derivatives_of(self, name: str) -> list[DerivativeSpec]:
        """The derivatives of field ``name`` needed by the trends, in first-use order."""
        return [d for d in self.derivatives if d.field == name]

    @classmethod
    def from_equations(cls, equations: sympy.Eq | Iterable[sympy.Eq]) -> PDESystem:
        """Analyse one equation or a list of them.

        Raises
        ------
        ValueError
            naming the equation and the offending term for: a non-evolution equation, two
            equations for one field, inconsistent time variables, a field depending on a
            coordinate the domain lacks, a time derivative in a right-hand side, or an
            unsupported construct (unknown function, integral, piecewise, ...).
        """
        eqs = [equations] if isinstance(equations, sympy.Eq) else list(equations)
        if not eqs:
            raise ValueError("no equations given")
        return _Analyser(eqs).run()


class _Analyser:
    """Single-use worker behind :meth:`PDESystem.from_equations`."""

    def __init__(self, equations: list[sympy.Eq]):
        self.equations = equations
        self.time: sympy.Symbol | None = None
        self.coordinates: list[sympy.Symbol] = []
        self.prognostic: list[str] = []
        self.diagnostic: list[str] = []
        self.names: dict[str, str] = {}  # sympy function name -> identifier
        self.function_coordinates: dict[str, tuple[str, ...]] = {}

    def run(self) -> PDESystem:
        evolution = [(i, eq) for i, eq in enumerate(self.equations, 1) if _is_evolution(eq)]
        if not evolution:
            raise ValueError(
                f"equation 1: {self.equations[0]} is not an evolution equation; at least one "
                "equation must be Eq(Derivative(f(t, ...), t), rhs)"
            )
        heads: dict[int, str] = {}
        for i, eq in evolution:
            heads[i] = self._register_prognostic(i, self._evolution_head(i, eq))
        for i, eq in enumerate(self.equations, 1):
            if i not in heads:
                heads[i] = self._register_diagnostic(i, eq)
        self.kinds: dict[str, list[str]] = {
            "constant": [],
            "exogenous": [],
            "constant_scalar": [],
            "trainable": [],
        }
        self.scalars: dict[str, TrainableScalar] = {}
        derivatives: dict[tuple[str, tuple[int, ...]], DerivativeSpec] = {}
        expressions: dict[str, sympy.Expr] = {}
        depends: dict[str, list[str]] = {}
        for i, eq in enumerate(self.equations, 1):
            expr, used = self._analyse_rhs(i, self._prepare_rhs(i, eq.rhs), derivatives)
            expressions[heads[i]] = expr
            depends[heads[i]] = [u for u in used if u in self.diagnostic]
        self._check_name_collisions(derivatives)
        return PDESystem(
            equations=self.equations,
            time=self.time,
            coordinates=tuple(self.coordinates),
            prognostic_functions=list(self.prognostic),
            constant_functions=self.kinds["constant"],
            exogenous_functions=self.kinds["exogenous"],
            constants=self.kinds["constant_scalar"],
            derivatives=list(derivatives.values()),
            trends={n: expressions[n] for n in self.prognostic},
            function_coordinates=dict(self.function_coordinates),
            diagnostics={n: expressions[n] for n in _dependency_order(self.diagnostic, depends)},
            trainable_scalars=[
                (n, self.scalars[n].init, self.scalars[n].trainable)
                for n in self.kinds["trainable"]
            ],
        )

    def _analyse_rhs(self, i: int, rhs: sympy.Expr, derivatives: dict) -> tuple[sympy.Expr, list]:
        """Replace fields and derivatives by symbols; classify what the rhs uses."""
        derivative_symbols: dict[sympy.Basic, sympy.Symbol] = {}
        function_symbols: dict[sympy.Basic, sympy.Symbol] = {}
        used: list[str] = []
        walk = sympy.preorder_traversal(rhs)
        for node in walk:
            if isinstance(node, (sympy.Derivative, AppliedUndef)):
                walk.skip()
            if isinstance(node, sympy.Derivative):
                spec = self._derivative_spec(i, node)
                derivatives.setdefault((spec.field, spec.orders), spec)
                derivative_symbols[node] = sympy.Symbol(spec.name)
                used.append(spec.field)
            elif isinstance(node, AppliedUndef):
                name = self._register_function(i, node)
                kind = self._classify(node, name)
                if kind in self.kinds and name not in self.kinds[kind]:
                    self.kinds[kind].append(name)
                function_symbols[node] = sympy.Symbol(name)
                used.append(name)
            elif isinstance(node, sympy.Symbol):
                function_symbols[node] = sympy.Symbol(self._check_symbol(i, node))
            else:
                self._check_construct(i, node)
        # Derivatives first so that u(t, x) inside Derivative(u, x) is not replaced alone.
        return rhs.xreplace(derivative_symbols).xreplace(function_symbols), used

    # -- equation heads -------------------------------------------------------------
    def _evolution_head(self, i: int, eq: sympy.Eq) -> AppliedUndef:
        lhs = eq.lhs
        if not (isinstance(lhs, sympy.Derivative) and isinstance(lhs.expr, AppliedUndef)):
            raise ValueError(
                f"equation {i}: {eq} is not an evolution equation; its left-hand side must be "
                f"Derivative(f(t, ...), t) of a single function, got {lhs}"
            )
        if len(lhs.variable_count) != 1 or lhs.variable_count[0][1] != 1:
            raise ValueError(
                f"equation {i}: left-hand side {lhs} must be a first derivative in time only"
            )
        t = lhs.variable_count[0][0]
        if self.time is None:
            self.time = t
        elif t != self.time:
            raise ValueError(
                f"equation {i}: {eq} is not an evolution equation in {self.time} (equation 1 "
                f"differentiates in {self.time}, this one in {t})"
            )
        if t not in lhs.expr.args:
            raise ValueError(f"equation {i}: {lhs.expr} does not depend on time variable {t}")
        return lhs.expr

    def _register_prognostic(self, i: int, func: AppliedUndef) -> str:
        for arg in func.args:
            if arg != self.time and arg not in self.coordinates:
                self.coordinates.append(arg)
        name = self._register_function(i, func)
        if name in self.prognostic:
            raise ValueError(f"equation {i}: a second evolution equation for '{name}'")
        self.prognostic.append(name)
        return name

    def _register_diagnostic(self, i: int, eq) -> str:
        if not isinstance(eq, sympy.Eq):
            raise ValueError(f"equation {i}: expected a sympy Eq, got {type(eq).__name__}")
        lhs = eq.lhs
        if not isinstance(lhs, AppliedUndef) or (
            isinstance(lhs, sympy.Derivative) or self.time not in lhs.args
        ):
            raise ValueError(
                f"equation {i}: {eq} is not an evolution equation (Eq(Derivative(f(t, ...), "
                f"{self.time}), rhs)) nor a diagnostic one (Eq(w({self.time}, ...), rhs))"
            )
        name = self._register_function(i, lhs)
        if name in self.prognostic or name in self.diagnostic:
            raise ValueError(f"equation {i}: '{name}' is defined by more than one equation")
        self.diagnostic.append(name)
        return name

    # -- right-hand sides -----------------------------------------------------------
    def _prepare_rhs(self, i: int, rhs: sympy.Expr) -> sympy.Expr:
        rhs = sympy.sympify(rhs)
        for node in sympy.preorder_traversal(rhs):
            if isinstance(node, sympy.Derivative) and self.time in node.variables:
                raise ValueError(
                    f"equation {i}: time derivative {node} on the right-hand side is not "
                    "supported; write one evolution equation per prognostic field"
                )
        return rhs.doit(deep=True)

    def _register_function(self, i: int, func: AppliedUndef) -> str:
        raw = func.func.__name__
        name = self.names.get(raw)
        if name is None:
            try:
                name = python_identifier(raw)
            except ValueError as err:
                raise ValueError(f"equation {i}: function {func}: {err}") from None
            if name in self.names.values():
                raise ValueError(f"equation {i}: function names collide after cleaning: {name}")
            try:
                check_not_reserved(name, "function")
            except ValueError as err:
                raise ValueError(f"equation {i}: {err}") from None
            self.names[raw] = name
        for arg in func.args:
            if not isinstance(arg, sympy.Symbol):
                raise ValueError(
                    f"equation {i}: {func} has argument {arg}; fields must be functions of "
                    "the time and coordinate symbols only"
                )
        coords = tuple(str(a) for a in func.args if a != self.time)
        if self.coordinates:
            for c in func.args:
                if c != self.time and c not in self.coordinates:
                    raise ValueError(
                        f"equation {i}: field '{name}' depends on coordinate {c}, which the "
                        f"domain ({', '.join(map(str, self.coordinates))}) does not have"
                    )
        previous = self.function_coordinates.setdefault(name, coords)
        if previous != coords:
            raise ValueError(
                f"equation {i}: field '{name}' used with arguments {coords} and {previous}"
            )
        return name

    def _classify(self, func: AppliedUndef, name: str) -> str:
        if name in self.prognostic:
            return "prognostic"
        if name in self.diagnostic:
            return "diagnostic"
        return "exogenous" if self.time in func.args else "constant"

    def _derivative_spec(self, i: int, node: sympy.Derivative) -> DerivativeSpec:
        if not isinstance(node.expr, AppliedUndef):
            raise ValueError(
                f"equation {i}: cannot discretise derivative {node} of a non-field expression"
            )
        name = self._register_function(i, node.expr)
        orders = [0] * len(self.coordinates)
        for var, count in node.variable_count:
            if var not in self.coordinates:
                raise ValueError(
                    f"equation {i}: derivative {node} is taken along {var}, which the domain "
                    f"({', '.join(map(str, self.coordinates))}) does not have"
                )
            if var not in node.expr.args:
                raise ValueError(f"equation {i}: in {node}, '{name}' does not depend on {var}")
            orders[self.coordinates.index(var)] += int(count)
        suffix = "".join(f"{c}{o}" for c, o in zip(self.coordinates, orders, strict=True) if o)
        return DerivativeSpec(field=name, orders=tuple(orders), name=f"D_{name}_{suffix}")

    def _check_symbol(self, i: int, sym: sympy.Symbol) -> str:
        if sym == self.time:
            raise ValueError(
                f"equation {i}: the time variable {sym} appears explicitly on the right-hand "
                "side; supply time-dependent forcing as an exogenous field f(t, ...)"
            )
        if sym in self.coordinates:
            raise ValueError(
                f"equation {i}: coordinate {sym} appears explicitly on the right-hand side; "
                f"define it as a constant field, e.g. {sym}_field({sym})"
            )
        try:
            name = python_identifier(sym.name)
        except ValueError as err:
            raise ValueError(f"equation {i}: constant {sym}: {err}") from None
        try:
            check_not_reserved(name, "constant")
        except ValueError as err:
            raise ValueError(f"equation {i}: {err}") from None
        if isinstance(sym, TrainableScalar):
            previous = self.scalars.setdefault(name, sym)
            if (previous.init, previous.trainable) != (sym.init, sym.trainable):
                raise ValueError(
                    f"equation {i}: trainable scalar '{name}' declared twice with different "
                    "init/trainable settings"
                )
            kind = "trainable"
        else:
            kind = "constant_scalar"
        if name not in self.kinds[kind]:
            self.kinds[kind].append(name)
        return name

    def _check_construct(self, i: int, node: sympy.Basic) -> None:
        if isinstance(node, (sympy.Add, sympy.Mul, sympy.Pow, *_ALLOWED_ATOMS)):
            return
        if isinstance(node, sympy.Tuple):
            return
        if type(node) in SUPPORTED_FUNCTIONS:
            return
        kind = "function" if isinstance(node, sympy.Function) else "construct"
        label = getattr(node, "func", type(node)).__name__
        supported = ", ".join(f.__name__ for f in SUPPORTED_FUNCTIONS)
        raise ValueError(
            f"equation {i}: unsupported {kind} '{label}' in term {node}; supported elementwise "
            f"functions are {supported}, sqrt and powers"
        )

    def _check_name_collisions(self, derivatives) -> None:
        seen: dict[str, str] = {}
        groups = [
            ("prognostic function", self.prognostic),
            ("diagnostic function", self.diagnostic),
            ("constant function", self.kinds["constant"]),
            ("exogenous function", self.kinds["exogenous"]),
            ("constant", self.kinds["constant_scalar"]),
            ("trainable scalar", self.kinds["trainable"]),
            ("derivative", [d.name for d in derivatives.values()]),
        ]
        for kind, names in groups:
            for name in names:
                if name in seen and seen[name] != kind:
                    raise ValueError(f"name '{name}' is used both as a {seen[name]} and a {kind}")
                seen[name] = kind


def _is_evolution(eq) -> bool:
    return isinstance(eq, sympy.Eq) and isinstance(eq.lhs, sympy.Derivative)


def _dependency_order(names: list[str], depends: dict[str, list[str]]) -> list[str]:
    """Order diagnostic fields so that each comes after those it uses; reject cycles."""
    ordered: list[str] = []
    remaining = list(names)
    while remaining:
        ready = [n for n in remaining if all(d in ordered for d in depends[n])]
        if not ready:
            raise ValueError(
                "diagnostic equations form a cycle: "
                + ", ".join(f"'{n}' uses {sorted(set(depends[n]))}" for n in remaining)
            )
        ordered.append(ready[0])
        remaining.remove(ready[0])
    return ordered
