"""``python -m measure.show ARCH``: the block table of an architecture, its size and its cost.

ARCH is a reference name (v3_large, v3_small), an arch string or a path to an arch JSON file.
"""
from __future__ import annotations

import argparse

from core.cli import UsageError, run
from space import format_arch, parse_arch
from space.text import format_block


def block_table(arch) -> str:
    rows = [f"{'#':>3}  {'in':>5} {'k':>2} {'exp':>5} {'out':>5} {'s':>2} {'SE':>3} {'act':>3}  token"]
    rows.append(f"{'':>3}  {3:>5} {3:>2} {'':>5} {arch.stem:>5} {2:>2} {'':>3} {'HS':>3}  stem{arch.stem}")
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        rows.append(f"{i:>3}  {cin:>5} {b.kernel:>2} {b.expand:>5} {b.out:>5} {b.stride:>2} "
                    f"{'yes' if b.se else '-':>3} {b.act:>3}  {format_block(b)}")
    rows.append(f"{'':>3}  {arch.blocks[-1].out:>5} {1:>2} {'':>5} {arch.last_conv:>5} {1:>2} {'':>3} {'HS':>3}  "
                f"last{arch.last_conv}")
    rows.append(f"head: avgpool -> Linear({arch.last_conv}, {arch.head}) -> HS -> Dropout({arch.dropout:g}) -> Linear")
    return "\n".join(rows)


def main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m measure.show", description=__doc__.splitlines()[0])
    parser.add_argument("arch", help="v3_large, v3_small, an arch string or a .json path")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--latency", choices=("none", "lut", "measured"), default="none",
                        help="add latency: predicted by the lookup table, or measured end to end")
    parser.add_argument("--backend", choices=("onnxruntime", "torch", "executorch"), default="onnxruntime")
    parser.add_argument("--results-dir", default="results", help="where the latency table lives")
    args = parser.parse_args(argv)
    if args.input_size <= 0:
        raise UsageError(f"--input-size must be a positive integer, got {args.input_size}")

    arch = parse_arch(args.arch)
    print(block_table(arch))
    print(f"string: {format_arch(arch)}")

    import measure  # here, not at the top: a bad argument answers before torch is imported

    latency = None
    if args.latency != "none":
        latency = measure.latency_model({"source": args.latency, "backend": args.backend,
                                         "input_size": args.input_size}, args.results_dir)
    c = measure.costs(arch, latency, input_size=args.input_size)
    print(f"params: {c.params:,} (1000 classes)")
    print(f"MACs: {c.macs:,} at {args.input_size}x{args.input_size}")
    if latency is not None:
        print(f"latency: {c.latency_ms:.3f} ms ({latency.name})")
    return 0


if __name__ == "__main__":
    run(main)
