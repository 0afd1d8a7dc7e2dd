"""The background processor: claims a queued batch and takes it through scan -> group -> export.

Claims are leases in the database, so several gunicorn workers or hosts never process one batch
twice, and a killed worker's batch is taken over once its lease runs out. Every step commits
through `db_commit_with_retry`; scan results are stored per photo, so a restart resumes.
"""

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from data import storage
from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Batch, Photo, utcnow
from data.states import BatchPhase, BatchStatus, PhotoRole, ScanState
from engine.scanning import ScanResult, scan_file, scan_pool
from services import drive_sync, export, outbox, regrouping

log = logging.getLogger("intake.processor")
# Scan results are committed in small groups: few transactions, little work lost on a kill.
COMMIT_EVERY = 16
COMMIT_SECONDS = 1.0
# How often an idle processor looks for new files while an upload is in progress.
ARRIVAL_POLL_SECONDS = 0.2
# Grouping a batch still uploading reads the whole batch in this web worker's process: it takes at most a
# twentieth of the time, however large the batch grows.
GROUP_ARRIVALS_SHARE = 0.05


class LeaseLost(Exception):
    """Another processor took this batch over; stop touching it."""


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim_next_batch(owner: str, lease_seconds: int, only_batch: int | None = None) -> int | None:
    """Take the oldest queued batch, or one whose processor stopped renewing its lease."""
    now = utcnow()
    claimable = or_(
        Batch.status == BatchStatus.QUEUED, and_(Batch.status == BatchStatus.PROCESSING, Batch.lease_expires_at < now)
    )
    query = select(Batch).where(claimable).order_by(Batch.queued_at, Batch.id).limit(1)
    if only_batch is not None:
        query = query.where(Batch.id == only_batch)
    batch = db.session.scalar(query)
    if batch is None:
        return None
    if batch.status == BatchStatus.PROCESSING:
        batch.move_to(BatchStatus.QUEUED, f"(lease of {batch.lease_owner} expired)")
    batch.move_to(BatchStatus.PROCESSING, f"(claimed by {owner})")
    batch.lease_owner, batch.lease_expires_at = owner, now + timedelta(seconds=lease_seconds)
    batch.heartbeat_at = batch.started_at = now
    batch.attempts += 1
    batch.error = None
    return batch.id


def held_batch(batch_id: int, owner: str, lease_seconds: int) -> Batch:
    """The batch, with its lease extended; raises LeaseLost if it is no longer ours."""
    batch = db.session.get(Batch, batch_id)
    if batch is None or batch.status != BatchStatus.PROCESSING or batch.lease_owner != owner:
        raise LeaseLost(f"batch {batch_id} is no longer held by {owner}")
    now = utcnow()
    batch.lease_expires_at, batch.heartbeat_at = now + timedelta(seconds=lease_seconds), now
    return batch


def set_phase(batch_id: int, owner: str, lease_seconds: int, phase: BatchPhase, done: int, total: int) -> None:
    batch = held_batch(batch_id, owner, lease_seconds)
    batch.phase, batch.progress_done, batch.progress_total = phase, done, total


def apply_scan(photo: Photo, result: ScanResult) -> None:
    photo.scanned_at = utcnow()
    if result.ok and result.sha256 != photo.content_hash:
        result_error = "stored file does not match its hash (damaged on disk)"
    else:
        result_error = None if result.ok else result.error
    if result_error:
        photo.move_scan_to(ScanState.REJECTED)
        photo.error_reason = result_error
        photo.role = PhotoRole.REJECTED
        return
    photo.move_scan_to(ScanState.SCANNED)
    photo.error_reason = None
    photo.width, photo.height, photo.orientation = result.width, result.height, result.orientation
    photo.camera_make, photo.camera_model = result.camera_make, result.camera_model
    photo.camera_serial, photo.captured_at = result.camera_serial, result.captured_at
    photo.qr_texts, photo.unreadable_card = list(result.qr_texts), result.unreadable_card


# (photo id, its content hash when the scan was asked for, the file, its thumbnail)
ScanJob = tuple[int, str, Path, Path]


