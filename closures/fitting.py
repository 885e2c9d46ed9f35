"""Linear fits of closure coefficients: least squares and sparse STLSQ on gridded data.

The dictionary terms are evaluated with the periodic centred stencils of the generated
models (:func:`evaluate_terms`); the target is either the unclosed term itself (estimated
from ensembles) or the residual of a tendency once the known part of the PKF trend is
removed (:func:`residual_problem`).  Results (:class:`FitResult`) are written to JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Unpack

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from generator.stencils import apply_stencils, derivative_stencil
from generator.validation import finite_float, per_axis

if TYPE_CHECKING:
    from generator.train import FitOptions

__all__ = [
    "FitMethod",
    "FitResult",
    "evaluate",
    "evaluate_terms",
    "fit_dictionary",
    "fit_one_step_closure",
    "least_squares",
    "load_coefficients",
    "midpoint_residual_problem",
    "residual_problem",
    "stlsq",
]

Arrays = Mapping[str, np.ndarray]

FitMethod = Literal["lstsq", "stlsq"]
"""Linear fit of dictionary coefficients: least squares on all terms, or sparse (STLSQ)."""


def evaluate(
    expr: sp.Expr,
    fields: Arrays,
    spacings: float | Sequence[float],
    coordinates: Sequence[str] = ("x",),
    accuracy: int = 2,
    constants: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Value of a sympy expression of fields and their derivatives on a periodic grid.

    Parameters
    ----------
    expr : expression of functions ``f(t, x, ...)``, their spatial derivatives and constants.
    fields : name -> array (..., *grid); the last ``len(coordinates)`` axes are the grid.
    spacings : grid spacing per axis.
    coordinates : coordinate names in axis order.
    accuracy : even order of accuracy of the centred stencils (the generated model's).
    constants : value of each free symbol of ``expr`` other than the coordinates.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> nu = sp.Function("nu")(x)
    >>> evaluate(nu.diff(x, 2) / nu**2, {"nu": np.array([1.0, 2.0, 1.0, 2.0])}, 1.0)
    array([ 2. , -0.5,  2. , -0.5])
    """
    expr = sp.sympify(expr)
    spacings = per_axis(spacings, len(coordinates), "spacings", "float")
    symbols = [sp.Symbol(c) for c in coordinates]
    replacements: dict[sp.Expr, sp.Symbol] = {}
    values: list[np.ndarray] = []
    for atom in sorted(expr.atoms(sp.Derivative), key=sp.default_sort_key):
        orders = [0] * len(symbols)
        for variable, count in atom.variable_count:
            if variable not in symbols:
                raise ValueError(
                    f"{atom}: derivative in {variable}, not a coordinate {coordinates}"
                )
            orders[symbols.index(variable)] += int(count)
        base = _field(atom.expr, fields)
        replacements[atom] = sp.Dummy()
        values.append(_periodic_derivative(base, tuple(orders), spacings, accuracy))
    reduced = expr.xreplace(replacements)
    for function in sorted(reduced.atoms(AppliedUndef), key=sp.default_sort_key):
        replacements[function] = sp.Dummy()
        values.append(_field(function, fields))
    reduced = expr.xreplace(replacements)
    constants = {str(k): v for k, v in (constants or {}).items()}
    free = [s for s in reduced.free_symbols if not isinstance(s, sp.Dummy)]
    missing = sorted(str(s) for s in free if str(s) not in constants)
    if missing:
        raise ValueError(f"evaluate: no value for constant(s) {missing} in {expr}")
    reduced = reduced.subs({s: constants[str(s)] for s in free})
    function = sp.lambdify(list(replacements.values()), reduced, "numpy")
    shape = np.broadcast_shapes(*(np.shape(v) for v in values)) if values else ()
    return np.broadcast_to(np.asarray(function(*values), dtype=float), shape).copy()


def evaluate_terms(
    terms: Sequence[sp.Expr],
    fields: Arrays,
    spacings: float | Sequence[float],
    coordinates: Sequence[str] = ("x",),
    accuracy: int = 2,
) -> np.ndarray:
    """The dictionary terms on the grid, stacked on a last axis: (..., *grid, terms)."""
    columns = [evaluate(term, fields, spacings, coordinates, accuracy) for term in terms]
    shape = np.broadcast_shapes(*(c.shape for c in columns))
    return np.stack([np.broadcast_to(c, shape) for c in columns], axis=-1)


