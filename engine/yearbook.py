"""The yearbook index: the PSPA/PSPI `INDEX.TXT` that school-photo and yearbook software exchange.

Plain data in, bytes out. The layout follows the PSPI "Digital Data & Image Format and Usage Guidelines for
School Photography & Yearbook Publication": a header line naming the 13 standard columns, then one line per
image; tab-delimited, CRLF line ends, UTF-8. A column the photo day does not know stays empty. Student ID,
after the standard columns, carries the person's card code so a yearbook can be matched back to the roster.
"""

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

INDEX_NAME = "INDEX.TXT"
IMAGE_FOLDER = "IMAGES"
DEFAULT_VOLUME = "Yearbook"
COLUMNS = (
    "Volume Name",
    "Image Folder",
    "Image File Name",
    "Grade",
    "Last Name",
    "First Name",
    "Home Room",
    "Period",
    "Teacher Name",
    "Track",
    "Department",
    "Title",
    "Image Size",
    "Student ID",
)
# Family-name particles: in "Jan van der Berg" the last name starts at "van".
PARTICLES = frozenset(
    "al bin da das de del della der des di dos du el la le lo mac st ten ter van von zu".split() + ["van't"]
)
_BREAKS = re.compile(r"[\t\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
_UNSAFE_FILE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class IndexRow:
    """One portrait: its file in the image folder and what the yearbook prints beside it."""

    image_file: str
    first_name: str
    last_name: str
    student_id: str
    home_room: str = ""
    grade: str = ""
    period: str = ""
    teacher: str = ""
    track: str = ""
    department: str = ""
    title: str = ""


def split_name(name: str) -> tuple[str, str]:
    """(first, last) from one name field: "Last, First"; else the last name starts at a particle after the
    first word ("Jan van der Berg"), or is the final word ("Mary Ann Smith"). One word is a first name."""
    if "," in name:
        last, first = (part.strip() for part in name.split(",", 1))
        return clean(first), clean(last)
    words = clean(name).split()
    if len(words) < 2:
        return " ".join(words), ""
    start = next((i for i in range(1, len(words) - 1) if words[i].lower() in PARTICLES), len(words) - 1)
    return " ".join(words[:start]), " ".join(words[start:])


def clean(value: str) -> str:
    """One field's text: a tab or line break would split the row, so each run of them becomes one space;
    other control characters go; NFC so an accent is one character whatever the source sent."""
    text = _BREAKS.sub(" ", unicodedata.normalize("NFC", value or ""))
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc").strip()


def image_file_name(student_id: str, extension: str) -> str:
    """A portrait's file name: the card code, unique by construction and safe on every file system."""
    stem = _UNSAFE_FILE.sub("_", student_id).strip("._") or "portrait"
    return f"{stem}{_UNSAFE_FILE.sub('', extension.lower())}"


def index_line(fields: Iterable[str]) -> str:
    return "\t".join(clean(field) for field in fields) + "\r\n"


def index_txt(rows: Iterable[IndexRow], volume: str = DEFAULT_VOLUME) -> bytes:
    """The whole INDEX.TXT: the header, then one line per portrait in the order given."""
    lines = [index_line(COLUMNS)]
    for row in rows:
        lines.append(
            index_line(
                (
                    volume,
                    IMAGE_FOLDER,
                    row.image_file,
                    row.grade,
                    row.last_name,
                    row.first_name,
                    row.home_room,
                    row.period,
                    row.teacher,
                    row.track,
                    row.department,
                    row.title,
                    "",  # Image Size (SMALL/LARGE) names resized copies; these are the originals
                    row.student_id,
                )
            )
        )
    return "".join(lines).encode()
