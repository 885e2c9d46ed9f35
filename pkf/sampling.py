"""Random error fields with a prescribed covariance on periodic grids, and boundary errors.

The covariance is ``B(x, y) = sigma(x) sigma(y) rho(x - y)`` with a homogeneous correlation
``rho`` and a variance field ``sigma**2``. Samples are drawn by the spectral method: on a
periodic grid the correlation matrix is circulant, so its square root is applied with FFTs.

Boundary errors of bounded domains (:class:`BoundaryErrors`, :func:`time_correlated_errors`)
are time series, one per member, drawn the same way on a time axis padded so that the periodic
wrap of the spectral method does not correlate the first and last times;
:class:`BoundaryConsistentMembers` conditions initial members on their boundary values.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from generator.validation import per_axis, positive_int, real_array

__all__ = [
    "BoundaryConsistentMembers",
    "BoundaryErrors",
    "Correlation",
    "SeededMembers",
    "circulant_spectrum",
    "ensemble_from_background",
    "gaussian_correlation",
    "isotropic_correlation",
    "periodic_displacements",
    "sample_errors",
    "time_correlated_errors",
]

Correlation = Callable[[np.ndarray], np.ndarray]
"""A homogeneous correlation: maps displacements ``d`` of shape ``(ndim, *grid)`` (physical
units) to correlations of shape ``grid``; ``rho(0) = 1`` and ``rho(-d) = rho(d)``."""

_CLIPPED_VARIANCE_TOLERANCE = 1e-4


def _as_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    ndim = 1 if np.ndim(shape) == 0 else np.shape(shape)[0]
    if not 1 <= ndim <= 3:
        raise ValueError(f"shape: expected 1 to 3 grid dimensions, got {shape}")
    shape = per_axis(shape, ndim, "shape", "int")
    if any(n < 2 for n in shape):
        raise ValueError(f"shape: every grid dimension needs at least 2 points, got {shape}")
    return shape


def _as_lengths(lengths: float | Sequence[float], ndim: int) -> tuple[float, ...]:
    return per_axis(lengths, ndim, "lengths", "float")


def periodic_displacements(
    shape: int | Sequence[int], lengths: float | Sequence[float]
) -> np.ndarray:
    """Shortest periodic displacement from the origin to every grid point.

    Parameters
    ----------
    shape : int or sequence of int
        Grid points per axis, ``(nx,)``, ``(nx, ny)`` or ``(nx, ny, nz)``.
    lengths : float or sequence of float
        Domain length per axis (physical units); the spacing is ``length / n``.

    Returns
    -------
    numpy.ndarray
        ``(ndim, *shape)`` float64: component ``i`` is ``k_i * dx_i`` folded into
        ``[-length_i / 2, length_i / 2]``.

    Examples
    --------
    >>> periodic_displacements(4, 1.0)[0]
    array([ 0.  ,  0.25,  0.5 , -0.25])
    """
    shape = _as_shape(shape)
    lengths = _as_lengths(lengths, len(shape))
    axes = []
    for n, length in zip(shape, lengths, strict=True):
        k = np.arange(n)
        k = np.where(k <= n // 2, k, k - n)
        axes.append(k * (length / n))
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _aspect_from_arguments(
    length_scale: float | Sequence[float] | None,
    aspect: ArrayLike | None,
    diffusion: ArrayLike | None,
) -> np.ndarray | None:
    given = [
        name
        for name, value in (
            ("length_scale", length_scale),
            ("aspect", aspect),
            ("diffusion", diffusion),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ValueError(
            "gaussian_correlation: give exactly one of length_scale, aspect or diffusion, "
            f"got {given or 'none'}"
        )
    if length_scale is not None:
        scales = np.atleast_1d(real_array(length_scale, "length_scale"))
        if scales.ndim != 1 or np.any(~(scales > 0)) or not np.isfinite(scales).all():
            raise ValueError(
                f"length_scale: expected positive scalar or one value per axis, got {length_scale}"
            )
        return None if scales.size == 1 else np.diag(scales**2)
    name = "aspect" if aspect is not None else "diffusion"
    tensor = real_array(aspect if aspect is not None else 2.0 * real_array(diffusion, name), name)
    if not np.isfinite(tensor).all():
        raise ValueError(f"{name}: tensor must be finite, got {tensor.tolist()}")
    if tensor.ndim != 2 or tensor.shape[0] != tensor.shape[1] or tensor.shape[0] not in (2, 3):
        raise ValueError(f"{name}: expected a 2x2 or 3x3 tensor, got shape {tensor.shape}")
    if not np.allclose(tensor, tensor.T, rtol=1e-12, atol=0.0):
        raise ValueError(f"{name}: tensor must be symmetric, got {tensor.tolist()}")
    if np.any(np.linalg.eigvalsh(tensor) <= 0):
        raise ValueError(f"{name}: tensor must be positive definite, got {tensor.tolist()}")
    return tensor


def gaussian_correlation(
    length_scale: float | Sequence[float] | None = None,
    *,
    aspect: ArrayLike | None = None,
    diffusion: ArrayLike | None = None,
) -> Correlation:
    """Gaussian correlation ``rho(d) = exp(-d^T s^-1 d / 2)``.

    Give exactly one of the three parametrisations.

    Parameters
    ----------
    length_scale : float or sequence of float, optional
        Length-scale ``L`` (physical units), isotropic when scalar (``s = L**2 I``, metric
        ``g = 1 / L**2``), or one per axis (``s = diag(L_i**2)``).
    aspect : array_like, optional
        ``(ndim, ndim)`` symmetric positive definite aspect tensor ``s`` (length squared).
    diffusion : array_like, optional
        ``(ndim, ndim)`` diffusion tensor ``nu``; ``s = 2 nu``.

    Returns
    -------
    Correlation
        Callable mapping displacements ``(ndim, *grid)`` to correlations ``grid``.

    Examples
    --------
    >>> rho = gaussian_correlation(0.1)
    >>> float(rho(np.array([[0.1]]))[0])  # exp(-1/2)
    0.6065306597126334
    """
    tensor = _aspect_from_arguments(length_scale, aspect, diffusion)
    if tensor is None:
        scale = float(np.atleast_1d(real_array(length_scale, "length_scale"))[0])
        inverse_aspect = 1.0 / scale**2

        def isotropic_rho(d: np.ndarray) -> np.ndarray:
            return np.exp(-0.5 * inverse_aspect * np.sum(d * d, axis=0))

        return isotropic_rho

    inverse = np.linalg.inv(tensor)

    def rho(d: np.ndarray) -> np.ndarray:
        if d.shape[0] != inverse.shape[0]:
            raise ValueError(
                f"gaussian_correlation: tensor is {inverse.shape[0]}D but displacements are "
                f"{d.shape[0]}D"
            )
        return np.exp(-0.5 * np.einsum("i...,ij,j...->...", d, inverse, d))

    return rho


def isotropic_correlation(rho_of_distance: Callable[[np.ndarray], np.ndarray]) -> Correlation:
    """Wrap a function of Euclidean distance into a :data:`Correlation`.

    Parameters
    ----------
    rho_of_distance : callable
        ``rho(r)`` for distances ``r >= 0`` (physical units, any shape), with ``rho(0) = 1``.

    Examples
    --------
    >>> soar = isotropic_correlation(lambda r: (1 + r / 0.1) * np.exp(-r / 0.1))
    >>> float(soar(np.zeros((2, 1, 1)))[0, 0])
    1.0
    """

    def rho(d: np.ndarray) -> np.ndarray:
        return np.asarray(rho_of_distance(np.sqrt(np.sum(d * d, axis=0))), dtype=float)

    return rho


def circulant_spectrum(
    shape: int | Sequence[int],
    lengths: float | Sequence[float],
    correlation: Correlation,
) -> np.ndarray:
    """Eigenvalues of the periodic correlation matrix, on the ``rfftn`` frequency grid.

    Parameters
    ----------
    shape, lengths
        Grid points and domain length per axis, as in :func:`periodic_displacements`.
    correlation : Correlation
        Homogeneous correlation function.

    Returns
    -------
    numpy.ndarray
        ``rfftn`` layout (last axis ``n // 2 + 1``), float64, non-negative. Small negative
        eigenvalues (from truncating ``rho`` at half the domain) are clipped to 0, which raises
        the sampled variance by ``sum(|negative|) / size``; a ``RuntimeWarning`` is issued when
        that exceeds ``1e-4`` (correlation too long for the domain, or not positive definite).
    """
    shape = _as_shape(shape)
    d = periodic_displacements(shape, lengths)
    rho = np.asarray(correlation(d), dtype=float)
    if rho.shape != shape:
        raise ValueError(f"correlation: returned shape {rho.shape}, expected grid shape {shape}")
    if not np.isclose(rho.flat[0], 1.0, rtol=0.0, atol=1e-12):
        raise ValueError(f"correlation: rho(0) must be 1, got {rho.flat[0]}")
    eigenvalues = np.fft.fftn(rho).real
    clipped_variance = -eigenvalues[eigenvalues < 0].sum() / rho.size
    if clipped_variance > _CLIPPED_VARIANCE_TOLERANCE:
        warnings.warn(
            f"correlation is not positive semi-definite on this periodic grid: clipping its "
            f"negative eigenvalues (most negative {eigenvalues.min():.3e}) raises the variance "
            f"by {clipped_variance:.2e} relative; use a shorter correlation or a larger domain",
            RuntimeWarning,
            stacklevel=2,
        )
    eigenvalues = eigenvalues[..., : shape[-1] // 2 + 1]
    return np.clip(eigenvalues, 0.0, None)


def _variance_scale(variance: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    variance = real_array(variance, "variance")
    if variance.ndim != 0 and variance.shape != shape:
        raise ValueError(
            f"variance: expected a scalar or an array of grid shape {shape}, got shape "
            f"{variance.shape}"
        )
    if np.any(~np.isfinite(variance)) or np.any(variance < 0):
        raise ValueError("variance: values must be finite and non-negative")
    return np.sqrt(variance)


def sample_errors(
    shape: int | Sequence[int],
    lengths: float | Sequence[float],
    members: int,
    correlation: float | Sequence[float] | Correlation,
    variance: ArrayLike = 1.0,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Draw error fields with prescribed variance and homogeneous correlation (spectral method).

    Each member is ``sigma * ifft(sqrt(lambda) * fft(z))`` with ``z`` white noise and
    ``lambda`` the eigenvalues of the circulant correlation matrix (the FFT of ``rho``
    evaluated at the periodic displacements of the grid points from the origin).

    Parameters
    ----------
    shape : int or sequence of int
        Grid points per axis, ``(nx,)``, ``(nx, ny)`` or ``(nx, ny, nz)``.
    lengths : float or sequence of float
        Periodic domain length per axis (physical units); spacing ``dx_i = lengths[i] / n_i``.
    members : int
        Number of independent samples.
    correlation : float, sequence of float or Correlation
        A number is a Gaussian length-scale ``L`` (``rho(d) = exp(-|d|**2 / (2 L**2))``), a
        sequence one Gaussian length-scale per axis; otherwise a callable from
        :func:`gaussian_correlation` (aspect or diffusion tensor) or
        :func:`isotropic_correlation`.
    variance : float or numpy.ndarray, default 1.0
        Error variance, scalar or of grid shape (units of the field squared).
    seed : int, numpy.random.Generator or None
        Seed or generator; the same seed gives the same samples.

    Returns
    -------
    numpy.ndarray
        ``(members, *shape)`` float64.

    Examples
    --------
    >>> e = sample_errors(128, 1.0, members=4, correlation=0.05, seed=0)
    >>> e.shape
    (4, 128)
    """
    shape = _as_shape(shape)
    lengths = _as_lengths(lengths, len(shape))
    members = positive_int(members, "members")
    if not callable(correlation):
        correlation = gaussian_correlation(correlation)
    sigma = _variance_scale(variance, shape)
    amplitude = np.sqrt(circulant_spectrum(shape, lengths, correlation))
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((members, *shape))
    axes = tuple(range(1, len(shape) + 1))
    spectrum = np.fft.rfftn(white, axes=axes) * amplitude
    return sigma * np.fft.irfftn(spectrum, s=shape, axes=axes)


def ensemble_from_background(background: ArrayLike, errors: ArrayLike) -> np.ndarray:
    """Members ``background + errors``.

    Parameters
    ----------
    background : array_like
        ``grid`` (shared background) or ``(members, *grid)``.
    errors : array_like
        ``(members, *grid)``, e.g. from :func:`sample_errors`.

    Returns
    -------
    numpy.ndarray
        ``(members, *grid)`` float64.

    Examples
    --------
    >>> ensemble_from_background(np.zeros(8), np.ones((3, 8))).shape
    (3, 8)
    """
    background = np.asarray(background, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if errors.ndim < 2:
        raise ValueError(f"errors: expected shape (members, *grid), got {errors.shape}")
    if background.shape not in (errors.shape[1:], errors.shape):
        raise ValueError(
            f"background: shape {background.shape} matches neither the grid "
            f"{errors.shape[1:]} nor errors {errors.shape}"
        )
    return background + errors


@dataclass(frozen=True)
class SeededMembers:
    """Initial members drawn chunk by chunk: ``background + errors``, member ``k`` of field
    ``f`` from its own seed ``SeedSequence(seed, spawn_key=(k, f))``.

    An ``initial(start, stop)`` for :class:`pkf.EnsembleForecast`: any chunking draws the same
    members, and no process ever holds more than one chunk (on a Dask cluster the members are
    drawn by the workers).

    Parameters
    ----------
    background : mapping of str to numpy.ndarray
        Mean of each field, grid-shaped (model coordinate order).
    lengths : sequence of float
        Periodic domain length per axis.
    correlation : mapping of str to float or Correlation
        Error correlation per field (see :func:`sample_errors`).
    variance : mapping of str to float or numpy.ndarray
        Error variance per field, scalar or grid-shaped.
    seed : int
        Root seed.

    Examples
    --------
    >>> members = SeededMembers({"u": np.zeros(16)}, (1.0,), {"u": 0.1}, {"u": 1.0}, seed=3)
    >>> a, b = members(0, 4)["u"], members(2, 6)["u"]
    >>> bool(np.array_equal(a[2:], b[:2]))  # member 2 and 3 whatever the chunk
    True
    """

    background: Mapping[str, np.ndarray]
    lengths: Sequence[float]
    correlation: Mapping[str, float | Sequence[float] | Correlation]
    variance: Mapping[str, ArrayLike]
    seed: int

    def __call__(self, start: int, stop: int) -> dict[str, np.ndarray]:
        members = {}
        for index, (name, mean) in enumerate(self.background.items()):
            mean = np.asarray(mean, dtype=float)
            errors = [
                sample_errors(
                    mean.shape,
                    self.lengths,
                    1,
                    self.correlation[name],
                    self.variance[name],
                    seed=np.random.default_rng(
                        np.random.SeedSequence(int(self.seed), spawn_key=(k, index))
                    ),
                )[0]
                for k in range(start, stop)
            ]
            members[name] = mean + np.stack(errors)
        return members


#: Padding of a bounded (non-periodic) axis, in correlation scales: the periodic sample is
#: ``n + ceil(PADDING * scale / spacing)`` points long, so that the wrapped distance between
#: the two ends is at least 8 scales (correlation exp(-32)) and the Gaussian is cut at 4
#: scales or more (exp(-8): negligible negative eigenvalues).
PADDING_SCALES = 8.0


def _uniform_times(times: ArrayLike) -> tuple[np.ndarray, float]:
    values = real_array(times, "times")
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"times: expected at least 2 times in a 1D array, got {values.shape}")
    steps = np.diff(values)
    dt = float(steps.mean()) if steps.size else 0.0
    if (
        not np.isfinite(values).all()
        or not dt > 0
        or np.abs(steps - dt).max() > 1e-9 * max(abs(dt), np.abs(values).max())
    ):
        raise ValueError("times: expected finite, increasing, uniformly spaced times")
    return values, dt


def time_correlated_errors(
    times: ArrayLike,
    start: int,
    stop: int,
    variance: float,
    time_scale: float,
    seed: int,
    *,
    face_shape: Sequence[int] = (),
    face_spacing: Sequence[float] = (),
    face_periodic: Sequence[bool] | None = None,
    length_scale: float | None = None,
) -> np.ndarray:
    """Stationary Gaussian boundary errors in time for members ``start:stop``, chunk-free.

    Member ``k`` is drawn from its own generator ``SeedSequence(seed, spawn_key=(k,))`` (as
    :class:`SeededMembers`), so members ``start:stop`` are the same whatever the chunking.
    Each is a stationary Gaussian process with covariance
    ``variance * exp(-dt**2 / (2 time_scale**2)) * exp(-|dy|**2 / (2 length_scale**2))``,
    sampled by :func:`sample_errors` on a periodic grid: the time axis (and every bounded face
    axis) is padded by ``ceil(8 scale / spacing)`` points (``>= T + 6 tau`` as asked: the
    ends are never correlated through the wrap), then cropped.

    Parameters
    ----------
    times : array_like
        ``(n_times,)`` uniformly spaced, increasing times (time units), at least 2.
    start, stop : int
        The members ``start <= k < stop``.
    variance : float
        Error variance ``V_b >= 0`` (field units squared).
    time_scale : float
        Gaussian correlation time-scale ``tau > 0`` (time units).
    seed : int
        Root seed (use different seeds for different sides: the members' streams are
        ``spawn_key=(k,)`` of it).
    face_shape : sequence of int, default ()
        The face's grid shape (the model grid without the boundary's axis; ``()`` in 1D).
    face_spacing : sequence of float
        Grid spacing per face axis (length units), when ``length_scale`` is given.
    face_periodic : sequence of bool, optional
        Per face axis, whether it is periodic (sampled as is) or bounded (padded, like time);
        default all periodic.
    length_scale : float, optional
        Gaussian correlation length-scale along the face (length units). ``None``: the error
        is the same along the whole face (fully correlated), the only choice in 1D.

    Returns
    -------
    numpy.ndarray
        ``(n_times, stop - start, *face_shape)`` float64.

    Raises
    ------
    ValueError
        Naming the argument: non-uniform ``times``, ``start``/``stop`` out of order, a negative
        or non-finite ``variance``, a non-positive ``time_scale`` or ``length_scale``, a
        ``face_spacing`` / ``face_periodic`` that does not match ``face_shape``.

    Examples
    --------
    >>> e = time_correlated_errors(np.linspace(0, 1, 11), 0, 4, 2.0, 0.3, seed=1)
    >>> e.shape
    (11, 4)
    >>> bool(np.array_equal(time_correlated_errors(np.linspace(0, 1, 11), 2, 3, 2.0, 0.3, 1),
    ...                     e[:, 2:3]))
    True
    """
    values, dt = _uniform_times(times)
    start, stop = int(start), int(stop)
    if not 0 <= start <= stop:
        raise ValueError(f"start, stop: expected 0 <= start <= stop, got {start}, {stop}")
    variance = float(variance)
    if not (np.isfinite(variance) and variance >= 0):
        raise ValueError(f"variance: expected a finite value >= 0, got {variance!r}")
    time_scale = float(time_scale)
    if not (np.isfinite(time_scale) and time_scale > 0):
        raise ValueError(f"time_scale: expected a positive finite time, got {time_scale!r}")
    face = tuple(int(n) for n in face_shape)
    n_times = values.size
    shape, lengths, scales = [], [], []
    pad = int(np.ceil(PADDING_SCALES * time_scale / dt))
    shape.append(n_times + pad)
    lengths.append((n_times + pad) * dt)
    scales.append(time_scale)
    if length_scale is not None:
        length_scale = float(length_scale)
        if not (np.isfinite(length_scale) and length_scale > 0):
            raise ValueError(
                f"length_scale: expected a positive length or None, got {length_scale!r}"
            )
        if not face:
            raise ValueError("length_scale: a 1D model's boundary is a point; give None")
        spacing = tuple(float(h) for h in face_spacing)
        periodic = (True,) * len(face) if face_periodic is None else tuple(face_periodic)
        if len(spacing) != len(face) or len(periodic) != len(face):
            raise ValueError(
                f"face_spacing, face_periodic: expected one value per face axis {face}, got "
                f"{spacing}, {periodic}"
            )
        for n, h, is_periodic in zip(face, spacing, periodic, strict=True):
            extra = 0 if is_periodic else int(np.ceil(PADDING_SCALES * length_scale / h))
            shape.append(n + extra)
            lengths.append((n + extra) * h)
            scales.append(length_scale)
    correlation: float | tuple[float, ...] = scales[0] if len(scales) == 1 else tuple(scales)
    crop = tuple(slice(0, n) for n in (n_times, *(face if length_scale is not None else ())))
    out = np.empty((n_times, stop - start, *face))
    for column, k in enumerate(range(start, stop)):
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(k,)))
        sample = sample_errors(shape, lengths, 1, correlation, variance, seed=rng)[0][crop]
        if length_scale is None:
            sample = sample.reshape((n_times,) + (1,) * len(face))
        out[:, column] = sample
    return out


