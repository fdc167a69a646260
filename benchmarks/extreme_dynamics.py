"""Extreme dynamics: no exploded simulation passes a huge or non-finite number unflagged.

For the cheetah (cheetah-dyn) and the ant (ant-dyn), the sweep scales mass (and
inertia) 0.001-100x, friction 0-100x, damping 0-1000x, gravity 0-10x and actuator gear
0-100x, in these classes of settings:
  axis-<name>  one axis over log-spaced values (and 0 where its range starts at 0),
               every other factor 1;
  corners      every combination of the axes' lowest and highest values (32);
  ood-corners  every corner of the declared test-ood box [0.25, 4)^5, with 3.99 as its
               top, as in the bug report (32);
  random       random combinations: each axis log-uniform over its range, and 0 with
               probability 0.1 where the range starts at 0.
Each setting runs under four kinds of actions: uniform in the action box, random box
corners, random signs times 1e3 and random signs times 1e200 (float64 actions: float32
cannot hold 1e200), each on `--repeats` simulations for `--steps` steps, batched, with a
horizon of `--steps` and next-step autoreset (a simulation that ends starts over).

A step is huge when |obs|, |reward| or a reward term exceeds 1e6, or any of them is not
finite. The number that must be 0: huge steps not flagged `info["diverged"]`. Also
counted per robot, class and action kind: simulated steps (autoreset steps excluded),
flagged steps, flagged steps that break the contract (not terminated, a nonzero reward
or reward term, an observation outside the robot's bound), simulations that ever
flagged, and the largest |obs| and |reward| of the unflagged steps.

How the declared spaces are bypassed: the family's batched env is built with its
default task, then `LocomotionSim.set_factors` writes default * factor into every
simulation's model fields (as set_tasks does for tasks the family has checked). The
factors come from the family's own `Scaling.factors_for`, which turns scale arrays into
factors without checking them against any range.

Writes benchmarks/results/extreme_dynamics.json. Run alone on the machine:
  .venv/bin/python benchmarks/extreme_dynamics.py
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np

import tasks
from fewshot.provenance import provenance
from tasks.locomotion.dynamics import SCALED_FIELDS, Scaling

HUGE = 1e6
AXES = tuple(SCALED_FIELDS)  # mass, friction, damping, gravity, gear
RANGES = {"mass": (0.001, 100.0), "friction": (0.0, 100.0), "damping": (0.0, 1000.0),
          "gravity": (0.0, 10.0), "gear": (0.0, 100.0)}
SMALLEST_NONZERO = 0.01  # where log spacing starts on an axis whose range starts at 0
OOD_CORNER = (0.25, 3.99)
ACTION_SCALES = {"uniform": None, "box-corners": 1.0, "1e3": 1e3, "1e200": 1e200}
ROBOTS = {"cheetah": "cheetah-dyn", "ant": "ant-dyn"}


def axis_values(axis: str, count: int) -> np.ndarray:
    low, high = RANGES[axis]
    values = np.geomspace(low if low > 0 else SMALLEST_NONZERO, high, count)
    return np.concatenate([[0.0], values]) if low == 0 else values


def setting_classes(values_per_axis: int, random_count: int,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Scale factors [S, 5] per class of settings (columns in the order of AXES)."""
    classes = {}
    for j, axis in enumerate(AXES):
        values = axis_values(axis, values_per_axis)
        rows = np.ones((len(values), len(AXES)))
        rows[:, j] = values
        classes[f"axis-{axis}"] = rows
    classes["corners"] = np.array(list(itertools.product(*(RANGES[a] for a in AXES))))
    classes["ood-corners"] = np.array(list(itertools.product(OOD_CORNER, repeat=len(AXES))))
    low = np.array([max(RANGES[a][0], SMALLEST_NONZERO) for a in AXES])
    high = np.array([RANGES[a][1] for a in AXES])
    random = np.exp(rng.uniform(np.log(low), np.log(high), (random_count, len(AXES))))
    can_be_zero = np.array([RANGES[a][0] == 0 for a in AXES])
    random[(rng.random(random.shape) < 0.1) & can_be_zero] = 0.0
    classes["random"] = random
    return classes


@dataclasses.dataclass
class Counts:
    sims: int = 0
    steps: int = 0
    flagged: int = 0
    unflagged_huge: int = 0
    flagged_breaking_contract: int = 0
    sims_that_flagged: int = 0
    max_abs_obs_unflagged: float = 0.0
    max_abs_reward_unflagged: float = 0.0


