"""The fewshot command line: families and rollouts, end to end, and its bad-input errors."""

import pytest

import tasks
from fewshot import cli, rollouts


def test_families_lists_every_family_with_its_splits(capsys):
    assert cli.main(["families", "-v"]) == 0
    out = capsys.readouterr().out
    for name in tasks.names():
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert ", ".join(tasks.get(name).splits) in row
    assert "OOD gait: hop" in out


def test_rollouts_prints_a_row_per_family(capsys):
    assert cli.main(["rollouts", "--families", "point-nav", "cheetah-gait", "--num-envs", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("family"))
    assert "env-steps/s" in header
    point = next(line for line in lines if line.startswith("point-nav"))
    gait = next(line for line in lines if line.startswith("cheetah-gait"))
    assert point.split()[1:4] == ["inf", "inf", "inf"]
    assert gait.split()[1:7] == ["4", "4", "1", "17", "6", "200"]


def test_rollouts_refuses_unknown_families():
    with pytest.raises(SystemExit, match=r"unknown families.*'no-such'.*known"):
        cli.main(["rollouts", "--families", "no-such"])


def test_rollouts_refuses_nonpositive_num_envs(capsys):
    with pytest.raises(SystemExit):
        cli.main(["rollouts", "--num-envs", "0"])
    assert "must be an integer >= 1" in capsys.readouterr().err


def test_random_returns_sum_rewards_until_each_episode_ends():
    family = tasks.get("point-nav")
    goal = family.task_from_dict({"goal_x": 0.3, "goal_y": -0.2})
    returns, speed = rollouts.random_episode_returns(family, [goal] * 3, seed=0)
    assert returns.shape == (3,) and speed > 0
    # the point moves at most 0.1 per axis per step, so it stays within 0.1 * sqrt(2) * t of
    # the origin: the distance to the goal after step t is at least |goal| - 0.1414 t
    bound = sum(max(0.0, (0.3**2 + 0.2**2) ** 0.5 - 0.1 * 2**0.5 * t) for t in range(1, 101))
    assert (returns <= -bound + 1e-9).all()