@dataclass(frozen=True)
class BoundaryErrors:
    """Perturbations of a Dirichlet side for an ensemble: ``mean + errors`` per member.

    The errors are :func:`time_correlated_errors`: stationary and Gaussian in time (variance
    ``variance``, correlation ``exp(-dt**2 / (2 time_scale**2))``), and along the face
    Gaussian with ``length_scale`` (2D and 3D models) or uniform (``None``). Member ``k``'s
    series comes from ``SeedSequence(seed, spawn_key=(k,))``: the same whatever the chunking.
    Give it to :meth:`pkf.EnsembleForecast.run` as
    ``boundary_errors={(field, coordinate, side): BoundaryErrors(...)}``.

    Parameters
    ----------
    mean : float or array_like
        The unperturbed boundary value: a number or an array over the face (field units).
    variance : float
        Error variance ``V_b >= 0`` (field units squared).
    time_scale : float
        Correlation time-scale ``tau > 0`` (time units).
    length_scale : float, optional
        Correlation length-scale along the face (length units); ``None``: uniform on the face.
    seed : int, default 0
        Root seed; give each perturbed side its own.

    Raises
    ------
    ValueError
        For a non-finite ``mean``, a negative ``variance``, a non-positive ``time_scale`` or
        ``length_scale``, or a seed that is not an integer.

    Examples
    --------
    >>> errors = BoundaryErrors(1.0, variance=0.5, time_scale=0.2, seed=3)
    >>> errors.values(np.linspace(0, 1, 6), 0, 2).shape  # (n_times, members)
    (6, 2)
    """

    mean: ArrayLike
    variance: float
    time_scale: float
    length_scale: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        mean = real_array(self.mean, "mean")
        if not np.isfinite(mean).all():
            raise ValueError("mean: the boundary value must be finite")
        object.__setattr__(self, "mean", mean)
        variance = float(real_array(self.variance, "variance"))
        if not (np.isfinite(variance) and variance >= 0):
            raise ValueError(f"variance: expected a finite value >= 0, got {self.variance!r}")
        object.__setattr__(self, "variance", variance)
        time_scale = float(real_array(self.time_scale, "time_scale"))
        if not (np.isfinite(time_scale) and time_scale > 0):
            raise ValueError(
                f"time_scale: expected a positive finite time, got {self.time_scale!r}"
            )
        object.__setattr__(self, "time_scale", time_scale)
        if self.length_scale is not None:
            length = float(real_array(self.length_scale, "length_scale"))
            if not (np.isfinite(length) and length > 0):
                raise ValueError(
                    f"length_scale: expected a positive length or None, got {self.length_scale!r}"
                )
            object.__setattr__(self, "length_scale", length)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ValueError(f"seed: expected an integer, got {self.seed!r}")

    def errors(
        self,
        times: ArrayLike,
        start: int,
        stop: int,
        face_shape: Sequence[int] = (),
        face_spacing: Sequence[float] = (),
        face_periodic: Sequence[bool] | None = None,
    ) -> np.ndarray:
        """The errors of members ``start:stop``, ``(n_times, stop - start, *face_shape)``."""
        return time_correlated_errors(
            times,
            start,
            stop,
            self.variance,
            self.time_scale,
            int(self.seed),
            face_shape=face_shape,
            face_spacing=face_spacing,
            face_periodic=face_periodic,
            length_scale=self.length_scale,
        )

    def values(
        self,
        times: ArrayLike,
        start: int,
        stop: int,
        face_shape: Sequence[int] = (),
        face_spacing: Sequence[float] = (),
        face_periodic: Sequence[bool] | None = None,
    ) -> np.ndarray:
        """The boundary values ``mean + errors`` of members ``start:stop``,
        ``(n_times, stop - start, *face_shape)`` (a ``BoundarySeries``' member-axis values).

        Raises
        ------
        ValueError
            If ``mean`` is an array whose shape is not ``face_shape``.
        """
        face = tuple(int(n) for n in face_shape)
        mean = np.asarray(self.mean)
        if mean.ndim and mean.shape != face:
            raise ValueError(
                f"mean: expected a number or an array over the face {face}, got shape {mean.shape}"
            )
        errors = self.errors(times, start, stop, face, face_spacing, face_periodic)
        return mean + errors


