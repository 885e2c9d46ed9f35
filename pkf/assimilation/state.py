"""A PKF state as arrays: means, variances, aspect tensors and cross-covariances by field.

The PKF models of :class:`pkf.SymbolicPKF` name their fields ``c`` (mean), ``V_c`` (variance),
``g_c_xy`` / ``s_c_xy`` / ``nu_c_xy`` (metric, aspect or diffusion tensor, upper triangle) and
``V_AB`` (cross-covariance); :class:`PKFState` reads such a mapping in any of the three forms,
holds the aspect tensor ``s = g^-1 = 2 nu`` as ``(ndim, ndim, *grid)`` arrays and writes the
state back with the same names and form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from numpy.typing import ArrayLike

from generator.validation import real_array

from ..forms import FORMS, PKFForm
from .grid import COORDINATES, Grid

__all__ = ["PKFState", "invert_tensor", "positive_definite"]

_PREFIX: dict[str, str] = {"metric": "g", "aspect": "s", "diffusion": "nu"}


def invert_tensor(tensor: np.ndarray) -> np.ndarray:
    """Pointwise inverse of a ``(ndim, ndim, *grid)`` tensor field."""
    moved = np.moveaxis(tensor, (0, 1), (-2, -1))
    return np.moveaxis(np.linalg.inv(moved), (-2, -1), (0, 1))


def positive_definite(tensor: np.ndarray) -> np.ndarray:
    """Boolean grid: where the symmetric ``(ndim, ndim, *grid)`` tensor is positive definite."""
    moved = np.moveaxis(tensor, (0, 1), (-2, -1))
    finite = np.isfinite(moved).all(axis=(-2, -1))
    safe = np.where(finite[..., None, None], moved, 0.0)
    return finite & (np.linalg.eigvalsh(safe)[..., 0] > 0)


@dataclass
class PKFState:
    """Means, variances, aspect tensors and cross-covariances of a PKF state.

    Attributes
    ----------
    grid : Grid
        The periodic grid (shape, lengths, coordinate names).
    form : {"metric", "aspect", "diffusion"}
        The tensor form of the mapping it was read from (and is written back in).
    mean, variance : dict of str to numpy.ndarray
        Per field, grid-shaped (model coordinate order); variances ``> 0``.
    aspect : dict of str to numpy.ndarray
        Per field, ``(ndim, ndim, *grid)`` symmetric positive definite, length².
    cross : dict of (str, str) to numpy.ndarray
        Cross-covariances ``V_ab`` of the field pairs present in the mapping (``a`` before
        ``b`` in field order), grid-shaped.
    cross_names : dict of (str, str) to str
        The mapping's name of each cross-covariance (``"V_AB"``).
    """

    grid: Grid
    form: PKFForm
    mean: dict[str, np.ndarray]
    variance: dict[str, np.ndarray]
    aspect: dict[str, np.ndarray]
    cross: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    cross_names: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields, in the mapping's order."""
        return tuple(self.mean)

    def metric(self, name: str) -> np.ndarray:
        """Metric tensor ``g = s^-1`` of field ``name``, ``(ndim, ndim, *grid)``, 1/length²."""
        return invert_tensor(self.aspect[name])

    def cross_covariance(self, a: str, b: str) -> np.ndarray | None:
        """``V_ab`` (either order) or None when the pair has no cross-covariance."""
        if (a, b) in self.cross:
            return self.cross[(a, b)]
        if (b, a) in self.cross:
            return self.cross[(b, a)]
        return None

    @classmethod
    def from_mapping(
        cls,
        state: Mapping[str, ArrayLike],
        lengths: float | Sequence[float] = 1.0,
        coordinates: Sequence[str] | None = None,
    ) -> PKFState:
        """Read a PKF state mapping (metric, aspect or diffusion form).

        Parameters
        ----------
        state : mapping of str to array_like
            ``{f: mean, "V_f": variance, "<g|s|nu>_f_<ij>": tensor component, "V_ab": ...}``
            with grid-shaped arrays in model coordinate order.
        lengths : float or sequence of float
            Domain length per axis.
        coordinates : sequence of str, optional
            Coordinate names (default ``x``, ``y``, ``z``; in 1D read from the tensor names).

        Raises
        ------
        ValueError
            Naming the entry: no field (no ``f`` with ``V_f``), a missing or mixed-form tensor
            component, an unknown entry, shapes that differ, non-finite values, a variance
            ``<= 0`` or a tensor that is not positive definite.
        """
        if not isinstance(state, Mapping) or not state:
            raise ValueError(f"state: expected a non-empty mapping of PKF fields, got {state!r}")
        names = list(state)
        fields = [n for n in names if f"V_{n}" in state]
        if not fields:
            raise ValueError(
                f"state: no PKF field found (a mean 'f' with its variance 'V_f'); entries {names}"
            )
        arrays: dict[str, np.ndarray] = {}
        for name in names:
            array = real_array(state[name], f"state[{name!r}]")
            if not np.isfinite(array).all():
                count = int(np.count_nonzero(~np.isfinite(array)))
                raise ValueError(f"state[{name!r}]: {count} values are not finite")
            arrays[name] = array
        shape = arrays[fields[0]].shape
        for name, array in arrays.items():
            if array.shape != shape:
                raise ValueError(
                    f"state[{name!r}]: shape {array.shape} differs from state[{fields[0]!r}] "
                    f"{shape}"
                )
        if coordinates is None and len(shape) == 1:
            coordinates = _coordinates_1d(names, fields)
        grid = Grid.make(shape, lengths, coordinates)
        used = set(fields) | {f"V_{f}" for f in fields}
        form: PKFForm | None = None
        aspect: dict[str, np.ndarray] = {}
        for f in fields:
            found = [
                kind
                for kind in FORMS
                if any(
                    f"{_PREFIX[kind]}_{f}_{grid.pair_label(i, j)}" in state for i, j in grid.pairs()
                )
            ]
            if len(found) != 1:
                raise ValueError(
                    f"state: field {f!r} needs one tensor form (g_{f}_.., s_{f}_.. or "
                    f"nu_{f}_..), found {found or 'none'}"
                )
            if form is not None and found[0] != form:
                raise ValueError(
                    f"state: fields use different tensor forms ({form} and {found[0]} for {f!r})"
                )
            form = found[0]
            tensor = np.empty((grid.ndim, grid.ndim, *shape))
            for i, j in grid.pairs():
                key = f"{_PREFIX[form]}_{f}_{grid.pair_label(i, j)}"
                if key not in state:
                    raise ValueError(f"state: tensor component {key!r} of field {f!r} is missing")
                tensor[i, j] = tensor[j, i] = arrays[key]
                used.add(key)
            if not positive_definite(tensor).all():
                bad = int(np.count_nonzero(~positive_definite(tensor)))
                raise ValueError(
                    f"state: the {form} tensor of {f!r} is not positive definite at {bad} points"
                )
            if form == "metric":
                tensor = invert_tensor(tensor)
            elif form == "diffusion":
                tensor = 2.0 * tensor
            aspect[f] = tensor
        cross: dict[tuple[str, str], np.ndarray] = {}
        cross_names: dict[tuple[str, str], str] = {}
        for a, b in combinations(fields, 2):
            for key in (f"V_{a}{b}", f"V_{b}{a}"):
                if key in state and key not in used:
                    cross[(a, b)] = arrays[key]
                    cross_names[(a, b)] = key
                    used.add(key)
                    break
        unknown = [n for n in names if n not in used]
        if unknown:
            raise ValueError(
                f"state: unknown entries {unknown}; a PKF state holds the means {fields}, their "
                "variances V_f, tensor components and cross-covariances V_ab"
            )
        variance = {f: arrays[f"V_{f}"] for f in fields}
        for f, v in variance.items():
            if not (v > 0).all():
                raise ValueError(
                    f"state['V_{f}']: variances must be > 0, got min {float(v.min()):g} at "
                    f"{int(np.count_nonzero(v <= 0))} points"
                )
        assert form is not None
        return cls(grid, form, {f: arrays[f] for f in fields}, variance, aspect, cross, cross_names)

    def to_mapping(self) -> dict[str, np.ndarray]:
        """The state with the names and tensor form it was read with."""
        out: dict[str, np.ndarray] = {}
        for f in self.fields:
            out[f] = self.mean[f]
            out[f"V_{f}"] = self.variance[f]
        for f in self.fields:
            tensor = self.aspect[f]
            if self.form == "metric":
                tensor = invert_tensor(tensor)
            elif self.form == "diffusion":
                tensor = tensor / 2.0
            for i, j in self.grid.pairs():
                out[f"{_PREFIX[self.form]}_{f}_{self.grid.pair_label(i, j)}"] = tensor[i, j].copy()
        for pair, values in self.cross.items():
            out[self.cross_names[pair]] = values
        return out


def _coordinates_1d(names: Sequence[str], fields: Sequence[str]) -> tuple[str, ...]:
    """The coordinate name of a 1D state, read from a tensor name ``s_f_xx``."""
    for f in fields:
        for prefix in _PREFIX.values():
            start = f"{prefix}_{f}_"
            for name in names:
                label = name[len(start) :] if name.startswith(start) else ""
                if label and len(label) % 2 == 0 and label[: len(label) // 2] * 2 == label:
                    return (label[: len(label) // 2],)
    return COORDINATES[:1]
