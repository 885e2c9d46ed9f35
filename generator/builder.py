"""NNModelBuilder: sympy evolution equations → readable Python module → model class."""

from __future__ import annotations

import hashlib
import keyword
import linecache
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import sympy
from sympy.core.function import AppliedUndef

from .analysis import PDESystem, check_not_reserved, python_identifier
from .boundaries import (
    Conditions,
    bounded_conditions,
    describe_conditions,
    normalize_boundaries,
    periodic_axes,
)
from .printing import KerasOpsPrinter, trend_code_lines

if TYPE_CHECKING:
    from .model import GeneratedModel

__all__ = ["NNModelBuilder", "execute_module"]

#: Stands for the registration key in the rendered code until its hash is known.
_KEY_PLACEHOLDER = "@@PKFNET_REGISTRATION_KEY@@"


def execute_module(code: str, class_name: str) -> type[GeneratedModel]:
    """Execute generated module source in a fresh module namespace; return its model class.

    The source is registered with :mod:`linecache` so that tracebacks show the generated lines.
    """
    digest = hashlib.sha256(code.encode()).hexdigest()[:12]
    filename = f"<pkfnet-generated {class_name} {digest}>"
    module = types.ModuleType(f"pkfnet_generated_{class_name}_{digest}")
    module.__file__ = filename
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    exec(compile(code, filename, "exec"), module.__dict__)
    model_class = getattr(module, class_name)
    model_class.source_code = code
    return model_class


