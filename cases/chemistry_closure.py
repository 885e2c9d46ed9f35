"""Learning the cross-term closure of chemistry1d from ensembles (issue 17).

:func:`cross_term_samples` runs ensembles of the two-species model around random initial
variances (and winds), keeps the members and estimates, by plain ensemble averages, the two
unclosed cross terms E[ε_A ∂ε_B] and E[ε_A ∂²ε_B], the gradient moments of the errors and the
PKF fields they are closed from. :func:`cross_dictionaries` builds candidate terms
(:func:`closures.dictionary`, [L⁻¹] odd and [L⁻²] even) from the cross-correlation
ρ = V_AB / √(V_A V_B), the variances and the aspect tensors; :func:`fit_cross_terms` fits them
(least squares or STLSQ, :func:`closures.fit_dictionary`).

The learned closure (:func:`learn_cross_closure`, :class:`LearnedCrossClosure`):
E[ε_A ∂ε_B] = ∂ρ / 2 (exact: the product rule) + an STLSQ fit of its antisymmetric part
(:func:`antisymmetric_dictionary`); E[∂e_A ∂e_B] from the rotation invariants of the reaction
with one ratio λ (:func:`invariant_gradients`), fitted a priori on the members
(:func:`fit_ratio`) and then trained through the generated PKF model, one step ahead and on
rollouts; E[ε_A ∂²ε_B] follows (:func:`cases.chemistry1d.second_from_gradients`). A monomial
dictionary of E[ε_A ∂²ε_B] alone cannot carry the closure through V_A = V_B, where the PKF
state forgets the gradient cross-covariance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
import xarray as xr

from . import chemistry1d

if TYPE_CHECKING:
    from closures.dimensions import DimensionSystem
    from closures.fitting import FitMethod, FitResult
    from pkf import SymbolicPKF

__all__ = [
    "CROSS_TERMS",
    "RATIO_NAME",
    "SYMMETRIC_FIRST",
    "LearnedCrossClosure",
    "LearningSettings",
    "TrainingDraw",
    "antisymmetric_dictionary",
    "cross_dictionaries",
    "cross_term_samples",
    "fit_antisymmetric_part",
    "fit_cross_terms",
    "fit_ratio",
    "invariant_gradients",
    "learn_cross_closure",
    "product_rule_residual",
    "rho_field",
    "training_windows",
]

#: names of the estimated cross terms in :func:`cross_term_samples`: E[ε_A ∂ε_B], E[ε_A ∂²ε_B].
CROSS_TERMS = ("eps_A_d1_eps_B", "eps_A_d2_eps_B")
#: the symmetric (exact here) closure of E[ε_A ∂ε_B]: dictionary term (as text) -> coefficient.
SYMMETRIC_FIRST = {
    "Derivative(rho_AB(t, x), x)": 0.5,
    "rho_AB(t, x)*Derivative(V_A(t, x), x)/V_A(t, x)": 0.25,
    "rho_AB(t, x)*Derivative(V_B(t, x), x)/V_B(t, x)": -0.25,
}


@dataclass(frozen=True)
class TrainingDraw:
    """Ranges of the random initial statistics and winds of the training ensembles.

    V_A(x) = a (1 − b cos(2π x + φ_A)), V_B = c, Gaussian correlations of length-scales L_A,
    L_B; wind u(x) = U (1 + w sin(2π x + φ_u)) (``random_wind``; else the case's wind); each
    drawn uniformly in its range. The length-scales default to the case's (0.1 and 0.06): the
    learned closure's ratio is their squared ratio (:func:`invariant_gradients`), a property of
    the family of initial statistics that the PKF state forgets where V_A = V_B. The variance
    ranges keep V_A > V_B, the case's ordering.
    """

    variance_a: tuple[float, float] = (0.5, 1.5)
    variance_a_modulation: tuple[float, float] = (0.0, 0.5)
    variance_b: tuple[float, float] = (0.1, 0.24)
    length_a: tuple[float, float] = (0.1, 0.1)
    length_b: tuple[float, float] = (0.06, 0.06)
    speed: tuple[float, float] = (0.7, 1.3)
    wind_modulation: tuple[float, float] = (0.0, 0.5)
    random_wind: bool = True


def rho_field() -> sp.Expr:
    """The cross-correlation ρ = V_AB / √(V_A V_B) as a field ``rho_AB(t, x)`` (dimensionless)."""
    t, x = sp.symbols("t x")
    return sp.Function("rho_AB")(t, x)


def _derivative(values: np.ndarray, order: int, dx: float, accuracy: int) -> np.ndarray:
    """Periodic centred difference of the model's accuracy along the last axis."""
    from closures.fitting import evaluate

    f = sp.Function("f")(sp.Symbol("x"))
    return evaluate(f.diff(sp.Symbol("x"), order), {"f": values}, dx, accuracy=accuracy)


def _statistics(a: np.ndarray, b: np.ndarray, dx: float, accuracy: int) -> dict[str, np.ndarray]:
    """Cross terms and PKF fields of members ``a``, ``b`` (..., members, nx), member axis -2."""
    mean_a, mean_b = a.mean(axis=-2, keepdims=True), b.mean(axis=-2, keepdims=True)
    v_a, v_b = ((a - mean_a) ** 2).mean(axis=-2), ((b - mean_b) ** 2).mean(axis=-2)
    eps_a = (a - mean_a) / np.sqrt(v_a)[..., None, :]
    eps_b = (b - mean_b) / np.sqrt(v_b)[..., None, :]
    d_a, d_b = (_derivative(e, 1, dx, accuracy) for e in (eps_a, eps_b))
    first, second = eps_a * d_b, eps_a * _derivative(eps_b, 2, dx, accuracy)
    raw_a, raw_b = (_derivative(e, 1, dx, accuracy) for e in (a - mean_a, b - mean_b))
    members = a.shape[-2]
    return {
        "M_A": (raw_a**2).mean(axis=-2),
        "M_B": (raw_b**2).mean(axis=-2),
        "M_AB": (raw_a * raw_b).mean(axis=-2),
        "V_A": v_a,
        "V_B": v_b,
        "V_AB": ((a - mean_a) * (b - mean_b)).mean(axis=-2),
        "s_A_xx": 1.0 / (d_a**2).mean(axis=-2),
        "s_B_xx": 1.0 / (d_b**2).mean(axis=-2),
        "rho_AB": (eps_a * eps_b).mean(axis=-2),
        CROSS_TERMS[0]: first.mean(axis=-2),
        CROSS_TERMS[1]: second.mean(axis=-2),
        f"{CROSS_TERMS[0]}_noise": np.sqrt((first - eps_b * d_a).var(axis=-2) / 4 / members),
        f"{CROSS_TERMS[1]}_noise": np.sqrt(second.var(axis=-2) / members),
        "eps_B_d1_eps_A": (eps_b * d_a).mean(axis=-2),
    }


def cross_term_samples(
    settings: chemistry1d.Settings,
    ensembles: int,
    members: int,
    seed: int,
    draw: TrainingDraw | None = TrainingDraw(),
    saved_steps: Sequence[int] | None = None,
) -> xr.Dataset:
    """Ensemble estimates of the chemistry1d cross terms and PKF fields at the saved times.

    Each ensemble starts from independent Gaussian-correlated errors of A and B with random
    statistics and runs with a random wind (``draw``; ``None``: the case's own initial state
    and wind, a different seed per ensemble). From the saved members, with ε = (x − mean) / √V
    (population moments), the cross terms are plain averages over the members,
    E[ε_A ∂ε_B] and E[ε_A ∂²ε_B] (periodic centred differences of ``settings.accuracy``), as
    are ρ = E[ε_A ε_B] and the aspect tensors s = 1 / E[(∂ε)²] (the ensemble metric).

    Parameters
    ----------
    settings : chemistry1d.Settings
        Grid (``points``), ``final_time``, ``saved``, ``dtype`` and ``accuracy``.
    ensembles, members : int
        Number of ensembles and members per ensemble.
    seed : int
        Root seed of the draws and of the members.
    draw : TrainingDraw or None
        Ranges of the random statistics and winds.
    saved_steps : sequence of int, optional
        Time steps to save (e.g. consecutive ones, for one-step and rollout training); default:
        ``settings.saved`` times evenly spread over ``[0, settings.final_time]``. The time step
        is the attribute ``dt``.

    Returns
    -------
    xarray.Dataset
        ``(ensemble, time, x)`` variables V_A, V_B, V_AB, s_A_xx, s_B_xx, rho_AB, the
        gradient moments of the errors M_A = E[(∂e_A)²], M_B, M_AB = E[∂e_A ∂e_B],
        eps_A_d1_eps_B, eps_A_d2_eps_B and eps_B_d1_eps_A (units: the fields' squared units,
        length² for s, length⁻¹ and length⁻² for the cross terms), and the standard error of
        each of the two cross terms (``..._noise``: std of the product over √members; for
        E[ε_A ∂ε_B], of its antisymmetric part (ε_A ∂ε_B − ε_B ∂ε_A) / 2 only, its symmetric
        part ∂ρ / 2 being exact on the members); the wind ``u`` ``(ensemble, x)``.
    """
    from generator import NNModelBuilder
    from pkf import EnsembleForecast
    from pkf.sampling import SeededMembers

    if ensembles < 1 or members < 2:
        raise ValueError(f"ensembles >= 1 and members >= 2 required, got {ensembles}, {members}")
    settings.validate()
    shape, dx = settings.points, 1.0 / settings.points
    x = np.arange(shape) * dx
    rng = np.random.default_rng(seed)
    species_class = NNModelBuilder(
        chemistry1d.chemistry_equations(), "NNChemistry1D", accuracy=settings.accuracy
    ).build()
    top_speed = 1.5 * (1.3 if draw is None else max(draw.speed) * (1 + max(draw.wind_modulation)))
    steps = int(np.ceil(settings.final_time / (dx / top_speed / 6)))
    times = np.arange(steps + 1) * (settings.final_time / steps)
    chosen = (
        np.rint(np.linspace(0, steps, settings.saved)).astype(int)
        if saved_steps is None
        else np.asarray(saved_steps, dtype=int)
    )
    if chosen.min() < 0 or chosen.max() > steps:
        raise ValueError(f"saved_steps must lie in [0, {steps}], got {chosen.tolist()}")
    saved = times[np.unique(chosen)]
    rows: list[dict[str, np.ndarray]] = []
    winds = []
    for e in range(ensembles):
        if draw is None:
            u = chemistry1d.wind(shape)
            variance_a = 1.0 - np.cos(2 * np.pi * x) / 2.0
            variance_b = np.full(shape, chemistry1d.PARAMETERS["V_B"])
            lengths = {"A": chemistry1d.PARAMETERS["L_A"], "B": chemistry1d.PARAMETERS["L_B"]}
        else:
            phase_a, phase_u = rng.uniform(0, 2 * np.pi, 2)
            u = rng.uniform(*draw.speed) * (
                1 + rng.uniform(*draw.wind_modulation) * np.sin(2 * np.pi * x + phase_u)
            )
            if not draw.random_wind:
                u = chemistry1d.wind(shape)
            variance_a = rng.uniform(*draw.variance_a) * (
                1 - rng.uniform(*draw.variance_a_modulation) * np.cos(2 * np.pi * x + phase_a)
            )
            variance_b = np.full(shape, rng.uniform(*draw.variance_b))
            lengths = {"A": rng.uniform(*draw.length_a), "B": rng.uniform(*draw.length_b)}
        model = species_class(
            shape=shape, lengths=1.0, dtype=settings.dtype, u=u, k=chemistry1d.PARAMETERS["k"]
        )
        initial = SeededMembers(
            {"A": np.zeros(shape), "B": np.zeros(shape)},
            (1.0,),
            lengths,
            {"A": variance_a, "B": variance_b},
            seed=seed * 1000 + e,
        )
        engine = EnsembleForecast(model, members, save_members=True, progress=False)
        result = engine.run(times, initial, saved_times=saved)
        assert result.members is not None
        rows.append(_statistics(result.members["A"], result.members["B"], dx, settings.accuracy))
        winds.append(u)
    data: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
        k: (("ensemble", "time", "x"), np.stack([r[k] for r in rows])) for k in rows[0]
    }
    data["u"] = (("ensemble", "x"), np.stack(winds))
    return xr.Dataset(
        data,
        coords={"ensemble": np.arange(ensembles), "time": saved, "x": x},
        attrs={
            "members": members,
            "seed": seed,
            "dx": dx,
            "dt": float(times[1]),
            "accuracy": settings.accuracy,
        },
    )


