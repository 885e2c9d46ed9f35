"""Names of the fields a PKF derivation introduces (V_u, g_u_xy, s_u_xy, nu_u_xy, V_uA, ...).

Every generated name is a valid Python identifier and is claimed in a :class:`NameRegistry`,
so that no two objects (user fields, constants, coordinates, derived fields) share a name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sympy as sp

from generator.analysis import python_identifier
from pkf.expectation import random_function

if TYPE_CHECKING:
    from pkf.forms import PKFForm

__all__ = ["FieldSymbols", "NameRegistry", "build_field_symbols", "multi_index_label"]


class NameRegistry:
    """Hands out unique identifiers; a taken candidate gets a numeric suffix.

    Examples
    --------
    >>> names = NameRegistry(["V_u"])
    >>> names.claim("V_u"), names.claim("g_u_xx")
    ('V_u_1', 'g_u_xx')
    """

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._taken: set[str] = set(taken)

    def claim(self, candidate: str) -> str:
        """Reserve and return ``candidate`` (made an identifier), or a suffixed variant."""
        base = python_identifier(candidate)
        name, counter = base, 0
        while name in self._taken:
            counter += 1
            name = f"{base}_{counter}"
        self._taken.add(name)
        return name

    def __contains__(self, name: str) -> bool:
        return name in self._taken


def multi_index_label(coordinates: Sequence[str], counts: Sequence[int]) -> str:
    """Readable label of a multi-index, e.g. ``x4`` or ``x2y1``; ``0`` for no derivative."""
    label = "".join(f"{c}{n}" for c, n in zip(coordinates, counts, strict=True) if n)
    return label or "0"


@dataclass(frozen=True)
class FieldSymbols:
    """The sympy objects attached to one prognostic field.

    Attributes
    ----------
    name : str
        Name of the field in the user's equations.
    mean : sympy.Expr
        The field itself, ``u(t, x)``, standing for its ensemble mean.
    epsilon : sympy.Expr
        The normalised error ``eps_u(t, x)`` (a random function, see
        :func:`pkf.expectation.random_function`).
    variance : sympy.Expr
        ``V_u(t, x)``.
    metric, aspect, diffusion : sympy.Matrix
        Symmetric matrices of ``g_u_xy(t, x, y)``, ``s_u_xy`` and ``nu_u_xy`` functions.
    """

    name: str
    mean: sp.Expr
    epsilon: sp.Expr
    variance: sp.Expr
    metric: sp.Matrix
    aspect: sp.Matrix
    diffusion: sp.Matrix
    tensor_names: dict[str, dict[tuple[int, int], str]] = field(default_factory=dict)

    def tensor(self, form: PKFForm) -> sp.Matrix:
        """The tensor matrix of ``form`` ('metric', 'aspect' or 'diffusion')."""
        return {"metric": self.metric, "aspect": self.aspect, "diffusion": self.diffusion}[form]


_TENSOR_PREFIX = {"metric": "g", "aspect": "s", "diffusion": "nu"}


def build_field_symbols(
    name: str,
    mean: sp.Expr,
    args: Sequence[sp.Symbol],
    coordinates: Sequence[sp.Symbol],
    registry: NameRegistry,
) -> FieldSymbols:
    """Create the variance, tensor and normalised-error functions of one field.

    Examples
    --------
    >>> t, x = sp.symbols("t x")
    >>> f = build_field_symbols("u", sp.Function("u")(t, x), (t, x), (x,), NameRegistry(["u"]))
    >>> f.variance, f.metric[0, 0], f.diffusion[0, 0]
    (V_u(t, x), g_u_xx(t, x), nu_u_xx(t, x))
    """
    coord_names = [python_identifier(str(c)) for c in coordinates]
    n = len(coordinates)
    variance = sp.Function(registry.claim(f"V_{name}"))(*args)
    epsilon = random_function(registry.claim(f"eps_{name}"))(*args)
    tensors: dict[str, sp.Matrix] = {}
    tensor_names: dict[str, dict[tuple[int, int], str]] = {}
    for form, prefix in _TENSOR_PREFIX.items():
        entries: dict[tuple[int, int], sp.Expr] = {}
        tensor_names[form] = {}
        for i in range(n):
            for j in range(i, n):
                label = registry.claim(f"{prefix}_{name}_{coord_names[i]}{coord_names[j]}")
                tensor_names[form][(i, j)] = label
                entries[(i, j)] = entries[(j, i)] = sp.Function(label)(*args)
        tensors[form] = sp.Matrix(n, n, lambda i, j, e=entries: e[(i, j)])
    return FieldSymbols(
        name=name,
        mean=mean,
        epsilon=epsilon,
        variance=variance,
        metric=tensors["metric"],
        aspect=tensors["aspect"],
        diffusion=tensors["diffusion"],
        tensor_names=tensor_names,
    )
