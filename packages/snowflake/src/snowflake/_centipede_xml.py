"""Procedural MJCF for Centipede-n (NerveNet's Centipede design, Wang et al. 2018, §4.1)."""

from __future__ import annotations

import math

INTEGRATORS = ("RK4", "Euler", "implicit", "implicitfast")
TORSO_SPACING = 0.5  # m between neighbouring torso centres along x
TORSO_RADIUS = 0.25  # m
LEG_LENGTH = 0.28  # m, hip capsule (horizontal, sideways)
FOOT_LENGTH = 0.6  # m, ankle capsule (horizontal at qpos = 0, pushed down by its 30° lower limit)
LIMB_RADIUS = 0.08  # m


def num_torsos(n: int) -> int:
    """Number of torso spheres of Centipede-``n``: ``ceil(n / 2)`` (two legs per torso)."""
    return math.ceil(n / 2)


def num_actuators(n: int) -> int:
    """Action dimension of Centipede-``n``: ``nu = 2n + 2(ceil(n/2) − 1)``."""
    return 2 * n + 2 * (num_torsos(n) - 1)


def obs_dim(n: int) -> int:
    """Flat observation dimension: ``(nq − 2) + nv + 6·nbody`` with ``nq = 7 + nu``, ``nv = 6 +
    nu``,
    ``nbody = 1 + ceil(n/2) + 2n`` (e.g. 139 for n = 6, 433 for n = 20)."""
    nu = num_actuators(n)
    nbody = 1 + num_torsos(n) + 2 * n
    return (7 + nu - 2) + (6 + nu) + 6 * nbody


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"Centipede size n must be an int, got {type(n).__name__} ({n!r}).")
    if n < 3:
        raise ValueError(
            f"Centipede size n must be >= 3 (two legs per torso, at least two torsos), got n={n}. "
            "Use e.g. centipede_xml(6)."
        )
    return n


def _leg(i: int, side: str, ind: str) -> str:
    s = 1.0 if side == "left" else -1.0
    # Positive ankle angles bend the foot down on both sides (mirrored axes).
    ankle_axis = "-1 0 0" if side == "left" else "1 0 0"
    return (
        f'{ind}<body name="leg_{side}_{i}" pos="0 {s * TORSO_RADIUS:.3f} 0">\n'
        f'{ind}  <joint name="hip_{side}_{i}" type="hinge" axis="0 0 1" range="-40 40"/>\n'
        f'{ind}  <geom name="leg_{side}_{i}_geom" type="capsule" size="{LIMB_RADIUS}" '
        f'fromto="0 0 0 0 {s * LEG_LENGTH:.3f} 0"/>\n'
        f'{ind}  <body name="foot_{side}_{i}" pos="0 {s * LEG_LENGTH:.3f} 0">\n'
        f'{ind}    <joint name="ankle_{side}_{i}" type="hinge" axis="{ankle_axis}" '
        f'range="30 100"/>\n'
        f'{ind}    <geom name="foot_{side}_{i}_geom" type="capsule" size="{LIMB_RADIUS}" '
        f'fromto="0 0 0 0 {s * FOOT_LENGTH:.3f} 0"/>\n'
        f"{ind}  </body>\n"
        f"{ind}</body>\n"
    )


