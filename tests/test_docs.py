"""The code in docs/ (task families, evaluation) runs as written and does what it says."""

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "task-families.md"


def runnable_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return [b for b in blocks if b.startswith("import")]


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=DOC.parent.parent)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_docs_have_the_quickstart_and_the_worked_example():
    blocks = runnable_blocks()
    assert len(blocks) == 2
    assert len(blocks[1].strip().splitlines()) <= 35


def test_quickstart_runs():
    code = runnable_blocks()[0] + "\nprint(obs.shape, len(envs.tasks), env.unwrapped.task)\n"
    out = run(code)
    assert out.startswith("(20, 17) 20 CheetahVelTask(goal_velocity=2.")


def test_worked_example_defines_a_working_family():
    code = runnable_blocks()[1] + """
import gymnasium
assert tasks.get("cheetah-height") is family
assert set(info) >= {"reward_forward", "reward_height", "reward_ctrl"}
total = info["reward_forward"] + info["reward_height"] + info["reward_ctrl"]
assert abs(total - reward).max() < 1e-12
ood = family.sample(50, "test-ood", np.random.default_rng(1))
assert all(0.2 <= t.target_height < 0.4 for t in ood)
env = gymnasium.make("fewshot/cheetah-height-v0")
print(env.reset(seed=0)[0].shape, obs.shape)
"""
    assert run(code).strip() == "(17,) (8, 17)"


def test_evaluation_doc_example_scores_the_oracle_above_the_random_policy():
    text = (DOC.parent / "evaluation.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)
              if b.startswith("import")]
    assert len(blocks) == 1
    out = run(blocks[0])
    assert "### oracle" in out and "### random" in out
    assert (DOC.parent / "images" / "demo-adaptation-curves.png").is_file()
