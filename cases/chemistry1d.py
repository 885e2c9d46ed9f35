"""Two species transported by a heterogeneous wind with a linear reaction: multivariate PKF.

∂t A = −u ∂x A + k B, ∂t B = −u ∂x B − k A on the periodic unit interval, u(x) = U (1 + sin(2πx)
/ 3). The multivariate PKF (means, V_A, V_B, the cross-covariance V_AB and the aspect tensors
s_A, s_B) is derived with :class:`pkf.SymbolicPKF`; its variance equations are closed, the
aspect equations keep two cross terms, E[ε_A ∂ε_B] and E[ε_A ∂²ε_B], closed by
:func:`cross_closure` ("zero" by default; "gaussian", "rational" and "learned" run alongside,
the last learned from ensembles in the same run by :mod:`cases.chemistry_closure` or loaded
from JSON), and the result is compared with two independent batched ensembles
(:class:`pkf.EnsembleForecast`).

Initial errors of A and B are independent, with variances V_A = 1 − cos(2πx)/2, V_B = 1/4 and
Gaussian correlations of length-scales 0.1 and 0.06. Along the characteristics the reaction
rotates (e_A, e_B) by the angle k t, so the exact cross-covariance function is
C_AB = cos(kt) sin(kt) (C_B0 − C_A0): a difference of two Gaussians of different widths. No
local closure built from V_A, V_B, V_AB, s_A, s_B alone reproduces its curvature everywhere
(the exact one divides by V_A − V_B, which vanishes at k t = π/4): the learned closure
restores it from the rotation invariants of the reaction and one learned ratio. The variance
equations are closed and exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import numpy as np
import sympy as sp
import xarray as xr

from generator.protocols import DType

from .comparison import at_final_time, errors_by_time, percent, stack_sources
from .study import Output

if TYPE_CHECKING:
    from generator.model import GeneratedModel
    from pkf import SymbolicPKF

    from .chemistry_closure import LearnedCrossClosure

__all__ = [
    "CLOSURES",
    "CrossClosure",
    "DESCRIPTION",
    "PARAMETERS",
    "Settings",
    "build_models",
    "chemistry_equations",
    "cross_closure",
    "gradient_variance",
    "run",
    "second_from_gradients",
    "wind",
]

DESCRIPTION = "two reacting species in a 1D wind: multivariate PKF (V_A, V_B, V_AB, L) vs ensemble"


class Parameters(TypedDict):
    """The entries of :data:`PARAMETERS` (``V_A`` is a formula, the others numbers)."""

    U: float
    k: float
    V_A: str
    V_B: float
    L_A: float
    L_B: float


#: physical parameters: mean wind U, reaction rate k, initial variances and length-scales.
PARAMETERS: Parameters = {
    "U": 1.0,
    "k": 1.0,
    "V_A": "1 - cos(2 pi x) / 2",
    "V_B": 0.25,
    "L_A": 0.1,
    "L_B": 0.06,
}
CrossClosure = Literal["zero", "gaussian", "rational", "learned"]
"""Closure of the cross terms (see :func:`cross_closure`)."""
#: closures of the cross terms (see :func:`cross_closure`).
CLOSURES: tuple[CrossClosure, ...] = ("zero", "gaussian", "rational", "learned")
#: The two ensembles can run on a Dask cluster (--workers N, --scheduler ADDRESS).
SUPPORTS_CLUSTER = True
#: compared quantities: the PKF names (the ensemble statistics carry the same ones).
COMPARED = ("A", "B", "V_A", "V_B", "V_AB", "L_A_x", "L_B_x")


@dataclass(frozen=True)
class Settings:
    """Grid, ensemble size, numerics and the cross-term closure."""

    points: int = field(default=241, metadata={"help": "grid points"})
    members: int = field(default=1600, metadata={"help": "members of each ensemble"})
    final_time: float = field(default=1.0, metadata={"help": "final time"})
    saved: int = field(default=5, metadata={"help": "number of saved times"})
    closure: CrossClosure = field(
        default="zero", metadata={"help": "closure of the cross terms (the others run too)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of ensemble 1 (ensemble 2: seed + 1)"})
    learned_closure: str = field(
        default="",
        metadata={"help": "JSON of a learned closure to load (empty: learn it in this run)"},
    )
    learning_ensembles: int = field(
        default=8, metadata={"help": "random-statistics ensembles of the closure learning"}
    )
    learning_members: int = field(
        default=400, metadata={"help": "members of each closure-learning ensemble"}
    )
    learning_seeds: int = field(
        default=1, metadata={"help": "learn the closure with this many seeds (mean ± std)"}
    )
    dtype: DType = field(default="float64", metadata={"help": "dtype"})
    accuracy: Literal[2, 4, 6] = field(default=2, metadata={"help": "stencil order"})

    @classmethod
    def quick(cls) -> Settings:
        """121 points and 400 members; the closure learned from 4 ensembles of 200."""
        return cls(points=121, members=400, learning_ensembles=4, learning_members=200)

    def validate(self) -> None:
        if self.points < 16 or self.members < 2 or self.saved < 2:
            raise ValueError(
                "--points >= 16, --members >= 2 and --saved >= 2 required, got "
                f"{self.points}, {self.members}, {self.saved}"
            )
        if self.learning_ensembles < 1 or self.learning_members < 2 or self.learning_seeds < 1:
            raise ValueError(
                "--learning-ensembles >= 1, --learning-members >= 2 and --learning-seeds >= 1 "
                f"required, got {self.learning_ensembles}, {self.learning_members}, "
                f"{self.learning_seeds}"
            )
        if self.learned_closure:
            if not Path(self.learned_closure).is_file():
                raise ValueError(f"--learned-closure: no file {self.learned_closure!r}")
            from .chemistry_closure import LearnedCrossClosure

            try:
                LearnedCrossClosure.from_json(self.learned_closure)
            except ValueError as error:
                raise ValueError(f"--learned-closure: {error}") from None


def chemistry_equations() -> list[sp.Eq]:
    """∂t A = −u(x) ∂x A + k B and ∂t B = −u(x) ∂x B − k A (wind a constant field)."""
    t, x, k = sp.symbols("t x k")
    A, B = sp.Function("A")(t, x), sp.Function("B")(t, x)
    u = sp.Function("u")(x)
    return [
        sp.Eq(sp.Derivative(A, t), -u * sp.Derivative(A, x) + k * B),
        sp.Eq(sp.Derivative(B, t), -u * sp.Derivative(B, x) - k * A),
    ]


def wind(shape: int, length: float = 1.0, speed: float = PARAMETERS["U"]) -> np.ndarray:
    """u(x) = U (1 + sin(2π x / D) / 3), (nx,), length / time."""
    x = np.arange(shape) * length / shape
    return speed * (1.0 + np.sin(2 * np.pi * x / length) / 3.0)


def cross_closure(
    symbolic: SymbolicPKF, kind: CrossClosure = "zero", learned: LearnedCrossClosure | None = None
) -> dict[sp.Expr, sp.Expr]:
    """Closure of the cross terms E[ε_A ∂x ε_B] and E[ε_A ∂x² ε_B] of the multivariate PKF.

    The derivation already used the exact product-rule identity
    E[ε_A ∂ε_B] + E[ε_B ∂ε_A] = ∂(V_AB / σ_A σ_B) (σ = √V) to eliminate E[ε_B ∂ε_A], and
    E[∂ε_A ∂ε_B] = ∂E[ε_A ∂ε_B] − E[ε_A ∂²ε_B]; two terms remain.

    ``"gaussian"``: the cross-covariance function is modelled as symmetric and locally
    Gaussian, C_AB(x, y) = V_AB((x + y)/2) exp(−(x − y)² / (2 s_AB)) with the cross aspect
    1/s_AB = (1/s_A + 1/s_B)/2. Then E[e_A ∂e_B] = ∂V_AB / 2 (exact whenever C_AB is symmetric,
    which this dynamics preserves from independent initial errors) and
    E[e_A ∂²e_B] = ∂²V_AB / 4 − V_AB (1/s_A + 1/s_B) / 2; normalising e = σ ε gives

    * E[ε_A ∂ε_B] = ∂V_AB / (2 σ_A σ_B) + V_AB ∂(1/σ_B) / σ_A,
    * E[ε_A ∂²ε_B] = E[e_A ∂²e_B] / (σ_A σ_B) + ∂V_AB ∂(1/σ_B) / σ_A + V_AB ∂²(1/σ_B) / σ_A.

    ``"zero"`` (the case's choice): both terms set to zero, i.e. the gradients of the two
    normalised errors are taken uncorrelated with the other field. For this case the exact
    cross curvature (V_B0 g_B0 − V_A0 g_A0)/(V_B0 − V_A0) is much smaller than either metric,
    which is why "zero" does better than "gaussian" here.

    ``"rational"``: derived from the dynamics. A and B are carried by the same wind and rotated
    by the reaction, so the gradient cross-covariance follows the variances:
    E[∂e_A ∂e_B] = V_AB (M_A − M_B) / (V_A − V_B) with M_f = E[(∂e_f)²] = V_f / s_f +
    (∂V_f)² / (4 V_f) (locally Gaussian), regularised as d / (d² + δ²), d = V_A − V_B,
    δ = 0.02 (V_A + V_B), where V_A ≈ V_B (k t = π/4 here). With the symmetric first term F1 =
    E[ε_A ∂ε_B] of ``"gaussian"`` (exact here), the normalisation e = σ ε gives E[∂ε_A ∂ε_B] =
    (E[∂e_A ∂e_B] − σ_A ∂σ_B (∂ρ − F1) − ∂σ_A σ_B F1 − ∂σ_A ∂σ_B ρ) / (σ_A σ_B), ρ = V_AB /
    (σ_A σ_B), and E[ε_A ∂²ε_B] = ∂F1 − E[∂ε_A ∂ε_B]. Measured (full setting, 1600 members,
    t = 0, 0.25, ..., 1): L_A 2.9, 2.4, 2.9, 3.9, 12.5 % against "zero"'s 2.9, 2.4, 5.5, 12.4,
    17.8 % and a sampling noise of 3.2, 3.3, 4.2, 3.8, 2.9 %; L_B 1.7, 2.2, 2.5, 2.2, 11.8 %
    ("zero": 1.7, 2.4, 6.3, 17.6, 23.6 %; noise 2.7, 2.9, 3.4, 3.1, 3.0 %). It follows the
    ensemble within its noise until V_A and V_B cross (t ≈ 0.79) and departs after.

    ``"learned"``: learned from ensembles (``learned``, a
    :class:`cases.chemistry_closure.LearnedCrossClosure`): E[ε_A ∂ε_B] = ∂ρ / 2 + a sparse fit
    of its antisymmetric part, and E[∂e_A ∂e_B] from the rotation invariants of the reaction
    with a learned ratio λ (:func:`cases.chemistry_closure.invariant_gradients`), which carries
    the closure through V_A = V_B where ``"rational"`` loses it.

    Parameters
    ----------
    symbolic : pkf.SymbolicPKF
        The PKF of :func:`chemistry_equations`.
    kind : {"zero", "gaussian", "rational", "learned"}
        Closure choice.
    learned : LearnedCrossClosure, optional
        The closure of ``kind="learned"`` (required there).

    Returns
    -------
    dict
        Unclosed term → expression (aspect form), for :meth:`pkf.SymbolicPKF.set_closure`.
    """
    if kind not in CLOSURES:
        raise ValueError(f"closure must be one of {CLOSURES}, got {kind!r}")
    if kind == "learned":
        if learned is None:
            raise ValueError(
                "the 'learned' closure needs its coefficients: learn them "
                "(cases.chemistry_closure.learn_cross_closure) or load a JSON file "
                "(--learned-closure FILE)"
            )
        return learned.closure(symbolic)
    terms = symbolic.unclosed_terms
    orders = {}
    for term in terms:
        derivative = term.args[0].atoms(sp.Derivative)
        orders[term] = next(iter(derivative)).derivative_count if derivative else 0
    if sorted(orders.values()) != [1, 2]:
        raise RuntimeError(
            f"chemistry1d: expected the cross terms E[eps_A d eps_B] and E[eps_A d2 eps_B], "
            f"got {terms}"
        )
    if kind == "zero":
        return dict.fromkeys(terms, sp.S.Zero)
    x = symbolic.coordinates[0]
    field_a, field_b = symbolic.fields["A"], symbolic.fields["B"]
    v_a, v_b = field_a.variance, field_b.variance
    v_ab = symbolic.covariance("A", "B")
    s_a, s_b = field_a.aspect[0, 0], field_b.aspect[0, 0]
    sigma_a, inverse_sigma_b = sp.sqrt(v_a), 1 / sp.sqrt(v_b)
    first_raw = sp.Derivative(v_ab, x) / 2
    first = (first_raw * inverse_sigma_b + v_ab * sp.diff(inverse_sigma_b, x)) / sigma_a
    if kind == "rational":
        second = _rational_second(x, v_a, v_b, v_ab, s_a, s_b, first)
    else:
        second_raw = sp.Derivative(v_ab, x, 2) / 4 - v_ab * (1 / s_a + 1 / s_b) / 2
        second = (
            second_raw * inverse_sigma_b
            + sp.Derivative(v_ab, x) * sp.diff(inverse_sigma_b, x)
            + v_ab * sp.diff(inverse_sigma_b, x, 2)
        ) / sigma_a
    return {term: first if orders[term] == 1 else second for term in terms}


#: Regularisation of the "rational" closure where V_A ≈ V_B: δ = RATIONAL_DELTA (V_A + V_B).
RATIONAL_DELTA = 0.02


def _rational_second(
    x: sp.Symbol,
    v_a: sp.Expr,
    v_b: sp.Expr,
    v_ab: sp.Expr,
    s_a: sp.Expr,
    s_b: sp.Expr,
    first: sp.Expr,
) -> sp.Expr:
    """E[ε_A ∂²ε_B] of the ``"rational"`` closure (see :func:`cross_closure`)."""
    m_a, m_b = gradient_variance(x, v_a, s_a), gradient_variance(x, v_b, s_b)
    d, delta = v_a - v_b, RATIONAL_DELTA * (v_a + v_b)
    gradients = v_ab * (m_a - m_b) * d / (d**2 + delta**2)  # E[∂e_A ∂e_B]
    return second_from_gradients(x, v_a, v_b, v_ab, first, gradients)


def gradient_variance(x: sp.Symbol, variance: sp.Expr, aspect: sp.Expr) -> sp.Expr:
    """E[(∂e)²] = V / s + (∂V)² / (4 V) of errors e = σ ε (locally Gaussian: E[ε ∂ε] = 0)."""
    return variance / aspect + sp.diff(variance, x) ** 2 / (4 * variance)


def second_from_gradients(
    x: sp.Symbol, v_a: sp.Expr, v_b: sp.Expr, v_ab: sp.Expr, first: sp.Expr, gradients: sp.Expr
) -> sp.Expr:
    """E[ε_A ∂²ε_B] from E[ε_A ∂ε_B] (``first``) and E[∂e_A ∂e_B] (``gradients``).

    With e = σ ε and ρ = V_AB / (σ_A σ_B): E[∂ε_A ∂ε_B] = (E[∂e_A ∂e_B] − σ_A ∂σ_B (∂ρ − F1)
    − ∂σ_A σ_B F1 − ∂σ_A ∂σ_B ρ) / (σ_A σ_B), and E[ε_A ∂²ε_B] = ∂F1 − E[∂ε_A ∂ε_B].
    """
    sigma_a, sigma_b = sp.sqrt(v_a), sp.sqrt(v_b)
    rho = v_ab / (sigma_a * sigma_b)
    normalised = (
        gradients
        - sigma_a * sp.diff(sigma_b, x) * (sp.diff(rho, x) - first)
        - sp.diff(sigma_a, x) * sigma_b * first
        - sp.diff(sigma_a, x) * sp.diff(sigma_b, x) * rho
    ) / (sigma_a * sigma_b)  # E[∂ε_A ∂ε_B]
    return sp.diff(first, x) - normalised


def build_models(
    shape: int,
    length: float,
    dtype: DType,
    accuracy: int,
    closure: CrossClosure = "zero",
    learned: LearnedCrossClosure | None = None,
) -> tuple[GeneratedModel, GeneratedModel, SymbolicPKF]:
    """Generate and instantiate the two-species model and its closed PKF model (aspect form).

    Returns
    -------
    tuple
        ``(species model, PKF model, SymbolicPKF)`` with the wind and ``k`` set.
    """
    from generator import NNModelBuilder
    from pkf import SymbolicPKF

    equations = chemistry_equations()
    symbolic = SymbolicPKF(equations)
    symbolic.set_closure(cross_closure(symbolic, closure, learned))
    values: dict[str, Any] = {"u": wind(shape, length), "k": PARAMETERS["k"]}
    species_class = NNModelBuilder(equations, class_name="NNChemistry1D", accuracy=accuracy).build()
    pkf_class = NNModelBuilder(
        symbolic.to_generator(form="aspect", closure="slot"),
        class_name=f"PKFChemistry1D{closure.capitalize()}",
        accuracy=accuracy,
    ).build()
    species = species_class(shape=shape, lengths=length, dtype=dtype, **values)
    pkf_model = pkf_class(shape=shape, lengths=length, dtype=dtype, **values)
    return species, pkf_model, symbolic


def _pkf_dataset(forecast: xr.Dataset) -> xr.Dataset:
    """A PKF forecast (aspect form) with the length-scales L_f_x = sqrt(s_f_xx) added."""
    return forecast.assign(
        L_A_x=xr.apply_ufunc(np.sqrt, forecast["s_A_xx"]).assign_attrs(
            long_name="length-scale of A", units="1"
        ),
        L_B_x=xr.apply_ufunc(np.sqrt, forecast["s_B_xx"]).assign_attrs(
            long_name="length-scale of B", units="1"
        ),
    )


def run(settings: Settings, output: Output) -> dict:
    """PKF (every closure of :data:`CLOSURES`) against two independent ensembles."""
    from pkf import EnsembleForecast
    from pkf.sampling import SeededMembers

    from .figures import plot_error_curves, plot_profiles

    shape, length = settings.points, 1.0
    x = np.arange(shape) * length / shape
    u = wind(shape, length)
    steps = int(np.ceil(settings.final_time / (length / shape / np.abs(u).max() / 6)))
    times = np.arange(steps + 1) * (settings.final_time / steps)
    saved = times[np.unique(np.rint(np.linspace(0, steps, settings.saved)).astype(int))]
    variance_a = 1.0 - np.cos(2 * np.pi * x / length) / 2.0
    variance_b = np.full(shape, PARAMETERS["V_B"])
    mean_a = np.exp(-((x - length / 2) ** 2) / (2 * 0.1**2))
    mean_b = np.zeros(shape)
    state0 = {
        "A": mean_a,
        "B": mean_b,
        "V_A": variance_a,
        "V_B": variance_b,
        "V_AB": np.zeros(shape),
        "s_A_xx": np.full(shape, PARAMETERS["L_A"] ** 2),
        "s_B_xx": np.full(shape, PARAMETERS["L_B"] ** 2),
    }
    closures = (settings.closure, *(c for c in CLOSURES if c != settings.closure))
    with output.step("learn_closure"):
        learned, learning = _learned_closure(settings, output)
    pkf: dict[str, xr.Dataset] = {}
    for closure in closures:
        with output.step(f"pkf_{closure}_build_and_forecast"):
            species, model, symbolic = build_models(
                shape, length, settings.dtype, settings.accuracy, closure, learned
            )
            pkf[closure] = _pkf_dataset(model.forecast(times, state0, saved_times=saved))
    engine = EnsembleForecast(
        species, settings.members, progress=output.progress, client=output.client
    )
    results = []
    for k in range(2):
        with output.step(f"ensemble_{k + 1}_incl_compile"):
            members = SeededMembers(
                {"A": mean_a, "B": mean_b},
                (length,),
                {"A": PARAMETERS["L_A"], "B": PARAMETERS["L_B"]},
                {"A": variance_a, "B": variance_b},
                seed=settings.seed + k,
            )
            results.append(engine.run(times, members, saved_times=saved))
    ensembles = [r.to_dataset() for r in (*results, results[0].merge(results[1]))]
    errors = {c: errors_by_time(pkf[c], ensembles[0], COMPARED) for c in closures}
    pooled_errors = errors_by_time(pkf[settings.closure], ensembles[2], COMPARED)
    noise = errors_by_time(ensembles[1], ensembles[0], COMPARED)
    noise["V_AB"][0] = None  # t = 0: both ensembles are sampling noise around V_AB = 0

    sources = {f"pkf_{c}": pkf[c] for c in closures}
    sources.update(ensemble_1=ensembles[0], ensemble_2=ensembles[1], ensembles_pooled=ensembles[2])
    stacked = stack_sources(sources, COMPARED)
    stacked.attrs.update(
        title="pkfnet chemistry1d case: multivariate PKF vs ensemble, two reacting species",
        members=settings.members,
        seed=settings.seed,
        second_ensemble_seed=settings.seed + 1,
        closure=settings.closure,
    )
    output.write_dataset(stacked, "chemistry1d.nc")

    with output.step("figures"):
        label = f"ensemble ({settings.members})"
        final = {"time": saved[-1]}
        panels = {}
        for key in ("V_A", "V_B", "V_AB", "L_A_x", "L_B_x"):
            lines = {f"PKF ({c} closure)": pkf[c][key].sel(final).values for c in closures}
            lines[label] = ensembles[0][key].sel(final).values
            lines["initial (PKF)"] = pkf[settings.closure][key].isel(time=0).values
            panels[f"{key}, t = {saved[-1]:.3g}"] = lines
        panels["wind u(x)"] = {"u": u}
        styles = {
            f"PKF ({c} closure)": f"C{k}{'-' if k == 0 else '--'}" for k, c in enumerate(closures)
        }
        styles.update({label: "k.", "initial (PKF)": "C7:", "u": "C2-"})
        output.write_figure(
            plot_profiles(
                x / length,
                panels,
                styles=styles,
                suptitle="Two-species transport with linear reaction: multivariate PKF vs ensemble",
            ),
            "chemistry1d_statistics",
        )
        keys = ("V_A", "V_B", "V_AB", "L_A_x", "L_B_x")
        output.write_figure(
            plot_error_curves(
                saved,
                {k: errors[settings.closure][k] for k in keys},
                reference={k: noise[k] for k in keys},
                title=f"PKF ({settings.closure} closure) vs ensemble (solid); ensemble 2 vs 1 "
                f"(dashed)\n{settings.members} members",
            ),
            "chemistry1d_errors",
        )

    output.say(
        f"chemistry1d: {shape} points, {settings.members} members, {steps} RK4 steps; at t = "
        f"{saved[-1]:.3g}\n"
        + "".join(
            f"  PKF ({c} closure) vs ensemble: {percent(at_final_time(errors[c]))}\n"
            for c in closures
        )
        + f"  ensemble 2 vs 1: {percent(at_final_time(noise))}\n"
        f"  PKF vs both ensembles pooled: {percent(at_final_time(pooled_errors))}"
    )
    return {
        "dt": float(times[1]),
        "steps": steps,
        "saved_times": saved.tolist(),
        "parameters": PARAMETERS,
        "unclosed_terms": [str(term) for term in symbolic.unclosed_terms],
        "relative_l2_error": errors[settings.closure],
        **{f"relative_l2_error_{c}_closure": errors[c] for c in closures if c != settings.closure},
        "ensemble_sampling_noise": noise,
        "relative_l2_error_vs_pooled_ensembles": pooled_errors,
        "final_relative_l2_error": at_final_time(errors[settings.closure]),
        **{
            f"final_relative_l2_error_{c}_closure": at_final_time(errors[c])
            for c in closures
            if c != settings.closure
        },
        "final_ensemble_sampling_noise": at_final_time(noise),
        "learned_closure": learning,
        "final_relative_l2_error_vs_pooled_ensembles": at_final_time(pooled_errors),
    }


def _learned_closure(settings: Settings, output: Output) -> tuple[LearnedCrossClosure, dict]:
    """The learned closure: loaded (``--learned-closure``) or learned with every seed.

    With ``learning_seeds`` > 1 the closure of the first seed is used and the others measure
    the stability of the selected terms and coefficients (mean ± std over seeds).
    """
    from .chemistry_closure import LearnedCrossClosure, LearningSettings, learn_cross_closure

    if settings.learned_closure:
        learned = LearnedCrossClosure.from_json(settings.learned_closure)
        return learned, {"loaded_from": settings.learned_closure, **learned.as_dict()}
    learning = LearningSettings(
        ensembles=settings.learning_ensembles, members=settings.learning_members
    )
    runs = [
        learn_cross_closure(settings, learning, seed=settings.seed + 100 + k)
        for k in range(settings.learning_seeds)
    ]
    output.write_json(runs[0].as_dict(), "chemistry1d_learned_closure.json")
    stages = ("ratio_a_priori", "ratio_one_step", "ratio_rollout")
    coefficients: dict[str, list[float]] = {}
    for run_ in runs:
        for term, value in zip(run_.first_terms, run_.first_coefficients, strict=True):
            coefficients.setdefault(str(term), []).append(value)
    for values in coefficients.values():  # a term a seed did not select counts as 0
        values.extend([0.0] * (len(runs) - len(values)))
    report = {
        "seeds": [r.metadata["seed"] for r in runs],
        **{s: [r.metadata[s] for r in runs] for s in stages},
        **{f"{s}_mean": float(np.mean([r.metadata[s] for r in runs])) for s in stages},
        **{f"{s}_std": float(np.std([r.metadata[s] for r in runs])) for s in stages},
        "first_term_coefficients": {
            t: {
                "mean": float(np.mean(v)),
                "std": float(np.std(v)),
                "selected_by": int(np.count_nonzero(v)),
            }
            for t, v in coefficients.items()
        },
        "used": runs[0].as_dict(),
    }
    spread = len(runs) > 1
    output.say(
        "learned closure: λ = "
        + ", ".join(
            f"{s.removeprefix('ratio_')} {report[s + '_mean']:.3f}"
            + (f" ± {report[s + '_std']:.3f}" if spread else "")
            for s in stages
        )
        + f" over {len(runs)} seed(s); E[ε_A ∂ε_B] = ∂ρ / 2 + "
        + f"{len(runs[0].first_terms) - 1} antisymmetric term(s)"
    )
    return runs[0], report