def record_results(results: list[tuple[ScanJob, ScanResult]]) -> set[int]:
    """Store scan results on photos still waiting for them (a photo replaced meanwhile waits for its new scan);
    return the batches they are in."""
    batch_ids = set()
    for (photo_id, content_hash, _, _), result in results:
        photo = db.session.get(Photo, photo_id)
        if photo is not None and photo.scan_state == ScanState.PENDING and photo.content_hash == content_hash:
            apply_scan(photo, result)
            batch_ids.add(photo.batch_id)
    db.session.flush()
    return batch_ids


def record_scans(batch_id: int, owner: str, lease_seconds: int, results: list[tuple[ScanJob, ScanResult]]) -> None:
    batch = held_batch(batch_id, owner, lease_seconds)
    record_results(results)
    batch.progress_done = db.session.scalar(
        select(func.count()).where(Photo.batch_id == batch_id, Photo.scan_state != ScanState.PENDING)
    )


def pending_scans(in_batches: ColumnElement[bool], skip: set[int], limit: int) -> list[ScanJob]:
    """Up to `limit` stored photos of these batches waiting for a scan, in upload order, but those in `skip`."""
    rows = db.session.execute(
        select(Photo.id, Photo.content_hash, Photo.extension)
        .where(in_batches, Photo.scan_state == ScanState.PENDING, Photo.id.not_in(skip))
        .order_by(Photo.id)
        .limit(limit)
    ).all()
    return [(pid, h, storage.original_path(h, ext), storage.thumbnail_path(h)) for pid, h, ext in rows]


def scan_progress(batch_id: int) -> tuple[int, int]:
    """(files scanned, files) of the batch: those scanned while it was uploading count as done."""
    done, total = db.session.execute(
        select(func.count().filter(Photo.scan_state != ScanState.PENDING), func.count()).where(
            Photo.batch_id == batch_id
        )
    ).one()
    return done, total


def uploading_batch_ids() -> Select:
    return select(Batch.id).where(Batch.status == BatchStatus.UPLOADING)


def uploading_batches() -> ColumnElement[bool]:
    return Photo.batch_id.in_(uploading_batch_ids())


def uploads_in_progress() -> bool:
    return db.session.scalar(uploading_batch_ids().limit(1)) is not None


def start_grouping(batch_id: int, owner: str, lease_seconds: int) -> None:
    held_batch(batch_id, owner, lease_seconds).phase = BatchPhase.GROUP


def regroup(batch_id: int, owner: str, lease_seconds: int) -> None:
    """Group the batch, then check the lease: run deferred, the transaction takes the write lock only for the
    writes at its end (a writer that came in between makes it retry as a writer)."""
    regrouping.regroup_batch(batch_id)
    held_batch(batch_id, owner, lease_seconds)


def finish_batch(batch_id: int, owner: str, lease_seconds: int, changed_files: int) -> None:
    batch = held_batch(batch_id, owner, lease_seconds)
    batch.move_to(BatchStatus.DONE, f"({changed_files} export files changed)")
    batch.phase, batch.finished_at, batch.lease_owner, batch.lease_expires_at = None, utcnow(), None, None


def fail_batch(batch_id: int, owner: str, reason: str) -> None:
    batch = db.session.get(Batch, batch_id)
    if batch is None or batch.lease_owner != owner or batch.status != BatchStatus.PROCESSING:
        return
    batch.fail(reason)
    batch.lease_owner, batch.lease_expires_at = None, None


