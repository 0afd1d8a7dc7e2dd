"""Sliding-window limits kept as RateEvent rows, so every worker and process counts the same uses."""

from datetime import timedelta

from sqlalchemy import delete, func, select

from data.extensions import db
from data.models import RateEvent, utcnow


def record(buckets: list[str], window: timedelta) -> None:
    """Count one use of each bucket, dropping their uses that have left the window."""
    now = utcnow()
    db.session.execute(delete(RateEvent).where(RateEvent.bucket.in_(buckets), RateEvent.at < now - window))
    db.session.add_all([RateEvent(bucket=bucket, at=now) for bucket in buckets])


class RateLimited(Exception):
    """Too many uses of a public form or link from this address, or from everyone, or for one e-mail address."""


def check(buckets: dict[str, int], window: timedelta, refusal: str) -> None:
    """Refuse (RateLimited) when a bucket has reached its limit over `window`; reads only, in one query."""
    since = utcnow() - window
    counted = select(RateEvent.bucket, func.count()).where(RateEvent.bucket.in_(buckets), RateEvent.at >= since)
    uses = dict(db.session.execute(counted.group_by(RateEvent.bucket)).tuples().all())
    if any(uses.get(bucket, 0) >= limit for bucket, limit in buckets.items()):
        raise RateLimited(refusal)


def spend(buckets: dict[str, int], window: timedelta, refusal: str) -> None:
    """Count one use against each bucket's limit over `window`, or refuse it all (RateLimited, counting nothing).
    A registration spends two buckets holding the write lock: one query counts both, one delete and one insert
    record them."""
    check(buckets, window, refusal)
    record(list(buckets), window)
