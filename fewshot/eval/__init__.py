"""Evaluation: the harness, task sets, records, statistics and reports. It scores any
learner through the protocol in eval/learner.py and never imports an algorithm."""
