"""Group one batch's scanned photos into QR-card runs: who is in which photo.

Pure: plain data in, plain data out (no database, no files, no clock).

Rules
- Sequences. Each camera body is its own sequence, ordered by capture time (with
  sub-seconds); ties go by natural filename order. Frames with no camera or no
  capture time cannot be placed on a camera's clock, so together they form one
  extra sequence (camera None) in natural path order, folder first
  (IMG_2 < IMG_10, 100CANON/IMG_9999 < 101CANON/IMG_0001).
- Cards. A frame is a card when one of its QR texts matches the card pattern or
  is a code that ``resolve`` knows. Other QR texts (URLs, wifi signs, long
  texts) are ignored: that frame is a normal photo.
- Runs. A card starts the run of its people; the following photos of the same
  sequence belong to it until the next card. The group key comes from the codes,
  so a card shot twice, or again later in the day, continues the same group.
  Several cards in one frame: the run belongs to all of them (key "A+B").
- Review. Photos before a sequence's first card are "unassigned". A card whose
  code ``resolve`` does not know starts its own group (key = the code), so its
  photos never fall to the previous person. Both need review.
- Unreadable cards. A frame the scanner marks ``unreadable_card`` (it shows a
  card-like object but no code was read) and the photos after it, up to the
  next card, are "unassigned" for review ("unreadable card?"): they may be the
  next person's, so they never go silently to the previous one. A "card" or
  "not_card" correction on that frame replaces the mark.
- Corrections, later ones winning: "card" / "not_card" change which frames are
  cards, so the runs after them move too; "assign" replaces one frame's result;
  "exclude" only sets ``excluded``.
- Unusable frames (rejected, duplicate) get no assignment and are not cards:
  the caller keeps their role.
- While files still arrive, only the frames whose place is known are grouped
  (``settled``): a file not scanned yet has no capture time, so it holds back
  the files of its folder named after it (a camera names files in shooting
  order). The grouping of the whole batch, once complete, is the one delivered.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Literal

# An optional "INTAKE:" prefix, then the bare ID (group 1).
DEFAULT_CARD_PATTERN = r"(?:INTAKE:)?([A-Za-z0-9_-]{1,64})"

UNREADABLE_CARD = "unreadable card?"  # the review reason of a frame that looks like a card but gave no code

Role = Literal["separator", "photo", "unassigned"]
Resolve = Callable[[str], str | None]


class CorrectionKind(StrEnum):
    """What an admin can say about a photo in review; the one list of them."""

    ASSIGN = "assign"  # this photo shows that person
    CARD = "card"  # this photo is that person's card
    NOT_CARD = "not_card"  # not a card, whatever its QR says
    EXCLUDE = "exclude"  # deliver it to nobody


@dataclass(frozen=True)
class Frame:
    """One scanned photo of the batch."""

    photo_id: int
    filename: str  # relative to the upload root, e.g. "cardA/IMG_0012.JPG"
    camera: str | None  # camera body (make+model+serial); None without EXIF
    captured_at: datetime | None
    qr_texts: tuple[str, ...] = ()
    usable: bool = True
    unreadable_card: bool = False  # a card-like object that yielded no code


@dataclass(frozen=True)
class Correction:
    """A manual fix from review, applied on top of the scan results."""

    kind: CorrectionKind
    photo_id: int
    code: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CorrectionKind.__members__.values():
            raise ValueError(f"unknown correction kind {self.kind!r}")
        if self.kind in ("assign", "card") and not self.code:
            raise ValueError(f"a {self.kind!r} correction needs a code")


@dataclass(frozen=True)
class Assignment:
    """What grouping decided for one usable frame."""

    photo_id: int
    role: Role
    people: tuple[str, ...] = ()  # registered person codes
    group: str | None = None
    needs_review: bool = False
    reason: str | None = None
    excluded: bool = False


@dataclass(frozen=True)
class _Run:
    """Who the photos after a card belong to."""

    people: tuple[str, ...]
    group: str
    reason: str | None  # why it needs review; None when every code is registered


def card_code(text: str, pattern: str = DEFAULT_CARD_PATTERN) -> str | None:
    """The code on a card's QR text, or None when the text is not a card.

    The pattern must match the whole stripped text; its first group, if any, is the code.
    """
    match = re.fullmatch(pattern, text.strip())
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


def natural_key(path: str) -> tuple[tuple[str | int, ...], ...]:
    """Sort key for a relative path: folder by folder, digit runs compared as numbers."""
    # re.split with a group alternates text and digits, so ints only meet ints.
    return tuple(
        tuple(int(part) if i % 2 else part.casefold() for i, part in enumerate(re.split(r"(\d+)", segment)))
        for segment in path.split("/")
    )


def sequence_of(frame: Frame) -> str | None:
    """The camera whose clock orders this frame; None without camera or capture time."""
    return (frame.camera or None) if frame.captured_at is not None else None


def order_frames(frames: Iterable[Frame]) -> dict[str | None, list[Frame]]:
    """Frames split into sequences (cameras sorted, None last), each in shooting order."""
    sequences: dict[str | None, list[Frame]] = defaultdict(list)
    for frame in frames:
        sequences[sequence_of(frame)].append(frame)
    cameras = sorted(sequences, key=lambda camera: (camera is None, camera or ""))
    return {camera: sorted(sequences[camera], key=_shooting_order) for camera in cameras}


def settled(frames: Iterable[Frame], waiting: Iterable[str]) -> list[Frame]:
    """The frames that can be grouped while the files named in `waiting` (relative paths) are not scanned yet:
    in each folder, those named before the folder's first waiting file."""
    first_waiting: dict[str, tuple] = {}
    for name in waiting:
        folder, key = _folder(name), natural_key(name)
        first_waiting[folder] = min(key, first_waiting.get(folder, key))
    return [
        frame
        for frame in frames
        if (limit := first_waiting.get(_folder(frame.filename))) is None or natural_key(frame.filename) < limit
    ]


