"""Benchmark: how far the generated 2D diffusion RK4 step is from this machine's limits.

The paper's 2D heterogeneous diffusion (100×100, one member, float64, RK4): the compiled loop's
optimised XLA program is dumped and its time-step body read back — kernels launched, bytes each
kernel reads and writes, floating-point operations inside the fused kernels — and set against
what this machine does in plain numpy, measured in the same run: double-precision matrix
products (the practical FLOP peak, all cores) and streaming bandwidth (``a + b`` into ``c``,
one core) for arrays that fit the L2 cache, the L3 cache and neither. The "compulsory" traffic
is what any single-pass kernel must move per RK stage: the stage state and the RK sums read
and written once, and the constant coefficient fields read once.

    python scripts/bench/roofline.py [--steps 600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

FORECAST = """
import sys, time
import numpy as np
from cases.diffusion2d import build_model, dirac, time_step
steps, repeat = int(sys.argv[1]), int(sys.argv[2])
model = build_model((100, 100))
times = np.arange(steps + 1) * time_step()
u0 = dirac((100, 100))
model.forecast(times, {"u": u0}, saved_times=times[-1])
best = min(
    (lambda s: (model.forecast(times, {"u": u0}, saved_times=times[-1]),
                time.perf_counter() - s)[1])(time.perf_counter())
    for _ in range(repeat)
)
print(best)
"""

SHAPE = re.compile(r"\b(f64|f32|s32|pred)\[([0-9,]*)\]")
ITEMSIZE = {"f64": 8, "f32": 4, "s32": 4, "pred": 1}
ARITHMETIC = ("add", "subtract", "multiply", "divide", "negate", "maximum", "minimum")


def _bytes(text: str) -> int:
    """Bytes of the first array shape in ``text`` (0 for scalars)."""
    match = SHAPE.search(text)
    if match is None or not match.group(2):
        return 0
    return ITEMSIZE[match.group(1)] * int(np.prod([int(v) for v in match.group(2).split(",")]))


def _computations(hlo: str) -> dict[str, list[str]]:
    """The HLO module's computations: name → instruction lines."""
    blocks: dict[str, list[str]] = {}
    name = None
    for line in hlo.splitlines():
        header = re.match(r"^(?:ENTRY )?%(\S+) \(", line)
        if header:
            name = header.group(1)
            blocks[name] = []
        elif line.startswith("}"):
            name = None
        elif name is not None and "=" in line:
            blocks[name].append(line.strip())
    return blocks


def step_profile(hlo: str) -> dict[str, float]:
    """Kernels, bytes read/written and FLOPs of the innermost loop body (one time step)."""
    blocks = _computations(hlo)
    bodies = [n for n in blocks if "while_body" in n]
    body = max(bodies, key=lambda n: sum(" fusion(" in i for i in blocks[n]))
    shapes = {}
    for instruction in blocks[body]:
        target, _, rest = instruction.partition(" = ")
        shapes[target.split()[-1].lstrip("%")] = _bytes(rest)
    kernels = reads = writes = flops = 0
    for instruction in blocks[body]:
        _, _, rest = instruction.partition(" = ")
        op = re.match(r"\S+\s+([a-z-]+)\(", rest)
        if op is None or op.group(1) in ("get-tuple-element", "tuple", "constant", "parameter"):
            continue
        output = _bytes(rest)
        if output == 0:
            continue  # scalar bookkeeping (counters, times)
        kernels += 1
        writes += output
        listed = re.search(r"[a-z-]+\(([^()]*)\)", rest)
        operands = re.findall(r"%([\w.\-]+)", listed.group(1) if listed else "")
        reads += sum(shapes.get(o, 0) for o in operands)
        called = re.search(r"calls=%([\w.\-]+)", rest)
        if called:
            for inner in blocks.get(called.group(1), []):
                inner_op = re.match(r"\S+ = (\S+)\s+([a-z-]+)\(", inner)
                if inner_op and inner_op.group(2) in ARITHMETIC:
                    flops += _bytes(inner_op.group(1)) // ITEMSIZE[inner_op.group(1)[:3]]
    return {"kernels": kernels, "reads": reads, "writes": writes, "flops": flops}


