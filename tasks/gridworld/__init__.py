"""Gridworld families: levels under MiniGrid's rules, simulated in batches with numpy
(grid.py), with layouts from MiniGrid's generators (lava_crossing.py)."""
