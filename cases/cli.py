"""The ``pkfnet`` command line: run case studies, list them, generate model modules, derive
PKF dynamics.

``generate`` and ``derive`` take equations as text (parsed by :mod:`cases.parsing`, never
executed, within its size limits) or from a trusted Python file given with ``--file`` (executed).
Exit statuses: see :func:`main`.
"""

from __future__ import annotations

import argparse
import io
import os
import runpy
import select
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from generator.conventions import package_version
from generator.integrate import enable_compilation_cache

from . import CASES, load_case
from .derive_output import DERIVE_CLOSURES, DERIVE_FORMATS, NO_LIMITS
from .study import add_output_flags

if TYPE_CHECKING:
    from pkf.forms import PKFForm

__all__ = ["main", "build_parser"]


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit status 2."""


class OutputError(Exception):
    """Standard output cannot be written (closed, full device, ...): one line, exit status 1."""


#: Exit status after a broken pipe: 128 + SIGPIPE, what shells report for a program killed by
#: SIGPIPE (``yes | head``), so that pipelines treat pkfnet like any other Unix tool.
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pkfnet",
        description="Physics-informed uncertainty prediction and data assimilation: PKF "
        "dynamics, generated Keras models, ensembles, assimilation cycles and your own studies "
        "(pkfnet study FILE.toml).",
    )
    parser.add_argument("--version", action="version", version=f"pkfnet {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run a case study (see 'pkfnet list'; 'pkfnet run CASE --help' for its flags)",
        add_help=False,
    )
    run.add_argument("case", nargs="?", help="case name")
    run.add_argument("options", nargs=argparse.REMAINDER, help="the case's flags")

    sub.add_parser("list", help="list the case studies")

    study = sub.add_parser(
        "study",
        help="run your own case study described in a TOML file (see docs/studies/)",
        description="Derive, close and generate the PKF of the dynamics of a study file, run it "
        "against a reference ensemble and write netCDF, figures and summary.json.",
    )
    study.add_argument("file", metavar="FILE.toml", help="the study file")
    study.add_argument("--quick", action="store_true", help="apply the file's [quick] settings")
    add_output_flags(study, "results/<file stem>", cluster=True)

    generate = sub.add_parser(
        "generate",
        help="write the generated model module of a system",
        description="Write the Keras model module generated from a system of equations.",
        epilog=_GENERATE_EPILOG,
        formatter_class=_LimitsHelpFormatter,
    )
    _add_equation_source(generate)
    generate.add_argument("--class-name", default="NNModel", help="generated class name")
    generate.add_argument(
        "--accuracy", type=int, default=2, help="stencil accuracy order (2, 4, 6, ...; default 2)"
    )
    generate.add_argument("-o", "--output", required=True, help="module file to write")

    derive = sub.add_parser(
        "derive",
        help="print the PKF dynamics of a system",
        description="Print the parametric Kalman filter dynamics of a system of equations and "
        "its unclosed terms.",
        epilog=_DERIVE_EPILOG,
        formatter_class=_LimitsHelpFormatter,
    )
    _add_equation_source(derive)
    derive.add_argument(
        "--form",
        choices=("metric", "aspect", "diffusion"),
        default="diffusion",
        help="tensor parametrising the correlations (default diffusion)",
    )
    derive.add_argument(
        "--format",
        choices=DERIVE_FORMATS,
        default=None,
        help="output: text (default), latex, srepr or json (see below)",
    )
    derive.add_argument("--latex", action="store_true", help="the same as --format latex")
    derive.add_argument(
        "--closure",
        choices=DERIVE_CLOSURES,
        metavar="NAME",
        help=f"print the system closed with a named closure: {', '.join(DERIVE_CLOSURES)}",
    )
    return parser


def _run_case(args: argparse.Namespace) -> int:
    """``pkfnet run CASE [flags]``: the case's flags come from its ``Settings`` dataclass."""
    from .study import (
        Output,
        case_parser,
        prepare_output_directory,
        run_case,
        settings_from_arguments,
    )

    if args.case in (None, "-h", "--help"):
        print("usage: pkfnet run CASE [--quick | --paper] [--out DIR] [--quiet] [settings]\n")
        _list_cases()
        print("\n'pkfnet run CASE --help' lists the settings of a case.")
        return 0
    if args.case not in CASES:
        raise UserError(f"unknown case '{args.case}'; available: {', '.join(CASES)}")
    case = load_case(args.case)
    try:  # argparse reports a bad or unknown flag itself (usage + one error line)
        arguments = case_parser(args.case, case).parse_args(args.options)
    except SystemExit as exit:
        return int(exit.code or 0)
    try:
        settings = settings_from_arguments(case, arguments)
        out = getattr(arguments, "out", None) or Path("results") / args.case
        out = prepare_output_directory(out)
    except ValueError as err:
        raise UserError(str(err)) from None
    quiet = getattr(arguments, "quiet", False)
    with _cluster(
        getattr(arguments, "workers", None), getattr(arguments, "scheduler", None)
    ) as client:
        if client is not None:
            print(f"pkfnet: Dask dashboard at {client.dashboard_link}", file=sys.stderr)
        run_case(args.case, case, settings, Output(out, quiet=quiet, client=client))
    return 0


