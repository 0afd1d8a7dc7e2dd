"""Roster import: CSV rules, bad rows by line number, good rows kept, idempotent."""

import pytest
from sqlalchemy import select

from data.extensions import db
from data.models import Person
from services.roster import RosterError, parse_roster


def test_reads_header_extra_columns_and_keeps_them(runner, tmp_path):
    """code,name,email,group plus an extra column: people created, the extra column kept."""
    path = tmp_path / "r.csv"
    path.write_text("code,name,email,group,homeroom\nA1,Ann,ann@example.com,5A,R12\nB2,Bob,,,\n")
    result = runner.invoke(args=["import-roster", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output
    ann = db.session.scalar(select(Person).where(Person.code == "A1"))
    assert (ann.name, ann.email, ann.group_name, ann.extra, str(ann.source)) == (
        "Ann",
        "ann@example.com",
        "5A",
        {"homeroom": "R12"},
        "roster",
    )


def test_excel_bom_and_semicolons(runner, tmp_path):
    """An Excel export with a BOM and ';' separators is read."""
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffcode;name;email;group\r\nX-1;Zoë Ångström;z@example.com;7B\r\n".encode())
    assert runner.invoke(args=["import-roster", str(path)]).exit_code == 0
    assert db.session.scalar(select(Person.name).where(Person.code == "X-1")) == "Zoë Ångström"


def test_bad_rows_reported_by_line_good_rows_kept(runner, tmp_path):
    """Empty codes, bad characters, duplicates and ragged rows are reported with their line numbers."""
    path = tmp_path / "bad.csv"
    path.write_text(
        "code,name,email,group\nOK1,Good,,\n,No code,,\nBAD CODE,Space,,\nOK1,Again,,\n"
        "OK2,,,\nOK3,Mail,not-an-email,\nOK4,Too,many,fields,here\nOK5,Fine,,\n"
    )
    result = runner.invoke(args=["import-roster", str(path)])
    assert result.exit_code == 0
    for line in (3, 4, 5, 6, 7, 8):
        assert f"bad.csv:{line}:" in result.output
    codes = set(db.session.scalars(select(Person.code)))
    assert codes == {"OK1", "OK5"}


def test_import_twice_changes_nothing(runner, tmp_path):
    """Importing the same roster again creates and updates nobody."""
    path = tmp_path / "r.csv"
    path.write_text("code,name,email,group\nA1,Ann,,\n")
    runner.invoke(args=["import-roster", str(path)])
    result = runner.invoke(args=["import-roster", str(path)])
    assert "0 created, 0 updated" in result.output


@pytest.mark.parametrize("data", [b"", b"name,email\nAnn,a@b.c\n", b"\x00\x01\x02garbage"])
def test_unreadable_file_is_an_error_not_a_crash(runner, tmp_path, data):
    """A file without the required header gives a clear error and stores nothing."""
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    result = runner.invoke(args=["import-roster", str(path)])
    assert result.exit_code != 0 and "header" in result.output
    assert db.session.scalar(select(Person.id)) is None


def test_parse_keeps_formula_text_as_data():
    """A hostile cell is stored as text (it is defused when written to a spreadsheet)."""
    result = parse_roster(b'code,name\nA1,=HYPERLINK("http://x")\n')
    assert result.rows[0].name.startswith("=")


def test_missing_required_column_raises():
    """No code column: the whole file is refused with a message naming it."""
    with pytest.raises(RosterError, match="code"):
        parse_roster(b"name,email\nAnn,a@b.c\n")
