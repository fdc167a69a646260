"""Core maths as pure functions: returns, advantages, baselines, trust-region steps."""
