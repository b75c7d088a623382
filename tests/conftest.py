"""Shared pytest fixtures and helpers for o1pruner's tests."""

import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]



def _find_shared_data() -> pathlib.Path:
    """../shared/data from the project root (where CI puts it); the
    O1P_SHARED_DATA variable overrides it (e.g. for a git worktree elsewhere)."""
    if os.environ.get("O1P_SHARED_DATA"):
        return pathlib.Path(os.environ["O1P_SHARED_DATA"])
    return ROOT.parent / "shared" / "data"


SHARED_DATA = _find_shared_data()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def shared_data():
    """Path of ../shared/data; tests that need it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA
