import pytest
import torch

import snowflake as sf


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # CI runs packages in parallel on 2 cores; one intra-op thread keeps timings stable.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_cfg():
    def make(policy="snowflake", updates=3, **kw):
        base = {
            "env": "Centipede-6",
            "policy": policy,
            "num_envs": 2,
            "rollout_steps": 64,
            "minibatch_size": 32,
            "epochs": 2,
            "total_steps": 64 * updates,
            "num_threads": 1,
            "seed": 3,
        }
        base.update(kw)
        return sf.PPOConfig(**base)

    return make
