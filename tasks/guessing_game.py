"""guessing-game: fully observed, yet generalizing to new observations needs memory.

Each episode shows one observation x, of one of C classes, and the agent guesses its
class, one guess per step. A wrong guess costs 1 and the episode goes on with the same
x; a right guess ends it. A Markov policy that guesses wrong on an x it has not seen
repeats its mistake; a policy with memory can eliminate wrong guesses within an episode,
and remember the answer for the next episode of the same task. Guessing right is the
outcome `success`. The option `observations` says what x is.

"synthetic" (the default): x is a noisy copy of one of C = 4 class prototypes, 8
features. A task is one observation: its class `label`, an `instance` id that fixes its
noise, and the noise scale. Train: a finite set of observations (option
`train_instances`, 256 per class by default, noise 1.5, so that even on them a first
guess is often wrong). Test-id: fresh instances, same noise. Test-ood: fresh instances
with noise in [2.5, 3.5), further from their prototypes.

"digits": x is a real image, one of the 1797 8x8 handwritten digits of scikit-learn's
`load_digits` (shipped with scikit-learn, nothing to download), its pixels scaled from
0..16 to [0, 1] and flattened to 64 features; C = 10 classes, the dataset's labels. A task
is an `image` (its index in load_digits; its class is the image's label) and `noise`, the
std of Gaussian pixel noise added to it (a fixed normal vector per image, so a task always
shows the same x) before clipping to [0, 1]. The images are split once and for all by a
fixed permutation: its first DIGITS_HELD_OUT images are held out, the rest are the
training pool. Train: the first `train_images` of the pool (option, 100 by default),
noise 0. Test-id: held-out images, noise 0. Test-ood: held-out images with noise in
[0.25, 0.5), a corruption.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from tasks.family import TaskFamily
from tasks.regions import Param, box, choice, product
from tasks.resources import refuse_unless_fits
from tasks.simple import TaskEnv, check_choice, env_factories
from tasks.vector import SimStep

CLASSES = 4
FEATURES = 8
TRAIN_INSTANCES = 256
TRAIN_NOISE = 1.5
BYTES_PER_TRAIN_INSTANCE = 1600  # peak while building the family (4 boxes, their checks)
PROTOTYPES = np.random.default_rng(20261126).normal(size=(CLASSES, FEATURES))

OBSERVATION_SPACE = spaces.Box(-np.inf, np.inf, (FEATURES,), np.float64)
ACTION_SPACE = spaces.Discrete(CLASSES)

OBSERVATIONS = ("synthetic", "digits")
DIGIT_CLASSES = 10
DIGIT_FEATURES = 64            # 8 x 8 pixels
DIGIT_IMAGES = 1797            # in load_digits
DIGITS_SEED = 20261203         # the split's permutation and the images' noise: fixed forever
DIGITS_HELD_OUT = 600          # the first images of the permutation: test-id and test-ood
TRAIN_IMAGES = 100
DIGITS_OOD_NOISE = (0.25, 0.5)
DIGITS_MAX_NOISE = 1.0         # the declared space of `noise`


def observation(label: int, instance: float, noise: float) -> np.ndarray:
    """The task's x: its prototype plus `noise` times a fixed normal vector of `instance`."""
    seed = int(np.float64(instance).view(np.uint64))
    return PROTOTYPES[int(label)] + noise * np.random.default_rng(seed).normal(size=FEATURES)


@dataclass(frozen=True)
class Digits:
    """load_digits, and the fixed split of its images."""

    images: np.ndarray      # [1797, 64] float64 in [0, 1], read-only
    labels: np.ndarray      # [1797] int64, 0..9
    held_out: np.ndarray    # indices of the held-out images (test-id, test-ood)
    train_pool: np.ndarray  # indices of the others, in order: train takes the first ones


