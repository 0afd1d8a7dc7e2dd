"""The app under real gunicorn workers with the background processor."""

import json
import os
import signal
import urllib.request

import pytest

from tests.support.factories import PASSWORD
from tests.support.liveserver import LiveServer, gunicorn
from tests.support.loadgen import Tally, create_batch, logged_in, uploader
from tests.support.photogen import make_batch
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def wait_for_status(server, batch_id: int, wanted: str, timeout: float = 120) -> dict:
    def reached() -> dict | None:
        report = server.report(batch_id)
        return report if report["status"] == wanted else None

    return wait_for(reached, timeout, f"batch {batch_id} to be {wanted}", 0.5)


def import_roster(server, tmp_path, codes):
    roster = tmp_path / "roster.csv"
    roster.write_text("code,name,email,group\n" + "".join(f"{c},Person {c},,\n" for c in codes))
    assert server.flask("import-roster", str(roster)).returncode == 0


@pytest.mark.both_databases
def test_processor_in_gunicorn_workers_processes_a_queued_batch(database_url, data_dir, tmp_path):
    """A batch queued by `ingest` (no --wait) is processed by the processor running in gunicorn."""
    with gunicorn(data_dir, database_url) as server:
        with urllib.request.urlopen(f"{server.url}/register") as response:
            assert response.status == 200
        import_roster(server, tmp_path, ["ANNA", "BEN"])
        make_batch(tmp_path / "day", [("card", "ANNA"), ("photo",), ("card", "BEN"), ("photo",)], size=(1200, 800))
        result = server.flask("ingest", str(tmp_path / "day"), "--json")
        assert result.returncode == 0, result.stderr
        batch_id = int(result.stdout.split('"batch": ')[1].split(",")[0])
        report = wait_for_status(server, batch_id, "done")
        assert [e["person"] for e in report["photos"]] == ["ANNA", "ANNA", "BEN", "BEN"]


def test_killed_processor_worker_is_taken_over(database_url, data_dir, tmp_path):
    """kill -9 of the worker running the processor mid-batch: another takes over after the lease; nothing lost."""
    plan = [("card", f"P{i // 5}") if i % 5 == 0 else ("photo",) for i in range(40)]
    server = LiveServer(data_dir, database_url, INTAKE_LEASE_SECONDS="3", INTAKE_SCAN_WORKERS="1")
    import_roster(server, tmp_path, [f"P{i}" for i in range(8)])
    assert server.flask("create-user", "staff", "--role", "staff", "--password-stdin", input_text=PASSWORD + "\n")
    make_batch(tmp_path / "day", plan, size=(3000, 2000))
    # Queued before any processor runs, so every scan happens while the batch is "processing" (one started
    # during the ingest would scan the files as they arrive, and the batch could be done before the kill).
    result = server.flask("ingest", str(tmp_path / "day"), "--json")
    batch_id = int(result.stdout.split('"batch": ')[1].split(",")[0])
    server.start()
    try:
        client = logged_in(server.url, ("staff", PASSWORD))

        def mid_scan() -> bool:
            row = next(b for b in json.loads(client.request("GET", "/api/dashboard").body)["batches"])
            return row["status"] == "processing" and row["done"] < row["total"]

        # Watched over HTTP every 50 ms: a `flask report` takes longer than some batches take to scan.
        wait_for(mid_scan, 60, "the batch to be mid-scan", 0.05)
        victim = server.processor_pid()
        assert victim in server.worker_pids()
        os.kill(victim, signal.SIGKILL)
        report = wait_for_status(server, batch_id, "done", timeout=180)
        assert server.processor_pid() not in (None, victim)
        names = [e["filename"] for e in report["photos"]]
        assert len(names) == len(set(names)) == 40
        assert [e["person"] for e in report["photos"]] == [f"P{i // 5}" for i in range(40)]
        assert server.flask("verify").returncode == 0
    finally:
        server.stop()


def test_processor_in_gunicorn_scans_files_while_the_upload_goes_on(database_url, data_dir, tmp_path):
    """Files uploaded to a batch still open are scanned by the gunicorn processor before anyone completes it."""
    with gunicorn(data_dir, database_url) as server:
        assert server.flask("create-user", "staff", "--role", "staff", "--password-stdin", input_text=PASSWORD + "\n")
        paths = make_batch(tmp_path / "day", [("photo",), ("photo",)], size=(1200, 800))
        batch_id = create_batch(server.url, ("staff", PASSWORD), "open")
        tally = Tally()
        uploader(server.url, ("staff", PASSWORD), batch_id, [(p.name, p) for p in paths], tally)
        assert sorted(tally.statuses["upload"]) == [201, 201]
        client = logged_in(server.url, ("staff", PASSWORD))

        def row() -> dict:
            return next(b for b in json.loads(client.request("GET", "/api/dashboard").body)["batches"])

        scanned = wait_for(lambda: (r := row())["scanned"] == 2 and r, 60, "the open batch's files to be scanned")
        assert scanned["status"] == "uploading"
