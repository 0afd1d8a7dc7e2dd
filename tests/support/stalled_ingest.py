"""`flask ingest PATH --wait` in this process, announcing its stages on stdout, for tests that kill it there.

    python -m tests.support.stalled_ingest PATH [--hold-export]

Prints "stage pool" as the scan pool starts, "stage scan" when the first scans are recorded and
"stage export" when the export begins; with --hold-export the export then waits for ever (to be killed).
Runs with the environment of tests.support.apps.app_environment.
"""

import sys
import threading

import photo_processor
from app import create_app
from cli.photo_commands import ingest
from services import export


def announce(stage: str, call):
    """`call`, printing the stage on its first use."""
    said = threading.Event()

    def announced(*args, **kwargs):
        if not said.is_set():
            said.set()
            print("stage", stage, flush=True)
        return call(*args, **kwargs)

    return announced


def main(path: str, hold_export: bool) -> None:
    export_pending = export.export_pending
    photo_processor.scan_pool = announce("pool", photo_processor.scan_pool)
    photo_processor.record_scans = announce("scan", photo_processor.record_scans)
    export.export_pending = announce("export", threading.Event().wait if hold_export else export_pending)
    app = create_app()
    with app.app_context():
        ingest.main([path, "--wait"], standalone_mode=False)


if __name__ == "__main__":
    main(sys.argv[1], "--hold-export" in sys.argv[2:])
