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
   generalization_specialists_{vel,gait}.yaml), R(0) and R(k).

Each SPEC is a sweep in benchmarks/sweeps/generalization-<name>; an interrupted sweep
resumes where it stopped, and --summarize reports whatever is evaluated so far. Results go
to benchmarks/results/generalization_axes.json, the figure to generalization_axes.png, the
comparisons (records included) to benchmarks/results/generalization_axes/.

    .venv/bin/python benchmarks/generalization_axes.py [--experiments observation] [--summarize]
"""

from __future__ import annotations

import json
from pathlib import Path

from sweep_experiment import arguments, train_missing

from fewshot.provenance import provenance

# in the order they train: the quick ones first, the references before what they normalise
EXPERIMENTS = ("observation", "specialists_vel", "specialists_gait", "reward_vel",
               "reward_gait", "dynamics")


def spec_path(name: str) -> Path:
    return Path("benchmarks") / f"generalization_{name}.yaml"


def sweep_folder(name: str) -> Path:
    return Path("benchmarks/sweeps") / f"generalization-{name.replace('_', '-')}"


def main() -> None:
    args = arguments(__doc__, EXPERIMENTS, "benchmarks/results/generalization_axes",
                     flag="--experiments")
    results_dir = Path(args.results)
    if not args.summarize:
        for name in args.experiments:
            train_missing(spec_path(name), sweep_folder(name))
    report = {"results": {}, **provenance(load_seconds=1.0)}
    results_dir.mkdir(parents=True, exist_ok=True)
    Path(f"{results_dir}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
