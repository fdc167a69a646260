"""Robots: a MuJoCo model from gymnasium's assets, its observation and its own costs.

A robot owns what every task of that body shares: how it is observed, how its velocity
is measured, when it is healthy, and the costs and bonuses it always pays (control,
contact, staying alive). What varies between tasks lives in reward and dynamics parts.
Every method works on arrays with a leading simulation axis N, so the batched env and
the single reference env (N = 1) run the same code.

Actions outside the action box (the actuators' control range) are clipped to it, once,
before the physics and before the control cost: MuJoCo clamps its controls to that range
anyway, so an action beyond the box moves the robot as the box's edge does, and it costs
what the edge costs. (Gymnasium's v5 envs charge the unclipped action; the MAML code's
rllab envs, like ours, charge the clipped one. Inside the box the two agree.)

Each robot declares `Bounds`: the largest positions, velocities and observations a
simulation of it can physically reach. A step that ends outside them has diverged (see
`tasks/locomotion/transition.py`), whether or not MuJoCo noticed.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import mujoco
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import expand_model_path

# The probe sensor makes mj_step compute cfrc_ext (contact forces per body) in every
# substep; the batched simulator has no other way to ask for it. It changes no dynamics.
# So cfrc_ext holds the contact forces at the start of the step's last substep. (After
# an RK4 step, gymnasium recomputes them from the integrator's last intermediate stage,
# which is not a state the robot passes through; for Euler robots the two agree.)
PROBE_SENSOR = "fewshot_rne_probe"


@contextlib.contextmanager
def quiet_mujoco() -> Iterator[None]:
    """Silence MuJoCo's console log and compiler deprecation warnings; never log to a file.

    Instability is not hidden: the envs detect it from MuJoCo's warning counters and
    report it as `info["diverged"]`.
    """
    saved = mujoco.MjLogConfig.get()
    quiet = mujoco.MjLogConfig.get()
    quiet.logto_console = False
    quiet.logto_file = False
    quiet.set()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*deprecated.*", category=UserWarning)
            yield
    finally:
        saved.set()


def never_log_to_file() -> None:
    """MuJoCo writes MUJOCO_LOG.TXT into the working directory by default; we never do."""
    config = mujoco.MjLogConfig.get()
    config.logto_file = False
    config.set()


@dataclass(frozen=True)
class Bounds:
    """The physical envelope of a robot's simulation; a step that ends outside it diverged.

    Each bound is on absolute values, so it also rejects NaN and inf.
    """

    position: float     # every |qpos|: m, or rad (a hinge's angle counts its whole turns)
    velocity: float     # every |qvel|, and |xy_position displacement| / dt: m/s or rad/s
    observation: float  # every |observation| entry


@dataclass
class PhysicsState:
    """Views of N simulations after a step; shapes [N, nq], [N, nv], [N, nbody, 6]."""

    qpos: np.ndarray
    qvel: np.ndarray
    cfrc_ext: np.ndarray


class Robot:
    """Base for robots: model building and the shared array helpers."""

    name: str = ""
    xml_file: str = ""
    frame_skip: int = 5
    reset_noise_scale: float = 0.1
    ctrl_cost_weight: float = 0.0
    bounds: Bounds  # every robot declares its own
    # named groups of bodies, for contact-based rewards (gaits)
    body_groups: Mapping[str, tuple[str, ...]] = {}
    # leg index -> the joints its actuators drive, for crippling
    legs: Mapping[int, tuple[str, ...]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "bounds", None), Bounds):
            raise TypeError(f"robot {cls.__name__} must declare its physical bounds: "
                            f"bounds = Bounds(position=..., velocity=..., observation=...)")

    @functools.cached_property
    def model(self) -> mujoco.MjModel:
        """The compiled model (shared, never modified: envs work on copies)."""
        spec = mujoco.MjSpec.from_file(expand_model_path(self.xml_file))
        site = spec.worldbody.first_body().add_site(name=PROBE_SENSOR)
        spec.add_sensor(name=PROBE_SENSOR, type=mujoco.mjtSensor.mjSENS_ACCELEROMETER,
                        objtype=mujoco.mjtObj.mjOBJ_SITE, objname=site.name)
        with quiet_mujoco():
            return spec.compile()

    @functools.cached_property
    def init_qpos(self) -> np.ndarray:
        return self.model.qpos0.copy()

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep) * self.frame_skip

    def body_ids(self, group: str) -> np.ndarray:
        return np.array([self.model.body(b).id for b in self.body_groups[group]])

    def leg_actuators(self, leg: int) -> np.ndarray:
        """Indices of the actuators that drive leg `leg`."""
        joints = {self.model.joint(j).id for j in self.legs[leg]}
        trn = self.model.actuator_trnid[:, 0]
        return np.array([a for a in range(self.model.nu) if trn[a] in joints])

    def reset_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Initial qpos, qvel with gymnasium v5's noise (uniform qpos, gaussian qvel)."""
        scale = self.reset_noise_scale
        qpos = self.init_qpos + rng.uniform(-scale, scale, size=self.model.nq)
        qvel = scale * rng.standard_normal(self.model.nv)
        return qpos, qvel

    def clip_action(self, action: np.ndarray) -> np.ndarray:
        """Actions [N, A] clipped to the actuators' control range, the action box."""
        low, high = self.model.actuator_ctrlrange.T
        return np.clip(action, low, high)

    def within_bounds(self, s: PhysicsState, xy_velocity: np.ndarray,
                      obs: np.ndarray) -> np.ndarray:
        """[N] bool: the state, the measured velocity [N, 2] and the observation [N, O]
        are finite and inside the robot's bounds."""
        b = self.bounds
        return ((np.abs(s.qpos) <= b.position).all(axis=1)
                & (np.abs(s.qvel) <= b.velocity).all(axis=1)
                & (np.abs(xy_velocity) <= b.velocity).all(axis=1)
                & (np.abs(obs) <= b.observation).all(axis=1))

    def ctrl_cost(self, action: np.ndarray) -> np.ndarray:
        return self.ctrl_cost_weight * np.sum(np.square(action), axis=-1)

    def contact_force(self, s: PhysicsState) -> np.ndarray:
        """Norm of the external (contact) force on each body, [N, nbody]."""
        return np.linalg.norm(s.cfrc_ext[:, :, 3:], axis=-1)

    # Per robot --------------------------------------------------------------------
    def observe(self, s: PhysicsState) -> np.ndarray:
        raise NotImplementedError

    def xy_position(self, s: PhysicsState) -> np.ndarray:
        """The point whose displacement over dt is the robot's velocity, [N, 2]."""
        raise NotImplementedError

    def healthy(self, s: PhysicsState) -> np.ndarray:
        raise NotImplementedError

    def terminates(self, s: PhysicsState) -> np.ndarray:
        raise NotImplementedError

    def terms(self, s: PhysicsState, action: np.ndarray) -> dict[str, np.ndarray]:
        """The robot's own reward terms (negative for costs), each [N]."""
        raise NotImplementedError

    def torso_height(self, s: PhysicsState) -> np.ndarray:
        raise NotImplementedError


