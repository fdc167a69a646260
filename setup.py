"""Packaging for fewshot (learners, harness) and tasks (task families)."""

from setuptools import find_packages, setup

setup(
    name="fewshot",
    version="0.1.0",
    description="Meta-reinforcement learning and few-shot adaptation, measured honestly.",
    python_requires=">=3.11",
    packages=find_packages(include=["fewshot", "fewshot.*", "tasks", "tasks.*"]),
    install_requires=[
        "torch==2.13.0",
        "numpy==2.4.6",
        "gymnasium[mujoco]==1.4.0",
        "mujoco==4.0.0",
        "jsonargparse[signatures]==4.53.0",
        "pyyaml==6.0.3",
        "tqdm==4.70.1",
        "tensorboard==2.21.0",
        "matplotlib==3.11.2",
        "scipy==1.17.1",
        "minigrid==3.2.0",
        "scikit-learn==1.9.1",
    ],
    extras_require={
        "bench": [
            "envpool==1.2.5",
        ],
        "sweep": [
            "ray[tune]==2.60.0",
            "optuna==5.1.0",
        ],
        "test": [
            "pytest==9.2.0",
            "higher==0.2.1",
            "hypothesis==6.170.17",
            "ruff==0.17.5",
        ],
    },
    entry_points={"console_scripts": ["fewshot=fewshot.cli:main"]},
)
