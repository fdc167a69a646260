"""`fewshot train`'s arguments: one jsonargparse parser built for the chosen algorithm.

The flags are the run's common settings (--seed, --iterations, ...), the chosen
algorithm's own (--maml.inner_lr, --rl2.hidden_size, ...) and the family's options
(--family_options.train_instances). Which algorithm, family and plugins apply is read
first, from the flags, the --config files and (with --resume) the run's config.yaml;
the parser is then built for them. Settings apply in order: defaults, the run's saved
config (on --resume), each --config file, then the flags. An option of another
algorithm fails naming the algorithm it belongs to. A --config file in the version-1
layout (no `version`, learning settings at the top level) is migrated as a run's is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jsonargparse
import yaml

import tasks
from fewshot import plugins, registry
from fewshot.checks import ConfigError
from fewshot.run.config import COMMON, RunConfig, algo_settings, is_version1, migrate
from fewshot.run.folder import CONFIG

PROG = "fewshot train"


def parse_train_args(argv: list[str]) -> tuple[RunConfig, Path, bool, bool]:
    """Settings, run folder, resume and progress flags; errors name the field."""
    early = argparse.ArgumentParser(add_help=False)
    for flag in ("--algo", "--family", "--out"):
        early.add_argument(flag)
    early.add_argument("--config", action="append", default=[])
    early.add_argument("--import", dest="imports", action="append", default=[])
    early.add_argument("--resume", action="store_true")
    known, _ = early.parse_known_args(argv)
    sources = []
    saved = Path(known.out or "") / CONFIG
    if known.resume and known.out and saved.is_file():
        sources.append((str(saved), migrate(read_yaml(saved))))
    for path in known.config:
        values = read_yaml(Path(path))
        if "version" in values or is_version1(values):
            try:
                values = migrate(values, algo=known.algo)
            except ValueError as error:
                fail(f"{path}: {error}")
        sources.append((path, values))
    merged: dict[str, Any] = {}
    for _, values in sources:
        merged.update(values)
    imports = list(dict.fromkeys(list(merged.get("imports", [])) + known.imports))
    try:
        plugins.load(imports)
        algo = known.algo or merged.get("algo", RunConfig.algo)
        algorithm = registry.get(algo)
        family = known.family or merged.get("family", RunConfig.family)
        family_options = tasks.options(family)
    except ValueError as error:
        fail(str(error))
    check_sections(argv, sources, algo, family, family_options)
    parser = build_parser(algorithm, family, family_options)
    namespace = parser.get_defaults()
    for _, values in sources:
        values = {k: v for k, v in values.items() if k not in ("version", "imports")
                  and not (k == "family_options" and not v)}
        namespace = parser.parse_object(values, namespace=namespace)
    values = parser.parse_args(argv, namespace=namespace).as_dict()
    try:
        config = RunConfig(**{k: values[k] for k in COMMON if k not in ("imports",
                                                                      "family_options")},
                           family_options=values.get("family_options") or {},
                           imports=imports,
                           algo_config=algo_settings(algo, values.get(algo, {})))
    except (ConfigError, ValueError) as error:
        parser.error(str(error))
    out = Path(values["out"] or f"runs/{config.algo}-{config.family}-s{config.seed}")
    return config, out, values["resume"], not values["no_progress"]


def fail(message: str) -> None:
    """Exit as a parser error does: the message on stderr, exit status 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping of settings; SystemExit naming the file for anything else."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        fail(f"cannot read settings from {path}: {error}")
    if values is None:
        return {}
    if not isinstance(values, dict):
        fail(f"{path} must hold a mapping of settings, got {type(values).__name__}")
    return values


def check_sections(argv: list[str], sources: list[tuple[str, dict]], algo: str, family: str,
                   family_options: dict[str, Any]) -> None:
    """Refuse options of another algorithm, and family options the family lacks, by name."""
    others = set(registry.names()) - {algo}
    for token in argv:
        if not token.startswith("--") or "." not in token:
            continue
        section, _, name = token[2:].split("=")[0].partition(".")
        if section in others:
            fail(f"option {token.split('=')[0]} belongs to algorithm {section}; this run's "
                 f"algo is {algo} (its options are --{algo}.*)")
        if section == "family_options" and name not in family_options:
            fail(f"family {family!r} has no option {name}; its options: "
                 f"{sorted(family_options) or 'none'}")
    for source, values in sources:
        wrong = sorted(set(values) & others)
        if wrong:
            fail(f"{source} has settings of algorithms {wrong}; this run's algo is {algo}")


def build_parser(algorithm: registry.Algorithm, family: str,
                 family_options: dict[str, Any]) -> jsonargparse.ArgumentParser:
    jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = jsonargparse.ArgumentParser(
        prog=PROG, description=f"Train a learner. These are the settings of algorithm "
        f"{algorithm.name!r} on family {family!r}; `--algo NAME --help` shows another's. "
        "--config FILE.yaml sets many at once (flags override it).")
    parser.add_argument("--config", action="append", default=[], metavar="FILE.yaml",
                        help="a YAML file of settings (repeatable; later files win)")
    parser.add_argument("--import", dest="import_flags", action="append", default=[],
                        metavar="MODULE", help="a plugin module registering families or "
                        "algorithms (repeatable; recorded in the run)")
    parser.add_argument("--out", type=str, default=None,
                        help="run folder (default: runs/<algo>-<family>-s<seed>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_class_arguments(RunConfig, None,
                               skip={"algo_config", "family_options", "imports"})
    parser.add_class_arguments(algorithm.config, algorithm.name)
    for option in family_options.values():
        parser.add_argument(f"--family_options.{option.name}", type=option.type,
                            default=option.default,
                            help=f"option of family {family}: {option.describe()}")
    return parser

