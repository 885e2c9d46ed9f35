"""Time the symbolic PKF derivation of the reference systems, each in a fresh process.

Times exclude the python + sympy + pkf import (measured separately) and are compared with
the targets of issue 4 (Burgers 0.3 s, 2D advection 1 s, 2D two-field oscillator 3 s); the
SymPKF 1.0.6 times quoted in pkf-notes.md (0.85 s, 2.4 s, 9 s) are printed for reference.

Usage: python scripts/bench/derive.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "burgers_1d_all_forms": (0.3, 0.85),
    "advection_2d_aspect": (1.0, 2.4),
    "oscillator_2d_aspect": (3.0, 9.0),
}

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import sympy as sp
from pkf.derivation import SymbolicPKF
t1 = time.perf_counter()
case = sys.argv[1]
t, x, y, kappa = sp.symbols("t x y kappa")
if case == "burgers_1d_all_forms":
    u = sp.Function("u")(t, x)
    pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    pkf.in_metric, pkf.in_aspect, pkf.in_diffusion, pkf.unclosed_terms
elif case == "advection_2d_aspect":
    c = sp.Function("c")(t, x, y)
    U, W = sp.Function("U")(x, y), sp.Function("W")(x, y)
    pkf = SymbolicPKF(sp.Eq(c.diff(t), -U * c.diff(x) - W * c.diff(y)))
    pkf.in_aspect
else:
    u, v = sp.Function("u")(t, x, y), sp.Function("v")(t, x, y)
    pkf = SymbolicPKF([sp.Eq(u.diff(t), v), sp.Eq(v.diff(t), -u)])
    pkf.in_aspect
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "derive_s": t2 - t1}))
"""


def run_case(case: str) -> dict[str, float]:
    """Run one derivation in a fresh interpreter and return its timings (seconds)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, case],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per case")
    repeat = parser.parse_args().repeat
    print(
        f"{'case':24s} {'derive (s)':>11s} {'target':>7s} {'ratio':>6s} {'SymPKF':>7s} import (s)"
    )
    for case, (target, sympkf) in CASES.items():
        runs = [run_case(case) for _ in range(repeat)]
        best = min(r["derive_s"] for r in runs)
        imports = min(r["import_s"] for r in runs)
        ratio = best / target
        print(f"{case:24s} {best:11.3f} {target:7.2f} {ratio:6.2f} {sympkf:7.2f} {imports:.2f}")


if __name__ == "__main__":
    main()
