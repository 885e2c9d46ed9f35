"""The case scaffold: settings as dataclasses with presets, generated flags, one output place.

A case is one module with ``DESCRIPTION`` (one line), a frozen ``Settings`` dataclass (its
fields are the case's command-line flags; ``quick()`` and ``paper()`` class methods are the
presets), ``run(settings, output) -> dict`` and, if its ensembles can run on Dask,
``SUPPORTS_CLUSTER = True`` (then ``--workers N`` / ``--scheduler ADDRESS`` exist and
``output.client`` is the cluster's client). :func:`run_case` validates everything before
creating any file, times the steps, and writes ``summary.json`` with the settings, the timings,
the files and what ``run`` returned. Results go through :class:`Output`: netCDF with xarray,
figures as PNG + PDF.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import types
import typing
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = [
    "Case",
    "Output",
    "add_output_flags",
    "add_settings_flags",
    "case_parser",
    "prepare_output_directory",
    "make_settings",
    "run_case",
    "settings_from_arguments",
]

PRESETS = ("quick", "paper")


class Case(Protocol):
    """What a case module provides (see the module docstring)."""

    DESCRIPTION: str
    Settings: type

    def run(self, settings: Any, output: Output) -> dict: ...


class Output:
    """Where a case writes: files, figures, timed steps and progress messages.

    Parameters
    ----------
    directory : path
        Created on first use (never before the settings are validated).
    quiet : bool
        No progress bars or messages.
    """

    def __init__(self, directory: str | Path, quiet: bool = False, client: Any = None) -> None:
        self.directory = Path(directory)
        self.quiet = quiet
        #: A ``distributed.Client`` for the ensembles of cases that run on Dask (or None).
        self.client = client
        self.files: list[Path] = []
        self.seconds: dict[str, float] = {}

    @property
    def progress(self) -> bool:
        """Whether long steps show progress bars."""
        return not self.quiet

    def say(self, message: str) -> None:
        """Print a progress message unless quiet."""
        if not self.quiet:
            print(message, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step (``seconds[name]`` in the summary)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def path(self, name: str) -> Path:
        """``directory / name``, creating the directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / name

    def write_dataset(self, dataset: xr.Dataset, name: str) -> Path:
        """Write an ``xarray.Dataset`` as netCDF-4 (compressed, ``_FillValue`` NaN on floats;
        string dimension coordinates as CF label variables, read back by
        :func:`generator.results.open_results`)."""
        from generator.results import cf_labels

        path = self.path(name)
        dataset = cf_labels(dataset)
        encoding: dict[Hashable, dict[str, Any]] = {
            var: {"zlib": True, "complevel": 4, "_FillValue": np.nan}
            for var, array in dataset.data_vars.items()
            if array.dtype.kind == "f"
        }
        for coord, array in dataset.coords.items():
            if array.dtype.kind == "f":
                encoding[coord] = {"_FillValue": None}
        dataset.to_netcdf(path, encoding=encoding)
        self.files.append(path)
        return path

    def write_figure(self, figure: Figure, stem: str) -> list[Path]:
        """Write a ``matplotlib.figure.Figure`` as ``stem.png`` (200 dpi) and ``stem.pdf``."""
        paths = [self.path(f"{stem}.png"), self.path(f"{stem}.pdf")]
        figure.savefig(paths[0], dpi=200)
        figure.savefig(paths[1])
        self.files.extend(paths)
        return paths

    def write_json(self, data: dict, name: str) -> Path:
        """Write ``data`` as indented JSON (numpy values converted)."""
        path = self.path(name)
        path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
        self.files.append(path)
        return path


