"""GeneratedModel satisfies the protocols its consumers are typed with (issue 12, item 7).

Statically: :func:`_as_protocols` only type-checks if ``GeneratedModel`` has every member of
every protocol with compatible types (the slow test runs mypy on this file). At run time: the
protocols are runtime-checkable, so ``isinstance`` checks the members are present.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from generator import NNModelBuilder
from generator.model import GeneratedModel
from generator.protocols import (
    ClosableModel,
    FingerprintedModel,
    LabelledModel,
    SteppableModel,
    TrainableModel,
)

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = (LabelledModel, SteppableModel, FingerprintedModel, TrainableModel, ClosableModel)


def _as_protocols(
    model: GeneratedModel,
) -> tuple[LabelledModel, SteppableModel, FingerprintedModel, TrainableModel, ClosableModel]:
    """Checked by mypy: a GeneratedModel is usable wherever a protocol is expected."""
    labelled: LabelledModel = model
    steppable: SteppableModel = model
    fingerprinted: FingerprintedModel = model
    trainable: TrainableModel = model
    closable: ClosableModel = model
    return labelled, steppable, fingerprinted, trainable, closable


@pytest.fixture(scope="module")
def model() -> GeneratedModel:
    t, x, kappa = sp.symbols("t x kappa")
    u = sp.Function("u")(t, x)
    heat = NNModelBuilder([sp.Eq(u.diff(t), kappa * u.diff(x, 2))], "ProtocolHeat").build()
    return heat(shape=16, kappa=0.01)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_generated_model_is_an_instance_of_every_model_protocol(model, protocol):
    assert isinstance(model, protocol)
    assert not isinstance(object(), protocol)


def test_generated_model_converts_to_every_protocol(model):
    assert all(item is model for item in _as_protocols(model))


@pytest.mark.slow
def test_generated_model_satisfies_the_protocols_statically():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", str(Path(__file__).relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
