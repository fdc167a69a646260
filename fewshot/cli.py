"""The `fewshot` command line: the user's entry point to families, training and evaluation."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jsonargparse

import tasks
from fewshot import demo
from fewshot.config import MAMLConfig, TrainConfig


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


def train_parser() -> jsonargparse.ArgumentParser:
    jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = jsonargparse.ArgumentParser(
        prog="fewshot train", description="Meta-train a learner; every setting is a flag, "
        "and --config FILE.yaml sets many at once (flags after it override it).")
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile,
                        help="a YAML file of settings")
    parser.add_argument("--out", type=str, default=None,
                        help="run folder (default: runs/<algo>-<family>-s<seed>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_class_arguments(TrainConfig, None)
    return parser


def parse_train_args(argv: list[str]) -> tuple[TrainConfig, Path, bool, bool]:
    """Settings, run folder, resume and progress flags; errors name the field."""
    parser = train_parser()
    values = parser.parse_args(argv).as_dict()
    saved = Path(values["out"] or "") / "config.yaml"
    if values["resume"] and values["out"] and saved.is_file():
        # resuming: the run's own settings are the defaults; flags given now override them
        values = parser.parse_args(["--config", str(saved), *argv]).as_dict()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        maml = values.pop("maml")
        config = TrainConfig(**{k: v for k, v in values.items() if k in fields - {"maml"}},
                             maml=maml if isinstance(maml, MAMLConfig) else MAMLConfig(**maml))
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    out = Path(values["out"] or f"runs/{config.algo}-{config.family}-s{config.seed}")
    return config, out, values["resume"], not values["no_progress"]


def train_command(argv: list[str]) -> int:
    from fewshot.train import train  # the heavy imports only for this command

    config, out, resume, progress = parse_train_args(argv)
    try:
        train(config, out, resume=resume, progress=progress)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"fewshot train: {error}") from error
    print(f"run folder: {out}")
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

    commands.add_parser("train", help="meta-train a learner (fewshot train --help)",
                        add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return train_command(argv[1:])
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
