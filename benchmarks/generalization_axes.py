"""Three axes of generalization on one body, the HalfCheetah: what a task changes decides
which remedy works.

1. Observation (generalization_observation.yaml): the same task, a world that looks
   different. Multi-task PPO on cheetah-distract trained on 4 fixed colours or with a
   fresh colour per episode (domain randomization), each with and without an L1 penalty
   on the first layer (a bottleneck); zero-shot return on the training colours, unseen ID
   colours and colours beyond the box, and the ID-OOD gap.
2. Dynamics (generalization_dynamics.yaml): a body that differs. PPO with domain
   randomization of the dynamics (zero-shot) against MAML and RL² (few-shot) on
   cheetah-dyn test-id and test-ood, R(0) and R(k).
3. Reward (generalization_reward_{vel,gait}.yaml): a new task. MAML and RL² meta-trained on
   target speeds (cheetah-vel; the held-out speeds vary the way training did) and on gaits
   (cheetah-gait; the held-out hop varies along a new axis), scored per task between the
   random policy (0) and the best of the specialists, each trained on one task alone, on
   that task (1; usually its own specialist;
   generalization_specialists_{vel,gait}.yaml), R(0) and R(k). For the hop, also what
   earns its reward (speed or flight) for MAML's policies and the run and hop specialists.

Each SPEC is a sweep in benchmarks/sweeps/generalization-<name>; an interrupted sweep
resumes where it stopped, and --summarize reports whatever is evaluated so far. Results go
to benchmarks/results/generalization_axes.json, the figure to generalization_axes.png, the
comparisons (records included) to benchmarks/results/generalization_axes/.

    .venv/bin/python benchmarks/generalization_axes.py [--experiments observation] [--summarize]
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import yaml
from sweep_experiment import arguments, train_missing

import tasks
from fewshot.algos.maml.trainer import adaptation_batches
from fewshot.collect import Collector
from fewshot.collect.agents import ActorCriticAgent, GaussianAgent
from fewshot.eval import report, stats
from fewshot.eval.evaluation import RECORDS, compare, load_evaluation, write_folder
from fewshot.eval.normalize import normalized
from fewshot.eval.records import TASK_PREFIX, Records
from fewshot.provenance import provenance
from fewshot.run.folder import load_run
from tasks.catalog import GAITS

# in the order they train: the quick ones first, the references before what they normalise
EXPERIMENTS = ("observation", "specialists_vel", "specialists_gait", "reward_vel",
               "reward_gait", "dynamics")
REWARD_FAMILIES = {"vel": ("cheetah-vel", "goal_velocity"), "gait": ("cheetah-gait", "gait")}
SHOWN_K = (0, 3, 20)  # R(0); RL² after the episodes of its training trials; MAML's one step
ROBUST = (("mean", stats.mean), ("IQM", stats.iqm))
OBSERVATION_LABEL = re.compile(r"colours=(?P<colours>\d+) input_l1=(?P<l1>[\d.e-]+)$")


def spec_path(name: str) -> Path:
    return Path("benchmarks") / f"generalization_{name}.yaml"


def sweep_folder(name: str) -> Path:
    return Path("benchmarks/sweeps") / f"generalization-{name.replace('_', '-')}"


def evaluations(name: str, learner: str = "trained") -> list[Path]:
    """The published evaluation folders of a sweep's runs, as `learner`."""
    folder = "evaluation" if learner == "trained" else f"evaluation-{learner}"
    return sorted(p.parent for p in (sweep_folder(name) / "runs").glob(f"*/{folder}/{RECORDS}"))


# 1. Observation ---------------------------------------------------------------------------

def observation_variant(label: str) -> str:
    match = OBSERVATION_LABEL.search(label)
    if match is None:
        raise ValueError(f"not a label of generalization_observation.yaml: {label!r}")
    trained_on = ("4 colours" if match["colours"] == "4" else "randomized")
    return trained_on + (" + L1 bottleneck" if float(match["l1"]) > 0 else "")


def observation_groups() -> dict[str, list[Path]]:
    """The observation sweep's evaluations by training colours (0: randomized)."""
    groups: dict[str, list[Path]] = {}
    for folder in evaluations("observation"):
        colours = re.search(r"colours=(\d+)", folder.parent.name).group(1)
        groups.setdefault(colours, []).append(folder)
    return groups


