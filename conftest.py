"""Workspace-wide pytest hooks: skip `gpu` tests without CUDA, and fix random seeds per test."""

from __future__ import annotations

import os
import random

import pytest

SEED = 0


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA device (marker 'gpu')")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fixed_seeds() -> None:
    """Every test starts from the same seeds, so failures reproduce."""
    random.seed(SEED)
    os.environ.setdefault("PYTHONHASHSEED", str(SEED))
    try:
        import numpy as np

        np.random.seed(SEED)  # noqa: NPY002 - seeds the legacy global generator tests may use
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(SEED)
    except ImportError:  # pragma: no cover
        pass