def least_squares(features: np.ndarray, target: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Coefficients c minimising ||features @ c - target||.

    Parameters
    ----------
    features : (points, terms) array (or (..., terms), flattened).
    target : (points,) array (or (...), flattened).
    normalize : scale each column to unit norm before solving (the terms of a closure
        dictionary differ by orders of magnitude), then scale the coefficients back.

    Examples
    --------
    >>> a = np.array([[1.0, 0.0], [0.0, 1e6], [1.0, 1e6]])
    >>> least_squares(a, a @ np.array([2.0, -3e-6]))
    array([ 2.e+00, -3.e-06])
    """
    a, y = _flatten(features, target)
    scale = _column_scale(a) if normalize else np.ones(a.shape[1])
    solution, *_ = np.linalg.lstsq(a / scale, y, rcond=None)
    return solution / scale


def stlsq(
    features: np.ndarray,
    target: np.ndarray,
    threshold: float = 0.05,
    max_iterations: int = 20,
    normalize: bool = True,
) -> np.ndarray:
    """Sequentially thresholded least squares (Brunton et al. 2016): a sparse fit.

    Fit by least squares, zero the coefficients whose normalised size
    ``|c_i| ||features_i|| / ||target||`` (the share of the target the term carries) is below
    ``threshold``, refit on the remaining terms, and repeat until the selection is stable.

    Parameters
    ----------
    features : (points, terms); target : (points,).
    threshold : relative size below which a term is dropped (with ``normalize=False`` the
        raw coefficients are compared with it).
    max_iterations : bound on the refits.
    normalize : see :func:`least_squares`.

    Returns
    -------
    (terms,) coefficients, exactly zero for the dropped terms.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(200, 4))
    >>> np.round(stlsq(a, a @ np.array([1.0, 0.0, -2.0, 0.0]) + 1e-3 * rng.normal(size=200)), 2)
    array([ 1.,  0., -2.,  0.])
    """
    a, y = _flatten(features, target)
    scale = _column_scale(a) if normalize else np.ones(a.shape[1])
    norm = (np.linalg.norm(y) or 1.0) if normalize else 1.0
    keep = np.ones(a.shape[1], dtype=bool)
    coefficients = np.zeros(a.shape[1])
    for _ in range(max_iterations):
        coefficients = np.zeros(a.shape[1])
        if keep.any():
            coefficients[keep] = least_squares(a[:, keep], y, normalize)
        small = np.abs(coefficients) * scale / norm < threshold
        if not (keep & small).any():
            break
        keep &= ~small
    return coefficients


def residual_problem(
    rhs: sp.Expr,
    slot: sp.Expr | str,
    terms: Sequence[sp.Expr],
    fields: Arrays,
    tendency: np.ndarray,
    spacings: float | Sequence[float],
    coordinates: Sequence[str] = ("x",),
    accuracy: int = 2,
    constants: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Regression problem for the closure from a tendency of a PKF equation.

    ``rhs`` is linear in the closure slot: rhs = known + factor * closure.  With
    closure = sum_i c_i terms_i, ``tendency - known = sum_i c_i (factor * terms_i)``.

    Parameters
    ----------
    rhs : right-hand side of one equation of ``SymbolicPKF.to_generator(closure="slot")``
        (e.g. the diffusion equation of Burgers, ``4 kappa nu^2 closure + ...``).
    slot : the slot function (``closure_u_x4(t, x)``) or its name.
    terms : dictionary terms; fields, tendency : arrays (..., *grid) (tendency of the
        equation's left-hand side, from an ensemble or a model); spacings, coordinates,
        accuracy, constants : see :func:`evaluate`.

    Returns
    -------
    (features (..., *grid, terms), target (..., *grid)), for :func:`least_squares` or
    :func:`stlsq`.
    """
    rhs = sp.sympify(rhs)
    name = slot if isinstance(slot, str) else slot.func.__name__
    slots = [f for f in rhs.atoms(AppliedUndef) if f.func.__name__ == name]
    if len(slots) != 1:
        raise ValueError(f"closure slot {name!r} does not appear (once) in {rhs}")
    if any(d.expr == slots[0] for d in rhs.atoms(sp.Derivative)):
        raise ValueError(f"{name!r} appears differentiated; only a linear slot is supported")
    z = sp.Dummy("closure")
    linear = rhs.xreplace({slots[0]: z})
    factor = sp.diff(linear, z)
    if sp.diff(factor, z) != 0:
        raise ValueError(f"{rhs} is not linear in the closure slot {name!r}")
    known = linear.subs(z, 0)
    args = (spacings, coordinates, accuracy, constants)
    target = np.asarray(tendency, dtype=float) - evaluate(known, fields, *args)
    weight = evaluate(factor, fields, *args)
    features = evaluate_terms(terms, fields, spacings, coordinates, accuracy)
    return features * weight[..., None], target