class Processor:
    """One claim loop with a process pool for scanning (both cores) and a clear life cycle."""

    def __init__(self, app: Flask, owner: str | None = None):
        self.app = app
        self.owner = owner or default_owner()
        self.lease = app.config["LEASE_SECONDS"]
        self.workers = max(1, app.config["PROCESSOR_WORKERS"])
        self.stop_event = threading.Event()
        self._pool: ProcessPoolExecutor | None = None
        self._arrivals_paused = False  # until a batch is processed, after a scan process crashed on arrivals
        self._arrived_in: set[int] = set()  # uploading batches with scans not grouped yet
        self._next_grouping = 0.0

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = scan_pool(self.workers)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run_once(self, only_batch: int | None = None) -> int | None:
        """Claim and process one batch; return its id, or None when there was nothing to do."""
        with self.app.app_context():
            batch_id = db_commit_with_retry(claim_next_batch, self.owner, self.lease, only_batch)
            if batch_id is None:
                return None
            log.info("processing batch %s as %s", batch_id, self.owner)
            self._arrivals_paused = False
            try:
                self.process(batch_id)
            except LeaseLost as lost:
                log.warning("%s", lost)
            except BrokenProcessPool:
                self._pool = None
                db_commit_with_retry(fail_batch, batch_id, self.owner, "a scanner process crashed; re-run the batch")
            except Exception as error:
                log.exception("batch %s failed", batch_id)
                db_commit_with_retry(fail_batch, batch_id, self.owner, f"{type(error).__name__}: {error}")
            return batch_id

    @contextmanager
    def heartbeat(self, batch_id: int):
        """Renew the lease on a timer too, so a slow photo or a long export never looks like a dead worker."""
        stop = threading.Event()

        def beat() -> None:
            with self.app.app_context():
                while not stop.wait(self.lease / 3):
                    try:
                        db_commit_with_retry(held_batch, batch_id, self.owner, self.lease)
                    except LeaseLost:
                        return
                    except Exception:
                        log.exception("heartbeat for batch %s failed", batch_id)

        thread = threading.Thread(target=beat, name=f"heartbeat-{batch_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def process(self, batch_id: int) -> None:
        with self.heartbeat(batch_id):
            self.process_steps(batch_id)

    def process_steps(self, batch_id: int) -> None:
        self.scan(batch_id)
        db_commit_with_retry(start_grouping, batch_id, self.owner, self.lease)
        db_commit_with_retry(regroup, batch_id, self.owner, self.lease, read_only=True)
        db_commit_with_retry(set_phase, batch_id, self.owner, self.lease, BatchPhase.EXPORT, 0, 0)
        changed = export.export_pending()
        db_commit_with_retry(finish_batch, batch_id, self.owner, self.lease, changed)

    def scan(self, batch_id: int) -> None:
        done, total = run_in_transaction(scan_progress, batch_id, read_only=True)
        db_commit_with_retry(set_phase, batch_id, self.owner, self.lease, BatchPhase.SCAN, done, total)
        self.scan_stream(
            Photo.batch_id == batch_id,
            lambda ready: db_commit_with_retry(record_scans, batch_id, self.owner, self.lease, ready),
        )
        if self.stop_event.is_set():
            raise LeaseLost(f"stopping: batch {batch_id} is left for the next processor")

    def scan_arrivals(self) -> bool:
        """Scan what has been stored in batches still uploading, while the rest arrives; True if it scanned any.

        No lease is needed: a scan only fills in a photo still waiting for it, so a second scan is wasted work,
        never a wrong one; the batch is claimed once its upload is complete.
        """
        if self._arrivals_paused:
            return False
        try:
            scanned = self.scan_stream(uploading_batches(), self.record_arrivals)
            self.group_arrivals()
            return scanned
        except BrokenProcessPool:
            # A file crashed a scan process: leave those files to the batch's own run, which fails it with the
            # reason, rather than crash a new pool again and again.
            log.warning("a scan process crashed on an upload in progress; scanning waits for the batch's run")
            self._pool, self._arrivals_paused = None, True
            return False

    def record_arrivals(self, ready: list[tuple[ScanJob, ScanResult]]) -> None:
        self._arrived_in |= db_commit_with_retry(record_results, ready)
        self.group_arrivals()

    def group_arrivals(self) -> None:
        """Every GROUP_ARRIVALS_SECONDS, group the uploading batches with new scans as far as their files allow."""
        started = time.monotonic()
        if not self._arrived_in or started < self._next_grouping:
            return
        for batch_id in sorted(self._arrived_in):
            db_commit_with_retry(regrouping.group_arrivals, batch_id, read_only=True)
        self._arrived_in.clear()
        took = time.monotonic() - started
        self._next_grouping = started + max(self.app.config["GROUP_ARRIVALS_SECONDS"], took / GROUP_ARRIVALS_SHARE)

    def scan_stream(self, in_batches: ColumnElement[bool], record: Callable[[list], None]) -> bool:
        """Keep every scan process busy with the pending photos of these batches, taking in photos stored while
        it runs, and record results in small groups. True if it scanned anything."""
        pool, depth = self.pool(), 2 * self.workers
        running: dict[Future, ScanJob] = {}
        ready: list[tuple[ScanJob, ScanResult]] = []
        scanned, last_commit = False, time.monotonic()
        while True:
            # Looked for again whenever a process may soon be free, even after a look found nothing: files
            # stored meanwhile keep every process busy instead of waiting until the last scan in flight ends.
            if len(running) <= self.workers and not self.stop_event.is_set():
                skip = {job[0] for job in running.values()} | {job[0] for job, _ in ready}
                jobs = run_in_transaction(pending_scans, in_batches, skip, depth - len(running), read_only=True)
                running.update((pool.submit(scan_file, job[2], job[3]), job) for job in jobs)
            if not running and not ready:
                return scanned
            done, _ = wait(running, timeout=COMMIT_SECONDS, return_when=FIRST_COMPLETED)
            ready += [(running.pop(future), future.result()) for future in done]
            if self.stop_event.is_set():
                for future in running:
                    future.cancel()
                running.clear()
            if ready and (
                len(ready) >= COMMIT_EVERY or not running or time.monotonic() - last_commit >= COMMIT_SECONDS
            ):
                record(ready)
                ready, scanned, last_commit = [], True, time.monotonic()

    def deliver_changes(self) -> None:
        """Between batches: export people changed by review corrections or new registrations."""
        with self.app.app_context():
            export.export_pending()

    def run_forever(self) -> None:
        poll = self.app.config["PROCESSOR_POLL_SECONDS"]
        self.pool()  # started now, in this thread, which outlives it: the first batch does not wait for it
        while not self.stop_event.is_set():
            try:
                with self.app.app_context():
                    worked = self.run_once() is not None or self.scan_arrivals()
                    if not worked:
                        self.deliver_changes()
                    uploading = not worked and run_in_transaction(uploads_in_progress, read_only=True)
            except Exception:
                log.exception("processor loop error")
                worked = uploading = False
            if not worked:
                # Files are arriving: look again soon, so a photo is scanned as soon as it is stored and a
                # completed upload is claimed at once.
                self.stop_event.wait(ARRIVAL_POLL_SECONDS if uploading else poll)


def run_every(app: Flask, stop_event: threading.Event, work: Callable[[], object], interval_key: str) -> None:
    """Delivery (Drive, e-mail) on its own thread: a slow venue uplink or SMTP server must not hold up scanning."""
    while not stop_event.is_set():
        try:
            with app.app_context():
                work()
        except Exception:
            log.exception("%s round failed", work.__qualname__)
        stop_event.wait(app.config[interval_key])


DELIVERY_THREADS = [
    ("intake-drive", drive_sync.sync_pending, "DRIVE_SYNC_SECONDS"),
    ("intake-mail", outbox.send_due, "MAIL_SEND_SECONDS"),
]


_background: tuple[threading.Thread, Processor] | None = None


def _run_with_host_lock(processor: Processor) -> None:
    """Only the worker holding the host's lock file processes: one scan pool per machine. The OS
    drops the lock when that worker dies, and another worker's thread takes over."""
    lock_path = Path(processor.app.config["DATA_DIR"]) / "processor.lock"
    with open(lock_path, "a") as lock_file:
        while not processor.stop_event.is_set():
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                processor.stop_event.wait(processor.app.config["PROCESSOR_POLL_SECONDS"])
                continue
            senders = [
                threading.Thread(
                    target=run_every, args=(processor.app, processor.stop_event, work, key), name=name, daemon=True
                )
                for name, work, key in DELIVERY_THREADS
            ]
            for sender in senders:
                sender.start()
            with processor.app.app_context():
                storage.sweep_incoming()
            try:
                processor.run_forever()
            finally:
                for sender in senders:
                    sender.join(timeout=30)
                fcntl.flock(lock_file, fcntl.LOCK_UN)
                processor.close()


def start_in_background(app: Flask) -> Processor | None:
    global _background
    if not app.config["PROCESSOR_ENABLED"] or _background is not None:
        return None
    processor = Processor(app)
    thread = threading.Thread(target=_run_with_host_lock, args=(processor,), name="intake-processor", daemon=True)
    thread.start()
    _background = (thread, processor)
    return processor


def stop_background(timeout: float = 30.0) -> None:
    global _background
    if _background is None:
        return
    thread, processor = _background
    processor.stop_event.set()
    thread.join(timeout)
    _background = None
