"""The study file of ``pkfnet study FILE.toml``: a user's case study described in TOML.

:func:`load_study` reads the file with :mod:`tomllib` into frozen dataclasses and checks every
key before anything runs: equations and expressions go through the restricted parser of
:mod:`cases.parsing` (never executed), and every error is one line naming the file, the dotted
key, its line in the file and what is expected. The format is documented in ``README.md``
(section "Your own study") and by the examples in ``docs/studies/``.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import numpy as np
import sympy as sp

from generator.protocols import DType
from generator.timeschemes import TimeScheme
from pkf.forms import PKFForm

if TYPE_CHECKING:
    from pkf import SymbolicPKF

__all__ = [
    "CLOSURE_NAMES",
    "ClosureSpec",
    "Domain",
    "Dynamics",
    "ErrorSpec",
    "RunSettings",
    "StudyFile",
    "StudyFileError",
    "load_study",
]

#: Named closures of ``[closure] name`` (see :func:`closures.close`).
CLOSURE_NAMES = ("none", "zero", "quasi-gaussian", "P18")
#: Keys of ``[run]`` that ``[quick]`` may override (used by ``--quick``).
QUICK_KEYS = ("dt", "final_time", "saved_times", "members", "seed")
_SECTIONS = ("dynamics", "domain", "fields", "initial", "errors", "closure", "run", "quick")
_REQUIRED_SECTIONS = ("dynamics", "domain", "initial", "errors", "run")
#: Relative tolerance of "a multiple of dt" for the final and saved times.
_TIME_TOLERANCE = 1e-9


class StudyFileError(ValueError):
    """A mistake in a study file: one line naming the file, the key and its line."""


@dataclass(frozen=True)
class Dynamics:
    """``[dynamics]``: the equations (parsed, with their text) and the constants' values."""

    text: tuple[str, ...]
    equations: tuple[sp.Eq, ...]
    constants: Mapping[str, float]


@dataclass(frozen=True)
class Domain:
    """``[domain]``: grid points and periodic domain length per axis (model coordinate order)."""

    shape: tuple[int, ...]
    lengths: tuple[float, ...]


@dataclass(frozen=True)
class ErrorSpec:
    """``[errors.<field>]``: initial error variance and homogeneous Gaussian correlation.

    ``variance`` is an expression of the coordinates (a number is a constant expression);
    exactly one of ``length_scale`` (one per axis) and ``aspect`` (upper triangle, row by row:
    ``s_xx, s_xy, s_yy`` in 2D) is set.
    """

    variance: sp.Expr
    variance_text: str
    length_scale: tuple[float, ...] | None = None
    aspect: tuple[float, ...] | None = None

    def aspect_tensor(self, ndim: int) -> np.ndarray:
        """The aspect tensor ``s`` (length squared), ``(ndim, ndim)``."""
        if self.length_scale is not None:
            return np.diag(np.asarray(self.length_scale, dtype=float) ** 2)
        return _upper_to_matrix(cast(tuple[float, ...], self.aspect), ndim)


@dataclass(frozen=True)
class ClosureSpec:
    """``[closure]``: a named closure or an expression of the single unclosed term."""

    name: str | None = None
    expression: sp.Expr | None = None
    expression_text: str | None = None
    coefficients_file: str | None = None
    otherwise: Literal["zero"] | None = None

    def describe(self) -> str:
        """The closure as written in the file."""
        if self.name is not None:
            return self.name + (f" (otherwise {self.otherwise})" if self.otherwise else "")
        if self.coefficients_file is not None:
            return f"coefficients {self.coefficients_file}"
        return f"expression {self.expression_text}"


@dataclass(frozen=True)
class RunSettings:
    """``[run]`` (or ``[run]`` with ``[quick]`` applied): time stepping, ensemble, numerics."""

    dt: float
    final_time: float
    saved_times: tuple[float, ...]
    members: int
    seed: int = 0
    time_scheme: TimeScheme = "rk4"
    accuracy: int = 2
    form: PKFForm = "diffusion"
    dtype: DType = "float64"

    @property
    def steps(self) -> int:
        """Number of time steps to ``final_time``."""
        return round(self.final_time / self.dt)

    @property
    def times(self) -> np.ndarray:
        """The forecast times ``0, dt, ..., final_time``."""
        return np.arange(self.steps + 1) * self.dt

    @property
    def saved(self) -> np.ndarray:
        """The saved times, snapped onto :attr:`times`."""
        return self.times[[round(t / self.dt) for t in self.saved_times]]


