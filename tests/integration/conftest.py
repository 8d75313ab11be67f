"""pytest fixtures for the integration suite; see harness.py for the full API."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


@pytest.fixture(scope="session")
def portcullis_bin():
    path = harness.portcullis_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"binary under test not found: {path} (build first or set PORTCULLIS_BIN)")
    return path


@pytest.fixture
def free_port():
    return harness.free_port


@pytest.fixture(scope="session")
def user_password():
    return harness.USER_PASSWORD


@pytest.fixture(scope="module")
def pg_server():
    pg = harness.Postgres()
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture
def connector(portcullis_bin):
    started = []

    def factory(objects=None, *, wait_ready=True, ready_timeout=15, **kw):
        # Registered before waiting, so a connector that never gets ready is still reaped.
        c = harness.Connector(objects, wait_ready=False, **kw)
        started.append(c)
        if wait_ready:
            c.wait_ready(ready_timeout)
        return c

    try:
        yield factory
    finally:
        for c in started:
            c.close()
