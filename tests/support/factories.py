"""Factories for test data, committed through the same helper the app uses."""

from data.database import db_commit_with_retry
from data.models import Batch, Person, User
from data.states import PersonSource, UserRole
from services.accounts import create_user

PASSWORD = "correct horse battery"


def make_user(username: str = "staff", role: UserRole = UserRole.STAFF) -> User:
    return db_commit_with_retry(create_user, username, PASSWORD, role)


def make_person(code: str, name: str = "", group: str | None = None, email: str | None = None) -> Person:
    from data.extensions import db

    def unit():
        person = Person(
            code=code, name=name or f"Person {code}", group_name=group, email=email, source=PersonSource.ROSTER
        )
        db.session.add(person)
        db.session.flush()
        return person

    return db_commit_with_retry(unit)


def make_batch(label: str = "batch") -> Batch:
    from services.batches import create_batch

    return db_commit_with_retry(create_batch, label)


def login(client, username: str = "staff", password: str = PASSWORD):
    return client.post("/login", data={"username": username, "password": password})


def make_scanned_batch(plan: list[tuple[str, ...]], label: str = "scanned") -> tuple[int, list[int]]:
    """A processed batch whose photos are scanned and grouped as the processor would: plan entries are
    ("photo",) or ("card", CODE). No image files: for tests of grouping and review in the database."""
    import hashlib
    from datetime import datetime, timedelta

    from data.extensions import db
    from data.models import Photo
    from data.states import BatchStatus, ScanState
    from services.batches import create_batch
    from services.regrouping import regroup_batch

    def unit():
        batch = create_batch(label)
        batch.status = BatchStatus.DONE
        ids = []
        for i, entry in enumerate(plan, start=1):
            photo = Photo(
                batch_id=batch.id,
                original_name=f"IMG_{i:04d}.JPG",
                extension=".jpg",
                size=1,
                content_hash=hashlib.sha256(f"{label}-{i}".encode()).hexdigest(),
                scan_state=ScanState.SCANNED,
                camera_make="Canon",
                camera_model="R6",
                camera_serial="1",
                captured_at=datetime(2026, 5, 1, 9) + timedelta(seconds=i),
                qr_texts=list(entry[1:]),
            )
            db.session.add(photo)
            db.session.flush()
            ids.append(photo.id)
        regroup_batch(batch.id)
        return batch.id, ids

    return db_commit_with_retry(unit)


def register(client, email: str = "ann@example.com", name: str = "Ann", consent: str = "yes", group: str = "5A"):
    """Post the public registration form as a person would."""
    return client.post("/register", data={"name": name, "email": email, "group": group, "consent": consent})
