"""Two species transported by a heterogeneous wind with a linear reaction: multivariate PKF.

∂t A = −u ∂x A + k B, ∂t B = −u ∂x B − k A on the periodic unit interval, u(x) = U (1 + sin(2πx)
/ 3). The multivariate PKF (means, V_A, V_B, the cross-covariance V_AB and the aspect tensors
s_A, s_B) is derived with :class:`pkf.SymbolicPKF`; its variance equations are closed, the
aspect equations keep two cross terms, E[ε_A ∂ε_B] and E[ε_A ∂²ε_B], closed by
:func:`cross_closure` ("zero"; a locally Gaussian alternative is run alongside), and the result
is compared with a batched ensemble (:class:`pkf.EnsembleForecast`).

Initial errors of A and B are independent, with variances V_A = 1 − cos(2πx)/2, V_B = 1/4 and
Gaussian correlations of length-scales 0.1 and 0.06. Along the characteristics the reaction
rotates (e_A, e_B) by the angle k t, so the exact cross-covariance function is
C_AB = cos(kt) sin(kt) (C_B0 − C_A0): a difference of two Gaussians of different widths. No
local closure built from V_A, V_B, V_AB, s_A, s_B reproduces its curvature everywhere (the
exact one divides by V_A − V_B, which vanishes at k t = π/4), so the closure, not the sampling,
limits the length-scale errors; the variance equations are closed and exact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import sympy as sp

from .comparison import errors_by_time

__all__ = [
    "CLOSURES",
    "SETTINGS",
    "build_models",
    "chemistry_equations",
    "cross_closure",
    "run",
    "wind",
]

#: full and quick settings: grid, ensemble size, final time, number of saved times.
SETTINGS = {
    "full": {"shape": 241, "members": 1600, "final_time": 1.0, "saved": 5},
    "quick": {"shape": 121, "members": 400, "final_time": 1.0, "saved": 5},
}
#: physical parameters: mean wind U, reaction rate k, initial variances and length-scales.
PARAMETERS = {
    "U": 1.0,
    "k": 1.0,
    "V_A": "1 - cos(2 pi x) / 2",
    "V_B": 0.25,
    "L_A": 0.1,
    "L_B": 0.06,
}
#: closures of the cross terms (see :func:`cross_closure`); the first is the case's choice,
#: the second is run alongside for comparison.
CLOSURES = ("zero", "gaussian")


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


def cross_closure(symbolic, kind: str = "zero") -> dict[sp.Expr, sp.Expr]:
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

    Parameters
    ----------
    symbolic : pkf.SymbolicPKF
        The PKF of :func:`chemistry_equations`.
    kind : {"gaussian", "zero"}
        Closure choice.

    Returns
    -------
    dict
        Unclosed term → expression (aspect form), for :meth:`pkf.SymbolicPKF.set_closure`.
    """
    if kind not in CLOSURES:
        raise ValueError(f"closure must be one of {CLOSURES}, got {kind!r}")
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
    second_raw = sp.Derivative(v_ab, x, 2) / 4 - v_ab * (1 / s_a + 1 / s_b) / 2
    first = (first_raw * inverse_sigma_b + v_ab * sp.diff(inverse_sigma_b, x)) / sigma_a
    second = (
        second_raw * inverse_sigma_b
        + sp.Derivative(v_ab, x) * sp.diff(inverse_sigma_b, x)
        + v_ab * sp.diff(inverse_sigma_b, x, 2)
    ) / sigma_a
    return {term: first if orders[term] == 1 else second for term in terms}