def product_rule_residual(samples: xr.Dataset) -> np.ndarray:
    """Relative L2 residual of E[ε_A ∂ε_B] + E[ε_B ∂ε_A] = ∂ρ per saved time after t = 0.

    ∂ρ by the same centred difference; the identity holds member by member in the continuum,
    so the residual measures the discrete product rule, O((dx / L)²), not sampling.

    Returns
    -------
    numpy.ndarray
        ``(time,)`` relative residual over ensembles and points (t = 0 included: ρ ≈ 0 there
        and the ratio is of noise to noise).
    """
    dx, accuracy = float(samples.attrs["dx"]), int(samples.attrs["accuracy"])
    lhs = samples[CROSS_TERMS[0]].values + samples["eps_B_d1_eps_A"].values
    rhs = _derivative(samples["rho_AB"].values, 1, dx, accuracy)
    return np.linalg.norm(lhs - rhs, axis=(0, 2)) / np.linalg.norm(rhs, axis=(0, 2))


def _dimension_system(symbolic: SymbolicPKF) -> DimensionSystem:
    from closures.dimensions import DIMENSIONLESS, DimensionSystem, Quantity

    system = DimensionSystem.from_pkf(symbolic)
    return system.with_quantities({"rho_AB": Quantity(DIMENSIONLESS, role="correlation")})


