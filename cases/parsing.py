"""Safe parsing of untrusted equation strings (``pkfnet derive "Eq(...)"``) into sympy equations,
and the limits that keep the work done on such text small.

The text is checked against an explicit whitelist of Python syntax before sympy's parser sees
it, and sympy's parser then runs in a namespace holding only the whitelisted sympy objects.
:func:`parse_equations` bounds what any use of the text costs (length, nesting, powers,
derivative orders, number of equations and of terms); :func:`check_derivation_limits`,
:func:`check_derived_size` and :func:`check_output_size` bound the PKF derivation of
``pkfnet derive`` and its output. The limits are the ``MAX_*`` constants below.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar, cast

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.parsing.sympy_parser import auto_number, auto_symbol, parse_expr

from pkf.derivation import MAX_DIMENSION, SymbolicPKF
from pkf.forms import PKFForm

__all__ = [
    "ALLOWED_FUNCTIONS",
    "MAX_DERIVATIVE_ORDER",
    "MAX_DERIVED_SIZE",
    "MAX_DIMENSION",
    "MAX_EQUATIONS",
    "MAX_EXPONENT",
    "MAX_FACTORS",
    "MAX_FIELDS",
    "MAX_LENGTH",
    "MAX_NESTING",
    "MAX_OUTPUT",
    "MAX_TERMS",
    "MAX_TERM_ORDER",
    "LimitError",
    "check_derivation_limits",
    "check_derived_size",
    "check_output_size",
    "parse_equations",
    "parse_expression",
]

# -- limits of any equation text ---------------------------------------------------------------
#: Longest accepted text, in characters.
MAX_LENGTH = 10_000
#: Largest total order of a derivative, counting the derivatives inside it
#: (``Derivative(Derivative(u, (x, 4)), (x, 4))`` has order 8).
MAX_DERIVATIVE_ORDER = 8
#: Deepest nesting of the syntax tree (signs, brackets, calls) accepted in equation text.
MAX_NESTING = 100
#: Largest |numerator| and |denominator| of a rational exponent.
MAX_EXPONENT = 64
#: Most equations in one text.
MAX_EQUATIONS = 16
#: Most terms of one right-hand side once its derivatives are evaluated and its products and
#: integer powers expanded (an upper bound computed from the unevaluated text, so that
#: ``(a + b + c)**64`` or ``Derivative(u*v*w, (x, 8))`` are refused before sympy expands them).
MAX_TERMS = 16
#: Largest size, in bits, of a number computed from a power of numbers.
_MAX_POWER_BITS = 100_000

_T = TypeVar("_T")

# -- limits of the PKF derivation of equation text (``pkfnet derive``) ---------------------------
#: Most prognostic fields (one equation each): the cross-covariances grow as its square.
MAX_FIELDS = 3
#: Most field factors in one term of a right-hand side (fields and their derivatives, powers
#: counted: ``u * Derivative(u, x)**2`` has 3); a function of fields (``exp(u)``, ``1/u``,
#: ``sqrt(u)``) counts as the square of its argument.
MAX_FACTORS = 3
#: Largest derivative order of one term, summed over its field factors
#: (``u * Derivative(u, (x, 2))`` has order 2; a function of fields counts twice the order of
#: its argument), by form and number of spatial coordinates (1D, 2D, 3D), as (one field,
#: several fields). The cross-covariances make systems of several fields costlier; the aspect
#: and diffusion forms write every metric derivative through the inverse tensor, whose size
#: grows quickly with the order in 2D and 3D.
MAX_TERM_ORDER: Mapping[PKFForm, tuple[tuple[int, int], ...]] = MappingProxyType(
    {
        "metric": ((8, 4), (4, 2), (3, 1)),
        "aspect": ((8, 4), (2, 2), (1, 1)),
        "diffusion": ((8, 4), (2, 2), (1, 1)),
    }
)
#: Largest size of the derived dynamics in the metric form (computed first; the size of an
#: expression is the number of nodes of its tree: every symbol, number, function, derivative
#: and operation counts 1), by form and number of spatial coordinates. In the metric form a
#: node prints as 15 to 45 characters; writing the dynamics in the aspect or diffusion form in
#: 2D or 3D expands them through the inverse tensor, several times longer and slower.
MAX_DERIVED_SIZE: Mapping[PKFForm, tuple[int, ...]] = MappingProxyType(
    {
        "metric": (30_000, 30_000, 30_000),
        "aspect": (25_000, 4_000, 1_000),
        "diffusion": (25_000, 4_000, 1_000),
    }
)
#: Longest printed output of ``pkfnet derive``, in characters.
MAX_OUTPUT = 1_000_000


class LimitError(ValueError):
    """Equation text within the syntax but beyond one of the size limits of this module."""


def _rebuild(expr: object) -> object:
    """Evaluate an unevaluated sympy tree bottom-up, refusing powers that would explode."""
    if isinstance(expr, tuple):
        return tuple(_rebuild(item) for item in expr)
    if not isinstance(expr, sp.Basic) or not expr.args:
        return expr
    args = [_rebuild(arg) for arg in expr.args]
    if isinstance(expr, sp.Equality):
        return sp.Eq(*args, evaluate=False)
    if isinstance(expr, sp.Pow):
        _check_power(*args)
    return expr.func(*args)


def _check_power(base: sp.Expr, exponent: sp.Expr) -> None:
    if isinstance(exponent, sp.Rational):
        if max(abs(exponent.p), exponent.q) > MAX_EXPONENT:
            raise LimitError(f"exponent {exponent} too large (at most {MAX_EXPONENT})")
        if isinstance(base, sp.Rational):
            bits = max(abs(base.p).bit_length(), base.q.bit_length()) * abs(exponent.p)
            if bits > _MAX_POWER_BITS:
                raise LimitError(f"a power of numbers ({bits} bits) is too large")


def _guarded(function: Callable) -> Callable:
    """``function`` applied to its arguments evaluated by :func:`_rebuild`."""

    def call(*args, **options):
        # sympy's parser passes ``evaluate=False`` to elementary functions; user keywords
        # never get here (rejected by the syntax check).
        return function(*(_rebuild(arg) for arg in args), **options)

    call.__name__ = getattr(function, "__name__", "call")
    return call


def _equation(lhs: sp.Expr, rhs: sp.Expr) -> sp.Eq:
    return sp.Eq(lhs, rhs, evaluate=False)


def _derivative(expr: sp.Expr, *variables: object) -> sp.Derivative:
    order = 0
    for variable in variables:
        if isinstance(variable, tuple):
            count = variable[1] if len(variable) == 2 else None
        elif isinstance(variable, sp.Number):
            count = variable - 1  # Derivative(u, x, 2): the 2 repeats x
        else:
            count = sp.S.One
        if not isinstance(count, sp.Integer) or count < 0:
            raise ValueError(f"derivative order in {variable} is not a positive integer literal")
        order += int(count)
        if order > MAX_DERIVATIVE_ORDER:
            break
    inner = _derivative_order(expr, {})
    if order + inner > MAX_DERIVATIVE_ORDER:
        what = f"derivative of order {order}"
        if inner:
            what = f"{what} of a derivative of order {inner} (total {order + inner})"
        derivative = _short(sp.Derivative(expr, *variables, evaluate=False))
        raise LimitError(f"{what} in {derivative}; at most {MAX_DERIVATIVE_ORDER}: lower the order")
    return sp.Derivative(expr, *variables, evaluate=False)


def _derivative_order(expr: sp.Basic, memo: dict[sp.Basic, int]) -> int:
    """Highest total order of the derivatives in ``expr``, nested derivatives added up."""
    if expr not in memo:
        if isinstance(expr, sp.Derivative):
            own = sum(int(count) for _, count in expr.variable_count)
            memo[expr] = own + _derivative_order(expr.expr, memo)
        else:
            memo[expr] = max((_derivative_order(arg, memo) for arg in expr.args), default=0)
    return memo[expr]


def _rational(numerator: sp.Expr, denominator: sp.Expr = sp.S.One) -> sp.Rational:
    if not (isinstance(numerator, sp.Integer) and isinstance(denominator, sp.Integer)):
        raise ValueError("Rational(p, q) takes two integer literals")
    return sp.Rational(numerator, denominator)


#: Callables an equation string may call, besides the user's own field names; each
#: evaluates its (unevaluated) arguments under the size guards first.
ALLOWED_FUNCTIONS: dict[str, Callable] = {
    name: _guarded(function)
    for name, function in {
        "Eq": _equation,
        "Derivative": _derivative,
        "Function": sp.Function,
        "Symbol": sp.Symbol,
        "Rational": _rational,
        "exp": sp.exp,
        "log": sp.log,
        "sqrt": sp.sqrt,
        "sin": sp.sin,
        "cos": sp.cos,
        "tan": sp.tan,
        "sinh": sp.sinh,
        "cosh": sp.cosh,
        "tanh": sp.tanh,
        "Abs": sp.Abs,
    }.items()
}
#: Names of sympy constants; any other name becomes a Symbol (or a Function when called).
_CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}
#: Objects the code generated by sympy's parser refers to; not for the user to call.
_INTERNAL: dict[str, object] = {
    "Integer": sp.Integer,
    "Float": sp.Float,
    "Add": sp.Add,
    "Mul": sp.Mul,
    "Pow": sp.Pow,
}
_NAME_CONSTRUCTORS = ("Function", "Symbol")

_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
_NODES = (
    ast.Module,
    ast.Expr,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.Tuple,
    ast.List,
    *_OPERATORS,
)
_DESCRIPTIONS = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.Import: "imports",
    ast.ImportFrom: "imports",
    ast.Compare: "comparisons (write Eq(lhs, rhs))",
    ast.Assign: "assignments (write Eq(lhs, rhs))",
    ast.keyword: "keyword arguments",
    ast.Starred: "starred arguments",
    ast.NamedExpr: "assignments (write Eq(lhs, rhs))",
}


def parse_equations(text: str) -> list[sp.Eq]:
    """Parse untrusted text into sympy equations, allowing only whitelisted syntax.

    The text holds one or more ``Eq(lhs, rhs)`` separated by ``;``, newlines or commas (a
    list ``[Eq(...), Eq(...)]`` works too). Allowed: numbers, names, ``+ - * / **``,
    parentheses, tuples (as in ``Derivative(u(t, x), (x, 2))``), calls of
    :data:`ALLOWED_FUNCTIONS` and of the user's own field names, ``Function("u")`` and
    ``Symbol("kappa")`` with a plain identifier. Names other than ``pi`` and ``E`` become
    symbols, or functions where they are called. Rejected before anything is evaluated:
    attribute access, subscripts, names starting with ``_`` (dunders included), imports,
    lambdas, keyword arguments, string literals elsewhere, comparisons, and calls of
    anything else. Bounded: the length (:data:`MAX_LENGTH`), nesting (:data:`MAX_NESTING`),
    exponents (:data:`MAX_EXPONENT`), derivative orders counting nested derivatives
    (:data:`MAX_DERIVATIVE_ORDER`), the number of equations (:data:`MAX_EQUATIONS`) and of
    terms of each right-hand side once derivatives are evaluated and products expanded
    (:data:`MAX_TERMS`), so that evaluating and expanding the result stays cheap.

    Parameters
    ----------
    text : str
        The equations, e.g. from the command line.

    Returns
    -------
    list of sympy.Eq
        Unevaluated derivatives stay as written (``Derivative(u*v, x)``).

    Raises
    ------
    ValueError
        With a one-line reason naming the equation (counted from 1) and the offending
        construct.

    Examples
    --------
    >>> parse_equations("Eq(Derivative(u(t, x), t), -u(t, x) * Derivative(u(t, x), x))")
    [Eq(Derivative(u(t, x), t), -u(t, x)*Derivative(u(t, x), x))]
    >>> parse_equations("__import__('os').system('true')")
    Traceback (most recent call last):
    ...
    ValueError: equation 1: attribute access not allowed in equations
    """
    if not isinstance(text, str):
        raise ValueError(f"equations must be given as text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise LimitError(f"equation text is {len(text)} characters long; at most {MAX_LENGTH}")
    if not text.strip():
        raise ValueError("no equation given")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"equation text has an undecodable character at position {err.start}; write it in UTF-8"
        ) from None
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except SyntaxError as err:
        raise ValueError(f"invalid syntax in equation text: {err.msg}") from None
    except (MemoryError, RecursionError):
        raise LimitError("equation text is nested too deeply") from None
    _check_nesting(tree)
    nodes = _equation_nodes(tree)
    for k, node in enumerate(nodes, 1):  # the whole text is checked before anything is built
        _numbered(k, _check_syntax, node)
        _numbered(k, _check_equation_call, node)
    equations = []
    for k, node in enumerate(nodes, 1):
        equation = _numbered(k, _evaluate, _canonical_source(node))
        _numbered(k, _check_terms, equation.rhs)
        equations.append(equation)
    return equations


def _numbered(k: int, check: Callable[..., _T], *args: object) -> _T:
    """``check(*args)``, its ValueError prefixed with the (1-based) equation number."""
    try:
        return check(*args)
    except ValueError as err:
        kind = LimitError if isinstance(err, LimitError) else ValueError
        raise kind(f"equation {k}: {err}") from None


def _check_nesting(tree: ast.Module) -> None:
    """Refuse trees deeper than ``MAX_NESTING`` before any recursive pass walks them."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise LimitError(f"equation text is nested too deeply (more than {MAX_NESTING} levels)")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _check_syntax(tree: ast.AST, where: str = "equations") -> None:
    """Reject any node, name, literal or call outside the whitelist (no evaluation)."""
    allowed_calls = set(ALLOWED_FUNCTIONS)
    strings = set()
    for node in ast.walk(tree):
        if not isinstance(node, _NODES):
            what = _DESCRIPTIONS.get(type(node), f"'{type(node).__name__}' syntax")
            raise ValueError(f"{what} not allowed in {where}")
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise ValueError(f"names starting with '_' are not allowed: {node.id!r}")
            if node.id in _INTERNAL:
                raise ValueError(f"the name {node.id!r} is reserved; choose another name")
        elif isinstance(node, ast.Call):
            _check_call(node, allowed_calls, where)
            if isinstance(node.func, ast.Name) and node.func.id in _NAME_CONSTRUCTORS:
                strings.add(id(node.args[0]))
        elif isinstance(node, ast.Constant):
            _check_constant(node, strings)