def _folder(path: str) -> str:
    return path.rpartition("/")[0]


def _shooting_order(frame: Frame) -> tuple[object, ...]:
    # Only a camera's own clock is comparable, so the None sequence goes by path alone.
    when = frame.captured_at if sequence_of(frame) is not None else None
    return (when or datetime.min, natural_key(frame.filename), frame.filename, frame.photo_id)


def group_batch(
    frames: Iterable[Frame],
    *,
    resolve: Resolve,
    card_pattern: str = DEFAULT_CARD_PATTERN,
    corrections: Sequence[Correction] = (),
) -> list[Assignment]:
    """One assignment per usable frame, sequence by sequence in shooting order.

    ``resolve(code)`` is the registered person's code for a card code or alias, else None.
    """
    card_fixes = {fix.photo_id: fix for fix in corrections if fix.kind in ("card", "not_card")}
    assigned = {fix.photo_id: fix.code for fix in corrections if fix.kind == "assign" and fix.code}
    excluded = {fix.photo_id for fix in corrections if fix.kind == "exclude"}

    assignments = []
    usable = [frame for frame in frames if frame.usable]
    for camera, sequence in order_frames(usable).items():
        cards = [_card_codes(frame, card_fixes.get(frame.photo_id), card_pattern, resolve) for frame in sequence]
        unreadable = [frame.unreadable_card and frame.photo_id not in card_fixes for frame in sequence]
        for assignment in _walk_runs(camera, sequence, cards, unreadable, resolve):
            photo_id = assignment.photo_id
            if photo_id in assigned:
                assignment = _assigned_to(photo_id, assigned[photo_id], resolve)
            assignments.append(replace(assignment, excluded=photo_id in excluded))
    return assignments


def _card_codes(frame: Frame, fix: Correction | None, card_pattern: str, resolve: Resolve) -> tuple[str, ...]:
    """A frame's distinct card codes, after its card correction; empty: a normal photo."""
    if fix is not None:
        return (fix.code,) if fix.kind == "card" and fix.code else ()
    codes = set()
    for text in frame.qr_texts:
        code = card_code(text, card_pattern)
        if code is None and resolve(text.strip()) is not None:
            code = text.strip()  # a registered code that the pattern does not cover
        if code is not None:
            codes.add(code)
    return tuple(sorted(codes))


def _walk_runs(
    camera: str | None, sequence: list[Frame], cards: list[tuple[str, ...]], unreadable: list[bool], resolve: Resolve
) -> Iterator[Assignment]:
    """Each card starts a run; every other frame joins the latest run, unless an unreadable card came after it."""
    run, unreadable_at = None, None
    for frame, codes, unreadable_card in zip(sequence, cards, unreadable, strict=True):
        if codes:
            run, unreadable_at = _run_of(codes, resolve), None
            yield _in_run(frame.photo_id, "separator", run)
        elif unreadable_card:
            unreadable_at = frame.filename
            yield Assignment(frame.photo_id, "unassigned", needs_review=True, reason=UNREADABLE_CARD)
        elif unreadable_at is not None:
            reason = f"after an {UNREADABLE_CARD} ({unreadable_at})"
            yield Assignment(frame.photo_id, "unassigned", needs_review=True, reason=reason)
        elif run is None:
            yield Assignment(frame.photo_id, "unassigned", needs_review=True, reason=_before_first_card(camera))
        else:
            yield _in_run(frame.photo_id, "photo", run)


def _run_of(codes: Sequence[str], resolve: Resolve) -> _Run:
    """The run started by cards with these codes; unknown codes keep their own key."""
    people = sorted({person for code in codes if (person := resolve(code)) is not None})
    unknown = sorted({code for code in codes if resolve(code) is None})
    reason = None
    if unknown:
        reason = f"unknown code{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
    return _Run(tuple(people), "+".join(sorted({*people, *unknown})), reason)


def _assigned_to(photo_id: int, code: str, resolve: Resolve) -> Assignment:
    """An "assign" correction: a photo of that person, needing no review if registered."""
    return _in_run(photo_id, "photo", _run_of((code,), resolve))


def _in_run(photo_id: int, role: Role, run: _Run) -> Assignment:
    return Assignment(photo_id, role, run.people, run.group, run.reason is not None, run.reason)


def _before_first_card(camera: str | None) -> str:
    where = f"camera {camera}" if camera is not None else "the photos without camera or capture time"
    return f"before the first card of {where}"
