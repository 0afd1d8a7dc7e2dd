"""The processor's claim, lease and housekeeping, without images."""

import os
import time

from batches import queue_batch
from database import db_commit_with_retry
from photo_processor import Processor, claim_next_batch
from storage import incoming_dir, sweep_incoming
from tests.factories import make_batch


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
    assert db_commit_with_retry(claim_next_batch, "dead", 1) == batch.id
    time.sleep(1.2)
    assert db_commit_with_retry(claim_next_batch, "alive", 60) == batch.id


def test_heartbeat_keeps_a_slow_batch_from_being_taken_over(app):
    """While a worker is busy on one slow step, its heartbeat renews the lease."""
    app.config["LEASE_SECONDS"] = 1
    batch = make_batch()
    db_commit_with_retry(queue_batch, batch.id)
    processor = Processor(app, owner="slow")
    assert db_commit_with_retry(claim_next_batch, "slow", 1) == batch.id
    with processor.heartbeat(batch.id):
        time.sleep(2.5)
        assert db_commit_with_retry(claim_next_batch, "thief", 60) is None


def test_sweep_removes_only_stale_partial_uploads(app):
    """Crash leftovers in incoming/ are removed; a partial file still being written is kept."""
    stale, fresh = incoming_dir() / "old.part", incoming_dir() / "new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
    assert sweep_incoming() == 1
    assert not stale.exists() and fresh.exists()
