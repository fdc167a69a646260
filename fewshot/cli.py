"""The `fewshot` command line: the user's entry point to families, algorithms, training and
evaluation. Every command that loads a family or a run takes `--import MODULE`
(repeatable) for plugins; installed `fewshot.plugins` entry points load by themselves."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

import tasks
from fewshot import plugins, registry, rollouts
from fewshot.checks import MissingExtraError


def families_command(args: argparse.Namespace) -> int:
    for name in tasks.names():
        family = tasks.get(name)
        params = ", ".join(p.name for p in family.params) or "-"
        print(f"{name:16s} {', '.join(family.splits):26s} {params}")
        if args.verbose:
            print(f"{'':16s} {family.doc}")
            for option in tasks.options(name).values():
                print(f"{'':16s} option {option.name}: {option.describe()}, default "
                      f"{option.default!r}")
            if family.outcomes:
                print(f"{'':16s} outcomes: {', '.join(family.outcomes)}")
    return 0


def algorithms_command(args: argparse.Namespace) -> int:
    for name in registry.names():
        algorithm = registry.get(name)
        print(f"{name:10s} learners: {', '.join(algorithm.learners):28s} {algorithm.doc}")
    print("\nreference learners (no training; any run):")
    for name in registry.reference_names():
        print(f"{name:10s} {registry.reference(name).doc}")
    return 0


def rollouts_command(args: argparse.Namespace) -> int:
    names = args.families or tasks.names()
    unknown = [n for n in names if n not in tasks.names()]
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {tasks.names()}")
    print(f"Random policy, {args.num_envs} envs per split, one episode each "
          f"(seed {args.seed}):\n", flush=True)
    reports = []
    for name in names:
        print(f"  rolling out {name} ...", file=sys.stderr, flush=True)
        reports.append(rollouts.report(name, num_envs=args.num_envs, seed=args.seed))
    print(rollouts.format_table(reports))
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from fewshot.demo import run_demo

    run_demo(Path(args.out), iterations=args.iterations, progress=not args.no_progress)
    return 0


def train_command(argv: list[str]) -> int:
    from fewshot.run.arguments import parse_train_args
    from fewshot.run.train import train  # the heavy imports only for this command

    config, out, resume, progress = parse_train_args(argv)
    train(config, out, resume=resume, progress=progress)
    print(f"run folder: {out}")
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from fewshot.eval.evaluation import REPORT, evaluate_run
    from fewshot.eval.harness import EvaluationSettings

    settings = EvaluationSettings(
        splits=tuple(args.splits if args.splits is not None
                     else [] if args.task_set else ["test-id", "test-ood"]),
        episodes=args.episodes, tasks=args.tasks, trials=args.trials, seed=args.eval_seed)
    out = evaluate_run(Path(args.run_dir), settings, learner=args.learner,
                       options={"episodes_per_step": args.episodes_per_step,
                                "later_step_scale": args.later_step_scale},
                       task_sets=args.task_set and Path(args.task_set), label=args.label,
                       out=args.out,
                       progress=not args.no_progress)
    print((out / REPORT).read_text())
    print(f"evaluation folder: {out}")
    return 0


def predict_command(args: argparse.Namespace) -> int:
    from fewshot.eval.catastrophes import PREDICTION, PredictionSettings, predict_run
    from fewshot.eval.prediction import GRID

    grid = weight_grid(args.alphas, args.betas) if args.alphas or args.betas else GRID
    settings = PredictionSettings(split=args.split, tasks=args.tasks, trials=args.trials,
                                  seed=args.eval_seed, windows=tuple(args.windows),
                                  grid=grid, resamples=args.resamples)
    out = predict_run(Path(args.run_dir), settings, learner=args.learner,
                      out=args.out and Path(args.out))
    for entry in json.loads((out / PREDICTION).read_text())["predictions"]:
        auc = entry["auc"]
        shown = ("no AUC: one class only" if auc is None else
                 f"AUC {auc['value']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}]")
        print(f"window {entry['window']:3d}  alpha {entry['alpha']:5g}  beta "
              f"{entry['beta']:4g}  positives {entry['positives']:6d} of "
              f"{entry['positives'] + entry['negatives']:6d}  {shown}")
    print(f"prediction folder: {out}")
    return 0


def weight_grid(alphas: list[float], betas: list[float]) -> tuple[tuple[float, float], ...]:
    """Every (alpha, beta) of the two lists but (0, 0), one per direction: U and c U
    (c > 0) rank the steps alike, so (0, 2) adds nothing to (0, 1)."""
    grid, directions = [], set()
    for alpha in alphas:
        for beta in betas:
            norm = (alpha * alpha + beta * beta) ** 0.5
            direction = norm and (round(alpha / norm, 9), round(beta / norm, 9))
            if direction and direction not in directions:
                directions.add(direction)
                grid.append((alpha, beta))
    return tuple(grid)


def compare_command(args: argparse.Namespace) -> int:
    from fewshot.eval.evaluation import REPORT, compare

    out = compare([Path(p) for p in args.evaluations], Path(args.out))
    print((out / REPORT).read_text())
    print(f"comparison folder: {out}")
    return 0


def sweep_command(args: argparse.Namespace) -> int:
    from fewshot.sweep.driver import SUMMARY, run_sweep

    summary = run_sweep(Path(args.spec), Path(args.out), address=args.address,
                        resume=args.resume, progress=not args.no_progress,
                        imports=args.imports)
    counts = ", ".join(f"{n} {status}" for status, n in summary["counts"].items())
    print(f"\n{len(summary['trials'])} trials: {counts}")
    for trial in summary["trials"]:
        if trial["error"]:
            print(f"  {trial['name']}: {trial['error']}")
    best = summary.get("search", {}).get("best")
    if best:
        metric = summary["search"]["metric"]
        print(f"best by {metric}: {best['name']} ({metric} {best[metric]:.4g})")
    for family, folder in summary["comparisons"].items():
        print(f"comparison of {family}: {folder}/report.md")
    print(f"sweep summary: {Path(args.out) / SUMMARY}")
    return 1 if summary["counts"].get("failed") else 0


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def add_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help="import a plugin module that registers families "
                        "or algorithms (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fewshot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    families = commands.add_parser("families", help="list the task families and splits")
    families.add_argument("-v", "--verbose", action="store_true",
                          help="describe each, with its options and outcomes")
    add_import(families)
    families.set_defaults(run=families_command)

    algorithms = commands.add_parser("algorithms",
                                     help="list the algorithms and reference learners")
    add_import(algorithms)
    algorithms.set_defaults(run=algorithms_command)

    run_demo = commands.add_parser(
        "demo", help="meta-train MAML on point-nav, then score it against references",
        description="The main job: meta-train MAML on point-nav (about two minutes on two "
        "cores), evaluate it, its non-adaptive policy, the oracle and the random policy on "
        "test-id and test-ood tasks, and write the comparison table and figure.")
    run_demo.add_argument("--out", default="runs/demo", help="folder (default: runs/demo)")
    run_demo.add_argument("--iterations", type=positive_int, default=30,
                          help="meta-iterations (default: 30)")
    run_demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run_demo.set_defaults(run=demo_command, imports=[])

    run_rollouts = commands.add_parser("rollouts",
                                       help="roll out every family in its batched env")
    run_rollouts.add_argument("--families", nargs="*", help="families to run (default: all)")
    run_rollouts.add_argument("--num-envs", type=positive_int, default=64,
                              help="simulations per split (default: 64)")
    run_rollouts.add_argument("--seed", type=non_negative_int, default=0,
                              help="task and action seed")
    add_import(run_rollouts)
    run_rollouts.set_defaults(run=rollouts_command)

    commands.add_parser("train", help="train a learner (fewshot train --help)", add_help=False)

    evaluate = commands.add_parser(
        "evaluate", help="score a run: return after k = 0..K episodes on ID and OOD tasks",
        description="Score a run's learner (or a reference learner on its family) on frozen "
        "task sets; writes records, summary.json, report.md and adaptation-curves.png.")
    evaluate.add_argument("run_dir", help="a run folder made by `fewshot train`")
    evaluate.add_argument("--splits", nargs="*", default=None,
                          help="declared splits to freeze task sets from (default: test-id "
                          "test-ood, or none with --task-set)")
    evaluate.add_argument("--task-set", default=None, metavar="FILE.json",
                          help="named sets of tasks of your own (JSON: {\"sets\": {name: "
                          "[task, ...]}}); a set named after a declared split must lie in it")
    evaluate.add_argument("--episodes", type=non_negative_int, default=3, metavar="K",
                          help="episodes seen: the curve runs k = 0..K (default: 3)")
    evaluate.add_argument("--tasks", type=positive_int, default=20, metavar="M",
                          help="tasks per frozen split (default: 20)")
    evaluate.add_argument("--trials", type=positive_int, default=5,
                          help="evaluation episodes per task and k (default: 5)")
    evaluate.add_argument("--eval-seed", type=non_negative_int, default=0,
                          help="seed of the frozen task sets and the noise (default: 0)")
    evaluate.add_argument("--learner", default="trained",
                          help="what to score: a learner the run's algorithm offers "
                          "(trained, the default; maml: non-adaptive; ppo: finetune) or a "
                          "reference learner (random, scripted-oracle, ucb1, thompson); "
                          "`fewshot algorithms` lists them")
    evaluate.add_argument("--episodes-per-step", type=positive_int, default=None,
                          help="learner option. MAML: one inner step after every this many "
                          "episodes (default: the run's episodes_per_task); finetune: one PPO "
                          "update after every this many (default: 1)")
    evaluate.add_argument("--later-step-scale", type=float, default=None,
                          help="learner option. MAML: step size of every inner step after "
                          "the first, as a multiple of the run's inner lr (default: 1, as in "
                          "meta-training; the MAML code's point-nav test used 0.5)")
    evaluate.add_argument("--label", default=None,
                          help="learner name in records (default: the run folder's name "
                          "without its -s<seed>)")
    evaluate.add_argument("--out", default=None,
                          help="evaluation folder (default: RUN_DIR/evaluation[-LEARNER])")
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_import(evaluate)
    evaluate.set_defaults(run=evaluate_command)

    predict = commands.add_parser(
        "predict", help="predict catastrophes from an ensemble's disagreement (ROC, AUC)",
        description="Play a run's ensemble learner on a frozen split, one episode per trial, "
        "and score U = alpha * mean + beta * std of its members' values against a "
        "catastrophe within W steps: ROC curves and AUCs with bootstrap CIs over levels. "
        "Writes prediction.json and roc.png.")
    predict.add_argument("run_dir", help="a run folder of an ensemble (ensemble, leep, dqn "
                         "with ensemble_size > 1)")
    predict.add_argument("--learner", default="trained",
                         help="the run's learner that acts (default: trained)")
    predict.add_argument("--split", default="test-id",
                         help="declared split to freeze tasks from (default: test-id)")
    predict.add_argument("--tasks", type=positive_int, default=100, metavar="M",
                         help="frozen tasks (levels) of the split (default: 100)")
    predict.add_argument("--trials", type=positive_int, default=1,
                         help="episodes per task (default: 1)")
    predict.add_argument("--windows", type=int, nargs="+", default=[1, 10], metavar="W",
                         help="a step is positive when a catastrophe follows within W steps "
                         "(default: 1 10)")
    predict.add_argument("--alphas", type=float, nargs="+", default=None,
                         help="weights of the members' mean value in U = alpha * mean + "
                         "beta * std; low values warn, so useful alphas are <= 0")
    predict.add_argument("--betas", type=float, nargs="+", default=None,
                         help="weights of their std; every (alpha, beta) but (0, 0) is "
                         "scored, one per direction (default: the pairs -1,0 -1,0.5 -1,1 "
                         "-1,2 0,1)")
    predict.add_argument("--resamples", type=positive_int, default=2000,
                         help="bootstrap resamples of the levels (default: 2000)")
    predict.add_argument("--eval-seed", type=non_negative_int, default=0,
                         help="seed of the frozen tasks, the noise and the bootstrap "
                         "(default: 0)")
    predict.add_argument("--out", default=None,
                         help="prediction folder (default: RUN_DIR/prediction-LEARNER-SPLIT)")
    add_import(predict)
    predict.set_defaults(run=predict_command)

    sweep = commands.add_parser(
        "sweep", help="train and score many runs (grid, samples, seeds) on Ray Tune",
        description="Run a sweep SPEC (see docs/sweeps.md) on Ray Tune: each trial is a run "
        "folder under OUT/runs/, evaluated when it finishes; OUT/comparison holds the "
        "comparison and OUT/sweep.json every trial's status. Needs the sweep extra.")
    sweep.add_argument("spec", help="the sweep's SPEC.yaml")
    sweep.add_argument("--out", required=True, help="the sweep's folder")
    sweep.add_argument("--address", default=None,
                       help="join a running Ray cluster (default: start Ray inside this "
                       "command with this machine's cores)")
    sweep.add_argument("--resume", action="store_true",
                       help="continue the sweep in --out: finished trials are kept, "
                       "interrupted ones continue from their checkpoints")
    sweep.add_argument("--no-progress", action="store_true", help="hide Tune's status")
    add_import(sweep)
    sweep.set_defaults(run=sweep_command)

    compare = commands.add_parser(
        "compare", help="put several evaluations side by side, with paired statistics")
    compare.add_argument("evaluations", nargs="+",
                         help="evaluation folders, or run folders (their evaluation/)")
    compare.add_argument("--out", required=True, help="folder for the comparison")
    compare.set_defaults(run=compare_command, imports=[])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; every expected failure ends in one line naming what went wrong
    (exit status 1; 130 after Ctrl-C), not a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else "fewshot"
    try:
        if command == "train":
            return train_command(argv[1:])
        args = build_parser().parse_args(argv)
        plugins.load(args.imports)
        return args.run(args)
    except KeyboardInterrupt as stop:
        print(f"\nfewshot {command}: {str(stop) or 'interrupted; nothing was written'}",
              file=sys.stderr)
        return 130
    except OSError as error:
        raise SystemExit(f"fewshot {command}: {describe_os_error(error)}") from error
    except (ValueError, MissingExtraError) as error:
        raise SystemExit(f"fewshot {command}: {error}") from error


def describe_os_error(error: OSError) -> str:
    """A file-system error as one line: what failed, on which file, and what to do."""
    if error.errno is None:  # an OSError raised with a message of our own
        return str(error)
    advice = {errno.ENOSPC: "free some space, then run the same command with --resume "
                            "(a run keeps its last checkpoint)",
              errno.EDQUOT: "free some space, then run the same command with --resume",
              errno.EROFS: "choose an --out on a writable file system",
              errno.EACCES: "choose an --out you may write to",
              errno.EPERM: "choose an --out you may write to"}
    where = f": {error.filename}" if error.filename else ""
    hint = advice.get(error.errno)
    return f"{error.strerror or error}{where}" + (f"; {hint}" if hint else "")


if __name__ == "__main__":
    sys.exit(main())