@dataclass(frozen=True)
class BoundaryConsistentMembers:
    """Initial 1D members whose values at perturbed ends equal their boundary values at t₀.

    Without it, the jump between a member's initial field and its own boundary value radiates
    grid-scale waves from the boundary (measured on ``advection-inflow``: the length-scale was
    15–22 % off the PKF's instead of 1.2 %). Member k's normalised initial error ε (drawn by
    ``members``) is conditioned, at each perturbed end, on ε(end) = e_b(t₀) / σ(end), with
    e_b(t₀) member k's boundary error at the first time: ε + ρ(d) (e_b(t₀) / σ(end) − ε(end)),
    ρ(d) = exp(−d² / (2 L²)) the initial correlation with that end at distance d (Matheron's
    rule: e_b(t₀) has the variance V(end) and is independent of ε, so the conditioned field
    keeps the prescribed covariance; the two ends are taken as uncorrelated,
    exp(−1 / (2 L²)) ≈ 0 in units of the domain length). Chunk-independent like ``members``.

    Parameters
    ----------
    members : callable
        ``members(start, stop)`` → ``{field: (stop − start, n)}``, e.g. :class:`SeededMembers`
        with a Gaussian correlation of length-scale ``length_scales[field]``.
    boundary_errors : mapping
        ``{(field, coordinate, "low" | "high"): BoundaryErrors}``, the mapping given to
        :meth:`pkf.EnsembleForecast.run`.
    times : array_like
        Forecast times; the members are conditioned at the first.
    x : numpy.ndarray
        ``(n,)`` grid points, both ends included (length units).
    background, variance : mapping of str to numpy.ndarray
        ``(n,)`` mean and error variance of each perturbed field (``members``' own).
    length_scales : mapping of str to float
        Gaussian correlation length-scale of each perturbed field's drawn errors (length).

    Raises
    ------
    ValueError
        A side other than ``"low"`` / ``"high"``, or a perturbed field without its
        background, variance or length-scale.

    Examples
    --------
    >>> x = np.linspace(0.0, 1.0, 51)
    >>> drawn = SeededMembers({"u": 0 * x}, (1.02,), {"u": 0.1}, {"u": 1 + 0 * x}, seed=1)
    >>> errors = {("u", "x", "low"): BoundaryErrors(0.0, variance=1.0, time_scale=0.1, seed=2)}
    >>> times = np.linspace(0.0, 1.0, 11)
    >>> initial = BoundaryConsistentMembers(
    ...     drawn, errors, times, x, {"u": 0 * x}, {"u": 1 + 0 * x}, {"u": 0.1}
    ... )
    >>> value = errors[("u", "x", "low")].values(times, 0, 3)[0]
    >>> bool(np.allclose(initial(0, 3)["u"][:, 0], value))
    True
    """

    members: Callable[[int, int], Mapping[str, np.ndarray]]
    boundary_errors: Mapping[tuple[str, str, str], BoundaryErrors]
    times: ArrayLike
    x: np.ndarray
    background: Mapping[str, np.ndarray]
    variance: Mapping[str, np.ndarray]
    length_scales: Mapping[str, float]

    def __post_init__(self) -> None:
        for field_name, coordinate, side in self.boundary_errors:
            if side not in ("low", "high"):
                raise ValueError(
                    f"boundary_errors: side {side!r} of {field_name}({coordinate}) is not "
                    "'low' or 'high'"
                )
            for name, mapping in (
                ("background", self.background),
                ("variance", self.variance),
                ("length_scales", self.length_scales),
            ):
                if field_name not in mapping:
                    raise ValueError(f"{name}: no entry for the perturbed field {field_name!r}")

    def __call__(self, start: int, stop: int) -> dict[str, np.ndarray]:
        drawn = dict(self.members(start, stop))
        x = np.asarray(self.x, dtype=float)
        for field_name in {key[0] for key in self.boundary_errors}:
            background = np.asarray(self.background[field_name], dtype=float)
            sigma = np.sqrt(np.asarray(self.variance[field_name], dtype=float))
            eps = (drawn[field_name] - background) / sigma
            conditioned = eps.copy()
            length = float(self.length_scales[field_name])
            for (name, _, side), errors in self.boundary_errors.items():
                if name != field_name:
                    continue
                end = 0 if side == "low" else -1
                value = errors.values(self.times, start, stop)[0] - np.asarray(errors.mean)
                rho = np.exp(-((x - x[end]) ** 2) / (2 * length**2))
                at_end = eps[:, end : end + 1 or None]
                conditioned += rho * (value[:, None] / sigma[end] - at_end)
            drawn[field_name] = background + sigma * conditioned
        return drawn