def machine_limits(repeat: int) -> dict[str, float]:
    """Measured here, in numpy: FLOP/s of a large float64 matrix product (all cores) and
    one-core streaming bandwidth (read 2 arrays, write 1) for three working-set sizes."""

    def best(function, count: int) -> float:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return min(times)

    n = 1500
    a, b = np.random.default_rng(0).normal(size=(2, n, n))
    limits = {"gemm_flops": 2 * n**3 / best(lambda: a @ b, repeat)}
    for label, size in (("l2", 40_000), ("l3", 400_000), ("dram", 16_000_000)):
        x, y, z = np.ones(size), np.ones(size), np.empty(size)
        inner = max(1, 4_000_000 // size)

        def triad(x=x, y=y, z=z, inner=inner):
            for _ in range(inner):
                np.add(x, y, out=z)

        limits[f"bandwidth_{label}"] = 3 * 8 * size * inner / best(triad, repeat)
    return limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={folder} "
            "--xla_dump_hlo_as_text".strip(),
        }
        result = subprocess.run(
            [sys.executable, "-c", FORECAST, str(args.steps), str(args.repeat)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = float(result.stdout.strip().splitlines()[-1])
        dumps = sorted(Path(folder).glob("*cpu_after_optimizations.txt"), key=os.path.getsize)
        profile = step_profile(dumps[-1].read_text())
    limits = machine_limits(args.repeat)

    points, stages = 100 * 100, 4
    step = seconds / args.steps
    traffic = profile["reads"] + profile["writes"]
    # compulsory, per stage: stage state, RK sum and start state read, stage state and RK sum
    # written (5 fields), and the 7 coefficient fields of the trend read once
    compulsory = stages * 8 * points * (5 + 7)
    print(f"2D diffusion 100x100, one member, float64, RK4: {step * 1e6:.1f} us per step")
    print(
        f"  XLA step body: {profile['kernels']} kernels, {profile['reads'] / 1e6:.2f} MB read + "
        f"{profile['writes'] / 1e6:.2f} MB written, {profile['flops'] / 1e6:.2f} MFLOP"
    )
    print(
        f"  achieved: {traffic / step / 1e9:.1f} GB/s of kernel traffic, "
        f"{profile['flops'] / step / 1e9:.2f} GFLOP/s, "
        f"{step / profile['kernels'] * 1e6:.2f} us per kernel"
    )
    print(
        f"  machine (numpy, this run): matrix product {limits['gemm_flops'] / 1e9:.1f} GFLOP/s "
        f"(all cores); one-core streaming {limits['bandwidth_l2'] / 1e9:.1f} GB/s (L2-sized), "
        f"{limits['bandwidth_l3'] / 1e9:.1f} (L3-sized), {limits['bandwidth_dram'] / 1e9:.1f} "
        "(memory)"
    )
    cores = os.cpu_count() or 1
    in_cache = cores * limits["bandwidth_l2"]
    flop_bound = profile["flops"] / limits["gemm_flops"]
    print(
        f"  bounds per step: FLOPs at the matrix-product rate {flop_bound * 1e6:.1f} us; "
        f"XLA's traffic at {cores} x the L2 stream {traffic / in_cache * 1e6:.1f} us; "
        f"compulsory traffic ({compulsory / 1e6:.2f} MB) at the same rate "
        f"{compulsory / in_cache * 1e6:.1f} us"
    )
    print(
        f"  measured / bound: {step / (traffic / in_cache):.1f} x XLA's traffic bound, "
        f"{step / (compulsory / in_cache):.1f} x the compulsory-traffic bound, "
        f"{step / flop_bound:.1f} x the FLOP bound"
    )


if __name__ == "__main__":
    main()