def cross_dictionaries(
    symbolic: SymbolicPKF | None = None, max_degree: int = 2, max_power: int = 1
) -> dict[str, list[sp.Expr]]:
    """Candidate terms of E[ε_A ∂ε_B] ([L⁻¹], odd) and E[ε_A ∂²ε_B] ([L⁻²], even).

    Monomials of ρ (:func:`rho_field`), V_A, V_B, s_A, s_B and their derivatives up to order 2
    (:func:`closures.dictionary`, ``max_degree`` and ``max_power`` as there), keeping those
    that contain ρ or a derivative of ρ: both cross terms vanish when A and B are uncorrelated.

    Returns
    -------
    dict
        :data:`CROSS_TERMS` name → list of sympy monomials.
    """
    from closures import dictionary
    from pkf import SymbolicPKF

    symbolic = symbolic or SymbolicPKF(chemistry1d.chemistry_equations())
    system = _dimension_system(symbolic)
    rho = rho_field()
    fa, fb = symbolic.fields["A"], symbolic.fields["B"]
    fields = [rho, fa.variance, fb.variance, fa.aspect[0, 0], fb.aspect[0, 0]]
    result = {}
    for name, term in zip(CROSS_TERMS, _ordered_terms(symbolic), strict=True):
        terms = dictionary(term, fields, system, 2, max_degree, True, max_power)
        result[name] = [t for t in terms if t.has(rho)]
    return result