def observation_table(comparison: Path) -> dict:
    """Per variant: R(0) on the training colours, unseen ID colours and OOD colours, and the
    gaps train - test-ood and test-id - test-ood, with 95% CIs."""
    records = Records.read_csv(comparison / RECORDS)
    table = {}
    for label in records.unique("learner"):
        rows = records.where(learner=label, k=0)
        scores = {split: list(rows.where(split=split).task_scores().values())
                  for split in rows.unique("split")}
        entry = {"seeds": len(rows.unique("run")),
                 **{split: stats.estimate(s).as_dict() for split, s in scores.items()}}
        for inside in ("train", "test-id"):
            if inside in scores and "test-ood" in scores:
                entry[f"gap {inside} - test-ood"] = stats.difference(
                    scores[inside], scores["test-ood"]).as_dict()
        table[observation_variant(label)] = entry
    return table


# 2. Dynamics ----------------------------------------------------------------------------

def curves_table(summary: dict) -> dict:
    """{learner: {split: {k: estimate}}} at SHOWN_K, from a comparison's summary."""
    table = {}
    for label, entry in summary.items():
        algo = label.split("-")[0]
        table[algo] = {"seeds": len(entry["runs"])}
        for split, data in entry["splits"].items():
            table[algo][split] = {str(point["k"]): point["mean"]
                                  for point in data["curve"] if point["k"] in SHOWN_K}
    return table


def dynamics_table(comparison: Path) -> dict:
    """Per learner and split, from the comparison's records: R(k) at SHOWN_K as mean and
    interquartile mean (IQM) of task scores, and the paired gain R(20) - R(0) per task,
    both ways, with 95% intervals. cheetah-dyn's test-ood returns are heavy-tailed (a few
    bodies swing by thousands between episodes), which the mean's interval undercovers:
    the non-adaptive PPO shows a mean "gain" there. The IQM is the robust reading."""
    records = Records.read_csv(comparison / RECORDS)
    table: dict = {}
    for label in records.unique("learner"):
        entry = table.setdefault(label.split("-")[0], {})
        for split in records.unique("split"):
            rows = records.where(learner=label, split=split)
            scores = {k: list(rows.where(k=k).task_scores().values()) for k in SHOWN_K}
            gain = [after - before for after, before in
                    zip(scores[SHOWN_K[-1]], scores[0], strict=True)]
            entry[split] = {
                **{f"R({k}) {name}": stats.estimate(s, reduce).as_dict()
                   for k, s in scores.items() for name, reduce in ROBUST},
                **{f"gain {name}": stats.estimate(gain, reduce).as_dict()
                   for name, reduce in ROBUST}}
    return table


# 3. Reward ------------------------------------------------------------------------------

def specialist_table(kind: str) -> dict[str, dict[str, float]]:
    """Every specialist's mean return on every task it was scored on: {trained on:
    {task value: mean return}}. A specialist is not always the best policy on its own
    task: another specialist's skill may earn that reward better."""
    _, param = REWARD_FAMILIES[kind]
    table: dict[str, dict[str, float]] = {}
    for folder in evaluations(f"specialists_{kind}"):
        records, _, info = load_evaluation(folder)
        row = table.setdefault(str(info["family_options"]["only"]), {})
        for value in np.unique(records[TASK_PREFIX + param]):
            row[task_name(kind, value)] = float(
                records.where(**{TASK_PREFIX + param: value})["return"].mean())
    return table


def task_name(kind: str, value: float) -> str:
    return GAITS[int(value)] if kind == "gait" else f"{float(value):g}"


def best_specialist_rows(kind: str) -> Records:
    """For each task, the rows of the specialist that scores highest on it (its own
    specialist, unless another does better), as the learner "specialist"."""
    _, param = REWARD_FAMILIES[kind]
    scored = [load_evaluation(folder)[0] for folder in evaluations(f"specialists_{kind}")]
    best: Records | None = None
    for value in np.unique(np.concatenate([r[TASK_PREFIX + param] for r in scored])):
        rows = max((r.where(**{TASK_PREFIX + param: value}) for r in scored),
                   key=lambda own: float(own["return"].mean()) if len(own) else -np.inf)
        best = rows if best is None else best.concat(rows)
    return relabelled(best, "specialist")


def relabelled(records: Records, learner: str) -> Records:
    return Records({**records.columns, "learner": np.full(len(records), learner)})