def _study(args: argparse.Namespace) -> int:
    """``pkfnet study FILE.toml``: everything is validated before the output directory exists."""
    from generator import NonFiniteStateError

    from .study import Output, prepare_output_directory
    from .study_file import load_study
    from .user_study import prepare, run

    try:
        study = prepare(load_study(args.file), quick=args.quick)
        out = prepare_output_directory(args.out or Path("results") / study.name)
    except ValueError as err:
        raise UserError(str(err)) from None
    with _cluster(args.workers, args.scheduler) as client:
        if client is not None:
            print(f"pkfnet: Dask dashboard at {client.dashboard_link}", file=sys.stderr)
        try:
            run(study, Output(out, quiet=args.quiet, client=client))
        except NonFiniteStateError as err:
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # nothing was written: leave nothing behind
            raise UserError(f"{args.file}: {err}") from None
    return 0


@contextmanager
def _cluster(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """The Dask client of ``--workers N`` (a local cluster, closed afterwards) or
    ``--scheduler ADDRESS``; None without either."""
    if workers is None and scheduler is None:
        yield None
        return
    try:
        from pkf.cluster import connect, local_cluster

        if workers is not None:
            if workers < 1:
                raise UserError(f"--workers: expected a positive number, got {workers}")
            client = local_cluster(workers)
        else:
            client = connect(scheduler)
    except (ImportError, ConnectionError) as err:
        raise UserError(str(err)) from None
    try:
        yield client
    finally:
        cluster = client.cluster if workers is not None else None
        client.close()
        if cluster is not None:
            cluster.close()


def _list_cases() -> None:
    width = max(len(n) for n in CASES)
    for name in CASES:
        print(f"{name:<{width}}  {load_case(name).DESCRIPTION}")


_SOURCES_HELP = """\
The equations come either as text (the positional argument; parsed with a whitelist,
never executed) or from a trusted Python file given with --file FILE, which is run as
Python code (only use files you would run yourself) and must define `equations` (a sympy
Eq or a list of them).

exit status: 0 success, 1 output error (closed standard output, full device), 2 error in
the command line or the equations, 130 interrupted, 141 reader of the output went away
(broken pipe; the remaining output is discarded, as for a program killed by SIGPIPE)."""

#: Stand for the limits in the generate and derive help, filled in only when the help is shown
#: (the limits live in cases.parsing, which imports sympy: ``pkfnet --help`` stays fast).
_GENERATE_EPILOG = "<generate limits>"
_DERIVE_EPILOG = "<derive limits>"


class _LimitsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help formatter that fills in the limits of cases.parsing."""

    def add_text(self, text: str | None) -> None:
        if text == _GENERATE_EPILOG:
            text = f"{_text_limits()}\n\n{_SOURCES_HELP}"
        elif text == _DERIVE_EPILOG:
            text = _derive_epilog()
        super().add_text(text)


def _text_limits() -> str:
    from . import parsing

    return f"""\
limits on equation text (a --file is trusted and not limited):
  at most {parsing.MAX_LENGTH} characters, {parsing.MAX_EQUATIONS} equations, nesting depth \
{parsing.MAX_NESTING}, exponents up to {parsing.MAX_EXPONENT}
  derivative order at most {parsing.MAX_DERIVATIVE_ORDER}, counting derivatives inside \
derivatives
  at most {parsing.MAX_TERMS} terms per equation once derivatives are evaluated and products
    expanded"""


def _derive_epilog() -> str:
    from . import parsing

    def orders(form: PKFForm) -> str:
        limits = parsing.MAX_TERM_ORDER[form]
        return ", ".join(f"{n}D {one}/{several}" for n, (one, several) in enumerate(limits, 1))

    def sizes(form: PKFForm) -> str:
        return ", ".join(f"{n}D {k}" for n, k in enumerate(parsing.MAX_DERIVED_SIZE[form], 1))

    return f"""\
examples:
  pkfnet derive "Eq(Derivative(u(t,x),t), -u(t,x)*Derivative(u(t,x),x))"
  pkfnet derive "Eq(Derivative(c(t,x,y),t), -U(x,y)*Derivative(c(t,x,y),x))" --form aspect
  pkfnet derive --file burgers.py --format latex
  pkfnet derive "Eq(Derivative(u(t,x),t), kappa*Derivative(u(t,x),x,2))" --closure P18

output (--format; --latex is --format latex):
  text   pretty-printed equations and unclosed terms (the default)
  latex  the same in LaTeX
  srepr  sympy srepr, one expression per paragraph; headings on lines starting with '#'
  json   one document: {{"pkfnet_version", "form", "closure" (null without --closure),
         "equations": [{{"field", "lhs_latex", "lhs_srepr", "rhs_latex", "rhs_srepr"}}],
         "unclosed_terms": [{{"slot", "latex", "srepr"}}],
         "closed_terms": [{{"slot", "latex", "srepr", "closure_latex", "closure_srepr"}}]}}
  "slot" names the function closure_...(t, x, ...) standing for a term in generated models.
  srepr text evaluates (in Python, for text you trust) to the same expression with sympy's
  names plus Expectation (pkf.expectation.Expectation, the E[.] of the unclosed terms); the
  normalised errors are written Function('eps_u', random=True).

closures (--closure NAME: the closed system is printed; a closure that does not apply to a
term is an error):
  none, zero      every unclosed term set to 0
  quasi-gaussian  locally Gaussian correlations (the terms E[eps_f d^a eps_f] of one field)
  P18             Pannekoucke, Bocquet & Menard 2018 (Burgers): E[eps_f d_x^4 eps_f] of 1D
                  systems, d_x^2 nu/nu^2 + 3/(4 nu^2) - 2 (d_x nu)^2/nu^3
  quasi-gaussian on equation text (its expansion grows fast): 1D any term; 2D terms of
  order 4 in the aspect and diffusion forms; 3D none (use a trusted --file)

Several equations are separated by ';'. The fields are taken in sorted order of their names,
so the output does not depend on the order of the equations.

{_text_limits()}
  PKF fields (equations): at most {parsing.MAX_FIELDS}; spatial coordinates: 1 to \
{parsing.MAX_DIMENSION}
  field factors per term (fields and their derivatives, powers counted): at most \
{parsing.MAX_FACTORS};
    a function of fields (exp(u), 1/u, sqrt(u), ...) counts as the square of its argument
  derivative order of a term (summed over its field factors), one field / several fields:
    metric: {orders("metric")}
    aspect: {orders("aspect")}
    diffusion: {orders("diffusion")}
  size of the derived dynamics in the metric form (nodes of the expression trees: every
  symbol, number, function, derivative and operation counts 1), by the form printed:
    metric: {sizes("metric")}
    aspect: {sizes("aspect")}
    diffusion: {sizes("diffusion")}
  output: at most {parsing.MAX_OUTPUT} characters

{_SOURCES_HELP}"""


def _add_equation_source(parser: argparse.ArgumentParser) -> None:
    """The equations: text as the positional argument, or ``--file FILE`` (trusted code)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "equations",
        nargs="?",
        help='equation text, e.g. "Eq(Derivative(u(t,x),t), -u(t,x)*Derivative(u(t,x),x))" '
        "(several separated by ';'); never executed, whatever it looks like",
    )
    source.add_argument(
        "--file",
        metavar="FILE",
        help="trusted Python file defining `equations`; EXECUTES the file's code",
    )


