"""What ``pkfnet derive`` prints: the PKF system in text, LaTeX, srepr or JSON, optionally
closed with a named closure (:func:`closures.close`).

Nothing here parses or executes text; :mod:`cases.cli` loads the equations (restricted parser or
a trusted ``--file``) and writes the output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from generator.conventions import package_version

if TYPE_CHECKING:
    from pkf.forms import PKFForm

__all__ = [
    "DERIVE_CLOSURES",
    "DERIVE_FORMATS",
    "QUASI_GAUSSIAN_ORDER",
    "DeriveError",
    "Derivation",
    "check_quasi_gaussian_order",
    "close_named",
    "derivation_json",
    "derivation_srepr",
    "derivation_text",
    "repr_printer",
]

#: Output formats of ``pkfnet derive --format``.
DERIVE_FORMATS = ("text", "latex", "srepr", "json")
#: Closures of ``pkfnet derive --closure`` (:data:`closures.CLOSURE_NAMES`, written out here so
#: that building the parser does not import sympy).
DERIVE_CLOSURES = ("none", "zero", "quasi-gaussian", "P18")
#: Appended to the messages of the limits on equation text.
NO_LIMITS = " (a trusted --file has no limits)"


class DeriveError(ValueError):
    """A closure that cannot be applied (one line for the command line)."""


#: Highest derivative order of an unclosed term that ``--closure quasi-gaussian`` closes for
#: equation text, per form, in 1D, 2D, 3D (None: no limit beyond the derivation's): the
#: expansion grows fast with the order and the dimension (measured: a 2D term of order 4
#: takes 1 s in the aspect form, 52 s for the whole system in the metric form, one of order 6
#: minutes; 3D order 4: 3-12 s per term, 13 terms). Unclosed terms have order 4 or more.
QUASI_GAUSSIAN_ORDER: dict[str, tuple[int | None, int | None, int | None]] = {
    "metric": (None, 0, 0),
    "aspect": (None, 4, 0),
    "diffusion": (None, 4, 0),
}


def close_named(pkf: Any, name: str | None, form: PKFForm, text: bool) -> dict[Any, Any]:
    """Close ``pkf`` with the named closure (``--closure``); the closures set, {} without one.

    ``text``: the equations came as text, :data:`QUASI_GAUSSIAN_ORDER` applies."""
    if name is None:
        return {}
    from closures import close

    if text and name == "quasi-gaussian":
        check_quasi_gaussian_order(pkf, form)
    try:
        closures = close(pkf, name, form)
    except ValueError as err:
        raise DeriveError(f"cannot close the PKF dynamics: {err}") from None
    pkf.set_closure(closures)
    return closures


def check_quasi_gaussian_order(pkf: Any, form: PKFForm) -> None:
    """Refuse a quasi-Gaussian closure beyond :data:`QUASI_GAUSSIAN_ORDER` (equation text)."""
    import sympy

    dimension = len(pkf.coordinates)
    limit = QUASI_GAUSSIAN_ORDER[form][dimension - 1]
    if limit is None:
        return
    for term in pkf.unclosed_terms:
        order = sum(d.derivative_count for d in term.atoms(sympy.Derivative))
        if order <= limit:
            continue
        if not limit:
            advice = "use --form aspect" + NO_LIMITS if dimension == 2 else "use a trusted --file"
            raise DeriveError(
                f"--closure quasi-gaussian: not available for equation text in {dimension}D "
                f"in the {form} form (its expansion takes minutes); {advice}"
            )
        raise DeriveError(
            f"--closure quasi-gaussian: {term} has derivative order {order}; for equation "
            f"text in {dimension}D the {form} form allows order {limit} at most (its "
            f"expansion takes minutes beyond){NO_LIMITS}"
        )


@dataclass(frozen=True)
class Derivation:
    """What ``pkfnet derive`` prints: the equations, the unclosed terms (term -> slot
    function) and, with ``--closure``, the closures set (term -> expression)."""

    form: str
    closure: str | None
    system: list
    unclosed: list
    slots: dict
    closed: dict

    @property
    def heading(self) -> str:
        closed = f", closed with {self.closure}" if self.closed else ""
        return f"PKF dynamics ({self.form} form{closed}), {len(self.system)} equations"

    @property
    def unclosed_heading(self) -> str:
        if self.closed:
            return f"Unclosed terms: none (closed with {self.closure})"
        if self.unclosed:
            return f"Unclosed terms ({len(self.unclosed)})"
        return "Unclosed terms: none (the PKF system is closed)"

    def closures(self) -> list:
        """``Eq(term, closure)`` for each term closed by ``--closure``."""
        import sympy

        return [sympy.Eq(term, expr, evaluate=False) for term, expr in self.closed.items()]

    def slot_name(self, term: object) -> str:
        return self.slots[term].func.__name__


def derivation_text(derivation: Derivation, render: Callable[[object], str]) -> str:
    """Pretty text or LaTeX: the equations, the closures set, then the unclosed terms."""
    blocks = [f"{derivation.heading}:\n\n"]
    blocks += [render(equation) + "\n\n" for equation in derivation.system]
    if derivation.closed:
        count = len(derivation.closed)
        blocks.append(f"Closures ({derivation.closure}, {count} term{'s' * (count != 1)}):\n\n")
        blocks += [render(closure) + "\n\n" for closure in derivation.closures()]
    if derivation.unclosed and not derivation.closed:
        blocks.append(f"{derivation.unclosed_heading}:\n\n")
        blocks += [render(term) + "\n\n" for term in derivation.unclosed]
    else:
        blocks.append(f"{derivation.unclosed_heading}\n")
    return "".join(blocks)


def derivation_srepr(derivation: Derivation) -> str:
    """sympy ``srepr``, one expression per paragraph, headings on lines starting with '#'."""
    srepr = repr_printer()
    blocks = [f"# {derivation.heading}\n\n"]
    blocks += [srepr(equation) + "\n\n" for equation in derivation.system]
    if derivation.closed:
        blocks.append(f"# Closures ({derivation.closure}): Eq(term, closure)\n\n")
        blocks += [srepr(closure) + "\n\n" for closure in derivation.closures()]
    blocks.append(f"# {derivation.unclosed_heading}\n")
    if derivation.unclosed and not derivation.closed:
        blocks += ["\n" + srepr(term) + "\n" for term in derivation.unclosed]
    return "".join(blocks)


def derivation_json(derivation: Derivation) -> str:
    """One JSON document (keys in :func:`_derive_epilog`)."""
    import json

    import sympy

    srepr = repr_printer()

    def expression(expr: object, prefix: str = "") -> dict[str, str]:
        return {f"{prefix}latex": sympy.latex(expr), f"{prefix}srepr": srepr(expr)}

    equations = [
        {
            "field": equation.lhs.expr.func.__name__,
            **expression(equation.lhs, "lhs_"),
            **expression(equation.rhs, "rhs_"),
        }
        for equation in derivation.system
    ]
    terms = [] if derivation.closed else derivation.unclosed
    document = {
        "pkfnet_version": package_version(),
        "form": derivation.form,
        "closure": derivation.closure,
        "equations": equations,
        "unclosed_terms": [
            {"slot": derivation.slot_name(term), **expression(term)} for term in terms
        ],
        "closed_terms": [
            {
                "slot": derivation.slot_name(term),
                **expression(term),
                **expression(closure, "closure_"),
            }
            for term, closure in derivation.closed.items()
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def repr_printer() -> Callable[[object], str]:
    """sympy's ``srepr`` that keeps the ``random`` flag of the normalised errors ``eps_*``
    (``Function('eps_u', random=True)``), so that the text evaluates back to the same
    expression with sympy's names and ``Expectation``."""
    from sympy.printing.repr import ReprPrinter

    class Printer(ReprPrinter):
        def _print_FunctionClass(self, expr: Any) -> str:
            if getattr(expr, "random", False):
                return f"Function({expr.__name__!r}, random=True)"
            return super()._print_FunctionClass(expr)

    return Printer().doprint
