"""What an export writes is safe to open: no spoofing characters in names, no formulas in manifest cells,
and the people list survives any page number."""

import csv
import io

import pytest

from data.models import Person, Photo
from services.export import export_names, folder_name, manifest_csv, spreadsheet_safe

RLO, LRI, PDI = "\u202e", "\u2066", "\u2069"


@pytest.mark.parametrize("cell", ["=1+1", '＝HYPERLINK("x")', "＋1", "－1", "＠SUM(A1)", "﹦1", "@x", "\tx"])
def test_formula_starters_in_any_width_are_neutralised(cell):
    """Full-width (and small-form) = + - @ start a formula in spreadsheets just as ASCII ones do."""
    assert spreadsheet_safe(cell).startswith("'")
    [row] = csv.DictReader(io.StringIO(manifest_csv([{"file": cell}])))
    assert row["file"] == "'" + cell


def test_plain_cells_are_left_alone():
    """Names, hashes and dates are written as they are."""
    for cell in ("IMG_0001.JPG", "2026-05-01T09:00:00", "", "Zoë"):
        assert spreadsheet_safe(cell) == cell


def test_bidirectional_controls_are_dropped_from_exported_names():
    """A name or file name with a right-to-left override cannot disguise what a file is."""
    person = Person(code="ANNA", name=f"Anna{RLO}gpj.exe")
    assert folder_name(person) == "ANNA Annagpj.exe"
    photo = Photo(id=1, original_name=f"cam/{LRI}IMG{RLO}gpj.exe{PDI}", content_hash="ab" * 32)
    assert list(export_names([photo])) == ["IMGgpj.exe"]


def test_a_huge_page_number_is_an_empty_page_not_an_error(staff):
    """/people?page= with a 23-digit number answers 200, as a page past the end does."""
    assert staff.get("/people?page=99999999999999999999999").status_code == 200
