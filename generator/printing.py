"""Print analysed sympy expressions as Python code on keras.ops tensors.

Numbers are kept exactly as written in the equations (rationals stay ``3/4``), elementwise
functions map to ``ops.exp``, ``ops.sqrt``, ... and repeated sub-expressions are shared
through sympy's common-subexpression elimination.
"""

from __future__ import annotations

import sympy
from sympy.printing.str import StrPrinter

from .analysis import SUPPORTED_FUNCTIONS

__all__ = ["KerasOpsPrinter", "trend_code_lines"]


class KerasOpsPrinter(StrPrinter):
    """sympy printer emitting Python expressions over tensors (``ops`` = ``keras.ops``).

    Numbers stay exact in the model's dtype: integers and rationals print as Python
    arithmetic (``3/4``), every other number without symbols (``sin(2)``, ``sqrt(2)``,
    ``log(3)``, ``pi``) is evaluated by sympy to 30 digits and printed as the nearest double,
    so that no float32 op ever computes it.
    """

    def _print(self, expr, **kwargs):
        if isinstance(expr, sympy.Basic) and expr.is_number and not expr.is_Rational:
            value = sympy.N(expr, 30)
            if not value.is_real:
                raise ValueError(f"complex constant {expr} in an equation; fields are real")
            if not value.is_finite:
                raise ValueError(f"non-finite constant {expr} in an equation")
            text = repr(float(value))
            return f"({text})" if text.startswith("-") else text
        return super()._print(expr, **kwargs)

    def _print_Function(self, expr):
        op = SUPPORTED_FUNCTIONS.get(type(expr))
        if op is None:
            raise ValueError(f"no Keras translation for function {expr.func.__name__}")
        return f"ops.{op}({', '.join(self._print(a) for a in expr.args)})"

    def _print_Abs(self, expr):
        return self._print_Function(expr)

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        b = self.parenthesize(base, sympy.printing.precedence.PRECEDENCE["Pow"], strict=False)
        if exp == sympy.S.Half:
            return f"ops.sqrt({self._print(base)})"
        if exp == -sympy.S.Half:
            return f"1/ops.sqrt({self._print(base)})"
        if exp == -1:
            return f"1/{b}"
        if exp.is_Number and exp.is_negative:
            return f"1/{self._print(sympy.Pow(base, -exp, evaluate=False))}"
        if exp == 2:
            return f"ops.square({self._print(base)})"
        if exp.is_Integer:
            return f"{b}**{int(exp)}"
        if exp.is_Rational:
            return f"{b}**({exp.p}/{exp.q})"
        if exp.is_Number:
            return f"{b}**{float(exp)!r}"
        return f"ops.power({self._print(base)}, {self._print(exp)})"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Pi(self, expr):
        return repr(float(sympy.pi))

    def _print_Exp1(self, expr):
        return repr(float(sympy.E))

    def _print_NumberSymbol(self, expr):
        return repr(float(expr))


def trend_code_lines(
    trends: dict[str, sympy.Expr], prefix: str = "tmp"
) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """Common-subexpression elimination then printing.

    Parameters
    ----------
    trends : mapping field name → trend expression in plain symbols.

    Returns
    -------
    temporaries : list of (name, code) assignments, in dependency order.
    results : mapping field name → code of each term of its trend, one string per term (see
        ``_terms_code``).
    """
    names = list(trends)
    taken = {str(s) for e in trends.values() for s in e.free_symbols}
    symbols = (s for s in sympy.numbered_symbols(prefix) if str(s) not in taken)
    replacements, reduced = sympy.cse([trends[n] for n in names], symbols=symbols)
    printer = KerasOpsPrinter()
    temporaries = [(str(sym), printer.doprint(expr)) for sym, expr in replacements]
    results = {n: _terms_code(printer, e) for n, e in zip(names, reduced, strict=True)}
    return temporaries, results


def _terms_code(printer: KerasOpsPrinter, expr: sympy.Expr) -> list[str]:
    """Code of each term of a sum, the first unsigned, the others prefixed by '+ ' or '- '."""
    if not isinstance(expr, sympy.Add):
        return [printer.doprint(expr)]
    lines = []
    for k, term in enumerate(printer._as_ordered_terms(expr)):
        code = printer.doprint(term)
        if k == 0:
            lines.append(code)
        elif code.startswith("-"):
            lines.append("- " + code[1:])
        else:
            lines.append("+ " + code)
    return lines