def centipede_xml(
    n: int,
    integrator: str = "RK4",
    timestep: float = 0.01,
    *,
    hip_gear: float = 150.0,
    ankle_gear: float = 150.0,
    body_gear: float = 100.0,
    friction: float = 1.5,
) -> str:
    """Return the MJCF text of Centipede-``n`` (``n`` legs on ``ceil(n/2)`` torsos).

    Design (NerveNet Centipede, reused by Snowflake, Blake et al. 2021, §5): a chain of torso
    spheres
    (radius 0.25 m, density 100) 0.5 m apart along +x; torso 0 carries the free root joint; every
    later torso hangs off its predecessor by two hinges ``body_i`` (z axis, ±20°) and
    ``bodyupdown_i`` (y axis, −10…30°). Each torso carries up to two legs (left, right; for odd
    ``n`` the last torso has only a left leg): a hip hinge (z axis, ±40°) with a capsule and an
    ankle hinge (x axis, 30…100°) with a capsule. Motors: ctrl range ±1, gear 150 (hip, ankle) and
    100 (body joints). Joint defaults: armature 1, damping 1, limited; geom friction 1.5, density
    25.

    Args:
        n: number of legs, ``n >= 3``.
        integrator: MuJoCo integrator, one of ``"RK4"`` (paper setting), ``"Euler"``,
            ``"implicit"``, ``"implicitfast"`` (the last three are 4–5× faster, not the paper's).
        timestep: physics timestep in seconds (control step = 5 × timestep with frame skip 5).
        hip_gear, ankle_gear, body_gear: actuator gears (N·m per unit control).
        friction: sliding friction of every geom.

    Returns:
        MJCF XML string; ``mujoco.MjModel.from_xml_string`` compiles it.

    Raises:
        ValueError: ``n < 3`` or an unknown integrator.
    """
    n = _check_n(n)
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}.")
    if not timestep > 0:
        raise ValueError(f"timestep must be > 0 seconds, got {timestep}.")
    nt = num_torsos(n)
    body_xml = ""
    motors = []
    # Build from the tail inwards so that nesting is simple string composition.
    for i in reversed(range(nt)):
        ind = "    " + "  " * i
        sides = ["left", "right"] if n >= 2 * (i + 1) else ["left"]
        inner = body_xml
        legs = "".join(_leg(i, side, ind + "  ") for side in sides)
        joints = ""
        if i == 0:
            joints = (
                f'{ind}  <joint name="root" type="free" armature="0" damping="0" '
                f'limited="false" pos="0 0 0"/>\n'
            )
        else:
            joints = (
                f'{ind}  <joint name="body_{i}" type="hinge" axis="0 0 1" range="-20 20"/>\n'
                f'{ind}  <joint name="bodyupdown_{i}" type="hinge" axis="0 1 0" range="-10 30"/>\n'
            )
        pos = "0 0 0.75" if i == 0 else f"{TORSO_SPACING} 0 0"
        camera = (
            f'{ind}  <camera name="track" mode="trackcom" pos="0 -{3 + 0.4 * nt:.1f} 2.5" '
            f'xyaxes="1 0 0 0 0.6 1"/>\n'
            if i == 0
            else ""
        )
        body_xml = (
            f'{ind}<body name="torso_{i}" pos="{pos}">\n'
            f"{camera}{joints}"
            f'{ind}  <geom name="torso_{i}_geom" type="sphere" size="{TORSO_RADIUS}" '
            f'density="100"/>\n'
            f"{legs}{inner}{ind}</body>\n"
        )
    for i in range(nt):
        sides = ["left", "right"] if n >= 2 * (i + 1) else ["left"]
        if i > 0:
            motors.append(f'    <motor joint="body_{i}" gear="{body_gear:g}"/>')
            motors.append(f'    <motor joint="bodyupdown_{i}" gear="{body_gear:g}"/>')
        for side in sides:
            motors.append(f'    <motor joint="hip_{side}_{i}" gear="{hip_gear:g}"/>')
            motors.append(f'    <motor joint="ankle_{side}_{i}" gear="{ankle_gear:g}"/>')
    return f"""<mujoco model="centipede_{n}">
  <compiler angle="degree" inertiafromgeom="true"/>
  <option integrator="{integrator}" timestep="{timestep:g}"/>
  <default>
    <joint armature="1" damping="1" limited="true"/>
    <geom conaffinity="0" condim="3" density="25" friction="{friction:g} 0.5 0.5" margin="0.01"
          rgba="0.8 0.6 0.4 1"/>
    <motor ctrllimited="true" ctrlrange="-1 1"/>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.2 0.3 0.4" rgb2="0.1 0.2 0.3"
             width="256" height="256"/>
    <material name="grid" texture="grid" texrepeat="40 40" reflectance="0.1"/>
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 5" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="200 200 0.5" conaffinity="1" material="grid"
          rgba="1 1 1 1"/>
{body_xml}  </worldbody>
  <actuator>
{chr(10).join(motors)}
  </actuator>
</mujoco>
"""
