"""diffusion-neumann and diffusion-dirichlet cases (issue 16), quick settings (101 points, 800
members): bounded PKF vs two ensembles.

Measured this session at t = 1 (quick): Neumann V_u 5.9 % (noise 5.2 %), length-scale in the
middle half 2.5 % (noise 2.8 %), 64 % over all inner points (the PKF's g grows linearly from
its zero at the walls, the ensemble's quadratically: near-wall length-scales differ); Dirichlet
V_u 7.7 % (noise 7.8 %), length-scale 15.0 % (noise 2.3 %: the PKF lags the ensemble in the
boundary layers), the ensemble's wall length-scale 0.0468 against the derived √(2.174 κ τ) =
0.0466.
The image-corrected Neumann PKF (cases.wall_images, Liouville-Green kernel with the wall's δ
potential), same run: V_u 6.6 % against ensemble 1 (noise 5.2 %), 4.1 % against both ensembles
pooled (plain PKF 6.6 %; the pooled ensemble's own noise is about half the ensemble-2-vs-1
figure, 2.6 %), length-scale 7.1 % over all inner points (plain 64 %). At this resolution the
correction gains less on V than at 201 points (2.4 % against 9.4 % pooled, full case).
The Dirichlet-corrected PKF (cases.wall_images.dirichlet_wall_corrected), same run: V_u 6.2 %
against ensemble 1 (noise 7.8 %), 3.4 % against both ensembles pooled (plain 5.7 %),
length-scale 2.2 % (noise 2.3 %; plain 15.0 %), 1.9 % against both pooled.
"""

import numpy as np
import pytest

from cases import diffusion_dirichlet, diffusion_neumann
from cases.bounded_diffusion import PARAMETERS, diffusivity, wall_aspect
from cases.study import Output, make_settings, run_case
from generator.results import open_results


def _run(module, name, tmp_path_factory):
    out = tmp_path_factory.mktemp(name)
    settings = make_settings(module, "quick")
    return out, run_case(name, module, settings, Output(out, quiet=True))


@pytest.fixture(scope="module")
def neumann(tmp_path_factory):
    return _run(diffusion_neumann, "diffusion-neumann", tmp_path_factory)


@pytest.fixture(scope="module")
def dirichlet(tmp_path_factory):
    return _run(diffusion_dirichlet, "diffusion-dirichlet", tmp_path_factory)


def test_wall_aspect_matches_a_numerical_integration_of_the_forcing_spectrum():
    """s_b = 1 / g_b with g_b = (E|w| - (E sqrt(|w|/2))^2) / kappa for w ~ N(0, 1/tau^2),
    integrated here by quadrature (independent of the closed form)."""
    kappa, tau = 0.01, 0.1
    w = np.linspace(-12 / tau, 12 / tau, 400001)
    density = np.exp(-((w * tau) ** 2) / 2) * tau / np.sqrt(2 * np.pi)
    mean_abs = np.trapezoid(np.abs(w) * density, w)
    mean_root = np.trapezoid(np.sqrt(np.abs(w) / 2) * density, w)
    g = (mean_abs - mean_root**2) / kappa
    assert wall_aspect(kappa, tau) == pytest.approx(1 / g, rel=1e-6)


@pytest.mark.slow
def test_neumann_variance_and_middle_length_scale_within_noise(neumann):
    out, summary = neumann
    final, noise = summary["final_relative_l2_error"], summary["final_ensemble_sampling_noise"]
    assert final["V_u"] < 1.5 * noise["V_u"]
    assert summary["relative_l2_error_middle_half"]["L_u_x"][-1] < 1.5 * noise["L_u_x"]
    with open_results(out / "diffusion_neumann.nc") as ds:
        pkf = ds["g_u_xx"].sel(source="pkf").isel(time=-1).values
        ensemble = ds["L_u_x"].sel(source="ensemble_1").isel(time=-1).values
        assert pkf[0] == 0 and pkf[-1] == 0  # the metric vanishes at a no-flux wall
        assert ensemble[0] > 5 * np.median(ensemble)  # as the ensemble's length-scale shows
        assert "pkf_image_corrected" in ds["source"].values


@pytest.mark.slow
def test_neumann_image_corrected_pkf_closer_to_the_ensembles_than_the_plain_pkf(neumann):
    _, summary = neumann
    noise = summary["final_ensemble_sampling_noise"]
    corrected = summary["final_relative_l2_error_image_corrected"]
    pooled = summary["final_relative_l2_error_vs_pooled_ensembles_image_corrected"]
    plain = summary["final_relative_l2_error_vs_pooled_ensembles"]
    assert corrected["V_u"] < 1.5 * noise["V_u"]
    # pooled (2 x members): sampling noise about noise / 2; the plain PKF is at 1.3 x noise
    assert pooled["V_u"] < 0.75 * plain["V_u"]
    assert pooled["L_u_x"] < 0.15 < 0.5 < plain["L_u_x"]


@pytest.mark.slow
def test_dirichlet_variance_within_noise_and_the_wall_length_scale_as_derived(dirichlet):
    out, summary = dirichlet
    final, noise = summary["final_relative_l2_error"], summary["final_ensemble_sampling_noise"]
    assert final["V_u"] < 1.5 * noise["V_u"]
    assert final["L_u_x"] < 0.25
    expected = np.sqrt(wall_aspect(float(diffusivity(np.zeros(1))[0]), PARAMETERS["tau"]))
    with open_results(out / "diffusion_dirichlet.nc") as ds:
        walls = ds["L_u_x"].sel(source="ensembles_pooled").isel(time=-1).values[[0, -1]]
        v_walls = ds["V_u"].sel(source="ensembles_pooled").isel(time=-1).values[[0, -1]]
    np.testing.assert_allclose(walls, expected, rtol=0.1)
    np.testing.assert_allclose(v_walls, PARAMETERS["V_b"], rtol=0.1)


@pytest.mark.slow
def test_dirichlet_corrected_variance_and_length_scale_within_noise(dirichlet):
    out, summary = dirichlet
    noise = summary["final_ensemble_sampling_noise"]
    corrected = summary["final_relative_l2_error_image_corrected"]
    pooled = summary["final_relative_l2_error_vs_pooled_ensembles_image_corrected"]
    plain, plain_pooled = (
        summary["final_relative_l2_error"],
        summary["final_relative_l2_error_vs_pooled_ensembles"],
    )
    assert corrected["V_u"] < noise["V_u"]
    # pooled (2 x members): sampling noise about noise / 2; the plain PKF is at 0.73 x noise
    assert pooled["V_u"] < 0.6 * noise["V_u"] < plain_pooled["V_u"]
    assert corrected["L_u_x"] < 1.5 * noise["L_u_x"] < 0.1 < plain["L_u_x"]
    assert pooled["L_u_x"] < 1.5 * noise["L_u_x"]
    assert "dirichlet_wall_corrected" in summary["image_correction"]
    with open_results(out / "diffusion_dirichlet.nc") as ds:
        assert "pkf_image_corrected" in ds["source"].values
        walls = ds["V_u"].sel(source="pkf_image_corrected").isel(time=-1).values[[0, -1]]
    np.testing.assert_allclose(walls, PARAMETERS["V_b"], rtol=0.01)