def _load_equations(args: argparse.Namespace) -> object:
    """Equations from the trusted ``--file`` (run as code) or from untrusted equation text."""
    if args.file is not None:
        return _equations_from_file(Path(args.file))
    from .parsing import LimitError, parse_equations

    try:
        return parse_equations(_argument_text(args.equations))
    except LimitError as err:
        raise UserError(f"equation text too large: {err}{_NO_LIMITS}") from None
    except ValueError as err:
        raise UserError(f"bad equation string: {err}") from None


def _argument_text(text: str) -> str:
    """A command-line argument as typed: bytes the locale could not decode (e.g. a UTF-8
    name under ``LANG=C``, which Python keeps as surrogate escapes) are decoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return os.fsencode(text).decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(
                "the equation text is neither in the terminal's encoding nor in UTF-8; "
                "write it in UTF-8"
            ) from None
    return text


def _equations_from_file(path: Path) -> object:
    if not path.is_file():
        raise UserError(f"--file {path}: no such file")
    try:
        namespace = runpy.run_path(str(path))
    except SyntaxError as err:
        raise UserError(f"--file {path}: line {err.lineno}: invalid syntax: {err.msg}") from None
    except Exception as err:  # the file is the user's own code: report it in one line
        message = (str(err).strip().splitlines() or [""])[0]
        raise UserError(
            f"--file {path}: running it raised {type(err).__name__}: {message}; fix the file"
        ) from None
    if "equations" not in namespace:
        raise UserError(
            f"--file {path} does not define `equations`; assign a sympy Eq or a list of them"
        )
    return namespace["equations"]


def _generate(args: argparse.Namespace) -> int:
    from generator import NNModelBuilder

    if args.accuracy < 2 or args.accuracy % 2:
        raise UserError(f"--accuracy must be an even integer >= 2, got {args.accuracy}")
    equations = _load_equations(args)
    try:
        builder = NNModelBuilder(equations, args.class_name, args.accuracy)
        target = builder.write_module(args.output)
    except ValueError as err:
        raise UserError(str(err)) from None
    except OSError as err:
        raise UserError(f"cannot write {args.output}: {err.strerror}") from None
    _write(f"wrote {target}\n")
    return 0


def _derive(args: argparse.Namespace) -> int:
    from pkf import SymbolicPKF

    from .derive_output import (
        Derivation,
        DeriveError,
        close_named,
        derivation_json,
        derivation_srepr,
        derivation_text,
    )
    from .parsing import (
        LimitError,
        check_derivation_limits,
        check_derived_size,
        check_output_size,
    )

    output_format = _derive_format(args)
    render = _renderer(output_format == "latex")  # fails early when standard output is closed
    equations = _load_equations(args)
    try:
        pkf = SymbolicPKF(equations)  # validates the system; derives nothing yet
        if args.file is None:  # equation text: parse_equations gave a list
            check_derivation_limits(cast(list, equations), args.form)
            check_derived_size(pkf, args.form)
        unclosed = pkf.unclosed_terms
        slots = pkf.closure_slots
        closed = close_named(pkf, args.closure, args.form, text=args.file is None)
        system = pkf.to_generator(args.form) if closed else getattr(pkf, f"in_{args.form}")
    except DeriveError as err:
        raise UserError(str(err)) from None
    except LimitError as err:
        raise UserError(f"cannot derive the PKF dynamics: {err}{_NO_LIMITS}") from None
    except ValueError as err:
        raise UserError(f"cannot derive the PKF dynamics: {err}") from None
    derivation = Derivation(args.form, args.closure, system, unclosed, slots, closed)
    if output_format == "json":
        text = derivation_json(derivation)
    elif output_format == "srepr":
        text = derivation_srepr(derivation)
    else:
        text = derivation_text(derivation, render)
    if args.file is None:
        try:
            check_output_size(text)
        except LimitError as err:
            raise UserError(f"cannot print the PKF dynamics: {err}{_NO_LIMITS}") from None
    _write(text)
    return 0


def _derive_format(args: argparse.Namespace) -> str:
    """``--format``, with ``--latex`` as another spelling of ``--format latex``."""
    if args.latex and args.format not in (None, "latex"):
        raise UserError(f"--latex means --format latex; give --format {args.format} alone")
    return "latex" if args.latex else args.format or "text"


_NO_LIMITS = NO_LIMITS


def _renderer(latex: bool) -> Callable[[object], str]:
    """sympy -> text for standard output: LaTeX, or pretty text in Unicode where the output
    encoding has the box-drawing characters, ASCII art otherwise (characters the encoding
    still lacks, e.g. a Greek field name on an ASCII terminal, are escaped by :func:`_write`)."""
    import sympy

    if latex:
        return sympy.latex
    unicode = _encodable("\u2202\u239b\u2500\u22c5", _output_encoding())
    columns = shutil.get_terminal_size((100, 24)).columns

    def render(expr: object) -> str:
        return sympy.pretty(expr, use_unicode=unicode, num_columns=columns)

    return render


def _output_encoding() -> str:
    if sys.stdout is None:
        raise OutputError("standard output is closed")
    return getattr(sys.stdout, "encoding", None) or "utf-8"


def _encodable(sample: str, encoding: str) -> bool:
    try:
        sample.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _write(text: str) -> None:
    """Write ``text`` to standard output, characters its encoding lacks as backslash escapes;
    write errors other than a broken pipe become :class:`OutputError`."""
    stream = sys.stdout
    if stream is None:
        raise OutputError("standard output is closed")
    encoding, errors = _output_encoding(), getattr(stream, "errors", None) or "strict"
    if errors in ("strict", "surrogateescape"):  # what the encoding lacks: backslash escapes
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    try:
        raw = getattr(stream, "buffer", None)
        if isinstance(raw, io.RawIOBase):
            # Unbuffered output (python -u, PYTHONUNBUFFERED): the text layer would silently
            # drop what a short write leaves, so write the bytes until all are taken.
            stream.flush()
            data = memoryview(text.encode(encoding, errors))
            while data:
                written = raw.write(data)
                if written is None:  # non-blocking output, full for now
                    select.select([], [raw], [])
                    continue
                data = data[written:]
        else:
            stream.write(text)
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as err:  # ValueError: writing to a closed file object
        raise OutputError(_describe(err)) from None


def _flush_stdout() -> None:
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as err:
        raise OutputError(_describe(err)) from None


def _describe(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


def _discard_stdout() -> None:
    """Point standard output at the null device so that the interpreter's final flush of what
    is still buffered cannot fail again (the Python docs' "Note on SIGPIPE")."""
    if sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        sys.stdout = None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pkfnet`` console command.

    Returns the exit status: 0 success, 1 output error (standard output closed, device full),
    2 error in the command line or its inputs (one line on standard error), 130 interrupted,
    :data:`EXIT_BROKEN_PIPE` (141) when the reader of the output went away (``pkfnet derive
    ... | head``): like any Unix tool, nothing more is written and no message is printed.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ INFO logs quiet
    if os.environ.get("PKFNET_CACHE_DIR"):
        enable_compilation_cache()  # opt-in: compiled loops are reused by the next pkfnet run
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            _list_cases()
            status = 0
        elif args.command == "run":
            status = _run_case(args)
        elif args.command == "study":
            status = _study(args)
        elif args.command == "generate":
            status = _generate(args)
        else:
            status = _derive(args)
        _flush_stdout()  # write errors surface here, not in the interpreter's exit
    except UserError as err:
        print(f"pkfnet: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pkfnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except OutputError as err:
        _discard_stdout()
        print(f"pkfnet: error: cannot write the output: {err}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
