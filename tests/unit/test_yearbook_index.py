"""The yearbook INDEX.TXT writer: PSPA/PSPI columns, CRLF, names split and made safe."""

from engine.yearbook import COLUMNS, IndexRow, image_file_name, index_txt, split_name


def lines(data: bytes) -> list[list[str]]:
    text = data.decode()
    assert text.endswith("\r\n")
    return [line.split("\t") for line in text[:-2].split("\r\n")]


def test_header_names_the_standard_columns_in_order():
    """The first line names the 13 PSPI columns in their order, then Student ID."""
    header = lines(index_txt([]))[0]
    assert header[:13] == [
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
    ]
    assert header[13:] == ["Student ID"]


def test_one_crlf_line_per_portrait_with_fields_in_column_order():
    """Each row puts every value under its own column; lines end in CRLF and no bare LF appears."""
    row = IndexRow("AB12.jpg", "Hana", "Bakker", "AB12", home_room="5B", grade="5", teacher="Ms Ito")
    data = index_txt([row, IndexRow("CD34.jpg", "Ben", "Cho", "CD34")], volume="Oak School")
    header, first, second = lines(data)
    assert dict(zip(header, first, strict=True)) == {
        **dict.fromkeys(COLUMNS, ""),
        "Volume Name": "Oak School",
        "Image Folder": "IMAGES",
        "Image File Name": "AB12.jpg",
        "Grade": "5",
        "Last Name": "Bakker",
        "First Name": "Hana",
        "Home Room": "5B",
        "Teacher Name": "Ms Ito",
        "Student ID": "AB12",
    }
    assert second[2] == "CD34.jpg" and second[6] == ""
    assert data.count(b"\n") == data.count(b"\r\n") == 3


def test_missing_group_leaves_home_room_empty_but_keeps_every_column():
    """A person without a group still has a full row: Home Room is empty, the columns stay aligned."""
    _, row = lines(index_txt([IndexRow("X.jpg", "Solo", "", "X")]))
    assert len(row) == len(COLUMNS)
    assert row[COLUMNS.index("Home Room")] == "" and row[COLUMNS.index("Last Name")] == ""


def test_tabs_and_line_breaks_inside_a_value_cannot_split_the_row():
    """A tab, CR, LF or Unicode line separator inside a name becomes one space; other controls vanish."""
    row = IndexRow("A.jpg", "Ann\tMarie", "Smith\r\nJones\u2028X", "A", home_room="5\x00B\x1b")
    _, fields = lines(index_txt([row]))
    assert len(fields) == len(COLUMNS)
    assert fields[5] == "Ann Marie" and fields[4] == "Smith Jones X" and fields[6] == "5B"


def test_accents_are_utf8_and_composed():
    """Accented names are written as UTF-8, composed (NFC), so "é" is one character however it came in."""
    decomposed = "Rene\u0301e"
    data = index_txt([IndexRow("A.jpg", decomposed, "Ørsted-Łukasz", "A")])
    assert "Renée".encode() in data and "Ørsted-Łukasz".encode() in data
    assert decomposed.encode() not in data


def test_split_name_handles_common_shapes():
    """First/last from one field: final word, particles, "Last, First", one word, stray spaces and tabs."""
    assert split_name("Hana Bakker") == ("Hana", "Bakker")
    assert split_name("Mary Ann Smith") == ("Mary Ann", "Smith")
    assert split_name("Jan van der Berg") == ("Jan", "van der Berg")
    assert split_name("Ludwig van Beethoven") == ("Ludwig", "van Beethoven")
    assert split_name("García Lorca, Federico") == ("Federico", "García Lorca")
    assert split_name("  Zoë \t Ångström ") == ("Zoë", "Ångström")
    assert split_name("Madonna") == ("Madonna", "")
    assert split_name("") == ("", "")


def test_image_file_names_are_safe_on_every_file_system():
    """Card codes become file names with nothing a file system or a path could misread."""
    assert image_file_name("AB12", ".JPG") == "AB12.jpg"
    assert image_file_name("../etc/passwd", ".jpg") == "etc_passwd.jpg"
    assert image_file_name("..", ".jpg") == "portrait.jpg"