def reward_records(kind: str) -> Records | None:
    """The meta-learners' records with every return normalised per task between the random
    policy (0) and the best specialist on that task (1); None until all are evaluated."""
    learners = evaluations(f"reward_{kind}")
    specialists = evaluations(f"specialists_{kind}")
    randoms = evaluations(f"specialists_{kind}", "random")
    spec = yaml.safe_load(spec_path(f"specialists_{kind}").read_text())
    if not learners or len(specialists) < len(spec["grid"]["family_options.only"]) \
            or not randoms:
        return None
    records = load_evaluation(learners[0])[0]
    for folder in learners[1:]:
        records = records.concat(load_evaluation(folder)[0])
    records = records.concat(best_specialist_rows(kind))
    for folder in randoms:
        records = records.concat(relabelled(load_evaluation(folder)[0], "random"))
    return normalized(records, low="random", high="specialist")


def reward_table(kind: str, out: Path) -> dict | None:
    normed = reward_records(kind)
    if normed is None:
        return None
    summary = report.summarize(normed)
    family, _ = REWARD_FAMILIES[kind]
    frozen = json.loads((evaluations(f"reward_{kind}")[0] / "tasks.json").read_text())
    write_folder(out, records=normed, frozen=frozen,
                 summary={"info": {"normalised": "(R - R_random) / (R_specialist - R_random) "
                                                 "per task"}, "learners": summary},
                 title=f"MAML and RL² on {family}, normalised per task")
    return curves_table(summary)


def hop_terms(trials: int = 16, seed: int = 0) -> dict:
    """What earns the held-out hop's reward, 0.5 x forward speed + 10 x torso height in
    flight: per episode, the mean sum of each reward term, the share of steps in flight
    and the mean speed, over `trials` trials with sampled actions. MAML's meta-policies
    before and after their step (20 episodes of hop), RL² in the first and the 4th
    episode of a trial (it was trained on 4), and the run and hop specialists."""
    family = tasks.get("cheetah-gait")
    hop = family.task_from_dict({"gait": GAITS.index("hop")})
    runs = {folder.parent.name: folder.parent for folder in evaluations("reward_gait")}
    for folder in evaluations("specialists_gait"):
        only = load_evaluation(folder)[2]["family_options"]["only"]
        if only in ("run", "hop"):
            runs[f"{only} specialist"] = folder.parent
    table = {}
    for name, run in runs.items():
        config, model = load_run(run)
        if hasattr(model, "adapt_tasks"):  # MAML: as trained, then after its step
            maml = config.algo_config
            table[name] = trial_terms(family, hop, GaussianAgent(
                model.policy, [model.policy.params()]), trials, 1, seed)[0]
            collector = Collector(family=family, num_envs=maml.episodes_per_task)
            first = adaptation_batches(model, collector, [hop], config=maml, num_steps=0,
                                       seeds=[seed + 1],
                                       episodes_per_task=maml.episodes_per_task)
            table[f"{name}, after its step"] = trial_terms(
                family, hop, GaussianAgent(model.policy, model.adapt_tasks(first)), trials,
                1, seed)[0]
        elif model.policy.memory:  # RL²: episodes 1 and 4 of its trials
            episodes = trial_terms(family, hop, ActorCriticAgent(model.policy), trials,
                                   config.algo_config.episodes_per_trial, seed)
            table[f"{name}, episode 1"] = episodes[0]
            table[f"{name}, episode {len(episodes)}"] = episodes[-1]
        else:
            table[name] = trial_terms(family, hop, ActorCriticAgent(model.policy), trials, 1,
                                      seed)[0]
    return table


class RecordingEnvs:
    """A batched env that keeps the reward terms of every step it takes ([N] each)."""

    def __init__(self, envs) -> None:
        self.envs, self.steps = envs, []

    def step(self, actions):
        out = self.envs.step(actions)
        self.steps.append({k[len("reward_"):]: v for k, v in out[4].items()
                           if k.startswith("reward_")})
        return out

    def __getattr__(self, name):
        return getattr(self.envs, name)


def trial_terms(family, task, agent, trials: int, episodes: int, seed: int) -> list[dict]:
    """Per episode of `trials` trials of `episodes` episodes of `task` (collected as any
    learner samples): each reward term's mean sum, the share of steps in flight (air
    term > 0) and the mean forward speed (hop weighs speed 0.5)."""
    collector = Collector(family=family, num_envs=trials)
    recording = collector.envs = RecordingEnvs(collector.envs)
    batch = collector.collect(agent, [task], trials_per_task=trials, episodes_per_trial=episodes,
                              seed=seed)
    terms = {name: torch.as_tensor(np.stack([step[name] for step in recording.steps]))
             for name in recording.steps[0]}
    rows = []
    for e in range(episodes):
        in_episode = batch.valid_TN & (batch.episode_TN == e)
        steps = in_episode.sum(0).double()
        sums = {name: float((values * in_episode).sum(0).mean()) for name, values in
                terms.items() if bool((values != 0).any())}
        flight = ((terms["air"] > 0) & in_episode).sum(0) / steps
        speed = (terms["forward"] / 0.5 * in_episode).sum(0) / steps
        rows.append({**sums, "flight_fraction": float(flight.mean()),
                     "mean_speed": float(speed.mean())})
    return rows


