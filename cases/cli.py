"""The ``pkfnet`` command line: run case studies, list them, generate model modules, derive
PKF dynamics."""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys
from pathlib import Path

from . import CASES, load_case

__all__ = ["main", "build_parser"]


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pkfnet",
        description="Physics-informed uncertainty prediction: PKF dynamics, generated Keras "
        "models and ensembles.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a case study (see 'pkfnet list')")
    run.add_argument("case", help="case name")
    run.add_argument("--out", help="output directory (default results/CASE)")
    run.add_argument("--quick", action="store_true", help="small, fast setting")
    run.add_argument("--paper", action="store_true", help="the published full scale (slow)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    run.add_argument("--accuracy", type=int, default=2, help="stencil accuracy order (2, 4, 6)")
    run.add_argument("--members", type=int, help="ensemble size, for cases with an ensemble")
    run.add_argument("--quiet", action="store_true", help="no progress output")

    sub.add_parser("list", help="list the case studies")

    generate = sub.add_parser("generate", help="write the generated model module of a system")
    generate.add_argument("file", help="Python file defining `equations` (a sympy Eq or a list)")
    generate.add_argument("--class-name", default="NNModel", help="generated class name")
    generate.add_argument("--accuracy", type=int, default=2)
    generate.add_argument("-o", "--output", required=True, help="module file to write")

    derive = sub.add_parser("derive", help="print the PKF dynamics of a system")
    derive.add_argument(
        "equations",
        help='equation text, e.g. "Eq(Derivative(u(t,x),t), -u(t,x)*Derivative(u(t,x),x))" '
        "(several separated by ';'), or a Python file defining `equations`",
    )
    derive.add_argument(
        "--form",
        choices=("metric", "aspect", "diffusion"),
        default="diffusion",
        help="tensor parametrising the correlations (default diffusion)",
    )
    derive.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    return parser


def _run_case(args: argparse.Namespace) -> int:
    if args.case not in CASES:
        raise UserError(f"unknown case '{args.case}'; available: {', '.join(CASES)}")
    if args.accuracy < 2 or args.accuracy % 2:
        raise UserError(f"--accuracy must be an even integer >= 2, got {args.accuracy}")
    if args.members is not None and args.members < 2:
        raise UserError(f"--members must be at least 2, got {args.members}")
    out = Path(args.out or Path("results") / args.case)
    _check_writable(out)
    if args.quick and args.paper:
        raise UserError("--quick and --paper are mutually exclusive")
    options = {
        "quick": args.quick,
        "paper": args.paper,
        "seed": args.seed,
        "dtype": args.dtype,
        "accuracy": args.accuracy,
        "quiet": args.quiet,
    }
    if args.members is not None:
        options["members"] = args.members
    load_case(args.case).run(out, **options)
    return 0


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output directory {out}: {err.strerror}") from None
    if not os.access(out, os.W_OK):
        raise UserError(f"output directory {out} is not writable")


def _generate(args: argparse.Namespace) -> int:
    from generator import NNModelBuilder

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    namespace = runpy.run_path(str(path))
    if "equations" not in namespace:
        raise UserError(f"{path} does not define `equations`")
    try:
        builder = NNModelBuilder(namespace["equations"], args.class_name, args.accuracy)
        target = builder.write_module(args.output)
    except ValueError as err:
        raise UserError(str(err)) from None
    except OSError as err:
        raise UserError(f"cannot write {args.output}: {err.strerror}") from None
    print(f"wrote {target}")
    return 0


def _derive_equations(source: str) -> list:
    """Equations from a Python file (trusted, run as code) or from untrusted equation text."""
    from .parsing import parse_equations

    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise UserError(f"no such file: {path}")
        namespace = runpy.run_path(str(path))
        if "equations" not in namespace:
            raise UserError(f"{path} does not define `equations`")
        return namespace["equations"]
    try:
        return parse_equations(source)
    except ValueError as err:
        raise UserError(f"bad equation string: {err}") from None


def _derive(args: argparse.Namespace) -> int:
    import sympy

    from pkf import SymbolicPKF

    equations = _derive_equations(args.equations)
    try:
        pkf = SymbolicPKF(equations)
        system = getattr(pkf, f"in_{args.form}")
        unclosed = pkf.unclosed_terms
    except ValueError as err:
        raise UserError(f"cannot derive the PKF dynamics: {err}") from None
    if args.latex:
        render = sympy.latex
    else:
        unicode = (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"
        columns = shutil.get_terminal_size((100, 24)).columns

        def render(expr) -> str:
            return sympy.pretty(expr, use_unicode=unicode, num_columns=columns)

    print(f"PKF dynamics ({args.form} form), {len(system)} equations:\n")
    for equation in system:
        print(render(equation), end="\n\n")
    if unclosed:
        print(f"Unclosed terms ({len(unclosed)}):\n")
        for term in unclosed:
            print(render(term), end="\n\n")
    else:
        print("Unclosed terms: none (the PKF system is closed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pkfnet`` console command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ INFO logs quiet
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            width = max(len(n) for n in CASES)
            for name, (_, description) in CASES.items():
                print(f"{name:<{width}}  {description}")
            return 0
        if args.command == "run":
            return _run_case(args)
        if args.command == "generate":
            return _generate(args)
        if args.command == "derive":
            return _derive(args)
    except UserError as err:
        print(f"pkfnet: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pkfnet: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
