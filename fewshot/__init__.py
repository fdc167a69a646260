"""fewshot: meta-reinforcement learning and few-shot adaptation on `tasks` families."""

__version__ = "0.1.0"
