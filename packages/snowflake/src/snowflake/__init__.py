"""GNN policies for MuJoCo locomotion (Centipede-n) with parameter freezing, PPO, and transfer
across agent sizes.

Importing ``snowflake`` registers ``Centipede-{n}-v0`` (n = 3…100) with gymnasium.
"""

from importlib.metadata import PackageNotFoundError, version

from ._centipede_env import CentipedeEnv
from ._centipede_xml import centipede_xml, num_actuators, obs_dim
from ._eval import evaluate, load_policy, transfer
from ._freeze import FreezeSpec
from ._graph import Morphology, build_morphology, morphology_from_env
from ._normalizer import NodeObsNormalizer
from ._policies import ActorCritic, GNNActor, MLPActor
from ._ppo import PPOConfig, compute_gae, ppo_update
from ._procvec import ProcessVectorEnv
from ._registry import canonical_env_id, make_env, register_centipedes
from ._trainer import Trainer, build_agent
from ._vector import ThreadedVectorEnv, make_vector_env

try:
    __version__ = version("snowflake")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

register_centipedes()

__all__ = [
    "ActorCritic",
    "CentipedeEnv",
    "FreezeSpec",
    "GNNActor",
    "MLPActor",
    "Morphology",
    "NodeObsNormalizer",
    "PPOConfig",
    "ProcessVectorEnv",
    "ThreadedVectorEnv",
    "Trainer",
    "__version__",
    "build_agent",
    "build_morphology",
    "canonical_env_id",
    "centipede_xml",
    "compute_gae",
    "evaluate",
    "load_policy",
    "make_env",
    "make_vector_env",
    "morphology_from_env",
    "num_actuators",
    "obs_dim",
    "ppo_update",
    "register_centipedes",
    "transfer",
]
