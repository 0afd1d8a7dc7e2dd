"""Fixtures for the app tests that reach outside services (the fake Drive server)."""

import pytest


@pytest.fixture
def fake(app):
    """A fake Drive v3 server on loopback, configured as the app's Drive."""
    from tests.support.fakedrive import FakeDrive

    with FakeDrive() as server:
        app.config.update(
            DRIVE_ROOT_FOLDER_ID=server.root_folder_id,
            DRIVE_CREDENTIALS_TYPE="anonymous",
            DRIVE_ROOT_URL=server.url,
            DRIVE_CHUNK_BYTES=256 * 1024,
            DRIVE_RETRY_BASE_SECONDS=0.01,
        )
        yield server
