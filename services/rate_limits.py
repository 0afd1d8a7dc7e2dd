"""Sliding-window limits kept as RateEvent rows, so every worker and process counts the same uses."""

from datetime import timedelta

from sqlalchemy import delete, func, select

from data.extensions import db
from data.models import RateEvent, utcnow


def used(bucket: str, window: timedelta) -> int:
    """Uses of `bucket` within the last `window`; reads only, so a check costs no write."""
    since = utcnow() - window
    return db.session.scalar(
        select(func.count()).select_from(RateEvent).where(RateEvent.bucket == bucket, RateEvent.at >= since)
    )


def record(bucket: str, window: timedelta) -> None:
    """Count one use, dropping the bucket's uses that have left the window."""
    now = utcnow()
    db.session.execute(delete(RateEvent).where(RateEvent.bucket == bucket, RateEvent.at < now - window))
    db.session.add(RateEvent(bucket=bucket, at=now))


class RateLimited(Exception):
    """Too many uses of a public form or link from this address, or from everyone, or for one e-mail address."""


def spend(buckets: dict[str, int], window: timedelta, refusal: str) -> None:
    """Count one use against each bucket's limit over `window`, or refuse it all (RateLimited, counting nothing)."""
    for bucket, limit in buckets.items():
        if used(bucket, window) >= limit:
            raise RateLimited(refusal)
    for bucket in buckets:
        record(bucket, window)
