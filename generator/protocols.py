"""What the rest of pkfnet needs from a model, as typing protocols, and the model's option types.

:class:`generator.model.GeneratedModel` satisfies every protocol here; the consumers are typed
with the smallest one they need, so any object with those members works with them:

* :class:`LabelledModel` — :mod:`generator.results` (CF-labelled ``xarray`` results);
* :class:`SteppableModel` — :class:`pkf.EnsembleForecast` (the batched, compiled time loop);
* :class:`FingerprintedModel` — :func:`pkf.build_dataset` (resumable training sets);
* :class:`TrainableModel` — :mod:`generator.train` (one-step and rollout fits);
* :class:`ClosableModel` — :func:`closures.plug_linear_closure` (closure models in slots).

Arrays are in the model's coordinate order (``coordinates``); tensors are batched,
``(batch, *shape)``. The protocols are runtime-checkable (``isinstance`` checks the members'
presence, not their types).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from .timeschemes import TimeScheme

if TYPE_CHECKING:
    import keras

__all__ = [
    "ClosableModel",
    "DType",
    "FingerprintedModel",
    "LabelledModel",
    "SteppableModel",
    "TimeScheme",
    "TrainableModel",
]

DType = Literal["float64", "float32"]
"""Floating-point type of a model's fields, constants and computations."""


@runtime_checkable
class LabelledModel(Protocol):
    """A model whose arrays :mod:`generator.results` can label (grid, metadata, constants)."""

    @property
    def coordinates(self) -> tuple[str, ...]:
        """Names of the grid coordinates in array-axis order, e.g. ``("x", "y")``."""
        ...

    @property
    def grid(self) -> tuple[np.ndarray, ...]:
        """Coordinates of the grid points, one ``(n_i,)`` array per axis (length units)."""
        ...

    @property
    def periodic_axes(self) -> tuple[bool, ...]:
        """Whether each axis is periodic (else bounded, both end points on the grid)."""
        ...

    @property
    def boundary_description(self) -> str:
        """The boundary conditions in words (``"periodic"`` when every axis is)."""
        ...

    @property
    def lengths(self) -> tuple[float, ...]:
        """Domain length per axis (length units)."""
        ...

    @property
    def dtype(self) -> DType:
        """Floating-point type of the fields."""
        ...

    @property
    def time_scheme(self) -> TimeScheme:
        """Explicit time scheme of a step."""
        ...

    @property
    def accuracy(self) -> int:
        """Even order of accuracy of the centred finite-difference stencils."""
        ...

    @property
    def time_units(self) -> str | None:
        """UDUNITS unit of model time; ``None``: dimensionless."""
        ...

    @property
    def length_units(self) -> str | None:
        """UDUNITS unit of the coordinates and lengths; ``None``: dimensionless."""
        ...

    @property
    def equations_text(self) -> str:
        """The model's equations as text (may be empty)."""
        ...

    @property
    def constants(self) -> tuple[str, ...]:
        """Names of the scalar constants."""
        ...

    @property
    def trainable_scalar_names(self) -> tuple[str, ...]:
        """Names of the trainable scalars."""
        ...

    @property
    def constant_functions(self) -> tuple[str, ...]:
        """Names of the constant (time-independent) fields."""
        ...

    def get_constant(self, name: str) -> np.ndarray:
        """Value of a constant or trainable scalar (shape ``()``) or of a constant field
        (``shape``, model coordinate order)."""
        ...


@runtime_checkable
class SteppableModel(LabelledModel, Protocol):
    """A model the ensemble engine integrates: fields, grid and one step on batched tensors."""

    @property
    def prognostic_functions(self) -> tuple[str, ...]:
        """Names of the prognostic fields: the order of the state tuples."""
        ...

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid points per axis, ``(n_0, ..., n_{d-1})``."""
        ...

    @property
    def dx(self) -> tuple[float, ...]:
        """Grid spacing per axis, ``lengths[i] / shape[i]`` on a periodic axis,
        ``lengths[i] / (shape[i] - 1)`` on a bounded one (length units)."""
        ...

    @property
    def jit_compile(self) -> bool:
        """Whether the time loop is compiled with XLA."""
        ...

    def step_tensors(self, state: tuple[Any, ...], t: Any, dt: Any) -> tuple[Any, ...]:
        """One time step: ``state`` holds one ``(batch, *shape)`` tensor of ``dtype`` per
        prognostic field (in ``prognostic_functions`` order), ``t`` and ``dt`` are scalar
        tensors (time units); returns the state at ``t + dt`` in the same layout. Runs inside
        a compiled TensorFlow loop."""
        ...


@runtime_checkable
class FingerprintedModel(SteppableModel, Protocol):
    """A steppable model that states what determines its results (for training-set files)."""

    def fingerprint(self) -> Mapping[str, str]:
        """Everything that determines the model's numbers (code hash, grid, dtype, scheme,
        values of constants and closure weights), as strings; equal fingerprints give equal
        results."""
        ...


@runtime_checkable
class TrainableModel(Protocol):
    """A model the trainer fits: a differentiable step block and named trainable scalars."""

    @property
    def prognostic_functions(self) -> tuple[str, ...]:
        """Names of the prognostic fields: the keys of the step block's inputs and outputs."""
        ...

    @property
    def dtype(self) -> DType:
        """Floating-point type of the fields."""
        ...

    @property
    def trainable_scalars(self) -> dict[str, float]:
        """Current values of the trainable scalars, by name."""
        ...

    def set_constant(self, name: str, value: ArrayLike) -> None:
        """Set a constant, trainable scalar (scalar ``value``) or constant field (``shape``)."""
        ...

    def step_model(self, dt: float, steps: int = 1, return_sequence: bool = False) -> keras.Model:
        """The time scheme as a Keras model on ``{field: (batch, *shape)}`` dicts: ``steps``
        chained steps of ``dt`` (time units); with ``return_sequence`` every step, stacked as
        ``(batch, steps, *shape)``. Its trainable weights are what a fit adjusts."""
        ...


@runtime_checkable
class ClosableModel(Protocol):
    """A model with exogenous slots that closure models on its grid are plugged into."""

    @property
    def prognostic_functions(self) -> tuple[str, ...]:
        """Names of the prognostic fields a closure model may take as inputs."""
        ...

    @property
    def coordinates(self) -> tuple[str, ...]:
        """Names of the grid coordinates in array-axis order."""
        ...

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid points per axis."""
        ...

    @property
    def dx(self) -> tuple[float, ...]:
        """Grid spacing per axis (length units)."""
        ...

    @property
    def accuracy(self) -> int:
        """Even order of accuracy of the model's centred stencils."""
        ...

    @property
    def dtype(self) -> DType:
        """Floating-point type of the fields."""
        ...

    def set_closure(
        self, name: str, function: Callable[..., Any], inputs: Sequence[str] | None = None
    ) -> None:
        """Plug ``function`` (e.g. a Keras model taking the ``inputs`` fields, each
        ``(batch, *shape)``, and returning ``(batch, *shape)``) into the exogenous ``name``."""
        ...
