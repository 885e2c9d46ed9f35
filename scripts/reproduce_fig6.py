"""Reproduce Figure 6 of the PDE-NetGen paper: Burgers ensemble vs PKF with learned closure.

Mean u/Umax, variance V/V0 and length-scale L/lh at t = 0, 0.2, ..., 1 (six panels: the
ensemble on top, the learned-closure PKF below), plus the relative L2 errors. The same as
``pkfnet run burgers``.

    python scripts/reproduce_fig6.py [--quick | --paper] [--out results/fig6] [--seed 0]

--quick takes about half a minute, the default a few minutes, --paper (400 x 400 training
ensembles, 10 training runs, 6400 reference members) considerably longer.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cases import burgers  # noqa: E402
from cases.study import Output, make_settings, run_case  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true")
    scale.add_argument("--paper", action="store_true")
    parser.add_argument("--out", default="results/fig6")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    preset = "quick" if args.quick else "paper" if args.paper else None
    settings = make_settings(burgers, preset, seed=args.seed)
    summary = run_case("burgers", burgers, settings, Output(args.out, quiet=True))
    learned = summary["learned"]["mean"]
    print("learned closure (a, b, c) = ({a:.3f}, {b:.3f}, {c:.3f})".format(**learned))
    for label, errors in summary["relative_l2_vs_ensemble"].items():
        print(f"{label:8s} closure, relative L2 vs ensemble at t = 0, 0.2, ..., 1:")
        for field in ("V_u", "L_u_x"):
            print(f"  {field}: " + ", ".join(f"{e:.1%}" for e in errors[field]))
    for path in summary["files"]:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