def midpoint_residual_problem(
    rhs: sp.Expr,
    slot: sp.Expr | str,
    terms: Sequence[sp.Expr],
    samples: Arrays,
    fields: Sequence[str],
    dt: float,
    spacings: float | Sequence[float],
    accuracy: int = 2,
    constants: Mapping[str, float] | None = None,
    coordinates: Sequence[str] = ("x",),
    equation_field: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`residual_problem` from pairs of states one step apart, centred in time.

    ``samples`` holds, per field ``f``, the states at steps k and k + 1 as ``f`` and
    ``f_next`` (the layout of :func:`pkf.dataset.build_dataset`); the fields are evaluated at
    the midpoint ``(f + f_next) / 2`` and the tendency of ``equation_field`` (default: the last
    of ``fields``, e.g. the diffusion tensor of a PKF) is ``(next - current) / dt``, a
    second-order estimate of the trend at the midpoint.

    Returns ``(features (..., *grid, terms), target (..., *grid))``.
    """
    missing = [n for f in fields for n in (f, f"{f}_next") if n not in samples]
    if missing:
        raise ValueError(f"samples: missing {missing}; expected each field and its '_next' twin")
    dt = finite_float(dt, "dt", "positive")
    equation_field = fields[-1] if equation_field is None else equation_field
    middle = {
        f: 0.5 * (np.asarray(samples[f], float) + np.asarray(samples[f"{f}_next"], float))
        for f in fields
    }
    tendency = (
        np.asarray(samples[f"{equation_field}_next"], float)
        - np.asarray(samples[equation_field], float)
    ) / dt
    return residual_problem(
        rhs, slot, terms, middle, tendency, spacings, coordinates, accuracy, constants
    )


@dataclass
class FitResult:
    """Fitted closure coefficients.

    Attributes
    ----------
    terms : the dictionary terms.
    coefficients : (terms,) values (zero for terms a sparse fit dropped).
    method : ``"lstsq"`` or ``"stlsq"`` (:func:`fit_dictionary`), ``"one_step"``
        (:func:`fit_one_step_closure`); threshold : the STLSQ threshold (None otherwise).
    relative_residual : ||features c - target|| / ||target||.
    metadata : free-form information saved with the result (data source, seeds, ...).
    """

    terms: list[sp.Expr]
    coefficients: np.ndarray
    method: FitMethod | Literal["one_step"]
    threshold: float | None
    relative_residual: float
    metadata: dict = field(default_factory=dict)

    @property
    def selected(self) -> list[sp.Expr]:
        """The terms with a nonzero coefficient."""
        return [t for t, c in zip(self.terms, self.coefficients, strict=True) if c != 0]

    @property
    def expression(self) -> sp.Expr:
        """The fitted closure as a sympy expression (float coefficients)."""
        pairs = zip(self.coefficients, self.terms, strict=True)
        return sp.Add(*(sp.Float(float(c)) * t for c, t in pairs if c != 0))

    def as_dict(self) -> dict:
        """JSON-ready dict: terms (sympy strings), coefficients, method, residual, metadata."""
        return {
            "terms": [sp.srepr(t) for t in self.terms],
            "terms_text": [str(t) for t in self.terms],
            "coefficients": [float(c) for c in self.coefficients],
            "selected": [bool(c != 0) for c in self.coefficients],
            "method": self.method,
            "threshold": self.threshold,
            "relative_residual": self.relative_residual,
            "metadata": self.metadata,
        }

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`as_dict` to ``path`` and return it."""
        path = Path(path)
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        return path


def load_coefficients(path: str | Path) -> tuple[list[sp.Expr], np.ndarray]:
    """Terms (sympy) and coefficients saved by :meth:`FitResult.to_json`."""
    data = json.loads(Path(path).read_text())
    terms = [sp.sympify(t) for t in data["terms"]]
    return terms, np.asarray(data["coefficients"], dtype=float)


def fit_dictionary(
    terms: Sequence[sp.Expr],
    features: np.ndarray,
    target: np.ndarray,
    method: FitMethod = "lstsq",
    threshold: float = 0.05,
    mask: np.ndarray | None = None,
    metadata: Mapping | None = None,
) -> FitResult:
    """Fit the coefficients of ``terms`` on (features, target) and wrap them in a result.

    Parameters
    ----------
    terms : the dictionary terms (one per feature column).
    features : (..., terms) from :func:`evaluate_terms` or :func:`residual_problem`.
    target : (...) the unclosed term's values or a residual tendency.
    method : ``"lstsq"`` (all terms) or ``"stlsq"`` (sparse, see :func:`stlsq`).
    threshold : STLSQ threshold.
    mask : optional boolean (...) selecting the points used (e.g. away from a front).
    metadata : saved with the result.
    """
    features = np.asarray(features, dtype=float)
    target = np.asarray(target, dtype=float)
    if features.shape[-1] != len(terms) or features.shape[:-1] != target.shape:
        raise ValueError(
            f"features {features.shape} must be (*target.shape, terms) = "
            f"({', '.join(map(str, target.shape))}, {len(terms)})"
        )
    if mask is not None:
        features, target = features[mask], target[mask]
    if method == "lstsq":
        coefficients, used = least_squares(features, target), None
    elif method == "stlsq":
        coefficients, used = stlsq(features, target, threshold), float(threshold)
    else:
        raise ValueError(f"method must be 'lstsq' or 'stlsq', got {method!r}")
    a, y = _flatten(features, target)
    residual = float(np.linalg.norm(a @ coefficients - y) / (np.linalg.norm(y) or 1.0))
    return FitResult(list(terms), coefficients, method, used, residual, dict(metadata or {}))


# -- internals ---------------------------------------------------------------------------
def _field(function: sp.Expr, fields: Arrays) -> np.ndarray:
    if not isinstance(function, AppliedUndef):
        raise ValueError(f"{function} is not a field f(t, x, ...)")
    name = function.func.__name__
    if name not in fields:
        raise ValueError(f"no array for field {name!r}; given fields: {sorted(fields)}")
    return np.asarray(fields[name], dtype=float)


def _periodic_derivative(
    array: np.ndarray, orders: tuple[int, ...], spacings: tuple[float, ...], accuracy: int
) -> np.ndarray:
    """Centred periodic finite difference over the last len(orders) axes (the models' stencil)."""
    stencil = derivative_stencil(orders, spacings, accuracy)
    return apply_stencils(array, [stencil], np.roll, array.ndim - len(orders))[0]


def _flatten(features: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=float)
    target = np.asarray(target, dtype=float)
    a = features.reshape(-1, features.shape[-1])
    y = target.reshape(-1)
    if len(a) != len(y):
        raise ValueError(f"features {features.shape} and target {target.shape} do not match")
    if not (np.isfinite(a).all() and np.isfinite(y).all()):
        raise ValueError("features or target contain NaN or Inf")
    return a, y


def _column_scale(a: np.ndarray) -> np.ndarray:
    scale = np.linalg.norm(a, axis=0)
    return np.where(scale > 0, scale, 1.0)


def fit_one_step_closure(
    equations: Sequence[sp.Eq],
    slot: str,
    terms: Sequence[sp.Expr],
    inputs: Arrays,
    targets: Arrays,
    dt: float,
    shape: int | Sequence[int],
    lengths: float | Sequence[float] = 1.0,
    constants: Mapping[str, float] | None = None,
    init: float | Sequence[float] = 0.0,
    prefix: str = "a",
    accuracy: int = 2,
    **options: Unpack[FitOptions],
) -> FitResult:
    """Train ``sum_i a_i terms_i`` in ``slot`` by the one-step-ahead loss (the paper's).

    Builds the model from ``equations`` (``SymbolicPKF.to_generator(closure="slot")``) with
    the closure as trainable scalars (:func:`closures.as_trainable_expression`) and runs
    :func:`generator.train.fit_one_step`.

    Parameters
    ----------
    equations, slot, terms : the PKF system, its closure slot name and the dictionary.
    inputs, targets : prognostic field -> (samples, *grid) states at steps k and k + 1.
    dt : time step between them.
    shape, lengths, constants, accuracy : passed to the generated model.
    init : initial coefficients (one value or one per term); prefix : coefficient names.
    **options : :func:`generator.train.fit_one_step` options (epochs, batch_size,
        learning_rate, decay, seed, loss, progress).

    Returns
    -------
    :class:`FitResult` with method ``"one_step"``, ``relative_residual`` the last epoch's
    loss, and the training history in ``metadata["history"]``.
    """
    from closures.models import as_trainable_expression, coefficient_names
    from generator import NNModelBuilder
    from generator.train import fit_one_step

    expression = as_trainable_expression(terms, prefix, init)
    builder = NNModelBuilder(
        list(equations), "ClosureOneStep", accuracy=accuracy, closures={slot: expression}
    )
    values: dict[str, Any] = dict(constants or {})  # constants by name, as keywords
    model = builder.build()(shape=shape, lengths=lengths, **values)
    history = fit_one_step(model, inputs, targets, dt, **options)
    scalars = model.trainable_scalars
    coefficients = np.array([scalars[n] for n in coefficient_names(len(terms), prefix)])
    return FitResult(
        list(terms),
        coefficients,
        "one_step",
        None,
        float(history["loss"][-1]),
        {"history": history},
    )