def finite_state(s: PhysicsState) -> np.ndarray:
    return np.isfinite(s.qpos).all(axis=1) & np.isfinite(s.qvel).all(axis=1)


class HalfCheetah(Robot):
    """Gymnasium's HalfCheetah-v5 body; observation qpos[1:] and qvel (17 numbers).

    Bounds: |qvel| and speed 500 m/s or rad/s; |qpos| and |observation| 1e5. Measured
    over 400 steps of uniform, box-corner and periodic bang-bang actions, |qvel| peaks
    near 40 under nominal dynamics, 110 with every scale in the ID box [0.5, 2) and 200
    in the OOD box [0.25, 4) (a light, strong cheetah spins) in simulations that stay
    stable; a blow-up climbs from there through 300 to 4000 in one or two steps, then to
    1e4 to 1e7. The cheetah may flip and spin, and a hinge's angle counts its turns, so
    positions get a loose bound: 1e5 rad is 200 s of spinning at the velocity bound,
    900 s at the fastest spin seen in the ID box.
    """

    name = "cheetah"
    xml_file = "half_cheetah.xml"
    ctrl_cost_weight = 0.05
    bounds = Bounds(position=1e5, velocity=500.0, observation=1e5)
    body_groups = {
        "back": ("bthigh", "bshin", "bfoot"),
        "front": ("fthigh", "fshin", "ffoot"),
        "all": ("torso", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"),
    }

    def observe(self, s: PhysicsState) -> np.ndarray:
        return np.concatenate([s.qpos[:, 1:], s.qvel], axis=1)

    def xy_position(self, s: PhysicsState) -> np.ndarray:
        return np.stack([s.qpos[:, 0], np.zeros(len(s.qpos))], axis=1)

    def healthy(self, s: PhysicsState) -> np.ndarray:
        return finite_state(s)

    def terminates(self, s: PhysicsState) -> np.ndarray:
        return np.zeros(len(s.qpos), dtype=bool)

    def terms(self, s: PhysicsState, action: np.ndarray) -> dict[str, np.ndarray]:
        return {"ctrl": -self.ctrl_cost(action)}

    def torso_height(self, s: PhysicsState) -> np.ndarray:
        return s.qpos[:, 1]  # rootz: height of the torso above its starting 0.7 m


class Ant(Robot):
    """Gymnasium's Ant-v5 body and conventions: 105 observations with clipped contact
    forces, healthy bonus, control and contact costs, termination when unhealthy.

    Bounds: |qvel| and speed 200 m/s or rad/s; |qpos| and |observation| 1e4 (contact
    forces are observed clipped to [-1, 1]). Measured as for the cheetah, |qvel| peaks
    near 20 under nominal dynamics, 27 in the ID box and 41 in the OOD box; under
    extreme damping the ant's velocities jump to 1e4 to 1e22 in a step, which MuJoCo
    never flags when the ant also falls (its episode ends before MuJoCo looks again).
    Its positions are the torso's place (m), a quaternion and limited hinge angles:
    1e4 m is 50 s at the velocity bound, hours at the speeds an ant really runs.
    """

    name = "ant"
    xml_file = "ant.xml"
    ctrl_cost_weight = 0.5
    bounds = Bounds(position=1e4, velocity=200.0, observation=1e4)
    contact_cost_weight = 5e-4
    healthy_reward = 1.0
    healthy_z_range = (0.2, 1.0)
    contact_force_range = (-1.0, 1.0)
    legs = {0: ("hip_1", "ankle_1"), 1: ("hip_2", "ankle_2"),
            2: ("hip_3", "ankle_3"), 3: ("hip_4", "ankle_4")}
    body_groups = {"torso": ("torso",)}

    def clipped_contact_forces(self, s: PhysicsState) -> np.ndarray:
        return np.clip(s.cfrc_ext, *self.contact_force_range)

    def observe(self, s: PhysicsState) -> np.ndarray:
        forces = self.clipped_contact_forces(s)[:, 1:].reshape(len(s.qpos), -1)
        return np.concatenate([s.qpos[:, 2:], s.qvel, forces], axis=1)

    def xy_position(self, s: PhysicsState) -> np.ndarray:
        return s.qpos[:, :2]  # the torso's position (its free joint)

    def healthy(self, s: PhysicsState) -> np.ndarray:
        z = s.qpos[:, 2]
        low, high = self.healthy_z_range
        return finite_state(s) & (low <= z) & (z <= high)

    def terminates(self, s: PhysicsState) -> np.ndarray:
        return ~self.healthy(s)

    def terms(self, s: PhysicsState, action: np.ndarray) -> dict[str, np.ndarray]:
        forces = self.clipped_contact_forces(s).reshape(len(s.qpos), -1)
        return {
            "survive": self.healthy_reward * self.healthy(s),
            "ctrl": -self.ctrl_cost(action),
            "contact": -self.contact_cost_weight * np.sum(np.square(forces), axis=1),
        }

    def torso_height(self, s: PhysicsState) -> np.ndarray:
        return s.qpos[:, 2]


CHEETAH = HalfCheetah()
ANT = Ant()
