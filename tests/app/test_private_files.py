"""Files the app writes are readable by its own user only: the data folder 700, every file in it 600."""

import io
import os
import stat

from data import storage
from data.extensions import db
from services import export
from tests.support.apps import build_app, migrate_to_head
from tests.support.factories import make_person


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def loose_files(root) -> list[str]:
    """Everything under root that another local user could read or enter."""
    found = []
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(folder, name)
            if mode(path) & 0o077:
                found.append(f"{oct(mode(path))} {path}")
    return found


def test_data_directory_and_everything_in_it_is_private(tmp_path, monkeypatch):
    """A fresh install: data folder 700; the SQLite file, an original, a thumbnail,
    an export folder and its manifest are 600/700 (the secret key is made 600 explicitly)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.umask(0o022)  # what a shell usually gives
    url = f"sqlite:///{data_dir / 'intake.sqlite3'}"
    migrate_to_head(data_dir, url)
    app = build_app(data_dir, url, monkeypatch)
    with app.app_context():
        temp, digest, _ = storage.receive_stream(io.BytesIO(b"\xff\xd8photo\xff\xd9"), 1000)
        storage.keep_original(temp, digest, ".jpg")
        thumb = storage.thumbnail_path(digest)
        thumb.parent.mkdir(parents=True, exist_ok=True)
        thumb.write_bytes(b"thumb")
        person = make_person("ANNA", "Anna")
        folder = storage.export_root() / export.folder_name(person)
        folder.mkdir(parents=True)
        export.write_atomically(folder / export.MANIFEST_CSV, b"file\n")
        db.session.remove()
        db.engine.dispose()
    assert mode(data_dir) == 0o700
    assert len(list(data_dir.rglob("*"))) >= 8, "the test wrote too little to prove anything"
    assert loose_files(data_dir) == []
