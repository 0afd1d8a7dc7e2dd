"""The processor's claim, lease and housekeeping, without images."""

import os
import sqlite3
import time
from datetime import datetime, timedelta

from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Batch
from data.states import PhotoRole
from data.storage import incoming_dir, sweep_incoming
from engine import grouping
from photo_processor import Processor, claim_next_batch, regroup
from services.batches import queue_batch
from tests.support.apps import sqlite_file
from tests.support.factories import make_batch, make_scanned_batch
from tests.support.waiting import wait_for


def test_a_claimed_batch_cannot_be_claimed_twice(app):
    """Two processors: the second finds nothing while the first holds the lease."""
    batch = make_batch()
    db_commit_with_retry(queue_batch, batch.id)
    assert db_commit_with_retry(claim_next_batch, "first", 60) == batch.id
    assert db_commit_with_retry(claim_next_batch, "second", 60) is None


def test_expired_lease_is_taken_over(app):
    """A lease that ran out (its worker died) lets another processor claim the batch."""
    batch = make_batch()
    db_commit_with_retry(queue_batch, batch.id)
    # A lease that ran out the moment it was taken: no waiting for the clock.
    assert db_commit_with_retry(claim_next_batch, "dead", -1) == batch.id
    assert db_commit_with_retry(claim_next_batch, "alive", 60) == batch.id


def test_heartbeat_keeps_a_slow_batch_from_being_taken_over(app):
    """While a worker is busy on one slow step, its heartbeat renews the lease past its first expiry."""
    app.config["LEASE_SECONDS"] = 2
    batch = make_batch()
    db_commit_with_retry(queue_batch, batch.id)
    processor = Processor(app, owner="slow")
    assert db_commit_with_retry(claim_next_batch, "slow", 2) == batch.id
    first_expiry = lease_expiry(batch.id)
    with processor.heartbeat(batch.id):
        # Renewed at a time when the first lease had run out: without the heartbeat it would be up for grabs.
        wait_for(lambda: lease_expiry(batch.id) > first_expiry + timedelta(seconds=2), 60, "a renewed lease")
        assert db_commit_with_retry(claim_next_batch, "thief", 60) is None


def lease_expiry(batch_id: int) -> datetime:
    return run_in_transaction(lambda: db.session.get(Batch, batch_id).lease_expires_at, read_only=True)


def test_sweep_removes_only_stale_partial_uploads(app):
    """Crash leftovers in incoming/ are removed; a partial file still being written is kept."""
    stale, fresh = incoming_dir() / "old.part", incoming_dir() / "new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
    assert sweep_incoming() == 1
    assert not stale.exists() and fresh.exists()


def test_grouping_holds_no_write_lock_while_it_reads_and_groups(app, monkeypatch):
    """Another writer commits at once while the processor groups a batch; the grouping is then redone as a writer."""
    batch_id, _ = make_scanned_batch([("card", "ANNA"), ("photo",)])
    db_commit_with_retry(queue_batch, batch_id)
    assert db_commit_with_retry(claim_next_batch, "grouper", 60) == batch_id
    other_writer = sqlite3.connect(sqlite_file(app), timeout=0.2, isolation_level=None)
    calls = []
    group_batch = grouping.group_batch

    def group_while_another_writes(*args, **kwargs):
        if not calls:
            other_writer.execute("INSERT INTO setting (key, value) VALUES ('probe', '1')")
        calls.append(1)
        return group_batch(*args, **kwargs)

    monkeypatch.setattr(grouping, "group_batch", group_while_another_writes)
    try:
        db_commit_with_retry(regroup, batch_id, "grouper", 60, read_only=True)
    finally:
        other_writer.close()
    assert len(calls) == 2
    roles = run_in_transaction(lambda: [p.role for p in db.session.get(Batch, batch_id).photos], read_only=True)
    assert roles == [PhotoRole.SEPARATOR, PhotoRole.PHOTO]
