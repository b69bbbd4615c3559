"""Property-based tests of every parser of outside input (hypothesis).

Two profiles, chosen with the HYPOTHESIS_PROFILE environment variable:

* `default` (what `make test` runs): a few dozen examples per property, so the whole of
  tests/fuzz stays well under a minute on a loaded machine;
* `thorough`: many more examples and no deadline, to run by hand for a long time:
  `HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest tests/fuzz -q`
  (`--hypothesis-show-statistics` says how many examples each property tried).

Deadlines here are generous bounds against hangs (a parser that loops, a YAML alias
bomb), not timings: the machine is shared. A hang that would never return is caught by
`no_hang` (an alarm signal), which fails the example instead of freezing the run.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

from .world import World

settings.register_profile(
    "default", max_examples=40, deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", max_examples=3000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The shipped content (and a flow with every answer type) and a migrated database
    that each example copies."""
    return World.build(tmp_path_factory.mktemp("fuzz"))
