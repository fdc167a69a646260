"""PPO over trials, registered as three algorithms: "rl2" (RL², Duan et al. 2016: a GRU
actor-critic that adapts by memory), "ppo" (multi-task PPO, a Markov policy: the
zero-shot, domain-randomized baseline) and "oracle" (the same, told the task)."""

from __future__ import annotations

from fewshot import registry
from fewshot.algos.ppo import learners
from fewshot.algos.ppo.config import MarkovPPOConfig, RL2Config
from fewshot.algos.ppo.ppo import PPO
from fewshot.algos.ppo.trainer import PPOTrainer
from fewshot.collect import EnvSpec
from fewshot.nn.actor_critic import MarkovActorCritic, RecurrentActorCritic


def build_rl2(config: RL2Config, spec: EnvSpec) -> PPO:
    policy = RecurrentActorCritic(obs_size=spec.obs_size, action_size=spec.action_size,
                                  discrete=spec.discrete, hidden_size=config.hidden_size,
                                  init_log_std=config.init_log_std)
    return PPO(policy=policy, config=config, bptt_window=config.bptt_window)


def markov_builder(*, sees_task: bool):
    def build(config: MarkovPPOConfig, spec: EnvSpec) -> PPO:
        policy = MarkovActorCritic(obs_size=spec.obs_size, action_size=spec.action_size,
                                   discrete=spec.discrete, hidden_sizes=config.hidden_sizes,
                                   init_log_std=config.init_log_std,
                                   activation=config.activation,
                                   task_size=spec.task_size if sees_task else 0)
        return PPO(policy=policy, config=config)
    return build


RL2 = registry.register(registry.Algorithm(
    name="rl2", config=RL2Config, build=build_rl2, trainer=PPOTrainer,
    learners={"trained": learners.trained, "greedy": learners.greedy},
    doc="RL²: a GRU actor-critic trained by PPO over trials; adapts by memory"))
MULTI_TASK_PPO = registry.register(registry.Algorithm(
    name="ppo", config=MarkovPPOConfig, build=markov_builder(sees_task=False),
    trainer=PPOTrainer, learners={"trained": learners.trained, "greedy": learners.greedy,
              "finetune": learners.finetune},
    doc="multi-task PPO: a Markov policy across the training tasks, no adaptation"))
ORACLE = registry.register(registry.Algorithm(
    name="oracle", config=MarkovPPOConfig, build=markov_builder(sees_task=True),
    trainer=PPOTrainer, learners={"trained": learners.trained},
    doc="multi-task PPO told each task's parameters: the upper reference"))