def make_settings(case: Case, preset: str | None = None, **overrides: Any) -> Any:
    """A case's settings: its default, ``quick`` or ``paper`` preset, then ``overrides``.

    Raises
    ------
    ValueError
        For a preset the case lacks, an unknown setting, or a value its ``validate`` refuses.
    """
    settings_class = case.Settings
    if preset is None:
        settings = settings_class()
    elif preset in PRESETS and hasattr(settings_class, preset):
        settings = getattr(settings_class, preset)()
    else:
        available = [p for p in PRESETS if hasattr(settings_class, p)]
        raise ValueError(f"no --{preset} setting for this case; presets: {available or 'none'}")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    names = {f.name for f in dataclasses.fields(settings_class)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; settings are {sorted(names)}")
    settings = dataclasses.replace(settings, **overrides)
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate()
    return settings


def add_settings_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings_class: type
) -> None:
    """One ``--kebab-case`` flag per ``Settings`` field, typed, with the field's help text.

    ``int``, ``float``, ``str`` and ``Literal[...]`` fields take one value (``Literal`` as
    choices), ``bool`` fields are ``--flag / --no-flag``, ``tuple[int, ...]`` fields take as
    many values as their default has (or ``metadata["nargs"]``). Defaults are suppressed so
    that only the flags given override the preset; the parsed values are converted back to
    the field types (tuples stay tuples).
    """
    hints = typing.get_type_hints(settings_class)
    for field in dataclasses.fields(settings_class):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        options: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": field.name}
        help_text = field.metadata.get("help", "")
        default = field.default
        if default is not dataclasses.MISSING and default != "":
            help_text += f" (default {default})"
        options["help"] = help_text
        origin = typing.get_origin(kind)
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            options["choices"] = list(typing.get_args(kind))
            options["type"] = type(options["choices"][0])
        elif origin is tuple:
            item = typing.get_args(kind)[0]
            options["type"] = item
            options["nargs"] = field.metadata.get(
                "nargs", len(default) if isinstance(default, tuple) else "+"
            )
            options["metavar"] = field.name.upper()
        elif origin in (typing.Union, types.UnionType):
            options["type"] = next(a for a in typing.get_args(kind) if a is not type(None))
        else:
            options["type"] = kind
        parser.add_argument(flag, **options)


def add_output_flags(parser: argparse.ArgumentParser, default_out: str, cluster: bool) -> None:
    """``--out DIR``, ``--quiet`` and, with ``cluster``, ``--workers N | --scheduler ADDRESS``
    (the flags ``pkfnet run CASE`` and ``pkfnet study FILE`` share)."""
    parser.add_argument("--out", help=f"output directory (default {default_out})")
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars or messages (the results summary is still written to summary.json)",
    )
    if cluster:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--workers",
            type=int,
            help="run the ensembles on a local Dask cluster of N single-threaded worker processes",
        )
        group.add_argument(
            "--scheduler", help="run the ensembles on the Dask cluster at this scheduler address"
        )


def case_parser(name: str, case: Case) -> argparse.ArgumentParser:
    """The ``pkfnet run NAME`` parser: ``--out``, ``--quiet``, the case's presets and one flag
    per ``Settings`` field (a flag the case does not have is an error)."""
    parser = argparse.ArgumentParser(
        prog=f"pkfnet run {name}",
        description=case.DESCRIPTION,
        argument_default=argparse.SUPPRESS,
    )
    add_output_flags(parser, f"results/{name}", getattr(case, "SUPPORTS_CLUSTER", False))
    presets = [p for p in PRESETS if hasattr(case.Settings, p)]
    if presets:
        group = parser.add_mutually_exclusive_group()
        for preset in presets:
            doc = (getattr(case.Settings, preset).__doc__ or "").strip().splitlines()
            group.add_argument(
                f"--{preset}",
                dest="preset",
                action="store_const",
                const=preset,
                help=doc[0] if doc else f"the {preset} setting",
            )
    add_settings_flags(parser.add_argument_group("settings"), case.Settings)
    return parser


def settings_from_arguments(case: Case, arguments: argparse.Namespace) -> Any:
    """The settings a parsed ``pkfnet run`` command line asks for (validated)."""
    values = dict(vars(arguments))
    preset = values.pop("preset", None)
    for key in ("out", "quiet", "workers", "scheduler"):
        values.pop(key, None)
    return make_settings(case, preset, **values)


def prepare_output_directory(path: str | Path) -> Path:
    """Create the output directory (after the settings were validated) or explain why not.

    Raises
    ------
    ValueError
        Naming the path and the reason (a file in the way, no permission, read-only...).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create output directory {path}: {err.strerror or err}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"output directory {path} is not writable")
    return path


def run_case(name: str, case: Case, settings: Any, output: Output) -> dict:
    """Run a case and write ``summary.json``: settings, results, timings, files."""
    with output.step("total"):
        results = case.run(settings, output)
    summary = {
        "case": name,
        "settings": _plain(dataclasses.asdict(settings)),
        **_plain(results),
        "seconds": output.seconds,
        "files": [str(p) for p in output.files],
    }
    path = output.path("summary.json")
    path.write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    output.say(f"wrote {path} and {len(output.files)} other files in {output.directory}")
    return summary


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
