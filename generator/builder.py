"""NNModelBuilder: sympy evolution equations → readable Python module → model class."""

from __future__ import annotations

import linecache
import types
from collections.abc import Iterable
from pathlib import Path

import jinja2
import sympy

from .analysis import PDESystem
from .printing import KerasOpsPrinter, trend_code_lines

__all__ = ["NNModelBuilder"]


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
    ):
        if not class_name.isidentifier():
            raise ValueError(f"class_name {class_name!r} is not a Python identifier")
        if not isinstance(accuracy, int) or accuracy < 2 or accuracy % 2:
            raise ValueError(f"accuracy must be an even integer >= 2, got {accuracy!r}")
        equations = [equations] if isinstance(equations, sympy.Eq) else list(equations)
        if closures:
            equations += _closure_equations(PDESystem.from_equations(equations), closures)
        self.system = PDESystem.from_equations(equations)
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

    def build(self) -> type:
        """Execute the rendered module in a fresh namespace and return the model class."""
        filename = f"<pkfnet-generated {self.class_name}>"
        module = types.ModuleType(f"pkfnet_generated_{self.class_name}")
        module.__file__ = filename
        linecache.cache[filename] = (len(self.code), None, self.code.splitlines(True), filename)
        exec(compile(self.code, filename, "exec"), module.__dict__)
        return getattr(module, self.class_name)

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
        equation_lines = [f"{sympy.sstr(eq.lhs)} = {sympy.sstr(eq.rhs)}" for eq in system.equations]
        return (
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
            )
        )


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