def _ordered_terms(symbolic: SymbolicPKF) -> list[sp.Expr]:
    """The unclosed terms as (E[ε_A ∂ε_B], E[ε_A ∂²ε_B])."""

    def order(term: sp.Expr) -> int:
        return next(iter(term.args[0].atoms(sp.Derivative))).derivative_count

    return sorted(symbolic.unclosed_terms, key=order)


def fit_cross_terms(
    samples: xr.Dataset,
    dictionaries: dict[str, list[sp.Expr]],
    method: FitMethod = "stlsq",
    threshold: float = 0.05,
) -> dict[str, FitResult]:
    """Fit each cross term on its dictionary over all ensembles and saved times after t = 0.

    Returns
    -------
    dict
        :data:`CROSS_TERMS` name → :class:`closures.fitting.FitResult` (coefficients,
        ``relative_residual`` ||F c − y|| / ||y||).
    """
    from closures import fit_dictionary
    from closures.fitting import evaluate_terms

    later = samples.isel(time=slice(1, None))
    fields = {k: later[k].values for k in ("rho_AB", "V_A", "V_B", "s_A_xx", "s_B_xx")}
    dx, accuracy = float(samples.attrs["dx"]), int(samples.attrs["accuracy"])
    fits = {}
    for name, terms in dictionaries.items():
        features = evaluate_terms(terms, fields, dx, accuracy=accuracy)
        fits[name] = fit_dictionary(terms, features, later[name].values, method, threshold)
    return fits


# -- the learned closure ------------------------------------------------------------------
#: name of the learned ratio while it is trained through the generated PKF model.
RATIO_NAME = "lambda_AB"