def build_models(
    shape: int, length: float, dtype: str, accuracy: int, closure: str = "zero"
) -> tuple[object, object, object]:
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
    symbolic.set_closure(cross_closure(symbolic, closure))
    values = {"u": wind(shape, length), "k": PARAMETERS["k"]}
    species_class = NNModelBuilder(equations, class_name="NNChemistry1D", accuracy=accuracy).build()
    pkf_class = NNModelBuilder(
        symbolic.to_generator(form="aspect", closure="slot"),
        class_name=f"PKFChemistry1D{closure.capitalize()}",
        accuracy=accuracy,
    ).build()
    species = species_class(shape=shape, lengths=length, dtype=dtype, **values)
    pkf_model = pkf_class(shape=shape, lengths=length, dtype=dtype, **values)
    return species, pkf_model, symbolic


#: compared quantities: key → (long name, units)
QUANTITIES = {
    "A": ("mean of species A", "1"),
    "B": ("mean of species B", "1"),
    "V_A": ("error variance of A", "1"),
    "V_B": ("error variance of B", "1"),
    "V_AB": ("error cross-covariance of A and B", "1"),
    "L_A": ("correlation length-scale of A, sqrt(s_A)", "1"),
    "L_B": ("correlation length-scale of B, sqrt(s_B)", "1"),
}


def _pkf_fields(forecast: dict, saved: np.ndarray) -> dict[str, np.ndarray]:
    def stack(name: str) -> np.ndarray:
        return np.stack([forecast[float(t)][name] for t in saved])

    return {
        "A": stack("A"),
        "B": stack("B"),
        "V_A": stack("V_A"),
        "V_B": stack("V_B"),
        "V_AB": stack("V_AB"),
        "L_A": np.sqrt(stack("s_A_xx")),
        "L_B": np.sqrt(stack("s_B_xx")),
    }


def _ensemble_fields(result) -> dict[str, np.ndarray]:
    return {
        "A": result.mean("A"),
        "B": result.mean("B"),
        "V_A": result.variance("A"),
        "V_B": result.variance("B"),
        "V_AB": result.cross_covariance("A", "B"),
        "L_A": result.length_scale("A")[:, 0],
        "L_B": result.length_scale("B")[:, 0],
    }


def _write_netcdf(
    path: Path,
    saved: np.ndarray,
    x: np.ndarray,
    sources: dict[str, tuple[str, dict[str, np.ndarray]]],
    attributes: dict,
    dt: float,
    seed: int,
) -> Path:
    from pkf import NetCDFWriter, VariableSpec

    specs, data = [], {}
    for prefix, (label, fields) in sources.items():
        for key, (text, units) in QUANTITIES.items():
            specs.append(VariableSpec(f"{prefix}_{key}", units, f"{label}: {text}", ("x",)))
            data[f"{prefix}_{key}"] = fields[key]
    with NetCDFWriter.create(
        path,
        specs,
        {"x": x},
        equations="; ".join(str(eq) for eq in chemistry_equations()),
        dt=dt,
        seed=seed,
        attributes=attributes,
        overwrite=True,
    ) as writer:
        writer.append_records(saved, data)
    return path


