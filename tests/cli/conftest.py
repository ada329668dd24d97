"""Fixtures for the command-line tests."""

from __future__ import annotations

import pytest
from support.jobstate import build_state


@pytest.fixture
def state(pipeline, db, schema_name, monkeypatch):
    """The pipeline with a jobs table in every status (support.jobstate.build_state); the worker that holds
    two keys keeps its heartbeat until the test ends."""
    holder = build_state(pipeline, db, schema_name, monkeypatch)
    yield pipeline
    holder.close()
