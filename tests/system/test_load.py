"""A photo day under load on real gunicorn: no 5xx, no lock error, every photo exactly once."""

import json

import pytest
from sqlalchemy import create_engine, text

from tests.support.liveserver import gunicorn
from tests.support.loadgen import Load, run_load
from tests.support.photogen import make_batch

pytestmark = pytest.mark.slow
USER = ("loadadmin", "load test password")
PROCESSED = 300
UPLOADED = 60


def shoot(folder, count: int, people: int):
    plan = [("card", f"L{i * people // count:03d}") if i % (count // people) == 0 else ("photo",) for i in range(count)]
    return make_batch(folder, plan, size=(800, 600), quality=80)


@pytest.mark.both_databases
def test_photo_day_under_load(database_url, data_dir, tmp_path, capsys):
    """4 workers + processor: a 300-photo batch processes while 20 pollers, 3 uploaders and registrations run."""
    shoot(tmp_path / "processed", PROCESSED, 30)
    uploads = [(f"cam2/{p.name}", p) for p in shoot(tmp_path / "uploaded", UPLOADED, 6)]
    with gunicorn(data_dir, database_url, workers=4, INTAKE_THREADS="8") as server:
        assert (
            server.flask(
                "create-user", USER[0], "--role", "admin", "--password-stdin", input_text=USER[1] + "\n"
            ).returncode
            == 0
        )
        result = server.flask("ingest", str(tmp_path / "processed"), "--json")
        assert result.returncode == 0, result.stderr
        batch_id = int(result.stdout.split('"batch": ')[1].split(",")[0])

        def processed_done() -> bool:
            return server.report(batch_id)["status"] == "done"

        tally, upload_batch, elapsed = run_load(server.url, USER, uploads, Load(), processed_done, 400)
        report = server.report(batch_id)
        uploaded_report = server.report(upload_batch)
        stats = server.flask("stats", "--json")
        log = server.log.read_text()

    assert report["status"] == "done"
    assert len(report["photos"]) == PROCESSED and all(e["role"] in ("separator", "photo") for e in report["photos"])
    assert tally.server_errors == 0, tally.errors[:5]
    assert tally.lock_messages == 0 and "database is locked" not in log
    assert stored_hashes(database_url, upload_batch) == tally.uploaded
    assert len(uploaded_report["photos"]) == UPLOADED
    assert set(tally.statuses["register"]) == {200}
    p50, p99 = tally.poll_percentiles()
    locks = json.loads(stats.stdout)["last_hour"]
    with capsys.disabled():
        print(
            f"\n[load {database_url.split(':')[0]}] {tally.requests} requests in {elapsed:.0f}s "
            f"(polls {len(tally.poll_seconds)}, uploads {len(tally.statuses['upload'])}, "
            f"registrations {len(tally.statuses['register'])}); poll p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms; 5xx {tally.server_errors}; lock retries {locks['retries']}, "
            f"waits {locks['lock_waits']} (longest {locks['max_wait_ms']} ms); "
            f"photos verified {PROCESSED + UPLOADED}"
        )


def stored_hashes(database_url: str, batch_id: int) -> dict[str, str]:
    """Every photo the batch holds, by name, with its content hash, read straight from the database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT original_name, content_hash FROM photo WHERE batch_id = :b"), {"b": batch_id}
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == len({name for name, _ in rows})
    return dict(rows)
