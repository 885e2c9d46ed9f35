"""Reproduce Figure 4 of the PDE-NetGen paper: 2D heterogeneous diffusion of a Dirac.

Panels (a) initial Dirac, (b) numpy finite-difference reference, (c) generated network at
t = 1 (t = 0.25 with --quick), and their L2 distance (the paper quotes about 1e-5; it
computed in float32, we report float64 and, with --dtype float32, float32). The same as
``pkfnet run diffusion2d``.

    python scripts/reproduce_fig4.py [--quick] [--out results/fig4] [--dtype float32]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cases import diffusion2d  # noqa: E402
from cases.study import Output, make_settings, run_case  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="integrate to t = 0.25 only")
    parser.add_argument("--out", default="results/fig4")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args()
    settings = make_settings(diffusion2d, "quick" if args.quick else None, dtype=args.dtype)
    summary = run_case("diffusion2d", diffusion2d, settings, Output(args.out, quiet=True))
    print(
        f"Figure 4: t = {summary['final_time']:.3g}, L2 distance network vs numpy = "
        f"{summary['l2_distance']:.3e} (relative {summary['relative_l2_distance']:.3e}, "
        f"{args.dtype})"
    )
    for path in summary["files"]:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