def run(
    out: str | Path = "results/chemistry1d",
    quick: bool = False,
    dtype: str = "float64",
    accuracy: int = 2,
    quiet: bool = False,
    seed: int = 0,
    members: int | None = None,
    **_: object,
) -> dict:
    """Run the case: PKF (both closures of :data:`CLOSURES`) against an ensemble.

    Parameters
    ----------
    out : path
        Output directory (created): ``chemistry1d.nc``, figures, ``summary.json``.
    quick : bool
        121 points and 400 members instead of 241 and 1600.
    dtype : {"float64", "float32"}
        Floating-point type of the generated models.
    accuracy : int
        Order of the centred finite-difference stencils.
    quiet : bool
        No progress bars or printed summary.
    seed : int
        Seed of the ensemble (a second, independent ensemble uses ``seed + 1``).
    members : int, optional
        Ensemble size (default 1600, quick 400).

    Returns
    -------
    dict
        The summary (also written to ``out/summary.json``): relative L2 error of every PKF
        quantity against the ensemble at every saved time for the ``"zero"`` closure
        (``relative_l2_error``) and the ``"gaussian"`` closure, the sampling noise (second
        ensemble against the first), timings and file names.
    """
    from pkf import EnsembleForecast, EnsembleResult, sample_errors

    from .figures import plot_error_curves, plot_profiles

    setting = SETTINGS["quick" if quick else "full"]
    members = int(members or setting["members"])
    shape, length = setting["shape"], 1.0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dx = length / shape
    x = np.arange(shape) * dx
    u = wind(shape, length)
    dt = dx / np.abs(u).max() / 6
    steps = int(np.ceil(setting["final_time"] / dt))
    dt = setting["final_time"] / steps
    times = np.arange(steps + 1) * dt
    saved = times[np.unique(np.rint(np.linspace(0, steps, setting["saved"])).astype(int))]
    variance_a = 1.0 - np.cos(2 * np.pi * x / length) / 2.0
    variance_b = np.full(shape, PARAMETERS["V_B"])
    mean_a = np.exp(-((x - length / 2) ** 2) / (2 * 0.1**2))
    mean_b = np.zeros(shape)
    seconds: dict[str, float] = {}

    pkf_runs, symbolic = {}, None
    for closure in CLOSURES:
        start = time.perf_counter()
        species, pkf_model, symbolic_closure = build_models(shape, length, dtype, accuracy, closure)
        symbolic = symbolic or symbolic_closure
        state0 = {
            "A": mean_a,
            "B": mean_b,
            "V_A": variance_a,
            "V_B": variance_b,
            "V_AB": np.zeros(shape),
            "s_A_xx": np.full(shape, PARAMETERS["L_A"] ** 2),
            "s_B_xx": np.full(shape, PARAMETERS["L_B"] ** 2),
        }
        forecast = pkf_model.forecast(times, state0, saved_times=saved)
        pkf_runs[closure] = _pkf_fields(forecast, saved)
        seconds[f"pkf_{closure}_build_and_forecast"] = time.perf_counter() - start

    ensembles, results = [], []
    engine = EnsembleForecast(species, members, progress=not quiet)
    for k in range(2):
        start = time.perf_counter()
        rng = np.random.default_rng(seed + k)
        initial = {
            "A": mean_a
            + sample_errors(shape, length, members, PARAMETERS["L_A"], variance_a, seed=rng),
            "B": mean_b
            + sample_errors(shape, length, members, PARAMETERS["L_B"], variance_b, seed=rng),
        }
        results.append(engine.run(times, initial, saved_times=saved))
        ensembles.append(_ensemble_fields(results[-1]))
        seconds[f"ensemble_{k + 1}_incl_compile"] = time.perf_counter() - start
    pooled = EnsembleResult(saved, results[0].accumulator.merge(results[1].accumulator))
    ensembles.append(_ensemble_fields(pooled))

    errors = {closure: errors_by_time(fields, ensembles[0]) for closure, fields in pkf_runs.items()}
    pooled_errors = errors_by_time(pkf_runs["zero"], ensembles[2])
    noise = errors_by_time(ensembles[1], ensembles[0])
    noise["V_AB"][0] = None  # t = 0: both ensembles are sampling noise around V_AB = 0

    start = time.perf_counter()
    final = len(saved) - 1
    ens_label = f"ensemble ({members})"
    panels = {}
    for key in ("V_A", "V_B", "V_AB", "L_A", "L_B"):
        panels[f"{key}, t = {saved[final]:.3g}"] = {
            "PKF (zero closure)": pkf_runs["zero"][key][final],
            "PKF (gaussian closure)": pkf_runs["gaussian"][key][final],
            ens_label: ensembles[0][key][final],
            "initial (PKF)": pkf_runs["zero"][key][0],
        }
    panels["wind u(x)"] = {"u": u}
    figures = plot_profiles(
        x / length,
        panels,
        out / "chemistry1d_statistics",
        styles={
            "PKF (zero closure)": "C0-",
            "PKF (gaussian closure)": "C1--",
            ens_label: "k.",
            "initial (PKF)": "C7:",
            "u": "C2-",
        },
        suptitle="Two-species transport with linear reaction: multivariate PKF vs ensemble",
    )

    def as_array(values: list[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values])

    keys = ("V_A", "V_B", "V_AB", "L_A", "L_B")
    figures += plot_error_curves(
        saved,
        {key: as_array(errors["zero"][key]) for key in keys},
        out / "chemistry1d_errors",
        reference={key: as_array(noise[key]) for key in keys},
        title=f"PKF (zero closure) vs ensemble (solid); ensemble 2 vs 1 (dashed)\n"
        f"{members} members",
    )
    seconds["figures"] = time.perf_counter() - start

    sources = {
        "pkf": ("PKF, zero cross closure", pkf_runs["zero"]),
        "pkf_gaussian": ("PKF, gaussian cross closure", pkf_runs["gaussian"]),
        "ens1": ("ensemble 1 (reference)", ensembles[0]),
        "ens2": ("ensemble 2 (independent)", ensembles[1]),
        "ens_pooled": ("ensembles 1 and 2 pooled", ensembles[2]),
    }
    attributes = {
        "title": "pkfnet chemistry1d case: multivariate PKF vs ensemble, two reacting species",
        "members": members,
        "parameters": json.dumps(PARAMETERS),
        "stencil_accuracy": accuracy,
        "ensemble_metric_stencil": "second-order centred periodic difference",
        "second_ensemble_seed": seed + 1,
    }
    netcdf = _write_netcdf(out / "chemistry1d.nc", saved, x, sources, attributes, dt, seed)

    summary = {
        "case": "chemistry1d",
        "setting": "quick" if quick else "full",
        "grid": shape,
        "members": members,
        "dt": dt,
        "steps": steps,
        "saved_times": saved.tolist(),
        "dtype": dtype,
        "accuracy": accuracy,
        "seed": seed,
        "parameters": PARAMETERS,
        "closure": "zero",
        "unclosed_terms": [str(term) for term in symbolic.unclosed_terms],
        "relative_l2_error": errors["zero"],
        "relative_l2_error_gaussian_closure": errors["gaussian"],
        "ensemble_sampling_noise": noise,
        "relative_l2_error_vs_pooled_ensembles": pooled_errors,
        "final_relative_l2_error": {key: row[-1] for key, row in errors["zero"].items()},
        "final_relative_l2_error_gaussian_closure": {
            key: row[-1] for key, row in errors["gaussian"].items()
        },
        "final_ensemble_sampling_noise": {key: row[-1] for key, row in noise.items()},
        "final_relative_l2_error_vs_pooled_ensembles": {
            key: row[-1] for key, row in pooled_errors.items()
        },
        "seconds": seconds,
        "files": [str(p) for p in (*figures, netcdf)],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not quiet:

        def line(values: dict) -> str:
            return ", ".join(f"{key} {100 * value:.1f} %" for key, value in values.items())

        print(f"chemistry1d: {shape} points, {members} members, {steps} RK4 steps")
        print(
            f"PKF (zero closure) vs ensemble, t = {saved[-1]:.3g}: "
            f"{line(summary['final_relative_l2_error'])}"
        )
        print(
            f"PKF (gaussian closure) vs ensemble: "
            f"{line(summary['final_relative_l2_error_gaussian_closure'])}"
        )
        print(f"ensemble 2 vs ensemble 1: {line(summary['final_ensemble_sampling_noise'])}")
        print(
            f"PKF (zero closure) vs both ensembles pooled ({2 * members} members): "
            f"{line(summary['final_relative_l2_error_vs_pooled_ensembles'])}"
        )
        print(f"wrote {out / 'summary.json'}, {netcdf}, {len(figures)} figure files")
    return summary
