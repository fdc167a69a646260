"""The `fewshot` command line: the user's entry point to families, training and evaluation."""

from __future__ import annotations

import argparse
import sys

import tasks
from fewshot import demo


def families_command(args: argparse.Namespace) -> int:
    for name in tasks.names():
        family = tasks.get(name)
        params = ", ".join(p.name for p in family.params) or "-"
        print(f"{name:16s} {', '.join(family.splits):26s} {params}")
        if args.verbose:
            print(f"{'':16s} {family.doc}")
    return 0


def demo_command(args: argparse.Namespace) -> int:
    names = args.families or tasks.names()
    unknown = [n for n in names if n not in tasks.names()]
    if unknown:
        raise SystemExit(f"fewshot demo: unknown families {unknown}; known: {tasks.names()}")
    print(f"Random policy, {args.num_envs} envs per split, one episode each "
          f"(seed {args.seed}):\n", flush=True)
    reports = []
    for name in names:
        print(f"  rolling out {name} ...", file=sys.stderr, flush=True)
        reports.append(demo.report(name, num_envs=args.num_envs, seed=args.seed))
    print(demo.format_table(reports))
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fewshot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    families = commands.add_parser("families", help="list the task families and splits")
    families.add_argument("-v", "--verbose", action="store_true", help="describe each")
    families.set_defaults(run=families_command)

    run_demo = commands.add_parser("demo", help="roll out every family in its batched env")
    run_demo.add_argument("--families", nargs="*", help="families to run (default: all)")
    run_demo.add_argument("--num-envs", type=positive_int, default=64,
                          help="simulations per split (default: 64)")
    run_demo.add_argument("--seed", type=int, default=0, help="task and action seed")
    run_demo.set_defaults(run=demo_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
