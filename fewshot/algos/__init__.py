"""The built-in algorithms; each folder registers itself with fewshot.registry."""

from fewshot.algos import maml, ppo

__all__ = ["maml", "ppo"]
