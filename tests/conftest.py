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


# ---- property-based tests (tests/test_property_*.py) ---------------------------
# Profiles: "ci" (the default, a modest budget so the suite stays short) and
# "long" (the figures of the README's Reliability section):
#     pytest tests/test_property_*.py --hypothesis-profile=long
from hypothesis import HealthCheck, settings  # noqa: E402

_PROFILE = dict(deadline=None, derandomize=False, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=40, **_PROFILE)
settings.register_profile("long", max_examples=2000, **_PROFILE)
settings.load_profile(os.environ.get("O1P_HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter):
    from property_support import summary_lines

    for line in summary_lines():
        terminalreporter.write_line(line)
