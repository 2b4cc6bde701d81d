"""The whole simulated bench run once, as a technician runs it, shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SIM_CONFIG, rig


@pytest.fixture(scope="session")
def run_all(sim_bench: dict, tmp_path_factory: pytest.TempPathFactory):
    """``rig run`` of every scenario on every device of the shipped bench: (process result, bundle path)."""
    out = tmp_path_factory.mktemp("evidence")
    res = rig("run", "-c", str(SIM_CONFIG), "--out", str(out))
    return res, Path(res.stdout.strip().splitlines()[-1])