@functools.lru_cache(maxsize=1)
def digits() -> Digits:
    """The digits data, loaded once (scikit-learn is imported only for this variant)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.asarray(data.data, dtype=np.float64) / 16.0
    labels = np.asarray(data.target, dtype=np.int64)
    if images.shape != (DIGIT_IMAGES, DIGIT_FEATURES):
        raise RuntimeError(f"load_digits gave images of shape {images.shape}, expected "
                           f"{(DIGIT_IMAGES, DIGIT_FEATURES)}")
    order = np.random.default_rng(DIGITS_SEED).permutation(DIGIT_IMAGES)
    for array in (images, labels, order):
        array.flags.writeable = False
    return Digits(images=images, labels=labels, held_out=order[:DIGITS_HELD_OUT],
                  train_pool=order[DIGITS_HELD_OUT:])


def digit_observation(image: int, noise: float) -> np.ndarray:
    """The task's x: the image plus `noise` times a fixed normal vector of the image,
    clipped to [0, 1] (noise 0: the image itself)."""
    image = int(image)
    z = np.random.default_rng([DIGITS_SEED, image]).normal(size=DIGIT_FEATURES)
    return np.clip(digits().images[image] + noise * z, 0.0, 1.0)


def digit_label(image: int, noise: float = 0.0) -> int:
    """The class of a digits task: its image's label in the dataset."""
    return int(digits().labels[int(image)])


def synthetic_label(label: int, instance: float, noise: float) -> int:
    return int(label)


@dataclass(frozen=True)
class Game:
    """One variant of the game: its classes, its observations, and what a task shows and
    asks, from the task's parameter values (as keyword arguments)."""

    classes: int
    observation_space: spaces.Box
    observe: Callable[..., np.ndarray]  # the task's x
    label: Callable[..., int]           # the task's class


SYNTHETIC = Game(classes=CLASSES, observation_space=OBSERVATION_SPACE, observe=observation,
                 label=synthetic_label)
DIGITS = Game(classes=DIGIT_CLASSES,
              observation_space=spaces.Box(0.0, 1.0, (DIGIT_FEATURES,), np.float64),
              observe=digit_observation, label=digit_label)


class GuessingGameSim:
    """N games stepped with array operations."""

    def __init__(self, num_envs: int, game: Game = SYNTHETIC) -> None:
        self.game = game
        self.single_observation_space = game.observation_space
        self.single_action_space = spaces.Discrete(game.classes)
        self.x_NO = np.zeros((num_envs, *game.observation_space.shape))
        self.label_N = np.zeros(num_envs, dtype=np.int64)

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        rows = [dict(zip(task, values, strict=True))
                for values in zip(*task.values(), strict=True)]
        self.label_N = np.array([self.game.label(**row) for row in rows], dtype=np.int64)
        self.x_NO = np.stack([self.game.observe(**row) for row in rows])

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        return self.x_NO[ids].copy()

    def step(self, action_N: np.ndarray, active_N: np.ndarray) -> SimStep:
        right_N = action_N == self.label_N
        reward_N = np.where(right_N, 0.0, -1.0)
        return SimStep(obs_NO=self.x_NO.copy(), reward_N=reward_N, terms={"guess": reward_N},
                       terminated_N=right_N, diverged_N=np.zeros(len(action_N), dtype=bool),
                       outcomes={"success": right_N})


class GuessingGameEnv(TaskEnv):
    """The single reference env, written with scalars."""

    def __init__(self, *, family: TaskFamily, task: Any, game: Game = SYNTHETIC) -> None:
        self.game = game
        self.observation_space = game.observation_space
        self.action_space = spaces.Discrete(game.classes)
        super().__init__(family=family, task=task)

    def first_observation(self) -> np.ndarray:
        values = self.family.task_to_dict(self.task)
        self._label = self.game.label(**values)
        self._x = self.game.observe(**values)
        return self._x.copy()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.check_ready()
        right = check_choice(action, self.game.classes, "class") == self._label
        reward = 0.0 if right else -1.0
        info = {"diverged": False, "reward_guess": reward, "outcome_success": right}
        return self._x.copy(), reward, right, False, info


def factories(game: Game) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """make_vec and make_env of a variant."""
    return env_factories(functools.partial(GuessingGameSim, game=game),
                         functools.partial(GuessingGameEnv, game=game))


make_vec, make_env = factories(SYNTHETIC)
make_digits_vec, make_digits_env = factories(DIGITS)


def refuse_unless_default(option: str, value: Any, default: int, observations: str,
                          what: str) -> None:
    if type(value) is not type(default) or value != default:
        raise ValueError(f"family 'guessing-game': option {option} must be left at its "
                         f"default ({default}) when option observations is "
                         f"{observations!r} ({option} sets {what}), got {value!r}")


