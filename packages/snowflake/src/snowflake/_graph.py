"""Morphology graph of a MuJoCo agent built from the compiled ``mujoco.MjModel``.

Follows NerveNet's graph (Wang et al. 2018, §2.1) as used by Snowflake (Blake et al. 2021, §3):
one root node plus one node per actuated joint; bodies are pruned and each joint absorbs its body.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import mujoco
import numpy as np

_JTYPE = {0: "free", 1: "ball", 2: "slide", 3: "hinge"}


@dataclass(frozen=True)
class Morphology:
    """Agent graph with observation and actuator index maps.

    Attributes:
        node_names: ``N`` names (``"root"`` then actuated joint names).
        node_type: ``int64 [N]`` index into ``type_names``.
        type_names: structural type keys (e.g. ``"hinge:h1:z:k0"`` = hinge on a body one level above
            a leaf, z axis, first actuated joint on its body); identical across Centipede sizes.
        edges: ``int64 [E, 2]`` directed edges, symmetric (both directions present), no self loops.
        act_node: ``int64 [nu]`` node of each actuator (never the root).
        obs_index: ``int64 [N, F]`` flat observation indices per node, ``-1`` = padding. Slot ``f``
            has the same meaning for all nodes of one type.
        obs_dim: flat observation size ``D``.
    """

    node_names: tuple[str, ...]
    node_type: np.ndarray
    type_names: tuple[str, ...]
    edges: np.ndarray
    act_node: np.ndarray
    obs_index: np.ndarray
    obs_dim: int
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_nodes(self) -> int:
        return len(self.node_names)

    @property
    def feat_dim(self) -> int:
        """Per-node feature width ``F`` (max over nodes; shorter nodes are zero-padded)."""
        return int(self.obs_index.shape[1])

    @property
    def act_type(self) -> np.ndarray:
        """``int64 [nu]`` node type of each actuator (log-std is shared per actuator type)."""
        return self.node_type[self.act_node]

    def adjacency(self, normalised: bool = True) -> np.ndarray:
        """Dense ``float32 [N, N]`` adjacency; normalised rows average over neighbours."""
        a = np.zeros((self.num_nodes, self.num_nodes), np.float32)
        a[self.edges[:, 1], self.edges[:, 0]] = 1.0  # row v gathers from senders u
        if normalised:
            a /= np.maximum(a.sum(1, keepdims=True), 1.0)
        return a

    def is_connected(self) -> bool:
        adj = self.adjacency(False) > 0
        seen, todo = {0}, deque([0])
        while todo:
            v = todo.popleft()
            for u in np.nonzero(adj[v])[0]:
                if int(u) not in seen:
                    seen.add(int(u))
                    todo.append(int(u))
        return len(seen) == self.num_nodes

    def node_obs(self, obs: np.ndarray) -> np.ndarray:
        """Node-structured view ``[..., N, F]`` of a flat observation ``[..., D]`` (padding = 0)."""
        obs = np.asarray(obs)
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"observation has {obs.shape[-1]} features, this morphology expects {self.obs_dim}."
            )
        padded = np.concatenate([obs, np.zeros((*obs.shape[:-1], 1), obs.dtype)], axis=-1)
        return padded[..., np.where(self.obs_index < 0, self.obs_dim, self.obs_index)]


def _axis_key(axis: np.ndarray) -> str:
    a = np.round(np.abs(axis), 3)
    if np.count_nonzero(a) == 1:
        return "xyz"[int(np.argmax(a))]
    return ",".join(f"{v:g}" for v in a)


def _heights(model: mujoco.MjModel) -> np.ndarray:
    h = np.zeros(model.nbody, np.int64)
    for b in range(model.nbody - 1, 0, -1):  # children have larger ids than parents
        p = model.body_parentid[b]
        h[p] = max(h[p], h[b] + 1)
    return h


def build_morphology(model: mujoco.MjModel, obs_layout: list[tuple] | None = None) -> Morphology:
    """Build the :class:`Morphology` of a compiled model.

    Args:
        model: compiled ``mujoco.MjModel``; must have joint-transmission actuators.
        obs_layout: per flat observation index, a source tuple ``("qpos", adr)``,
            ``("qvel", adr)``, ``("cfrc", body, component)`` or ``("extra", k)``; ``None`` = the
            Centipede layout ``qpos[2:] ‖ qvel ‖ cfrc_ext`` (all bodies).

    Edges: joints on one body are linked pairwise; the first joint of a body is linked to the first
    joint of its nearest ancestor body that has actuated joints, or to the root.
    """
    if not isinstance(model, mujoco.MjModel):
        raise TypeError(f"expected a mujoco.MjModel, got {type(model).__name__}.")
    acts = [a for a in range(model.nu) if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT]
    if not acts or len(acts) != model.nu:
        raise ValueError("graph extraction needs every actuator to drive a joint (mjTRN_JOINT).")
    act_joint = [int(model.actuator_trnid[a, 0]) for a in acts]
    joints = sorted(set(act_joint))
    node_of_joint = {j: i + 1 for i, j in enumerate(joints)}
    body_joints: dict[int, list[int]] = {}
    for j in joints:
        body_joints.setdefault(int(model.jnt_bodyid[j]), []).append(j)

    def owner(b: int) -> int:  # node owning body b: its first actuated joint, else an ancestor's
        while b > 0:
            if b in body_joints:
                return node_of_joint[body_joints[b][0]]
            b = int(model.body_parentid[b])
        return 0

    heights = _heights(model)
    names = ["root"]
    keys = ["root"]
    for j in joints:
        b = int(model.jnt_bodyid[j])
        names.append(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}")
        k = body_joints[b].index(j)
        keys.append(
            f"{_JTYPE[int(model.jnt_type[j])]}:h{min(int(heights[b]), 2)}:"
            f"{_axis_key(model.jnt_axis[j])}:k{k}"
        )
    type_names = tuple(["root", *sorted(set(keys) - {"root"})])
    node_type = np.array([type_names.index(k) for k in keys], np.int64)

    edges = set()
    for b, js in body_joints.items():
        for x in js:
            for y in js:
                if x != y:
                    edges.add((node_of_joint[x], node_of_joint[y]))
        parent = owner(int(model.body_parentid[b]))
        first = node_of_joint[js[0]]
        edges.update({(first, parent), (parent, first)})
    edge_arr = np.array(sorted(edges), np.int64).reshape(-1, 2)

    if obs_layout is None:
        obs_layout = (
            [("qpos", i) for i in range(2, model.nq)]
            + [("qvel", i) for i in range(model.nv)]
            + [("cfrc", b, c) for b in range(model.nbody) for c in range(6)]
        )
    qpos_joint = np.searchsorted(model.jnt_qposadr, np.arange(model.nq), side="right") - 1
    dof_joint = model.dof_jntid
    per_node: list[list[int]] = [[] for _ in names]
    for i, src in enumerate(obs_layout):
        if src[0] in ("qpos", "qvel"):
            j = int(qpos_joint[src[1]] if src[0] == "qpos" else dof_joint[src[1]])
            targets = (
                [node_of_joint[j]] if j in node_of_joint else [owner(int(model.jnt_bodyid[j]))]
            )
        elif src[0] == "cfrc":
            b = int(src[1])
            targets = [node_of_joint[j] for j in body_joints[b]] if b in body_joints else [owner(b)]
        else:
            targets = [0]
        for t in targets:
            per_node[t].append(i)
    width = max(len(p) for p in per_node)
    obs_index = np.full((len(names), width), -1, np.int64)
    for v, idx in enumerate(per_node):
        obs_index[v, : len(idx)] = idx
    act_node = np.array([node_of_joint[j] for j in act_joint], np.int64)
    return Morphology(
        tuple(names), node_type, type_names, edge_arr, act_node, obs_index, len(obs_layout)
    )


def _match(seg: np.ndarray, cand: np.ndarray) -> bool:
    if seg.shape != cand.shape:
        return False
    return any(
        np.allclose(seg, c, atol=1e-6) for c in (cand, np.clip(cand, -10, 10), np.clip(cand, -1, 1))
    )


def infer_obs_layout(env) -> list[tuple]:
    """Infer the flat-observation layout of a gymnasium MuJoCo env numerically.

    Recognises ``qpos[k:] ‖ qvel ‖ cfrc_ext[b:]`` (k ∈ {0, 1, 2}, b ∈ {0, 1}, optionally clipped) as
    used by Centipede and the gymnasium v5 envs; any remaining indices are attributed to the root
    (``("extra", k)``). Resets and steps ``env`` (seeded) to compare values.
    """
    from gymnasium.envs.mujoco import MujocoEnv

    base = getattr(env, "unwrapped", env)
    if not isinstance(base, MujocoEnv):
        raise TypeError(
            f"graph extraction needs a MuJoCo env (gymnasium.envs.mujoco.MujocoEnv), got "
            f"{type(base).__name__}; use a Centipede-n or a MuJoCo v5 env such as 'Ant-v5'."
        )
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(3):
        env.step(env.action_space.sample())
    m, d = base.model, base.data
    obs = np.asarray(base._get_obs(), np.float64)
    layout: list[tuple] = []
    pos = 0
    for k in (2, 1, 0):
        if _match(obs[pos : pos + m.nq - k], d.qpos[k:]):
            layout += [("qpos", i) for i in range(k, m.nq)]
            pos += m.nq - k
            break
    if _match(obs[pos : pos + m.nv], d.qvel):
        layout += [("qvel", i) for i in range(m.nv)]
        pos += m.nv
    for b0 in (1, 0):
        size = 6 * (m.nbody - b0)
        if pos + size <= obs.size and _match(obs[pos : pos + size], d.cfrc_ext[b0:].ravel()):
            layout += [("cfrc", b, c) for b in range(b0, m.nbody) for c in range(6)]
            pos += size
            break
    layout += [("extra", i) for i in range(obs.size - pos)]
    return layout


def morphology_from_env(env) -> Morphology:
    """:class:`Morphology` of a gymnasium MuJoCo env (Centipede-n, Ant-v5, Walker2d-v5, …).

    Raises:
        TypeError: ``env`` is not a MuJoCo env.
    """
    from ._centipede_env import CentipedeEnv

    base = getattr(env, "unwrapped", env)
    if isinstance(base, CentipedeEnv):
        return build_morphology(base.model)
    layout = infer_obs_layout(env)  # raises TypeError for non-MuJoCo envs
    return build_morphology(base.model, layout)
