"""Sweeps: many training runs (a grid, samples, seeds) on Ray Tune, each an ordinary run
folder, scored by the harness and compared at the end. See docs/sweeps.md."""
