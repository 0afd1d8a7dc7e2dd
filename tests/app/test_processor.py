"""The processor's claim, lease and housekeeping, without images."""

import os
import time
from datetime import datetime, timedelta

from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Batch
from data.storage import incoming_dir, sweep_incoming
from photo_processor import Processor, claim_next_batch
from services.batches import queue_batch
from tests.support.factories import make_batch
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
