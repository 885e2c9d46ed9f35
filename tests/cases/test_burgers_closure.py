"""The Burgers closure study as a case (``pkfnet run burgers-closure``), reduced end to end."""

from __future__ import annotations

import json

import pytest

from cases import burgers_closure
from cases.burgers import INITIAL_COEFFICIENTS, THEORY
from cases.study import Output, make_settings, run_case


@pytest.mark.slow
def test_reduced_study_runs_end_to_end_and_moves_toward_theory(tmp_path):
    settings = make_settings(
        burgers_closure,
        None,
        ensembles=3,
        members=64,
        reference_members=200,
        epochs=2,
        batch_size=8,
        runs=1,
        extra_accuracies=(4,),
        thresholds=(0.05,),
        debias_runs=0,
        rollout_steps=5,
    )
    summary = run_case("burgers-closure", burgers_closure, settings, Output(tmp_path, quiet=True))
    results = json.loads((tmp_path / "burgers_closure.json").read_text())
    assert results["by_accuracy"] == summary["by_accuracy"]
    for accuracy in ("2", "4"):
        entry = results["by_accuracy"][accuracy]
        assert entry["samples"] == 300
        learned = entry["one_step"]["mean"]
        for name in "abc":
            # training starts at INITIAL_COEFFICIENTS; it must end closer to the theory
            start = INITIAL_COEFFICIENTS[name]
            assert abs(learned[name] - THEORY[name]) < 0.5 * abs(start - THEORY[name])
            # the linear fit on tendencies agrees with the gradient training
            assert entry["lstsq_3_terms"][name] == pytest.approx(learned[name], abs=0.05)
        (sparse,) = entry["stlsq"]
        assert sparse["selected"], "the sparse fit must keep some terms"
        assert len(sparse["coefficients"]) == len(results["dictionary"]) == 9
        errors = entry["relative_l2_vs_reference"]
        for label in ("learned", "theory", "stlsq_0.05"):
            assert "diverged" not in errors[label], errors[label]
            assert len(errors[label]["V_u"]) == 6
            # 200 reference members: sampling noise is ~10 % on V and L
            assert max(errors[label]["V_u"]) < 0.25
            assert max(errors[label]["L_u_x"]) < 0.25
            assert max(errors[label]["u"]) < 0.01
    main = results["by_accuracy"]["2"]
    assert "lstsq_3_terms_debiased" in main and "lstsq_3_terms_debiased" not in entry
    whole = main["one_step_whole_trajectory"]
    assert whole["samples"] == 500 * whole["ensembles"]
    for label in ("learned_whole_trajectory", "learned_rollout"):
        assert "diverged" not in main["relative_l2_vs_reference"][label]
    rollout = main["rollout"]
    assert rollout["steps"] == 5
    assert rollout["sequences"] == 248 * whole["ensembles"]  # starts 0, 2, ..., 494
    assert results["saved_times"] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    report = (tmp_path / "burgers_closure.md").read_text()
    assert "Sparse fit (STLSQ)" in report and "| learned | V_u |" in report
