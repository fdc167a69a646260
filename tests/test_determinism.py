"""Results do not depend on the machine: the demo's settings are the same whatever the
core count, and MuJoCo's thread count does not change a single simulated number."""

import numpy as np
import torch

import tasks
from fewshot.collect import Collector, env_spec
from fewshot.collect.agents import UniformAgent
from fewshot.demo import demo_config


def test_the_demo_settings_do_not_depend_on_the_core_count(monkeypatch):
    settings = []
    for cores in (1, 2, 64):
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, cores=cores: set(range(cores)))
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        settings.append(demo_config(30))
    assert settings[0] == settings[1] == settings[2]


def test_mujoco_threads_do_not_change_the_simulation():
    family = tasks.get("cheetah-dyn")
    task_list = family.sample(4, "test-ood", np.random.default_rng(0))
    batches = []
    for nthread in (1, 2, 3):
        collector = Collector(family=family, num_envs=4, horizon=30, nthread=nthread)
        batches.append(collector.collect(UniformAgent(env_spec(family)), task_list, seed=7))
        collector.envs.close()
    for other in batches[1:]:
        assert torch.equal(batches[0].obs_TNO, other.obs_TNO)
        assert torch.equal(batches[0].rew_TN, other.rew_TN)
