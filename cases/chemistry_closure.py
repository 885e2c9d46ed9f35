"""Learning the cross-term closure of chemistry1d from ensembles (issue 17, first step).

:func:`cross_term_samples` runs ensembles of the two-species model around random initial
variances, length-scales and winds, keeps the members and estimates, by plain ensemble
averages of the normalised errors, the two unclosed cross terms E[ε_A ∂ε_B] and E[ε_A ∂²ε_B]
with the PKF fields they are closed from. :func:`cross_dictionaries` builds their candidate
terms (:func:`closures.dictionary`, [L⁻¹] odd and [L⁻²] even) from the cross-correlation
ρ = V_AB / √(V_A V_B), the variances and the aspect tensors; :func:`fit_cross_terms` fits them
(least squares or STLSQ, :func:`closures.fit_dictionary`).

Under the locally Gaussian symmetric model of :func:`cases.chemistry1d.cross_closure` (exact
here for the first term, since the dynamics keeps C_AB(x, y) symmetric),
E[ε_A ∂ε_B] = ∂ρ / 2 + ρ ∂V_A / (4 V_A) − ρ ∂V_B / (4 V_B): :data:`SYMMETRIC_FIRST`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    "SYMMETRIC_FIRST",
    "TrainingDraw",
    "cross_dictionaries",
    "cross_term_samples",
    "fit_cross_terms",
    "product_rule_residual",
    "rho_field",
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
    L_B; wind u(x) = U (1 + w sin(2π x + φ_u)); each drawn uniformly in its range.
    """

    variance_a: tuple[float, float] = (0.5, 1.5)
    variance_a_modulation: tuple[float, float] = (0.0, 0.6)
    variance_b: tuple[float, float] = (0.1, 0.5)
    length_a: tuple[float, float] = (0.07, 0.13)
    length_b: tuple[float, float] = (0.05, 0.09)
    speed: tuple[float, float] = (0.7, 1.3)
    wind_modulation: tuple[float, float] = (0.0, 0.5)


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
    members = a.shape[-2]
    return {
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

    Returns
    -------
    xarray.Dataset
        ``(ensemble, time, x)`` variables V_A, V_B, V_AB, s_A_xx, s_B_xx, rho_AB,
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
    saved = times[np.unique(np.rint(np.linspace(0, steps, settings.saved)).astype(int))]
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
        attrs={"members": members, "seed": seed, "dx": dx, "accuracy": settings.accuracy},
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