def _check_call(node: ast.Call, allowed_calls: set[str], where: str = "equations") -> None:
    if node.keywords:
        raise ValueError(f"keyword arguments not allowed in {where}")
    func = node.func
    if isinstance(func, ast.Call):
        inner = func.func
        if not (isinstance(inner, ast.Name) and inner.id == "Function"):
            raise ValueError("only Function('name')(...) may be called on a call's result")
        return
    if isinstance(func, ast.Attribute):
        raise ValueError(f"attribute access not allowed in {where}")
    if not isinstance(func, ast.Name):
        raise ValueError("only sympy functions and field names may be called")
    if func.id in _CONSTANTS:
        raise ValueError(f"{func.id!r} is a constant and cannot be called")
    if func.id in _NAME_CONSTRUCTORS:
        if len(node.args) != 1:
            raise ValueError(f"{func.id}() takes exactly one name in quotes")
        arg = node.args[0]
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            raise ValueError(f"{func.id}() takes a name in quotes, e.g. {func.id}('u')")
        name = arg.value
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"{func.id}({name!r}): not a plain identifier")
        if name in allowed_calls or name in _CONSTANTS or name in _INTERNAL:
            raise ValueError(f"{func.id}({name!r}): the name is reserved")


def _check_constant(node: ast.Constant, strings: set[int]) -> None:
    value = node.value
    if isinstance(value, str):
        if id(node) not in strings:
            raise ValueError(
                "text literals are only allowed as the name in Function('u') or Symbol('k')"
            )
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"literal {value!r} not allowed in equations")


