"""Reduced end-to-end run of ``scripts/burgers_closure.py`` (the full study is the script)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cases.burgers import THEORY, Settings

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "burgers_closure.py"
INIT = {"a": 0.5, "b": 0.5, "c": -1.0}  # initial values of the trainable (a, b, c)


def _load_script():
    spec = importlib.util.spec_from_file_location("burgers_closure_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_debias_inverts_the_centred_difference_bias_of_a_gaussian_correlation():
    script = _load_script()
    dx, nu = 1 / 241, np.array([5e-5, 2e-4, 1e-3])
    # exact centred-difference estimate of nu for rho(r) = exp(-r^2 / (4 nu))
    estimate = dx**2 / (1 - np.exp(-(dx**2) / nu))
    assert np.all(estimate > nu)
    np.testing.assert_allclose(estimate - nu, dx**2 / 2, rtol=0.2)
    np.testing.assert_allclose(script.debias_diffusion(estimate, dx), nu, rtol=1e-10)


def test_rollout_sequences_follow_each_ensemble_in_time():
    script = _load_script()
    rng = np.random.default_rng(0)
    ensembles, steps, points = 3, 7, 5

    def value(e, k):
        """A field whose value encodes (ensemble, step, point)."""
        return 1000 * e[:, None] + k[:, None] + np.arange(points)[None, :] / 10

    ensemble = np.repeat(np.arange(ensembles), steps)
    step = np.tile(np.arange(10, 10 + steps), ensembles)
    data = {"ensemble": ensemble, "step": step}
    for f in script.FIELDS:
        data[f] = value(ensemble, step)
        data[f"{f}_next"] = value(ensemble, step + 1)
    shuffle = rng.permutation(len(ensemble))
    data = {k: v[shuffle] for k, v in data.items()}
    inputs, targets = script.rollout_sequences(data, steps=3, stride=2)
    starts = [0, 2, 4]
    assert inputs["u"].shape == (ensembles * len(starts), points)
    assert targets["V_u"].shape == (ensembles * len(starts), 3, points)
    for n, (e, s0) in enumerate((e, s0) for e in range(ensembles) for s0 in starts):
        k = np.array([10 + s0])
        np.testing.assert_array_equal(inputs["nu_u_xx"][n], value(np.array([e]), k)[0])
        for j in range(3):
            np.testing.assert_array_equal(targets["u"][n, j], value(np.array([e]), k + j + 1)[0])
    with pytest.raises(ValueError, match="consecutive steps"):
        script.rollout_sequences(data, steps=8, stride=1)


@pytest.mark.slow
def test_reduced_study_runs_end_to_end_and_moves_toward_theory(tmp_path):
    script = _load_script()
    settings = Settings(
        ensembles=3, members=64, reference_members=200, epochs=2, batch_size=8, runs=1
    )
    results = script.study(
        tmp_path,
        settings,
        accuracies=(2, 4),
        thresholds=(0.05,),
        debias_runs=0,
        rollout_steps=5,
        progress=False,
        say=lambda *a: None,
    )
    for accuracy in ("2", "4"):
        entry = results["by_accuracy"][accuracy]
        assert entry["samples"] == 300
        learned = entry["one_step"]["mean"]
        for name in "abc":
            # training starts at INIT; it must end closer to the theoretical closure
            assert abs(learned[name] - THEORY[name]) < 0.5 * abs(INIT[name] - THEORY[name])
            # the linear fit on tendencies agrees with the gradient training
            assert entry["lstsq_3_terms"][name] == pytest.approx(learned[name], abs=0.05)
        (sparse,) = entry["stlsq"]
        assert sparse["selected"], "the sparse fit must keep some terms"
        assert len(sparse["coefficients"]) == len(results["dictionary"]) == 9
        errors = entry["relative_l2_vs_reference"]
        for label in ("learned", "theory", "stlsq_0.05"):
            assert "diverged" not in errors[label], errors[label]
            assert len(errors[label]["V"]) == 6
            # 200 reference members: sampling noise is ~10 % on V and L
            assert max(errors[label]["V"]) < 0.25
            assert max(errors[label]["L"]) < 0.25
            assert max(errors[label]["u"]) < 0.01
    whole = results["by_accuracy"]["2"]["one_step_whole_trajectory"]
    assert whole["samples"] == 500 * whole["ensembles"]
    errors_2 = results["by_accuracy"]["2"]["relative_l2_vs_reference"]
    for label in ("learned_whole_trajectory", "learned_rollout"):
        assert "diverged" not in errors_2[label], errors_2[label]
    rollout = results["by_accuracy"]["2"]["rollout"]
    assert (
        rollout["steps"] == 5 and rollout["sequences"] == 248 * whole["ensembles"]
    )  # starts 0, 2, ..., 494
    saved = json.loads((tmp_path / "burgers_closure.json").read_text())
    assert saved["saved_times"] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    report = (tmp_path / "burgers_closure.md").read_text()
    assert "Sparse fit (STLSQ)" in report and "| learned | V |" in report
