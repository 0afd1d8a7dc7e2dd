"""Roster import: a school's or club's list of people, as CSV (Excel exports included)."""

import csv
import io
import re
from dataclasses import dataclass, field

from sqlalchemy import select

from data.extensions import db
from data.models import Person
from data.states import PersonSource
from services.person_text import REFUSAL, has_control_characters
from services.regrouping import requeue_batches_for_codes

REQUIRED = ("code", "name")
KNOWN = ("code", "name", "email", "group")
CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ROWS = 100_000


class RosterError(ValueError):
    """The file as a whole cannot be read (no header, wrong encoding)."""


@dataclass(frozen=True)
class RosterRow:
    line: int
    code: str
    name: str
    email: str | None
    group: str | None
    extra: dict


@dataclass
class RosterResult:
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def decode(data: bytes) -> str:
    """UTF-8 (with or without Excel's BOM), else Windows-1252, which Excel writes in many locales."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse_roster(data: bytes) -> RosterResult:
    """Check every row; keep the good ones, report the bad ones by line number."""
    text = decode(data)
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as error:
        raise RosterError(f"the header line cannot be read: {error}") from None
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise RosterError(f"the header must name the columns code,name,email,group (missing: {', '.join(missing)})")
    reader.fieldnames = header
    result = RosterResult()
    seen: dict[str, int] = {}
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # e.g. a field over the csv module's size limit: skip the row
            result.errors.append((reader.line_num, f"unreadable row: {error}"))
            continue
        line = reader.line_num
        if len(result.rows) + len(result.errors) >= MAX_ROWS:
            raise RosterError(f"more than {MAX_ROWS} rows; split the file")
        error, row = check_row(record, line)
        if error is None and row.code in seen:
            error = f"code {row.code} already used on line {seen[row.code]}"
        if error is not None:
            result.errors.append((line, error))
            continue
        seen[row.code] = line
        result.rows.append(row)
    return result


def check_row(record: dict, line: int) -> tuple[str | None, RosterRow | None]:
    if None in record:
        return "more fields than the header has columns", None
    values = {key: (value or "").strip() for key, value in record.items() if key}
    if has_control_characters(*values.values()):
        return f"{REFUSAL}; fix the cell", None
    code, name, email = values.get("code", ""), values.get("name", ""), values.get("email", "")
    if not code:
        return "code is empty", None
    if not CODE.match(code):
        return f"code {code[:70]!r} may only have letters, digits, - and _ (at most 64)", None
    if not name:
        return "name is empty", None
    if len(name) > 200:
        return "name is longer than 200 characters", None
    if email and ("@" not in email or len(email) > 320):
        return f"email {email[:70]!r} is not valid", None
    extra = {key: value for key, value in values.items() if key not in KNOWN}
    return None, RosterRow(line, code, name, email.lower() or None, values.get("group") or None, extra)


def existing_codes() -> set[str]:
    """Codes already in the database: a preview marks those rows as updates, not new people."""
    return set(db.session.scalars(select(Person.code)))


def save_roster(rows: list[RosterRow]) -> tuple[int, int]:
    """Create or update people by code (idempotent: importing twice changes nothing)."""
    existing = {p.code: p for p in db.session.scalars(select(Person).where(Person.code.in_([r.code for r in rows])))}
    created = updated = 0
    for row in rows:
        person = existing.get(row.code)
        if person is None:
            person = Person(code=row.code, source=PersonSource.ROSTER, consent=False)
            db.session.add(person)
            created += 1
        new_values = (row.name, row.email, row.group, row.extra)
        if person.id is not None and (person.name, person.email, person.group_name, person.extra) != new_values:
            updated += 1
        person.name, person.email, person.group_name, person.extra = new_values
    db.session.flush()
    return created, updated


def import_roster_rows(rows: list[RosterRow]) -> tuple[int, int]:
    """Save the rows; batches that held these codes for review (cards shot before the import) group again."""
    counts = save_roster(rows)
    requeue_batches_for_codes({row.code for row in rows})
    return counts