def _equation_nodes(tree: ast.Module) -> list[ast.AST]:
    """The top-level expressions: each statement is one equation or a list/tuple of them."""
    nodes: list[ast.AST] = []
    for statement in tree.body:
        value = statement.value if isinstance(statement, ast.Expr) else statement
        if isinstance(value, (ast.List, ast.Tuple)):
            nodes.extend(value.elts)
        else:
            nodes.append(value)
    if not nodes:
        raise ValueError("no equation given")
    if len(nodes) > MAX_EQUATIONS:
        raise LimitError(f"{len(nodes)} equations; at most {MAX_EQUATIONS}: write a smaller system")
    return nodes


def _check_equation_call(node: ast.AST) -> None:
    """The node is ``Eq(lhs, rhs)`` with no ``Eq`` inside (checked after the whitelist)."""
    if not (isinstance(node, ast.Call) and _is_name(node.func, "Eq") and len(node.args) == 2):
        raise ValueError("expected Eq(lhs, rhs)")
    for inner in ast.walk(node):
        if inner is not node and isinstance(inner, ast.Call) and _is_name(inner.func, "Eq"):
            raise ValueError("Eq(...) inside an equation")


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


class _UnaryAsProduct(ast.NodeTransformer):
    """``-a`` -> ``-1 * a`` and ``+a`` -> ``a``, so that sympy's parser leaves them unevaluated."""

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(operand, ast.Constant):
            return ast.UnaryOp(op=ast.USub(), operand=operand)
        minus_one = ast.UnaryOp(op=ast.USub(), operand=ast.Constant(1))
        return ast.BinOp(left=minus_one, op=ast.Mult(), right=operand)


