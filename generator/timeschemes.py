"""Explicit time schemes on tuples of tensors.

Each scheme advances ``state`` (a tuple of tensors) by one step ``dt`` of the ODE
``d state / dt = trend(t, state)``; they are plain functions usable inside a compiled
TensorFlow loop or a Keras model. On a bounded grid a ``project(t, state)`` function imposes
the boundary conditions at time ``t``: it is applied to the state the step starts from, to
every stage state (at the stage time) and to the result (at ``t + dt``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

__all__ = ["euler", "rk2", "rk4", "Projection", "TIME_SCHEMES", "TimeScheme"]

Trend = Callable[[object, tuple], tuple]
#: ``project(t, state)``: the state with the boundary conditions at time ``t`` imposed.
Projection = Callable[[object, tuple], tuple]

TimeScheme = Literal["euler", "rk2", "rk4"]
"""Name of an explicit time scheme (a key of :data:`TIME_SCHEMES`)."""


def _axpy(state: tuple, increments: tuple, factor) -> tuple:
    return tuple(s + factor * k for s, k in zip(state, increments, strict=True))


def euler(trend: Trend, t, state: tuple, dt, project: Projection | None = None) -> tuple:
    """Explicit Euler step (first order)."""
    if project is None:
        return _axpy(state, trend(t, state), dt)
    state = project(t, state)
    return project(t + dt, _axpy(state, trend(t, state), dt))


def rk2(trend: Trend, t, state: tuple, dt, project: Projection | None = None) -> tuple:
    """Second-order Runge-Kutta step (explicit midpoint rule)."""
    if project is None:
        k1 = trend(t, state)
        k2 = trend(t + dt / 2, _axpy(state, k1, dt / 2))
        return _axpy(state, k2, dt)
    state = project(t, state)
    k1 = trend(t, state)
    k2 = trend(t + dt / 2, project(t + dt / 2, _axpy(state, k1, dt / 2)))
    return project(t + dt, _axpy(state, k2, dt))


def rk4(trend: Trend, t, state: tuple, dt, project: Projection | None = None) -> tuple:
    """Classical fourth-order Runge-Kutta step."""
    if project is None:
        k1 = trend(t, state)
        k2 = trend(t + dt / 2, _axpy(state, k1, dt / 2))
        k3 = trend(t + dt / 2, _axpy(state, k2, dt / 2))
        k4 = trend(t + dt, _axpy(state, k3, dt))
        return _rk4_sum(state, k1, k2, k3, k4, dt)
    state = project(t, state)
    k1 = trend(t, state)
    k2 = trend(t + dt / 2, project(t + dt / 2, _axpy(state, k1, dt / 2)))
    k3 = trend(t + dt / 2, project(t + dt / 2, _axpy(state, k2, dt / 2)))
    k4 = trend(t + dt, project(t + dt, _axpy(state, k3, dt)))
    return project(t + dt, _rk4_sum(state, k1, k2, k3, k4, dt))


def _rk4_sum(state, k1, k2, k3, k4, dt) -> tuple:
    return tuple(
        s + dt / 6 * (a + 2 * b + 2 * c + d)
        for s, a, b, c, d in zip(state, k1, k2, k3, k4, strict=True)
    )


TIME_SCHEMES: dict[TimeScheme, Callable[..., tuple]] = {"euler": euler, "rk2": rk2, "rk4": rk4}
