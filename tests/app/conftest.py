"""Fixtures for the app tests that reach outside services: the fake Drive server, an SMTP server, a whole
photo day."""

import json

import pytest

# Anna's card and two photos, then Ben's card and one photo.
TWO_PEOPLE = [("card", "ANNA"), ("photo",), ("photo",), ("card", "BEN"), ("photo",)]


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


@pytest.fixture
def mailbox(app):
    """A real SMTP server on loopback, configured as the app's; its Mailbox holds what arrived."""
    from tests.support.smtpserver import Mailbox, smtp_server, smtp_settings

    box = Mailbox()
    with smtp_server(box) as server:
        app.config.update(smtp_settings(server), MAIL_RETRY_BASE_SECONDS=0.0)
        yield box


@pytest.fixture
def ingest_day(runner, tmp_path):
    """A photo day as the operator runs it: `import-roster` (the CSV text given), then `ingest --wait` of
    generated camera files (cards and photos, TWO_PEOPLE unless given). Returns ingest's JSON summary."""
    from tests.support.photogen import SMALL_SIZE, make_batch

    def ingest(roster: str, plan: list[tuple] = TWO_PEOPLE) -> dict:
        roster_file = tmp_path / "roster.csv"
        roster_file.write_text(roster)
        assert runner.invoke(args=["import-roster", str(roster_file)]).exit_code == 0
        make_batch(tmp_path / "day", plan, size=SMALL_SIZE)
        result = runner.invoke(args=["ingest", str(tmp_path / "day"), "--wait", "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return ingest