def _tuple_repr(values) -> str:
    values = tuple(values)
    return repr(values)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("generator", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["tuple_repr"] = _tuple_repr
    env.filters["pyrepr"] = repr
    return env


class NNModelBuilder:
    """Generate a Keras model class from a system of evolution equations.

    Parameters
    ----------
    equations : one sympy ``Eq(Derivative(u(t, x, ...), t), rhs)`` or a list of them.
    class_name : name of the generated class (a Python identifier).
    accuracy : even order of accuracy of the centred finite-difference stencils.
    closures : optional mapping exogenous function name → sympy expression of the known
        fields (and trainable scalars); each becomes a diagnostic equation generated like
        the rest, so the slot is filled in the model itself.
    boundaries : optional mapping, default all periodic
        Boundary conditions (:mod:`generator.boundaries`): keys are coordinate names
        (conditions of every prognostic field on that axis) or prognostic field names mapping
        to their own ``{coordinate: conditions}``; conditions are one kind for both sides or a
        ``(low, high)`` pair, each ``"periodic"``, ``"dirichlet"``, ``"neumann"``,
        ``"outflow"`` (``"open"``) or ``Dirichlet(value)``, ``Neumann(value)``, ``Outflow()``,
        ``Periodic()``. E.g. ``{"x": ("dirichlet", "outflow")}`` or
        ``{"x": "neumann", "V_u": {"x": (Dirichlet(None), Outflow())}}``. A bounded axis of
        n points includes both ends: ``x_i = i L / (n - 1)``.

    Raises
    ------
    ValueError
        For a bad class name or accuracy, or bad boundaries (naming the coordinate, field or
        kind; see :func:`generator.boundaries.normalize_boundaries`).

    Examples
    --------
    >>> import sympy as sp
    >>> t, x = sp.symbols("t x")
    >>> u = sp.Function("u")(t, x)
    >>> kappa = sp.Symbol("kappa")
    >>> builder = NNModelBuilder(sp.Eq(sp.Derivative(u, t), kappa * sp.Derivative(u, x, 2)),
    ...                          class_name="Heat1D")
    >>> Heat1D = builder.build()
    >>> model = Heat1D(shape=64, kappa=0.01)  # doctest: +SKIP
    """

    def __init__(
        self,
        equations: sympy.Eq | Iterable[sympy.Eq],
        class_name: str = "NNModel",
        accuracy: int = 2,
        closures: dict[str, sympy.Expr] | None = None,
        boundaries: Mapping[str, object] | None = None,
    ):
        if not isinstance(class_name, str) or not class_name.isidentifier():
            raise ValueError(f"class_name {class_name!r} is not a Python identifier")
        if keyword.iskeyword(class_name) or class_name.startswith("_"):
            raise ValueError(f"class_name {class_name!r} is a keyword or starts with '_'")
        check_not_reserved(class_name, "class_name")
        if not isinstance(accuracy, int) or accuracy < 2 or accuracy % 2:
            raise ValueError(f"accuracy must be an even integer >= 2, got {accuracy!r}")
        equations = [equations] if isinstance(equations, sympy.Eq) else list(equations)
        if closures:
            equations += _closure_equations(PDESystem.from_equations(equations), closures)
        self.system = PDESystem.from_equations(equations)
        system = self.system
        #: Every prognostic field's (low, high) conditions on every axis.
        self.boundaries: Conditions = normalize_boundaries(
            boundaries,
            system.coordinate_names,
            system.prognostic_functions,
            [*system.constant_functions, *system.exogenous_functions, *system.diagnostic_functions],
        )
        self.class_name = class_name
        self.accuracy = accuracy
        self._code: str | None = None

    @property
    def code(self) -> str:
        """The rendered Python module defining the model class."""
        if self._code is None:
            self._code = self._render()
        return self._code

    def write_module(self, path: str | Path) -> Path:
        """Write :attr:`code` to ``path`` (a ``.py`` file) and return the path."""
        path = Path(path)
        path.write_text(self.code)
        return path

    def build(self) -> type[GeneratedModel]:
        """Execute the rendered module in a fresh namespace and return the model class."""
        return execute_module(self.code, self.class_name)

    def _render(self) -> str:
        system = self.system
        prognostic_and_exogenous = [*system.prognostic_functions, *system.exogenous_functions]
        temporaries, results = trend_code_lines(system.trends)
        derivatives = {name: system.derivatives_of(name) for name in system.function_coordinates}
        diagnostic_names = system.diagnostic_functions
        field_names = [
            *prognostic_and_exogenous,
            *system.constant_functions,
            *(d.name for d in system.derivatives if d.field not in diagnostic_names),
        ]
        printer = KerasOpsPrinter()
        diagnostic_lines = [
            (name, printer.doprint(expr), [d.name for d in derivatives[name]])
            for name, expr in system.diagnostics.items()
        ]
        expressions = [*system.trends.values(), *system.diagnostics.values()]
        used = set().union(*(e.free_symbols for e in expressions))
        used_names = {str(s) for s in used}
        equation_lines = [_equation_text(eq) for eq in system.equations]
        bounded = bounded_conditions(self.boundaries)
        periodic = periodic_axes(self.boundaries, system.coordinate_names)
        condition_classes = sorted(
            {type(c).__name__ for axes in bounded.values() for p in axes.values() for c in p}
        )
        code = (
            _environment()
            .get_template("model.py.j2")
            .render(
                class_name=self.class_name,
                dimension=system.dimension,
                time=str(system.time),
                coordinates=list(system.coordinate_names),
                accuracy=self.accuracy,
                equation_lines=equation_lines,
                equations_text="\n".join(equation_lines),
                prognostic=system.prognostic_functions,
                constant_functions=system.constant_functions,
                exogenous=system.exogenous_functions,
                constants=system.constants,
                trainable_names=[spec[0] for spec in system.trainable_scalars],
                trainable_specs=system.trainable_scalars,
                diagnostic_names=diagnostic_names,
                diagnostic_lines=diagnostic_lines,
                diagnostic_derivatives=[
                    (n, derivatives[n]) for n in diagnostic_names if derivatives[n]
                ],
                field_names=[n for n in field_names if n in used_names],
                temporaries=temporaries,
                trend_lines=[(n, results[n]) for n in system.prognostic_functions],
                function_coordinates=list(system.function_coordinates.items()),
                constant_function_derivatives=[
                    (n, derivatives[n]) for n in system.constant_functions if derivatives[n]
                ],
                field_derivatives=[
                    (n, derivatives[n]) for n in prognostic_and_exogenous if derivatives[n]
                ],
                registration_key=_KEY_PLACEHOLDER,
                bounded=not all(periodic),
                axes_text=", ".join(
                    f"{c} {'periodic' if p else 'bounded'}"
                    for c, p in zip(system.coordinate_names, periodic, strict=True)
                ),
                boundary_text=[
                    describe_conditions({f: axes}, system.coordinate_names)
                    for f, axes in self.boundaries.items()
                ],
                condition_classes=condition_classes,
                boundary_conditions=[
                    (f, [(c, repr(low), repr(high)) for c, (low, high) in axes.items()])
                    for f, axes in bounded.items()
                ],
            )
        )
        # The Keras registration key names this exact code: two different classes that share a
        # class name never overwrite each other's registration, so a saved model reloads as
        # itself (or fails clearly), never as another one.
        key = f"pkfnet.{self.class_name}.{hashlib.sha256(code.encode()).hexdigest()[:16]}"
        return code.replace(_KEY_PLACEHOLDER, key)


def _equation_text(eq: sympy.Eq) -> str:
    """``lhs = rhs`` with every function and symbol name as its generated identifier.

    Only identifiers, numbers and operators reach the generated module's docstring, so
    user-supplied names can never close it or inject code.
    """
    renames: dict[sympy.Basic, sympy.Basic] = {}
    for function in eq.atoms(AppliedUndef):
        clean = sympy.Function(python_identifier(function.func.__name__))
        renames[function] = clean(*function.args)
    for symbol in eq.free_symbols:
        renames[symbol] = sympy.Symbol(python_identifier(symbol.name))
    lhs, rhs = eq.lhs.xreplace(renames), eq.rhs.xreplace(renames)
    text = f"{sympy.sstr(lhs)} = {sympy.sstr(rhs)}"
    if any(bad in text for bad in ('"""', "\\")):
        raise ValueError(f"equation text {text!r} cannot be embedded in generated code")
    return text


def _closure_equations(system: PDESystem, closures: dict[str, sympy.Expr]) -> list[sympy.Eq]:
    """Diagnostic equations ``Eq(slot(t, ...), expr)`` filling exogenous slots."""
    equations = []
    for name, expr in closures.items():
        if name not in system.exogenous_functions:
            raise ValueError(
                f"closure for '{name}': not an exogenous function of the system; exogenous "
                f"functions are {system.exogenous_functions}"
            )
        coords = [sympy.Symbol(c) for c in system.function_coordinates[name]]
        slot = sympy.Function(name)(system.time, *coords)
        equations.append(sympy.Eq(slot, sympy.sympify(expr)))
    return equations