def guessing_game(*, observations: Literal["synthetic", "digits"] = "synthetic",
                  train_instances: int = TRAIN_INSTANCES,
                  train_images: int = TRAIN_IMAGES) -> TaskFamily:
    """Options: observations, "synthetic" (noisy copies of 4 prototypes) or "digits"
    (sklearn's 8x8 digit images, 10 classes); train_instances (synthetic only), the number
    of training observations per class; train_images (digits only), the number of
    training images, 1 to the size of the training pool (1197)."""
    if not isinstance(observations, str) or observations not in OBSERVATIONS:
        raise ValueError(f"family 'guessing-game': option observations must be one of "
                         f"{list(OBSERVATIONS)}, got {observations!r}")
    if observations == "digits":
        return digits_game(train_instances=train_instances, train_images=train_images)
    refuse_unless_default("train_images", train_images, TRAIN_IMAGES, observations,
                          "the digits variant's training images")
    if isinstance(train_instances, bool) or not isinstance(train_instances, int) \
            or train_instances < 1:
        raise ValueError(f"family 'guessing-game': option train_instances must be an "
                         f"integer >= 1, got {train_instances!r}")
    refuse_unless_fits(f"family 'guessing-game' with option train_instances="
                       f"{train_instances}", train_instances * BYTES_PER_TRAIN_INSTANCE)
    labels = choice("label", range(CLASSES))
    instances = choice("instance", [i / train_instances for i in range(train_instances)])
    return TaskFamily(
        name="guessing-game",
        params=[Param("label", values=tuple(range(CLASSES)), doc="the observation's class"),
                Param("instance", 0.0, 1.0, doc="fixes the observation's noise"),
                Param("noise", 0.0, 4.0, doc="distance from the class prototype")],
        splits={"train": product([labels, instances,
                                  box(noise=(TRAIN_NOISE, TRAIN_NOISE))]),
                "test-id": product([labels, box(instance=(0.0, 1.0),
                                                noise=(TRAIN_NOISE, TRAIN_NOISE))]),
                "test-ood": product([labels, box(instance=(0.0, 1.0), noise=(2.5, 3.5))])},
        horizon=CLASSES + 2, make_vec=make_vec, make_env=make_env, outcomes=("success",),
        default_task={"label": 0, "instance": 0.0, "noise": TRAIN_NOISE},
        doc=f"guess the class of x ({CLASSES} classes); train: {train_instances} x per "
            "class; OOD: noisier x")


def digits_game(*, train_instances: int, train_images: int) -> TaskFamily:
    """The digits variant (see the module's docstring)."""
    refuse_unless_default("train_instances", train_instances, TRAIN_INSTANCES, "digits",
                          "the synthetic game's training observations")
    pool = DIGIT_IMAGES - DIGITS_HELD_OUT
    if isinstance(train_images, bool) or not isinstance(train_images, int) \
            or not 1 <= train_images <= pool:
        raise ValueError(f"family 'guessing-game': option train_images must be an integer "
                         f"in [1, {pool}] (the training pool), got {train_images!r}")
    data = digits()
    train = [int(i) for i in data.train_pool[:train_images]]
    held_out = choice("image", sorted(int(i) for i in data.held_out))
    return TaskFamily(
        name="guessing-game",
        params=[Param("image", values=tuple(range(DIGIT_IMAGES)),
                      labels=tuple(str(i) for i in range(DIGIT_IMAGES)),
                      doc="the image's index in sklearn's load_digits (its label is the "
                          "class)"),
                Param("noise", 0.0, DIGITS_MAX_NOISE,
                      doc="std of the Gaussian pixel noise (pixels in [0, 1])")],
        splits={"train": product([choice("image", sorted(train)), box(noise=(0.0, 0.0))]),
                "test-id": product([held_out, box(noise=(0.0, 0.0))]),
                "test-ood": product([held_out, box(noise=DIGITS_OOD_NOISE)])},
        horizon=DIGIT_CLASSES + 2, make_vec=make_digits_vec, make_env=make_digits_env,
        outcomes=("success",), default_task={"image": train[0], "noise": 0.0},
        doc=f"guess the digit of an 8x8 image of sklearn's load_digits ({DIGIT_CLASSES} "
            f"classes); train: {train_images} images; OOD: held-out images with pixel "
            "noise")
