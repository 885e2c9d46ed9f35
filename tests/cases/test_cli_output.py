"""``pkfnet`` writing its output where it cannot: broken pipe, ASCII terminal, closed standard
output, full device; each in a real subprocess, as a user's shell would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from cases.cli import EXIT_BROKEN_PIPE
from cases.parsing import parse_equations
from pkf import SymbolicPKF

ADVECTION = "Eq(Derivative(c(t,x),t), -U(x)*Derivative(c(t,x),x))"
GREEK = "Eq(Derivative(α(t,x),t), -U(x)*Derivative(α(t,x),x))"
#: Prints about 180 kB: more than a pipe (64 kB) and a reader's buffer (8 kB) hold.
LONG = "Eq(Derivative(u(t,x),t), k*Derivative(u(t,x),(x,8)))"


def _pkfnet_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cases.cli", *args]


def _environment(**overrides: str) -> dict[str, str]:
    """This process's environment with a fixed width and no inherited output encoding."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONIOENCODING")}
    return {**env, "COLUMNS": "100", **overrides}


def test_broken_pipe_exits_quietly_with_status_141():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before pkfnet writes anything
    try:
        result = subprocess.run(
            _pkfnet_command("derive", ADVECTION),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.returncode == EXIT_BROKEN_PIPE == 141
    assert result.stderr == ""


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_reader_leaving_after_the_first_line_like_head_1(unbuffered):
    environment = _environment()
    environment.pop("PYTHONUNBUFFERED", None)
    if unbuffered:  # python -u: a short write must not be dropped silently
        environment["PYTHONUNBUFFERED"] = unbuffered
    process = subprocess.Popen(
        _pkfnet_command("derive", LONG),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    first = process.stdout.readline()
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert first.startswith(b"PKF dynamics")
    assert process.returncode == EXIT_BROKEN_PIPE
    assert stderr == b""


def _expected_ascii(text: str) -> str:
    """pkfnet's rendering, computed here with sympy: ASCII art, escaped names."""
    pkf = SymbolicPKF(parse_equations(text))
    first = pkf.in_diffusion[0]
    drawing = sp.pretty(first, use_unicode=False, num_columns=100)
    return drawing.encode("ascii", "backslashreplace").decode("ascii")


@pytest.mark.parametrize(
    "environment",
    [
        {"PYTHONIOENCODING": "ascii"},
        {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"},
    ],
)
def test_ascii_terminal_gets_ascii_art_and_escaped_names(environment):
    result = subprocess.run(
        _pkfnet_command("derive", GREEK),
        capture_output=True,
        env=_environment(**environment),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    text = result.stdout.decode("ascii")  # raises if anything is not ASCII
    assert _expected_ascii(GREEK) in text
    assert "\\u03b1" in text  # α, escaped


def test_utf8_terminal_keeps_unicode_names():
    result = subprocess.run(
        _pkfnet_command("derive", GREEK),
        capture_output=True,
        env=_environment(PYTHONIOENCODING="utf-8"),
        timeout=60,
    )
    assert result.returncode == 0
    assert "α" in result.stdout.decode("utf-8")


def test_closed_standard_output_is_one_line_and_status_1():
    result = subprocess.run(
        ["sh", "-c", 'exec "$0" -m cases.cli derive "$1" >&-', sys.executable, ADVECTION],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["pkfnet: error: cannot write the output: standard output is closed"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["derive", "generate"])
def test_full_device_is_one_line_and_status_1(command, tmp_path):
    extra = ["-o", str(tmp_path / "model.py")] if command == "generate" else []
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            _pkfnet_command(command, ADVECTION, *extra),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
            timeout=60,
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"pkfnet: error: cannot write the output: {os.strerror(28)}"]