def invariant_gradients(
    v_a: Any, v_b: Any, v_ab: Any, m_a: Any, m_b: Any, ratio: Any, sqrt: Any = np.sqrt
) -> Any:
    """E[∂e_A ∂e_B] from the rotation invariants of the reaction (numpy or sympy arguments).

    The wind carries A and B alike and the reaction rotates (e_A, e_B) by k t, so
    (V_A − V_B, 2 V_AB) and (M_A − M_B, 2 M_AB) (M = E[(∂e)²], M_AB = E[∂e_A ∂e_B]) rotate by
    the same angle 2 k t along the characteristics while V_A + V_B and M_A + M_B are kept:
    M_AB = V_AB (M_A0 − M_B0) / (V_A0 − V_B0) with the initial values read from the
    invariants, V_A0 − V_B0 = S = √((V_A − V_B)² + 4 V_AB²) and V_A0,B0 = (V_A + V_B ± S) / 2
    (V_A0 > V_B0). The PKF state forgets M_A0 − M_B0 where V_A = V_B; the closure models it as
    (M_A + M_B) (V_A0 − λ V_B0) / (V_A0 + λ V_B0), exact for initial metrics M_f0 = V_f0 / L_f²
    with λ = L_A² / L_B² (wind stretching multiplies both metrics alike and cancels):

        M_AB = V_AB (M_A + M_B) (V_A0 − λ V_B0) / ((V_A0 + λ V_B0) S).

    ``ratio`` is λ (a number, an array or a :class:`generator.TrainableScalar`); ``sqrt`` is
    ``numpy.sqrt`` or ``sympy.sqrt``. Units: those of M (field² / length²).
    """
    spread = sqrt((v_a - v_b) ** 2 + 4 * v_ab**2)
    larger, smaller = (v_a + v_b + spread) / 2, (v_a + v_b - spread) / 2
    return v_ab * (m_a + m_b) * (larger - ratio * smaller) / ((larger + ratio * smaller) * spread)


def fit_ratio(
    samples: xr.Dataset, bounds: tuple[float, float] = (0.1, 30.0)
) -> tuple[float, float]:
    """λ of :func:`invariant_gradients` fitted on the ensembles' own M_AB (least squares).

    Minimises ||M_AB − invariant_gradients(V_A, V_B, V_AB, M_A, M_B, λ)||² over all ensembles,
    saved times after t = 0 and points, with every input estimated from the members (a
    one-parameter nonlinear least-squares problem, solved by bounded scalar minimisation in
    log λ).

    Returns
    -------
    tuple
        ``(λ, relative residual ||M_AB − model|| / ||M_AB||)``.
    """
    from scipy.optimize import minimize_scalar

    later = samples.isel(time=slice(1, None))
    v_a, v_b, v_ab, m_a, m_b, target = (
        later[k].values for k in ("V_A", "V_B", "V_AB", "M_A", "M_B", "M_AB")
    )

    def misfit(log_ratio: float) -> float:
        model = invariant_gradients(v_a, v_b, v_ab, m_a, m_b, np.exp(log_ratio))
        return float(np.sum((model - target) ** 2))

    best = minimize_scalar(
        misfit, bounds=tuple(np.log(bounds)), method="bounded", options={"xatol": 1e-6}
    )
    ratio = float(np.exp(best.x))
    return ratio, float(np.sqrt(misfit(best.x)) / np.linalg.norm(target))


def _rho_as_fields(symbolic: SymbolicPKF) -> dict[sp.Expr, sp.Expr]:
    fa, fb = symbolic.fields["A"], symbolic.fields["B"]
    return {rho_field(): symbolic.covariance("A", "B") / sp.sqrt(fa.variance * fb.variance)}