@dataclass(frozen=True)
class StudyFile:
    """A validated study file. ``pkf`` is the (unclosed) symbolic PKF of the dynamics."""

    path: Path
    dynamics: Dynamics
    domain: Domain
    coordinates: tuple[sp.Symbol, ...]
    fields: Mapping[str, sp.Expr]
    initial: Mapping[str, sp.Expr]
    expressions: Mapping[str, str]
    errors: Mapping[str, ErrorSpec]
    closure: ClosureSpec
    run: RunSettings
    quick: RunSettings
    pkf: SymbolicPKF = field(compare=False, repr=False)
    lines: Mapping[str, int] = field(compare=False, repr=False, default_factory=dict)

    def settings(self, quick: bool = False) -> RunSettings:
        """The run settings, with ``[quick]`` applied when ``quick``."""
        return self.quick if quick else self.run

    def error(self, key: str, message: str) -> StudyFileError:
        """A :class:`StudyFileError` naming this file, ``key`` and its line."""
        return StudyFileError(_located(self.path, self.lines, key, message))


def load_study(path: str | Path) -> StudyFile:
    """Read and validate a study file.

    Parameters
    ----------
    path : path
        The TOML file (UTF-8).

    Returns
    -------
    StudyFile

    Raises
    ------
    StudyFileError
        For a missing or unreadable file, a TOML syntax error (tomllib's message), an unknown
        or missing key, a value of the wrong type or out of range, or equations and
        expressions the restricted parser refuses: one line, ``FILE, line N: KEY: what is
        expected``.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise StudyFileError(f"cannot read study file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise StudyFileError(f"{path}: not UTF-8 text; write the study file in UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise StudyFileError(f"{path}: invalid TOML: {err}") from None
    return _Reader(path, _key_lines(text)).study(data)


# -- positions of keys ---------------------------------------------------------------------
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key → first line (1-based) where it is defined, from a scan of the text (tomllib
    gives no positions): table headers and ``key =`` lines outside multi-line arrays."""
    lines: dict[str, int] = {}
    table = ""
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        if depth == 0:
            header = _HEADER.match(line)
            if header:
                table = _dotted(header.group(1))
                lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                name = _dotted(key.group(1))
                lines.setdefault(f"{table}.{name}" if table else name, number)
        depth = max(0, depth + _bracket_balance(line))
    return lines


def _dotted(key: str) -> str:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", key)
    return ".".join(p.strip("\"'") for p in parts)


def _bracket_balance(line: str) -> int:
    """Opened minus closed brackets of a line, outside strings and comments."""
    balance, quote = 0, ""
    for char in line:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char in "[{":
            balance += 1
        elif char in "]}":
            balance -= 1
    return balance


def _located(path: Path, lines: Mapping[str, int], key: str, message: str) -> str:
    parts = key.split(".")
    for k in range(len(parts), 0, -1):
        line = lines.get(".".join(parts[:k]))
        if line is not None:
            return f"{path}, line {line}: {key}: {message}"
    return f"{path}: {key}: {message}"


