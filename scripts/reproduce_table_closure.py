"""Reproduce the closure-learning table: mean ± std of (a, b, c) over repeated trainings.

The Burgers PKF closure a ∂x²ν/ν² + b/ν² + c (∂xν)²/ν³ is trained one step ahead (Adam, batch
32, learning rate 0.1 divided by 10 each epoch, 4 epochs) with 10 seeds on one training set;
prints a Markdown table with the theory (1, 3/4, −2) and the paper's (0.93, 0.75, −1.80).
The full closure study is ``pkfnet run burgers-closure``.

    python scripts/reproduce_table_closure.py [--quick] [--runs 10] [--out results/table_closure]

Full mode uses the paper's training set (400 ensembles x 400 members, steps 400 -> 500).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cases import burgers  # noqa: E402
from cases.burgers_closure import learn_one_step  # noqa: E402
from cases.study import Output, make_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick training set")
    parser.add_argument("--runs", type=int, help="training runs (default 10, 3 with --quick)")
    parser.add_argument("--out", default="results/table_closure")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 10)
    settings = make_settings(burgers, "quick" if args.quick else "paper", seed=args.seed)
    output = Output(args.out)
    model, pkf_class = burgers.models(settings)
    data = burgers.training_set(output.path("training.nc"), model, settings, output.progress)

    def make_model():
        return pkf_class(shape=settings.points, dtype=settings.dtype, kappa=settings.kappa)

    fits = learn_one_step(make_model, data, settings, runs, output.progress)
    lines = [
        f"| coefficient | learned ({runs} runs, {data.sizes['sample']} pairs) | paper | theory |",
        "|---|---|---|---|",
    ]
    for name in "abc":
        lines.append(
            f"| {name} | {fits['mean'][name]:.3f} ± {fits['std'][name]:.1e} | "
            f"{burgers.PAPER_LEARNED[name]} | {burgers.THEORY[name]} |"
        )
    table = "\n".join(lines)
    print(table)
    output.path("table_closure.md").write_text(table + "\n")
    output.write_json({k: fits[k] for k in ("mean", "std", "runs")}, "table_closure.json")
    print(f"wrote {output.directory}")


if __name__ == "__main__":
    main()
