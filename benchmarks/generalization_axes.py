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
   random policy (0) and a specialist trained on that task alone (1;
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
from fewshot.collect.collector import Trials
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


# 3. Reward ------------------------------------------------------------------------------

def specialist_rows(folder: Path, param: str) -> Records:
    """The rows of a specialist's evaluation on the task it was trained on, as the learner
    "specialist"."""
    records, _, info = load_evaluation(folder)
    only = info["family_options"]["only"]
    value = GAITS.index(only) if param == "gait" else float(only)
    own = records.where(**{TASK_PREFIX + param: value})
    if not len(own):
        raise ValueError(f"{folder}: the specialist on {only} was not scored on its own task")
    return relabelled(own, "specialist")


def relabelled(records: Records, learner: str) -> Records:
    return Records({**records.columns, "learner": np.full(len(records), learner)})


def reward_records(kind: str) -> Records | None:
    """The meta-learners' records with every return normalised per task between the random
    policy (0) and the specialist of that task (1); None until all are evaluated."""
    _, param = REWARD_FAMILIES[kind]
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
    for folder in specialists:
        records = records.concat(specialist_rows(folder, param))
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


def hop_terms(episodes: int = 16, seed: int = 0) -> dict:
    """What earns the held-out hop's reward, 0.5 x forward speed + 10 x torso height in
    flight: the mean per-episode sum of each term, the share of steps in flight and the
    mean speed, for each MAML run's meta-policy (zero-shot) and the run and hop
    specialists, over `episodes` episodes of sampled actions."""
    family = tasks.get("cheetah-gait")
    hop = family.task_from_dict({"gait": GAITS.index("hop")})
    policies = {folder.parent.name: folder.parent
                for folder in evaluations("reward_gait") if folder.parent.name.startswith("maml")}
    for folder in evaluations("specialists_gait"):
        only = load_evaluation(folder)[2]["family_options"]["only"]
        if only in ("run", "hop"):
            policies[f"{only} specialist"] = folder.parent
    table = {}
    for name, run in policies.items():
        config, model = load_run(run)
        if not hasattr(model, "adapt_tasks"):
            table[name] = episode_terms(family, hop, ActorCriticAgent(model.policy), episodes,
                                        seed)
            continue
        table[name] = episode_terms(family, hop, GaussianAgent(model.policy,
                                                               [model.policy.params()]),
                                    episodes, seed)
        # after its step on 20 episodes of hop, as at evaluation
        maml = config.algo_config
        collector = Collector(family=family, num_envs=maml.episodes_per_task)
        first = adaptation_batches(model, collector, [hop], config=maml, num_steps=0,
                                   seeds=[seed + 1], episodes_per_task=maml.episodes_per_task)
        table[f"{name}, after its step"] = episode_terms(
            family, hop, GaussianAgent(model.policy, model.adapt_tasks(first)), episodes, seed)
    return table


def episode_terms(family, task, agent, episodes: int, seed: int) -> dict:
    """One episode in each of `episodes` simulations of `task`, actions from `agent`."""
    envs = family.make_vec([task] * episodes)
    obs, _ = envs.reset(seed=seed)
    agent.begin(Trials(num_tasks=1, trials_per_task=episodes,
                       task_NP=torch.zeros(episodes, 1, dtype=torch.float64)), seed)
    sums: dict[str, np.ndarray] = {}
    flight, speed = np.zeros(episodes), np.zeros(episodes)
    for _ in range(envs.horizon):
        with torch.no_grad():
            action = agent.act(torch.as_tensor(obs, dtype=agent.dtype))
        obs, reward, term, trunc, info = envs.step(action.act.numpy())
        for key, value in info.items():
            if key.startswith("reward_"):
                sums[key[len("reward_"):]] = sums.get(key[len("reward_"):], 0.0) + value
        flight += info["reward_air"] > 0
        speed += info["reward_forward"] / 0.5
        agent.observe(action.act, reward, term | trunc, np.ones(episodes, dtype=bool))
    return {**{term: float(np.mean(total)) for term, total in sums.items()
               if np.any(total != 0)},
            "flight_fraction": float(np.mean(flight) / envs.horizon),
            "mean_speed": float(np.mean(speed) / envs.horizon)}


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
    for ax, (name, title) in zip(axes[1:], (("dynamics", "dynamics: cheetah-dyn"),
                                            ("reward_vel", "reward: held-out speeds"),
                                            ("reward_gait", "reward: held-out gait (hop)")),
                             strict=True):
        for i, (algo, entry) in enumerate(results.get(name, {}).items()):
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
        results["dynamics"] = curves_table(
            json.loads((out / "summary.json").read_text())["learners"])
    for kind in REWARD_FAMILIES:
        if len(found := evaluations(f"reward_{kind}")) >= 2:  # the returns themselves
            out = compare(found, results_dir / f"reward-{kind}-returns")
            results[f"reward_{kind}_returns"] = curves_table(
                json.loads((out / "summary.json").read_text())["learners"])
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
