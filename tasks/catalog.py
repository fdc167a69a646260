"""The built-in task families, by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from tasks.bandit import bandit
from tasks.family import TaskFamily
from tasks.gridworld.lava_crossing import lava_crossing
from tasks.gridworld.lava_jump import lava_jump
from tasks.gridworld.lava_world import lava_world
from tasks.gridworld.maze import maze
from tasks.guessing_game import guessing_game
from tasks.locomotion import ANT, CHEETAH, locomotion_family
from tasks.locomotion.dynamics import CrippledLeg, Scaling
from tasks.locomotion.observations import Distractors
from tasks.locomotion.rewards import Direction, Forward, Gait, PlanarDirection, TargetVelocity
from tasks.point_nav import point_nav

GAITS = Gait().names


def cheetah_vel(*, only: float = -1.0) -> TaskFamily:
    """only = a speed v in [0, 3]: a specialist's family, trained on v alone (no test-ood
    when v is an OOD speed); the default -1 trains on the whole ID range."""
    if only != -1.0 and not 0.0 <= only <= 3.0:
        raise ValueError(f"family 'cheetah-vel': option only must be a speed in [0, 3] m/s "
                         f"(or -1: the whole ID range), got {only}")
    train = (0.0, 2.0) if only == -1.0 else (only, only)
    ood = (2.0, 3.0) if only < 2.0 else None  # test-ood never overlaps train
    return locomotion_family(
        name="cheetah-vel", robot=CHEETAH, reward=TargetVelocity(train=train, ood=ood),
        horizon=200, doc="HalfCheetah at a target speed; ID v in [0, 2), OOD [2, 3) m/s"
                         + (f"; trained on {only:g} m/s only" if only != -1.0 else ""))


def cheetah_dir() -> TaskFamily:
    return locomotion_family(
        name="cheetah-dir", robot=CHEETAH, reward=Direction(), horizon=100,
        doc="HalfCheetah forward or backward; no OOD split")


def cheetah_gait(*, only: Literal["", *GAITS] = "") -> TaskFamily:  # type: ignore[valid-type]
    """only = a gait: a specialist's family, trained on that gait alone."""
    return locomotion_family(
        name="cheetah-gait", robot=CHEETAH, reward=Gait(only=only), horizon=200,
        doc="HalfCheetah runs forward with a given gait; OOD gait: hop"
            + (f"; trained on {only} only" if only else ""))


def cheetah_dyn() -> TaskFamily:
    return locomotion_family(
        name="cheetah-dyn", robot=CHEETAH, reward=Forward(), dynamics=[Scaling()],
        horizon=200, doc="HalfCheetah, scaled mass/friction/damping/gravity/gear; "
                         "ID [0.5, 2), OOD to [0.25, 4)")


def cheetah_distract(*, colours: int = 0) -> TaskFamily:
    """colours = K > 0: train on K fixed colours of the ID box, test-id on the rest of it."""
    if colours < 0:
        raise ValueError(f"family 'cheetah-distract': option colours must be an integer "
                         f">= 0 (0: the whole ID range), got {colours}")
    return locomotion_family(
        name="cheetah-distract", robot=CHEETAH, reward=Forward(),
        observation=[Distractors(colours=colours)], horizon=200,
        doc="HalfCheetah runs forward; 4 task features that change nothing appended to "
            "the observation; ID [-0.5, 0.5)" + (f" ({colours} training colours)"
                                                  if colours else "") + ", OOD to [-2, 2)")


def cheetah_vel_dyn() -> TaskFamily:
    return locomotion_family(
        name="cheetah-vel+dyn", robot=CHEETAH, reward=TargetVelocity(),
        dynamics=[Scaling()], horizon=200,
        doc="cheetah-vel x cheetah-dyn; OOD when either part is")


def ant_dir() -> TaskFamily:
    return locomotion_family(
        name="ant-dir", robot=ANT, reward=PlanarDirection(), horizon=200,
        doc="Ant runs along theta; ID [0, 3pi/2), OOD [3pi/2, 2pi)")


def ant_dyn() -> TaskFamily:
    return locomotion_family(
        name="ant-dyn", robot=ANT, reward=Forward(),
        dynamics=[Scaling()], horizon=200,
        doc="Ant runs along +x with scaled dynamics; ID [0.5, 2), OOD to [0.25, 4)")


def ant_crippled() -> TaskFamily:
    return locomotion_family(
        name="ant-crippled", robot=ANT, reward=Forward(),
        dynamics=[CrippledLeg()], horizon=200,
        doc="Ant runs along +x with one leg disabled; ID legs 0-2, OOD leg 3")


BUILTIN: dict[str, Callable[[], TaskFamily]] = {
    "point-nav": point_nav,
    "cheetah-vel": cheetah_vel,
    "cheetah-dir": cheetah_dir,
    "cheetah-gait": cheetah_gait,
    "cheetah-dyn": cheetah_dyn,
    "cheetah-vel+dyn": cheetah_vel_dyn,
    "cheetah-distract": cheetah_distract,
    "ant-dir": ant_dir,
    "ant-dyn": ant_dyn,
    "ant-crippled": ant_crippled,
    "bandit": bandit,
    "guessing-game": guessing_game,
    "lava-crossing": lava_crossing,
    "lava-world": lava_world,
    "maze": maze,
    "lava-jump": lava_jump,
}