# Results --------------------------------------------------------------------------------

def plot(results: dict, path: Path) -> None:
    figure, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    observation = results.get("observation", {})
    names = list(observation)
    for i, split in enumerate(("train", "test-id", "test-ood")):
        shown = [(j, observation[n][split]) for j, n in enumerate(names)
                 if split in observation[n]]
        axes[0].bar([j + (i - 1) * 0.27 for j, _ in shown], [e["value"] for _, e in shown],
                    0.27, yerr=[[e["value"] - e["low"] for _, e in shown],
                                [e["high"] - e["value"] for _, e in shown]],
                    capsize=2, label=split)
    axes[0].set_xticks(range(len(names)), [n.replace(" + ", "\n+ ") for n in names],
                       fontsize=7)
    axes[0].set_ylabel("return, k = 0")
    axes[0].set_title("observation: cheetah-distract")
    axes[0].legend(fontsize=7)
    # heavy-tailed returns on cheetah-dyn: its panel shows the IQM over tasks
    panels = {"dynamics": {algo: {split: {str(k): values[f"R({k}) IQM"] for k in SHOWN_K}
                                  for split, values in entry.items()}
                           for algo, entry in results.get("dynamics_robust", {}).items()},
              "reward_vel": results.get("reward_vel", {}),
              "reward_gait": results.get("reward_gait", {})}
    for ax, (name, title) in zip(axes[1:], (("dynamics", "dynamics: cheetah-dyn (IQM)"),
                                            ("reward_vel", "reward: held-out speeds"),
                                            ("reward_gait", "reward: held-out gait (hop)")),
                             strict=True):
        for i, (algo, entry) in enumerate(panels[name].items()):
            for split, style in zip([s for s in entry if s != "seeds"], ("-", "--"),
                                    strict=False):
                ks = sorted(entry[split], key=int)
                means = [entry[split][k]["value"] for k in ks]
                ax.plot([int(k) for k in ks], means, style, marker="o", color=f"C{i}",
                        label=f"{algo} {split}")
        ax.set_xlabel("k (episodes seen)")
        ax.set_ylabel("normalised return" if name.startswith("reward") else "return")
        ax.set_title(title)
        ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    args = arguments(__doc__, EXPERIMENTS, "benchmarks/results/generalization_axes",
                     flag="--experiments")
    results_dir = Path(args.results)
    if not args.summarize:
        for name in args.experiments:
            train_missing(spec_path(name), sweep_folder(name))
    results: dict = {}
    for colours, found in observation_groups().items():
        if len(found) >= 2:  # trained on other colours, their train splits are not comparable
            out = compare(found, results_dir / "observation" / f"colours-{colours}")
            results.setdefault("observation", {}).update(observation_table(out))
    if len(found := evaluations("dynamics")) >= 2:
        out = compare(found, results_dir / "dynamics")
        summary = json.loads((out / "summary.json").read_text())
        results["dynamics"] = curves_table(summary["learners"])
        results["dynamics_robust"] = dynamics_table(out)
        results["dynamics_improvement"] = [row for row in summary["probability_of_improvement"]
                                           if row["k"] in SHOWN_K]
    for kind in REWARD_FAMILIES:
        if len(found := evaluations(f"reward_{kind}")) >= 2:  # the returns themselves
            out = compare(found, results_dir / f"reward-{kind}-returns")
            results[f"reward_{kind}_returns"] = curves_table(
                json.loads((out / "summary.json").read_text())["learners"])
        if evaluations(f"specialists_{kind}"):
            results[f"specialists_{kind}"] = specialist_table(kind)
        table = reward_table(kind, results_dir / f"reward-{kind}")
        if table is not None:
            results[f"reward_{kind}"] = table
    if any(f.parent.name.startswith("maml") for f in evaluations("reward_gait")):
        results["hop_terms"] = hop_terms()
    results_dir.mkdir(parents=True, exist_ok=True)
    Path(f"{results_dir}.json").write_text(json.dumps(
        {"results": results, **provenance(load_seconds=1.0)}, indent=2) + "\n")
    if results:
        plot(results, Path(f"{results_dir}.png"))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