@dataclass(frozen=True)
class LearnedCrossClosure:
    """The learned closure of chemistry1d's cross terms (see :func:`learn_cross_closure`).

    E[ε_A ∂ε_B] is the fitted dictionary expression ``sum c_i t_i`` (terms of
    :func:`cross_dictionaries`, ρ replaced by V_AB / √(V_A V_B)); E[ε_A ∂²ε_B] follows from it
    and from E[∂e_A ∂e_B] of :func:`invariant_gradients` with the learned ``ratio`` λ
    (:func:`cases.chemistry1d.second_from_gradients`).

    Attributes
    ----------
    first_terms, first_coefficients : the selected terms of E[ε_A ∂ε_B] and their coefficients.
    ratio : λ (dimensionless).
    metadata : how it was learned (seeds, sizes, fits, per-stage values).
    """

    first_terms: tuple[sp.Expr, ...]
    first_coefficients: tuple[float, ...]
    ratio: float
    metadata: dict = field(default_factory=dict)

    def first(self, symbolic: SymbolicPKF) -> sp.Expr:
        """E[ε_A ∂ε_B] in the PKF's fields."""
        expression = sp.Add(
            *(
                sp.Float(c) * t
                for c, t in zip(self.first_coefficients, self.first_terms, strict=True)
            )
        )
        return expression.subs(_rho_as_fields(symbolic)).doit()

    def closure(self, symbolic: SymbolicPKF, ratio: Any = None) -> dict[sp.Expr, sp.Expr]:
        """Unclosed term → expression, for :meth:`pkf.SymbolicPKF.set_closure`.

        ``ratio`` replaces λ (e.g. a :class:`generator.TrainableScalar` to train it).
        """
        x = symbolic.coordinates[0]
        fa, fb = symbolic.fields["A"], symbolic.fields["B"]
        v_a, v_b, v_ab = fa.variance, fb.variance, symbolic.covariance("A", "B")
        first = self.first(symbolic)
        gradients = invariant_gradients(
            v_a,
            v_b,
            v_ab,
            chemistry1d.gradient_variance(x, v_a, fa.aspect[0, 0]),
            chemistry1d.gradient_variance(x, v_b, fb.aspect[0, 0]),
            sp.Float(self.ratio) if ratio is None else ratio,
            sqrt=sp.sqrt,
        )
        second = chemistry1d.second_from_gradients(x, v_a, v_b, v_ab, first, gradients)
        first_term, second_term = _ordered_terms(symbolic)
        return {first_term: first, second_term: second}

    def as_dict(self) -> dict:
        """JSON-ready: terms (as text), coefficients, ratio, metadata."""
        return {
            "closure": "chemistry1d learned cross-term closure",
            "first_terms_text": [str(t) for t in self.first_terms],
            "first_coefficients": [float(c) for c in self.first_coefficients],
            "ratio": float(self.ratio),
            "metadata": self.metadata,
        }

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`as_dict` to ``path``; returns it."""
        path = Path(path)
        path.write_text(json.dumps(self.as_dict(), indent=2, default=float) + "\n")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> LearnedCrossClosure:
        """Read a closure written by :meth:`to_json`.

        Nothing in the file is executed: each term must be, as text, one of the candidate
        terms (∂ρ and :func:`antisymmetric_dictionary`), rebuilt here.

        Raises
        ------
        ValueError
            If the file cannot be read or is not such a closure (naming the path and the
            missing key or unknown term) or its ratio is not a positive finite number.
        """
        try:
            data = json.loads(Path(path).read_text())
            texts = [str(t) for t in data["first_terms_text"]]
            coefficients = tuple(float(c) for c in data["first_coefficients"])
            ratio = float(data["ratio"])
        except KeyError as error:
            raise ValueError(f"{path}: not a learned chemistry1d closure (no {error})") from None
        except OSError as error:
            raise ValueError(f"learned closure {path}: {error.strerror or error}") from None
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a learned chemistry1d closure ({error})") from None
        known = {str(t): t for t in _candidate_first_terms()}
        unknown = [t for t in texts if t not in known]
        if unknown:
            raise ValueError(
                f"{path}: unknown term(s) {unknown}: a learned closure's terms are ∂ρ and the "
                "antisymmetric dictionary's (cases.chemistry_closure.antisymmetric_dictionary)"
            )
        if len(texts) != len(coefficients):
            raise ValueError(f"{path}: {len(texts)} terms but {len(coefficients)} coefficients")
        if not (np.isfinite(ratio) and ratio > 0):
            raise ValueError(f"{path}: ratio must be positive and finite, got {ratio}")
        terms = tuple(known[t] for t in texts)
        return cls(terms, coefficients, ratio, data.get("metadata", {}))


def _candidate_first_terms() -> list[sp.Expr]:
    """The terms a learned E[ε_A ∂ε_B] may hold: ∂ρ and :func:`antisymmetric_dictionary`."""
    return [sp.Derivative(rho_field(), sp.Symbol("x")), *antisymmetric_dictionary()]


@dataclass(frozen=True)
class LearningSettings:
    """Sizes of the learning of :func:`learn_cross_closure`.

    ``ensembles`` × ``members`` random-statistics ensembles (random winds) for the dictionary
    fit and the a-priori λ; ``pair_ensembles`` ensembles (the case's wind) saved at
    ``pair_starts`` windows of ``rollout_steps + 1`` consecutive steps for the training
    through the generated PKF model; ``epochs`` of Adam per fit.
    """

    ensembles: int = 8
    members: int = 400
    pair_ensembles: int = 4
    pair_starts: int = 12
    rollout_steps: int = 3
    epochs: int = 4
    batch_size: int = 16
    learning_rate: float = 0.05
    threshold: float = 0.1


def antisymmetric_dictionary(symbolic: SymbolicPKF | None = None) -> list[sp.Expr]:
    """Candidate terms of the antisymmetric part (E[ε_A ∂ε_B] − E[ε_B ∂ε_A]) / 2.

    The product rule fixes the symmetric part, ∂ρ / 2, exactly; the rest changes sign when A
    and B are exchanged. The terms of :func:`cross_dictionaries` without a derivative of ρ,
    antisymmetrised (t − t with V_A ↔ V_B, s_A ↔ s_B; ρ is symmetric), distinct up to sign.
    """
    from pkf import SymbolicPKF

    symbolic = symbolic or SymbolicPKF(chemistry1d.chemistry_equations())
    fa, fb = symbolic.fields["A"], symbolic.fields["B"]
    swap = {fa.variance: fb.variance, fb.variance: fa.variance}
    swap.update({fa.aspect[0, 0]: fb.aspect[0, 0], fb.aspect[0, 0]: fa.aspect[0, 0]})
    rho_x = sp.Derivative(rho_field(), sp.Symbol("x"))
    terms: list[sp.Expr] = []
    for term in cross_dictionaries(symbolic, max_degree=2)[CROSS_TERMS[0]]:
        if term.has(rho_x) or term.has(sp.Derivative(rho_field(), (sp.Symbol("x"), 2))):
            continue
        anti = sp.factor(term - term.xreplace(swap))
        if anti != 0 and not any(
            sp.expand(anti + t) == 0 or sp.expand(anti - t) == 0 for t in terms
        ):
            terms.append(anti)
    return terms


def fit_antisymmetric_part(samples: xr.Dataset, threshold: float = 0.1) -> FitResult:
    """STLSQ fit of E[ε_A ∂ε_B] − ∂ρ / 2 on :func:`antisymmetric_dictionary` (t > 0).

    ∂ρ by the samples' centred difference, so the closure ∂ρ / 2 + fit keeps the product-rule
    identity exactly.
    """
    from closures import fit_dictionary
    from closures.fitting import evaluate_terms

    later = samples.isel(time=slice(1, None))
    dx, accuracy = float(samples.attrs["dx"]), int(samples.attrs["accuracy"])
    fields = {k: later[k].values for k in ("rho_AB", "V_A", "V_B", "s_A_xx", "s_B_xx")}
    target = later[CROSS_TERMS[0]].values - _derivative(fields["rho_AB"], 1, dx, accuracy) / 2
    terms = antisymmetric_dictionary()
    features = evaluate_terms(terms, fields, dx, accuracy=accuracy)
    return fit_dictionary(terms, features, target, "stlsq", threshold)


def _pkf_trainer(
    settings: chemistry1d.Settings, learned: LearnedCrossClosure, initial_ratio: float
) -> Any:
    """A factory of the PKF model whose λ is a trainable scalar (the case's wind and k)."""
    from generator import NNModelBuilder, TrainableScalar
    from pkf import SymbolicPKF

    symbolic = SymbolicPKF(chemistry1d.chemistry_equations())
    ratio = TrainableScalar(RATIO_NAME, init=initial_ratio)
    symbolic.set_closure(learned.closure(symbolic, ratio=ratio))
    pkf_class = NNModelBuilder(
        symbolic.to_generator(form="aspect", closure="slot"),
        class_name="PKFChemistry1DLearning",
        accuracy=settings.accuracy,
    ).build()
    wind = chemistry1d.wind(settings.points)
    return lambda: pkf_class(
        shape=settings.points,
        lengths=1.0,
        dtype=settings.dtype,
        u=wind,
        k=chemistry1d.PARAMETERS["k"],
    )


def _pkf_state(samples: xr.Dataset) -> dict[str, np.ndarray]:
    """PKF fields (aspect form) of the samples; means are zero (the dynamics is linear)."""
    zeros = np.zeros_like(samples["V_A"].values)
    state = {k: samples[k].values for k in ("V_A", "V_B", "V_AB", "s_A_xx", "s_B_xx")}
    return {"A": zeros, "B": zeros, **state}


def training_windows(
    samples: xr.Dataset, starts: Sequence[int], length: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, targets) of ``length``-step rollouts from saved windows of consecutive steps.

    ``samples`` holds, per ensemble, windows of ``length + 1`` consecutive saved steps
    starting at the time indices ``starts``; inputs are the first state of each window
    (``(samples, x)``), targets the next ``length`` ones (``(samples, length, x)``; for
    ``length == 1``, ``(samples, x)``).
    """
    state = _pkf_state(samples)
    inputs = {k: np.concatenate([v[:, s] for s in starts]) for k, v in state.items()}
    targets = {
        k: np.concatenate([v[:, s + 1 : s + 1 + length] for s in starts]) for k, v in state.items()
    }
    if length == 1:
        targets = {k: v[:, 0] for k, v in targets.items()}
    return inputs, targets


def learn_cross_closure(
    settings: chemistry1d.Settings,
    learning: LearningSettings = LearningSettings(),
    seed: int = 0,
    progress: bool = False,
) -> LearnedCrossClosure:
    """Learn the cross-term closure of chemistry1d from ensembles (issue 17).

    1. ``learning.ensembles`` ensembles of random initial statistics and winds
       (:class:`TrainingDraw`, :func:`cross_term_samples`): E[ε_A ∂ε_B] is fitted by STLSQ on
       its dictionary (:func:`cross_dictionaries`) and λ of :func:`invariant_gradients` by
       least squares on the members' M_AB (:func:`fit_ratio`), the a-priori value.
    2. ``learning.pair_ensembles`` ensembles with the case's wind, saved at windows of
       consecutive steps: λ, a :class:`generator.TrainableScalar` of the generated PKF model
       (the fitted first term fixed), is trained one step ahead
       (:func:`generator.train.fit_one_step`) from the a-priori value, then on
       ``learning.rollout_steps``-step rollouts (:func:`generator.train.fit_rollout`).

    The seeds of the ensembles derive from ``seed``; the training's from ``seed`` too.

    Returns
    -------
    LearnedCrossClosure
        With the rollout-trained λ; ``metadata`` holds the a-priori, one-step and rollout
        values, the fits' residuals and losses, and the sizes.
    """
    from generator.train import FitOptions, fit_one_step, fit_rollout

    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return clock[-1] - clock[-2]

    draws = cross_term_samples(settings, learning.ensembles, learning.members, seed=10 * seed + 1)
    timings = {"ensembles_for_fits_s": lap()}
    first = fit_antisymmetric_part(draws, learning.threshold)
    prior, prior_residual = fit_ratio(draws)
    rho_x = sp.Derivative(rho_field(), sp.Symbol("x"))
    selected = [(t, float(c)) for t, c in zip(first.terms, first.coefficients, strict=True) if c]
    learned = LearnedCrossClosure(
        (rho_x, *(t for t, _ in selected)), (0.5, *(c for _, c in selected)), prior
    )

    window = learning.rollout_steps + 1
    top = int(np.ceil(settings.final_time / float(draws.attrs["dt"]))) - window
    starts = np.rint(np.linspace(0, top, learning.pair_starts)).astype(int)
    steps = sorted({int(s) + j for s in starts for j in range(window)})
    pairs = cross_term_samples(
        settings,
        learning.pair_ensembles,
        learning.members,
        seed=10 * seed + 2,
        draw=TrainingDraw(random_wind=False),
        saved_steps=steps,
    )
    timings["ensembles_for_training_s"] = lap()
    index = [steps.index(int(s)) for s in starts]
    dt = float(pairs.attrs["dt"])
    make_model = _pkf_trainer(settings, learned, prior)
    model = make_model()
    options: FitOptions = {
        "epochs": learning.epochs,
        "batch_size": learning.batch_size,
        "learning_rate": learning.learning_rate,
        "decay": 0.5,
        "loss": "increment",
        "progress": progress,
        "seed": seed,
    }
    one_step = fit_one_step(model, *training_windows(pairs, index, 1), dt, **options)
    after_one_step = model.trainable_scalars[RATIO_NAME]
    timings["one_step_training_s"] = lap()
    rollout = fit_rollout(
        model,
        *training_windows(pairs, index, learning.rollout_steps),
        dt,
        learning.rollout_steps,
        **options,
    )
    ratio = model.trainable_scalars[RATIO_NAME]
    timings["rollout_training_s"] = lap()
    metadata = {
        "timings": timings,
        "seed": seed,
        "learning": learning.__dict__,
        "grid_points": settings.points,
        "first_term": first.as_dict(),
        "ratio_a_priori": prior,
        "ratio_a_priori_relative_residual": prior_residual,
        "ratio_one_step": after_one_step,
        "ratio_rollout": ratio,
        "one_step_loss": one_step["loss"],
        "rollout_loss": rollout["loss"],
        "training_dt": dt,
    }
    return LearnedCrossClosure(learned.first_terms, learned.first_coefficients, ratio, metadata)