# -- reading and checking ------------------------------------------------------------------
class _Reader:
    """Checks one parsed TOML document, section by section, naming keys in its errors."""

    def __init__(self, path: Path, lines: Mapping[str, int]) -> None:
        self.path = path
        self.lines = lines

    def fail(self, key: str, message: str) -> StudyFileError:
        return StudyFileError(_located(self.path, self.lines, key, message))

    def study(self, data: dict[str, Any]) -> StudyFile:
        self.keys("", data, _SECTIONS, _REQUIRED_SECTIONS)
        sections = {name: self.table(name, data.get(name, {})) for name in _SECTIONS}
        dynamics, pkf, system = self.dynamics(sections["dynamics"])
        coordinates = tuple(pkf.coordinates)
        domain = self.domain(sections["domain"], len(coordinates))
        expressions: dict[str, str] = {}
        function_arguments = {
            name: tuple(sp.Symbol(c) for c in system.function_coordinates[name])
            for name in system.constant_functions
        }
        fields = self.expressions(
            "fields", sections["fields"], function_arguments, expressions, "constant field"
        )
        initial = self.expressions(
            "initial",
            sections["initial"],
            {name: coordinates for name in pkf.fields},
            expressions,
            "prognostic field",
        )
        errors = self.errors(sections["errors"], list(pkf.fields), coordinates)
        run = self.run_settings("run", sections["run"], None)
        quick = self.run_settings("quick", sections["quick"], run)
        closure = self.closure(sections["closure"], pkf, system, "closure" in data)
        self.check_limits(dynamics, pkf, run.form)
        return StudyFile(
            path=self.path,
            dynamics=dynamics,
            domain=domain,
            coordinates=coordinates,
            fields=MappingProxyType(fields),
            initial=MappingProxyType(initial),
            expressions=MappingProxyType(expressions),
            errors=MappingProxyType(errors),
            closure=closure,
            run=run,
            quick=quick,
            pkf=pkf,
            lines=MappingProxyType(dict(self.lines)),
        )

    # -- generic checks ------------------------------------------------------------------
    def keys(
        self, table: str, data: Mapping[str, Any], known: Sequence[str], required: Sequence[str]
    ) -> None:
        where = f"[{table}]" if table else "the file"
        for key in data:
            if key not in known:
                raise self.fail(
                    _join(table, key), f"unknown key in {where}; known keys: {', '.join(known)}"
                )
        for key in required:
            if key not in data:
                what = f"section [{key}]" if not table else f"key '{key}'"
                raise self.fail(table or key, f"missing {what}")

    def table(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table [{key}], got {_kind(value)}")
        return value

    def number(self, key: str, value: Any, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {_kind(value)}")
        if not math.isfinite(value) or (positive and value <= 0):
            raise self.fail(key, f"expected a {'positive ' if positive else ''}finite number")
        return float(value)

    def integer(self, key: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_kind(value)}")
        if value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {value}")
        return value

    def choice(self, key: str, value: Any, choices: Sequence[Any]) -> Any:
        if value not in choices or isinstance(value, bool):
            shown = ", ".join(repr(c) for c in choices)
            raise self.fail(key, f"expected one of {shown}, got {value!r}")
        return value

    def per_axis(self, key: str, value: Any, ndim: int) -> tuple[float, ...]:
        """A positive number, or a list of one positive number per axis."""
        values = value if isinstance(value, list) else [value]
        if len(values) not in (1, ndim):
            raise self.fail(key, f"expected a number or {ndim} numbers (one per axis)")
        numbers = tuple(self.number(key, v, positive=True) for v in values)
        return numbers * ndim if len(numbers) == 1 else numbers

    # -- sections ------------------------------------------------------------------------
    def dynamics(self, data: dict[str, Any]) -> tuple[Dynamics, SymbolicPKF, Any]:
        from generator.analysis import PDESystem
        from pkf import SymbolicPKF

        from .parsing import parse_equations

        self.keys("dynamics", data, ("equations", "constants"), ("equations",))
        raw = data["equations"]
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise self.fail(
                "dynamics.equations", f"expected a list of equation strings, got {_kind(raw)}"
            )
        try:
            equations = parse_equations("\n".join(texts))
            system = PDESystem.from_equations(equations)
            pkf = SymbolicPKF(equations)
        except ValueError as err:
            raise self.fail("dynamics.equations", str(err)) from None
        constants_data = self.table("dynamics.constants", data.get("constants", {}))
        constants = {}
        for name, value in constants_data.items():
            key = f"dynamics.constants.{name}"
            if name not in system.constants:
                known = ", ".join(system.constants) or "none"
                raise self.fail(key, f"not a constant of the equations (constants: {known})")
            constants[name] = self.number(key, value)
        for name in system.constants:
            if name not in constants:
                raise self.fail("dynamics.constants", f"missing the value of constant '{name}'")
        dynamics = Dynamics(tuple(texts), tuple(equations), MappingProxyType(constants))
        return dynamics, pkf, system

    def check_limits(self, dynamics: Dynamics, pkf: SymbolicPKF, form: PKFForm) -> None:
        """The size limits of ``pkfnet derive`` (the equations are untrusted text)."""
        from .parsing import check_derivation_limits, check_derived_size

        try:
            check_derivation_limits(list(dynamics.equations), form)
            check_derived_size(pkf, form)
        except ValueError as err:
            raise self.fail("dynamics.equations", str(err)) from None

    def domain(self, data: dict[str, Any], ndim: int) -> Domain:
        self.keys("domain", data, ("shape", "lengths"), ("shape",))
        raw = data["shape"]
        values = raw if isinstance(raw, list) else [raw]
        if len(values) != ndim:
            raise self.fail(
                "domain.shape", f"expected {ndim} grid sizes (the equations have {ndim} axes)"
            )
        shape = tuple(self.integer("domain.shape", v, 4) for v in values)
        lengths = self.per_axis("domain.lengths", data.get("lengths", 1.0), ndim)
        return Domain(shape, lengths)

    def expressions(
        self,
        section: str,
        data: dict[str, Any],
        arguments: Mapping[str, tuple[sp.Symbol, ...]],
        texts: dict[str, str],
        what: str,
    ) -> dict[str, sp.Expr]:
        from .parsing import parse_expression

        result = {}
        for name, value in data.items():
            key = f"{section}.{name}"
            if name not in arguments:
                known = ", ".join(arguments) or "none"
                raise self.fail(key, f"not a {what} of the equations ({what}s: {known})")
            symbols = {str(s): s for s in arguments[name]}
            result[name] = self.expression(key, value, symbols, parse_expression)
            texts[key] = str(value)
        for name in arguments:
            if name not in result:
                raise self.fail(section, f"missing the {what} '{name}' (an expression)")
        return result

    def expression(
        self, key: str, value: Any, symbols: Mapping[str, sp.Expr], parse: Any
    ) -> sp.Expr:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(
                key, f"expected a number or an expression in quotes, got {_kind(value)}"
            )
        if not isinstance(value, str):
            return sp.Float(self.number(key, value))
        try:
            return parse(value, symbols)
        except ValueError as err:
            raise self.fail(key, f"bad expression: {err}") from None

    def errors(
        self, data: dict[str, Any], fields: list[str], coordinates: tuple[sp.Symbol, ...]
    ) -> dict[str, ErrorSpec]:
        from .parsing import parse_expression

        ndim = len(coordinates)
        result = {}
        for name, value in data.items():
            key = f"errors.{name}"
            if name not in fields:
                raise self.fail(key, f"not a prognostic field (fields: {', '.join(fields)})")
            spec = self.table(key, value)
            self.keys(key, spec, ("variance", "length_scale", "aspect"), ("variance",))
            variance = self.expression(
                f"{key}.variance",
                spec["variance"],
                {str(c): c for c in coordinates},
                parse_expression,
            )
            given = [k for k in ("length_scale", "aspect") if k in spec]
            if len(given) != 1:
                raise self.fail(key, "give exactly one of length_scale and aspect")
            length_scale = aspect = None
            if "length_scale" in spec:
                length_scale = self.per_axis(f"{key}.length_scale", spec["length_scale"], ndim)
            else:
                aspect = self.aspect(f"{key}.aspect", spec["aspect"], ndim)
            result[name] = ErrorSpec(variance, str(spec["variance"]), length_scale, aspect)
        for name in fields:
            if name not in result:
                raise self.fail("errors", f"missing the table [errors.{name}]")
        return result

    def aspect(self, key: str, value: Any, ndim: int) -> tuple[float, ...]:
        count = ndim * (ndim + 1) // 2
        if not isinstance(value, list) or len(value) != count:
            raise self.fail(
                key,
                f"expected {count} numbers (the upper triangle of the aspect tensor, row by row)",
            )
        numbers = tuple(self.number(key, v) for v in value)
        if np.any(np.linalg.eigvalsh(_upper_to_matrix(numbers, ndim)) <= 0):
            raise self.fail(key, "the aspect tensor must be positive definite")
        return numbers

    def run_settings(
        self, section: str, data: dict[str, Any], base: RunSettings | None
    ) -> RunSettings:
        def key(name: str) -> str:
            return f"{section}.{name}"

        if base is not None:
            self.keys(section, data, QUICK_KEYS, ())
        else:
            known = tuple(f.name for f in RunSettings.__dataclass_fields__.values())
            self.keys(section, data, known, ("dt", "final_time", "members"))
        values: dict[str, Any] = {}
        for name in ("dt", "final_time"):
            if name in data:
                values[name] = self.number(key(name), data[name], positive=True)
        if "members" in data:
            values["members"] = self.integer(key("members"), data["members"], 2)
        if "seed" in data:
            values["seed"] = self.integer(key("seed"), data["seed"], 0)
        if "accuracy" in data:
            values["accuracy"] = self.choice(key("accuracy"), data["accuracy"], (2, 4, 6))
        for name, kind in (("time_scheme", TimeScheme), ("form", PKFForm), ("dtype", DType)):
            if name in data:
                values[name] = self.choice(key(name), data[name], get_args(kind))
        dt = values.get("dt", base.dt if base else 0.0)
        final = values.get("final_time", base.final_time if base else 0.0)
        if not _multiple(final, dt):
            raise self.fail(
                key("final_time" if "final_time" in data else "dt"),
                f"final_time {final} is not a multiple of dt {dt}",
            )
        if "saved_times" in data:
            saved = self.saved_times(key("saved_times"), data["saved_times"], dt, final)
        elif base is None:
            saved = (final,)
        else:  # the run's saved times within the quick run, and its final time
            saved = tuple(sorted({*(t for t in base.saved_times if t < final), final}))
            if not all(_multiple(t, dt) for t in saved):
                raise self.fail(key("dt"), "the saved times of [run] are not multiples of this dt")
        values["saved_times"] = saved
        return replace(base, **values) if base else RunSettings(**values)

    def saved_times(self, key: str, value: Any, dt: float, final: float) -> tuple[float, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"expected a list of times, got {_kind(value)}")
        times = tuple(self.number(key, v) for v in value)
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise self.fail(key, "expected strictly increasing times")
        for t in times:
            if not 0 <= t <= final * (1 + _TIME_TOLERANCE) or not _multiple(t, dt):
                raise self.fail(key, f"time {t} is not a multiple of dt {dt} in [0, {final}]")
        return times

    def closure(
        self, data: dict[str, Any], pkf: SymbolicPKF, system: Any, present: bool
    ) -> ClosureSpec:
        from .parsing import parse_expression

        unclosed = pkf.unclosed_terms
        if not present:
            if unclosed:
                terms = ", ".join(map(str, unclosed))
                raise self.fail(
                    "closure",
                    f"missing section [closure]: the PKF has unclosed terms ({terms}); give "
                    f"name = one of {', '.join(CLOSURE_NAMES)} or an expression",
                )
            return ClosureSpec(name="none")
        self.keys("closure", data, ("name", "expression", "coefficients", "otherwise"), ())
        if len(set(data) - {"otherwise"}) != 1:
            raise self.fail("closure", "give exactly one of name, expression and coefficients")
        if "otherwise" in data and "name" not in data:
            raise self.fail("closure.otherwise", "goes with name (a named proposal)")
        if "name" in data:
            return ClosureSpec(
                name=self.choice("closure.name", data["name"], CLOSURE_NAMES),
                otherwise=(
                    self.choice("closure.otherwise", data["otherwise"], ("zero",))
                    if "otherwise" in data
                    else None
                ),
            )
        if "coefficients" in data:
            return self.coefficients(data["coefficients"], pkf, system)
        text = data["expression"]
        if not isinstance(text, str):
            raise self.fail(
                "closure.expression", f"expected an expression in quotes, got {_kind(text)}"
            )
        if len(unclosed) != 1:
            raise self.fail(
                "closure.expression",
                f"an expression closes exactly one unclosed term; the PKF has {len(unclosed)}",
            )
        symbols = _pkf_names(pkf, system)
        try:
            expression = parse_expression(text, symbols, derivatives=True)
        except ValueError as err:
            raise self.fail("closure.expression", f"bad expression: {err}") from None
        return ClosureSpec(expression=expression, expression_text=text)

    def coefficients(self, value: Any, pkf: SymbolicPKF, system: Any) -> ClosureSpec:
        """``closure.coefficients``: a JSON file of learned coefficients, as written by
        :meth:`closures.fitting.FitResult.to_json` (``terms_text`` and ``coefficients``), for
        the single unclosed term. The terms are read with the restricted parser (the file's
        ``srepr`` entries are not evaluated); a path is relative to the study file."""
        import json

        from .parsing import parse_expression

        key = "closure.coefficients"
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected the path of a JSON file in quotes, got {_kind(value)}")
        if len(pkf.unclosed_terms) != 1:
            raise self.fail(
                key,
                "learned coefficients close exactly one unclosed term; the PKF has "
                f"{len(pkf.unclosed_terms)}",
            )
        path = (self.path.parent / value).resolve()
        try:
            data = json.loads(path.read_text())
            texts, values = data["terms_text"], data["coefficients"]
        except OSError as err:
            raise self.fail(key, f"cannot read {path}: {err.strerror}") from None
        except (ValueError, KeyError, TypeError) as err:
            raise self.fail(
                key,
                f"{path} is not a coefficients file (JSON with terms_text and coefficients, as "
                f"FitResult.to_json writes): {type(err).__name__} {err}",
            ) from None
        if (
            not isinstance(texts, list)
            or not isinstance(values, list)
            or len(texts) != len(values)
            or not texts
            or not all(isinstance(t, str) for t in texts)
            or not all(isinstance(c, int | float) and math.isfinite(c) for c in values)
        ):
            raise self.fail(
                key, f"{path}: expected as many terms_text (text) as finite coefficients"
            )
        symbols = _pkf_names(pkf, system)
        applied = re.compile(r"\b([A-Za-z_]\w*)\(([\w ,]*)\)")

        def bare(match: re.Match[str]) -> str:  # nu_u_xx(t, x) -> nu_u_xx
            return match.group(1) if match.group(1) in symbols else match.group(0)

        expression = sp.S.Zero
        for k, (text, coefficient) in enumerate(zip(texts, values, strict=True)):
            try:
                term = parse_expression(applied.sub(bare, text), symbols, derivatives=True)
            except ValueError as err:
                raise self.fail(key, f"{path}: term {k} ({text!r}): {err}") from None
            expression += sp.Float(float(coefficient)) * term
        return ClosureSpec(
            expression=expression, expression_text=str(expression), coefficients_file=value
        )


def _pkf_names(pkf: SymbolicPKF, system: Any) -> dict[str, sp.Expr]:
    """Names a closure expression may use: the PKF fields (means, variances, tensors in every
    form, cross-covariances), the coordinates, the constants and the constant fields."""
    names: dict[str, sp.Expr] = {str(c): c for c in pkf.coordinates}
    names.update({c: sp.Symbol(c) for c in system.constants})
    for name in system.constant_functions:
        arguments = [sp.Symbol(c) for c in system.function_coordinates[name]]
        names[name] = sp.Function(name)(*arguments)
    fields = list(pkf.fields.values())
    for symbols in fields:
        functions = [symbols.mean, symbols.variance]
        for tensor in (symbols.metric, symbols.aspect, symbols.diffusion):
            functions += list(tensor)
        names.update({f.func.__name__: f for f in functions})
    for i, first in enumerate(pkf.fields):
        for second in list(pkf.fields)[i + 1 :]:
            covariance = pkf.covariance(first, second)
            names[covariance.func.__name__] = covariance
    return names


def _upper_to_matrix(values: Sequence[float], ndim: int) -> np.ndarray:
    matrix = np.zeros((ndim, ndim))
    k = 0
    for i in range(ndim):
        for j in range(i, ndim):
            matrix[i, j] = matrix[j, i] = values[k]
            k += 1
    return matrix


def _multiple(time: float, dt: float) -> bool:
    return dt > 0 and abs(time / dt - round(time / dt)) <= _TIME_TOLERANCE * max(1.0, time / dt)


def _join(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _kind(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)