def _canonical_source(node: ast.AST) -> str:
    """Source text of a checked equation node, unary signs rewritten as products."""
    return ast.unparse(ast.fix_missing_locations(_UnaryAsProduct().visit(node)))


def _namespace() -> dict[str, object]:
    namespace: dict[str, object] = {"__builtins__": {}}
    namespace.update(_INTERNAL)
    namespace.update(ALLOWED_FUNCTIONS)
    namespace.update(_CONSTANTS)
    return namespace


def _evaluate(source: str) -> sp.Eq:
    """sympy's parser on checked text, unevaluated, then evaluated under the size guards."""
    try:
        raw = parse_expr(
            source,
            local_dict={},
            global_dict=_namespace(),
            transformations=(auto_symbol, auto_number),
            evaluate=False,
        )
        equation = _rebuild(raw)
    except RecursionError:
        raise LimitError("equation is nested too deeply") from None
    except LimitError:
        raise
    except (TypeError, ValueError, AttributeError, sp.SympifyError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"cannot build {_short(source)}: {first_line}") from None
    if not isinstance(equation, sp.Equality):
        raise ValueError(f"{_short(source)} is not an equation Eq(lhs, rhs)")
    return equation


#: Functions an expression (:func:`parse_expression`) may call: the elementary functions.
_ELEMENTARY = ("exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "Abs")


def parse_expression(
    text: str, symbols: Mapping[str, sp.Expr], derivatives: bool = False
) -> sp.Expr:
    """Parse an untrusted expression (a field of the coordinates, a closure) into sympy.

    The same whitelist and limits as :func:`parse_equations`, narrower: allowed are numbers,
    ``+ - * / **``, parentheses, the names of ``symbols`` (each stands for its value, e.g.
    ``x`` for the coordinate or ``nu_u_xx`` for the function ``nu_u_xx(t, x)``), ``pi``,
    ``E``, ``Rational(p, q)``, the elementary functions (``exp log sqrt sin cos tan sinh cosh
    tanh Abs``) and, with ``derivatives``, ``Derivative(f, x)`` / ``Derivative(f, (x, 2))``.
    Nothing is executed.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"1 + 0.3*sin(2*pi*x)"``.
    symbols : mapping of str to sympy.Expr
        The names the expression may use and what they stand for.
    derivatives : bool, default False
        Allow ``Derivative(...)`` (of total order at most :data:`MAX_DERIVATIVE_ORDER`).

    Returns
    -------
    sympy.Expr

    Raises
    ------
    ValueError
        One line naming the offending construct or name (:class:`LimitError` beyond a limit).

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> parse_expression("1 + 0.3*sin(2*pi*x)", {"x": x})
    0.3*sin(2*pi*x) + 1
    >>> parse_expression("x.__class__", {"x": x})
    Traceback (most recent call last):
    ...
    ValueError: attribute access not allowed in expressions
    """
    if not isinstance(text, str):
        raise ValueError(f"an expression must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise LimitError(f"expression is {len(text)} characters long; at most {MAX_LENGTH}")
    if not text.strip():
        raise ValueError("empty expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"invalid syntax in expression: {err.msg}") from None
    except (MemoryError, RecursionError):
        raise LimitError("expression is nested too deeply") from None
    body = tree.body
    _check_nesting(cast(ast.Module, tree))
    _check_syntax(body, "expressions")
    calls = {*_ELEMENTARY, "Rational", *(("Derivative",) if derivatives else ())}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else ""
            if name not in calls:
                what = f"{name}(...)" if name else "calling a call's result"
                raise ValueError(
                    f"{what} not allowed in an expression; callable: {', '.join(sorted(calls))}"
                )
        elif isinstance(node, ast.Name) and not (
            node.id in symbols or node.id in _CONSTANTS or node.id in calls
        ):
            known = ", ".join(sorted(symbols)) or "none"
            raise ValueError(f"unknown name {node.id!r} in expression; known names: {known}")
    source = ast.unparse(ast.fix_missing_locations(_UnaryAsProduct().visit(body)))
    try:
        raw = parse_expr(
            source,
            local_dict=dict(symbols),
            global_dict=_namespace(),
            transformations=(auto_symbol, auto_number),
            evaluate=False,
        )
        expression = _rebuild(raw)
    except RecursionError:
        raise LimitError("expression is nested too deeply") from None
    except LimitError:
        raise
    except (TypeError, ValueError, AttributeError, sp.SympifyError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"cannot build {_short(source)}: {first_line}") from None
    if not isinstance(expression, sp.Expr):
        raise ValueError(f"{_short(source)} is not an expression")
    _check_terms(expression)
    return expression


def _short(expr: object, width: int = 60) -> str:
    """``expr`` as text, cut to ``width`` characters."""
    text = str(expr)
    return text if len(text) <= width else text[: width - 3] + "..."


# -- size of a right-hand side once evaluated --------------------------------------------------
#: Counts above this are all "too many"; keeps the integers small.
_TERMS_CAP = 10**6


def _check_terms(rhs: sp.Expr) -> None:
    terms = _term_counts(rhs, {})[0]
    if terms > MAX_TERMS:
        count = f"more than {_TERMS_CAP:,}" if terms >= _TERMS_CAP else f"up to {terms}"
        raise LimitError(
            f"the right-hand side has {count} terms once its derivatives are evaluated and its "
            f"products expanded; at most {MAX_TERMS}: write a smaller equation"
        )


def _term_counts(expr: sp.Basic, memo: dict[sp.Basic, tuple[int, ...]]) -> tuple[int, ...]:
    """Upper bounds on the number of terms of d^k(expr), k = 0..MAX_DERIVATIVE_ORDER, once the
    derivatives are evaluated and products and positive integer powers expanded (d^k: any
    spatial derivative of total order k; the product rule and Faa di Bruno's formula)."""
    if expr in memo:
        return memo[expr]
    size = MAX_DERIVATIVE_ORDER + 1
    if isinstance(expr, sp.Derivative):
        inner = _term_counts(expr.expr, memo)
        order = sum(int(count) for _, count in expr.variable_count)
        counts = tuple(inner[k + order] if k + order < size else 0 for k in range(size))
    elif isinstance(expr, AppliedUndef):
        counts = (1,) * size  # every derivative of a field is one derivative
    elif isinstance(expr, sp.Symbol):
        counts = (1, 1) + (0,) * (size - 2)  # d(x)/dx = 1
    elif isinstance(expr, sp.Add):
        counts = (0,) * size
        for arg in expr.args:
            counts = _sum(counts, _term_counts(arg, memo))
    elif isinstance(expr, sp.Mul):
        counts = (1,) + (0,) * (size - 1)
        for arg in expr.args:
            counts = _leibniz(counts, _term_counts(arg, memo))
    elif isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        counts = _power(_term_counts(expr.base, memo), int(expr.exp))
    elif not expr.args:  # numbers and number symbols
        counts = (1,) + (0,) * (size - 1)
    else:  # f(g) for any other function or power: Faa di Bruno
        inner = (0,) * size
        for arg in expr.args:
            inner = _sum(inner, _term_counts(arg, memo))
        counts = _chain_rule((0,) + inner[1:])
    memo[expr] = counts
    return counts


def _leibniz(first: Sequence[int], second: Sequence[int]) -> tuple[int, ...]:
    """Term counts of the derivatives of a product (truncated series product)."""
    return tuple(
        min(sum(first[j] * second[k - j] for j in range(k + 1)), _TERMS_CAP)
        for k in range(len(first))
    )


def _power(counts: Sequence[int], exponent: int) -> tuple[int, ...]:
    result: tuple[int, ...] = (1,) + (0,) * (len(counts) - 1)
    base = tuple(counts)
    while exponent:
        if exponent & 1:
            result = _leibniz(result, base)
        exponent >>= 1
        if exponent:
            base = _leibniz(base, base)
    return result


def _chain_rule(inner: Sequence[int]) -> tuple[int, ...]:
    """Term counts of d^k f(g): sum over j of f^(j)(g) times products of j derivatives of g."""
    total: tuple[int, ...] = (1,) + (0,) * (len(inner) - 1)
    product = tuple(inner)
    for _ in range(1, len(inner)):
        total = _sum(total, product)
        product = _leibniz(product, inner)
    return total


def _sum(first: Sequence[int], second: Sequence[int]) -> tuple[int, ...]:
    """Term counts of the derivatives of a sum."""
    return tuple(min(a + b, _TERMS_CAP) for a, b in zip(first, second, strict=True))


# -- limits of the PKF derivation ---------------------------------------------------------------
def check_derivation_limits(equations: Sequence[sp.Eq], form: PKFForm) -> None:
    """Refuse a system whose PKF derivation in ``form`` would be too large for equation text.

    The system has at most :data:`MAX_FIELDS` fields and 1 to :data:`MAX_DIMENSION` spatial
    coordinates. The right-hand sides are evaluated (``doit``: derivatives of products and
    sums expanded, nested derivatives merged) and each term is checked: at most
    :data:`MAX_FACTORS` field factors and a derivative order, summed over the field factors,
    of at most :data:`MAX_TERM_ORDER`. Equations that are not evolution equations are left to
    :class:`pkf.SymbolicPKF` to refuse.

    Parameters
    ----------
    equations : sequence of sympy.Eq
        As returned by :func:`parse_equations`.
    form : {'metric', 'aspect', 'diffusion'}
        The form to be derived.

    Raises
    ------
    LimitError
        One line naming the equation (counted from 1), the term, the limit and what to do.

    Examples
    --------
    >>> eqs = parse_equations("Eq(Derivative(c(t,x,y,z),t), k*Derivative(c(t,x,y,z),x,y))")
    >>> check_derivation_limits(eqs, "metric")
    >>> check_derivation_limits(eqs, "diffusion")
    Traceback (most recent call last):
    ...
    cases.parsing.LimitError: equation 1: the term k*Derivative(c(t, x, y, z), x, y) has \
derivative order 2 (summed over its field factors); the diffusion form in 3D allows at most 1 \
for one field; the metric form allows 3: lower the order
    """
    if form not in MAX_TERM_ORDER:
        raise ValueError(f"unknown form {form!r}; expected one of {tuple(MAX_TERM_ORDER)}")
    equations = list(equations)
    if len(equations) > MAX_FIELDS:
        raise LimitError(
            f"{len(equations)} equations; the PKF is derived for at most {MAX_FIELDS} fields "
            "(one equation each): derive a smaller system"
        )
    fields = {eq.lhs.expr.func for eq in equations if _is_evolution(eq)}
    for k, eq in enumerate(equations, 1):
        if _is_evolution(eq):
            _numbered(k, _check_evolution_terms, eq, fields, form)


def _is_evolution(eq: object) -> bool:
    return (
        isinstance(eq, sp.Equality)
        and isinstance(eq.lhs, sp.Derivative)
        and isinstance(eq.lhs.expr, AppliedUndef)
    )


def _check_evolution_terms(eq: sp.Eq, fields: set, form: PKFForm) -> None:
    head, time = eq.lhs.expr, eq.lhs.variables[0]
    dimension = sum(1 for arg in head.args if arg != time)
    if not 1 <= dimension <= MAX_DIMENSION:
        raise LimitError(
            f"{head} has {dimension} spatial coordinates; the PKF is derived in 1 to "
            f"{MAX_DIMENSION} dimensions: give the fields 1 to {MAX_DIMENSION} coordinates"
        )
    several = len(fields) > 1
    limit = MAX_TERM_ORDER[form][dimension - 1][several]
    metric = MAX_TERM_ORDER["metric"][dimension - 1][several]
    for term in sp.Add.make_args(eq.rhs.doit(deep=True)):
        factors, order = _factors_and_order(term, fields, {})
        if factors > MAX_FACTORS:
            raise LimitError(
                f"the term {_short(term)} has {factors} field factors (fields and their "
                "derivatives, powers counted, a function of fields twice its argument); at most "
                f"{MAX_FACTORS}: simplify the equation"
            )
        if order > limit:
            hint = f"; the metric form allows {metric}" if metric > limit else ""
            raise LimitError(
                f"the term {_short(term)} has derivative order {order} (summed over its field "
                f"factors); the {form} form in {dimension}D allows at most {limit} for "
                f"{'several fields' if several else 'one field'}{hint}: lower the order"
            )


def _factors_and_order(
    expr: sp.Basic, fields: set, memo: dict[sp.Basic, tuple[int, int]]
) -> tuple[int, int]:
    """Largest (number of field factors, summed derivative order) of a term of ``expr``
    expanded; a function of fields counts as the square of its argument."""
    if expr in memo:
        return memo[expr]
    if isinstance(expr, sp.Derivative):
        own = sum(int(count) for _, count in expr.variable_count)
        inner_factors, inner_order = _factors_and_order(expr.expr, fields, memo)
        result = (inner_factors, inner_order + own) if inner_factors else (0, 0)
    elif isinstance(expr, AppliedUndef):
        result = (1, 0) if expr.func in fields else (0, 0)
    elif isinstance(expr, sp.Add):
        parts = [_factors_and_order(arg, fields, memo) for arg in expr.args]
        result = (max(p[0] for p in parts), max(p[1] for p in parts))
    elif isinstance(expr, sp.Mul):
        parts = [_factors_and_order(arg, fields, memo) for arg in expr.args]
        result = (sum(p[0] for p in parts), sum(p[1] for p in parts))
    elif isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        factors, order = _factors_and_order(expr.base, fields, memo)
        result = (factors * int(expr.exp), order * int(expr.exp))
    elif not expr.args:
        result = (0, 0)
    else:
        parts = [_factors_and_order(arg, fields, memo) for arg in expr.args]
        factors, order = max(p[0] for p in parts), max(p[1] for p in parts)
        result = (2 * factors, 2 * order) if factors else (0, 0)
    memo[expr] = result
    return result


def check_derived_size(pkf: SymbolicPKF, form: PKFForm) -> None:
    """Refuse writing the PKF dynamics in ``form`` when their metric form is too large.

    The metric form is derived (every form starts from it) and its size measured: the number
    of nodes of the expression trees of its right-hand sides. The limit
    :data:`MAX_DERIVED_SIZE` depends on ``form`` and on the number of spatial coordinates.

    Parameters
    ----------
    pkf : pkf.SymbolicPKF
        The system, not yet derived in ``form``.
    form : {'metric', 'aspect', 'diffusion'}

    Raises
    ------
    LimitError
        Saying the size, the limit and what to do.
    """
    dimension = len(pkf.coordinates)
    limit = MAX_DERIVED_SIZE[form][dimension - 1]
    size = sum(_size(eq.rhs) for eq in pkf.in_metric)
    if size > limit:
        metric = MAX_DERIVED_SIZE["metric"][dimension - 1]
        hint = f" or use --form metric (up to {metric:,})" if metric >= size else ""
        raise LimitError(
            f"the PKF dynamics of this system have size {size:,} in the metric form (nodes of "
            f"the expression trees); the {form} form in {dimension}D is written up to size "
            f"{limit:,}: derive a smaller system{hint}"
        )


def _size(expr: sp.Basic) -> int:
    """Number of nodes of the expression tree of ``expr``."""
    return sum(1 for _ in sp.preorder_traversal(expr))


def check_output_size(text: str) -> None:
    """Refuse printing more than :data:`MAX_OUTPUT` characters.

    Raises
    ------
    LimitError
        Saying how long the output is and what to do.
    """
    if len(text) > MAX_OUTPUT:
        raise LimitError(
            f"the output is {len(text):,} characters long; at most {MAX_OUTPUT:,}: derive a "
            "smaller system or use --form metric (the shortest form)"
        )
