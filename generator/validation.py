"""Argument checks shared by every public pkfnet entry point.

One function per kind of argument, each raising a one-line ``ValueError`` (``TypeError`` for a
wrong type) that names the argument and says what was expected: positive integers (member
counts, grid sizes), finite floats (time steps, lengths), per-axis tuples and real arrays.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["finite_float", "per_axis", "positive_int", "real_array"]


def positive_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``; integral floats (``64.0``) pass, ``64.7`` does not.

    Examples
    --------
    >>> positive_int(400, "members")
    400
    >>> positive_int(2.7, "members")
    Traceback (most recent call last):
    ...
    ValueError: members: expected an integer >= 1, got 2.7
    """
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if isinstance(value, numbers.Integral):
        result = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        result = int(round(value))  # integral already: exact, also beyond float precision
    elif isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    else:
        raise TypeError(
            f"{name}: expected an integer >= {minimum}, got {type(value).__name__} {value!r}"
        )
    if result < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {result}")
    return result


def finite_float(
    value: object, name: str, sign: Literal["any", "positive", "non-negative"] = "any"
) -> float:
    """``value`` as a finite float, optionally ``> 0`` or ``>= 0``.

    Examples
    --------
    >>> finite_float(0.002, "dt", "positive")
    0.002
    >>> finite_float(float("nan"), "dt", "positive")
    Traceback (most recent call last):
    ...
    ValueError: dt: expected a finite number > 0, got nan
    """
    wanted = {"any": "a finite number", "positive": "a finite number > 0"}.get(
        sign, "a finite number >= 0"
    )
    if isinstance(value, bool | np.bool_) or isinstance(value, complex | np.complexfloating):
        raise TypeError(f"{name}: expected {wanted}, got {value!r}")
    try:
        # any object: float() decides what converts, its TypeError is reported below
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: expected {wanted}, got {type(value).__name__} {value!r}"
        ) from None
    bad = not np.isfinite(result)
    bad |= sign == "positive" and result <= 0
    bad |= sign == "non-negative" and result < 0
    if bad:
        raise ValueError(f"{name}: expected {wanted}, got {result!r}")
    return result


def per_axis(
    value: ArrayLike | None,
    ndim: int,
    name: str,
    kind: Literal["int", "float"],
    default: float | None = None,
) -> tuple:
    """One positive value per grid axis: a scalar is repeated, a sequence must have ``ndim``.

    Parameters
    ----------
    value : scalar, sequence or None
        ``None`` gives ``default`` on every axis.
    ndim : int
        Number of grid axes.
    name : str
        Argument name for messages (``"shape"``, ``"lengths"``, ``"spacing"``).
    kind : ``"int"`` (grid sizes, at least 1) or ``"float"`` (finite and positive).

    Examples
    --------
    >>> per_axis(64, 2, "shape", "int")
    (64, 64)
    >>> per_axis((1.0, float("inf")), 2, "lengths", "float")
    Traceback (most recent call last):
    ...
    ValueError: lengths[1]: expected a finite number > 0, got inf
    """
    if value is None:
        if default is None:
            raise ValueError(f"{name}: a value is required")
        value = default
    if isinstance(value, str):
        raise TypeError(f"{name}: expected a number or one number per axis, got {value!r}")
    values = list(value) if isinstance(value, Sequence | np.ndarray) else [value] * ndim
    if np.ndim(value) > 1:
        raise ValueError(f"{name}: expected a number or one number per axis, got {value!r}")
    if len(values) != ndim:
        raise ValueError(f"{name}: expected one entry per grid axis ({ndim}), got {len(values)}")
    if kind == "int":
        return tuple(positive_int(v, f"{name}[{k}]") for k, v in enumerate(values))
    return tuple(finite_float(v, f"{name}[{k}]", "positive") for k, v in enumerate(values))


def real_array(value: object, name: str, dtype: str | np.dtype = "float64") -> np.ndarray:
    """``value`` as a real array of ``dtype``; complex, non-numeric or object input is refused.

    Non-finite values are allowed here (callers that need finite data check it with the name
    of the field and the place).

    Examples
    --------
    >>> real_array([1, 2], "u").dtype
    dtype('float64')
    >>> real_array([1 + 2j], "u")
    Traceback (most recent call last):
    ...
    TypeError: u: expected real numbers, got complex values (dtype complex128)
    """
    array = np.asarray(value)
    if np.iscomplexobj(array):
        raise TypeError(f"{name}: expected real numbers, got complex values (dtype {array.dtype})")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {array.dtype}")
    return array.astype(dtype, copy=False)