def sweep_robot(robot: str, classes: dict[str, np.ndarray], *, steps: int, repeats: int,
                seed: int) -> tuple[dict[str, dict[str, Counts]], dict[str, float]]:
    """Counts per class and action kind, from one batched env holding every setting, and
    the robot's bounds."""
    family = tasks.get(ROBOTS[robot])
    labels = [(name, kind) for name, rows in classes.items() for _ in rows
              for kind in ACTION_SCALES for _ in range(repeats)]
    scales_N5 = np.repeat(np.concatenate(list(classes.values())),
                          len(ACTION_SCALES) * repeats, axis=0)
    kind_N = np.array([kind for _, kind in labels])
    venv = family.make_vec([family.default_task] * len(labels), seed=seed, horizon=steps)
    factors = Scaling().factors_for(venv.sim.robot, {f"{a}_scale": scales_N5[:, j]
                                                     for j, a in enumerate(AXES)})
    venv.sim.set_factors(factors)
    venv.reset()
    bounds = venv.sim.robot.bounds
    N, A = venv.num_envs, venv.single_action_space.shape[0]
    rng = np.random.default_rng(seed)
    simulated_N, flagged_N, huge_N, broken_N = (np.zeros(N, dtype=np.int64) for _ in range(4))
    max_obs_N, max_reward_N = np.zeros(N), np.zeros(N)
    resetting_N = np.zeros(N, dtype=bool)
    for _ in range(steps):
        action_NA = rng.uniform(-1.0, 1.0, (N, A))
        for kind, scale in ACTION_SCALES.items():
            if scale is not None:
                rows = kind_N == kind
                action_NA[rows] = scale * rng.choice([-1.0, 1.0], (rows.sum(), A))
        obs, reward, terminated, truncated, info = venv.step(action_NA)
        terms = np.array([v for k, v in info.items() if k.startswith("reward_")])
        diverged = info["diverged"]
        with np.errstate(invalid="ignore"):
            abs_obs = np.abs(obs).max(axis=1)
            huge = ~(abs_obs <= HUGE) | ~(np.abs(reward) <= HUGE) \
                | ~(np.abs(terms) <= HUGE).all(axis=0)
            broken = diverged & (~terminated | (reward != 0) | (terms != 0).any(axis=0)
                                 | ~(abs_obs <= bounds.observation))
        simulated_N += ~resetting_N
        flagged_N += diverged
        huge_N += huge & ~diverged
        broken_N += broken
        kept = ~diverged & ~resetting_N
        max_obs_N[kept] = np.maximum(max_obs_N[kept], abs_obs[kept])
        max_reward_N[kept] = np.maximum(max_reward_N[kept], np.abs(reward[kept]))
        resetting_N = terminated | truncated
    venv.close()
    out: dict[str, dict[str, Counts]] = {}
    for name in classes:
        for kind in ACTION_SCALES:
            mine = np.array([label == (name, kind) for label in labels])
            out.setdefault(name, {})[kind] = Counts(
                sims=int(mine.sum()), steps=int(simulated_N[mine].sum()),
                flagged=int(flagged_N[mine].sum()),
                unflagged_huge=int(huge_N[mine].sum()),
                flagged_breaking_contract=int(broken_N[mine].sum()),
                sims_that_flagged=int((flagged_N[mine] > 0).sum()),
                max_abs_obs_unflagged=float(max_obs_N[mine].max()),
                max_abs_reward_unflagged=float(max_reward_N[mine].max()))
    return out, dataclasses.asdict(bounds)


def total(counts: list[Counts]) -> Counts:
    summed = Counts()
    for c in counts:
        for f in dataclasses.fields(Counts):
            mine, theirs = getattr(summed, f.name), getattr(c, f.name)
            setattr(summed, f.name, max(mine, theirs) if f.name.startswith("max_")
                    else mine + theirs)
    return summed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="env-steps per simulation")
    parser.add_argument("--repeats", type=int, default=2,
                        help="simulations per setting and action kind")
    parser.add_argument("--values-per-axis", type=int, default=10)
    parser.add_argument("--random", type=int, default=96, help="random settings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/extreme_dynamics.json")
    args = parser.parse_args()
    started = time.perf_counter()
    classes = setting_classes(args.values_per_axis, args.random,
                              np.random.default_rng(args.seed))
    report = {**provenance(load_seconds=1.0),
              "settings": {"steps": args.steps, "repeats": args.repeats,
                           "values_per_axis": args.values_per_axis, "random": args.random,
                           "seed": args.seed, "huge": HUGE, "ranges": RANGES,
                           "ood_corner_values": OOD_CORNER,
                           "action_kinds": list(ACTION_SCALES),
                           "settings_per_class": {k: len(v) for k, v in classes.items()}},
              "robots": {}}
    for robot, family in ROBOTS.items():
        robot_started = time.perf_counter()
        counts, bounds = sweep_robot(robot, classes, steps=args.steps,
                                     repeats=args.repeats, seed=args.seed)
        every = [c for kinds in counts.values() for c in kinds.values()]
        report["robots"][robot] = {
            "family": family,
            "bounds": bounds,
            "seconds": time.perf_counter() - robot_started,
            "total": dataclasses.asdict(total(every)),
            "by_class": {name: {"all": dataclasses.asdict(total(list(kinds.values()))),
                                **{k: dataclasses.asdict(c) for k, c in kinds.items()}}
                         for name, kinds in counts.items()}}
        print(f"{robot}: " + ", ".join(f"{k} {v}" for k, v in
                                        report["robots"][robot]["total"].items()))
        for name, kinds in counts.items():
            print(f"  {name:16s} " + "  ".join(
                f"{k}: {c.flagged}/{c.steps} flagged, {c.unflagged_huge} unflagged huge"
                for k, c in kinds.items()))
    report["unflagged_huge_total"] = sum(r["total"]["unflagged_huge"]
                                         for r in report["robots"].values())
    report["flagged_breaking_contract_total"] = sum(
        r["total"]["flagged_breaking_contract"] for r in report["robots"].values())
    report["wall_seconds"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"unflagged huge steps: {report['unflagged_huge_total']}; flagged steps breaking "
          f"the contract: {report['flagged_breaking_contract_total']}; "
          f"{report['wall_seconds']:.0f} s")
    if report["unflagged_huge_total"] or report["flagged_breaking_contract_total"]:
        raise SystemExit("the divergence contract is broken; see " + args.out)


if __name__ == "__main__":
    main()
