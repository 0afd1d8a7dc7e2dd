"""A processor killed with SIGKILL at any moment leaves no scan process (nor multiprocessing helper) behind."""

import os
import signal
import subprocess
import sys

import pytest

from tests.support.apps import REPO, app_environment
from tests.support.photogen import SMALL_SIZE, make_batch
from tests.support.processes import children_of, session_members
from tests.support.waiting import wait_for


@pytest.mark.parametrize("stage", ["pool", "scan", "export"])
def test_no_scan_process_outlives_a_killed_processor(stage, database_url, data_dir, tmp_path):
    """kill -9 of `flask ingest --wait` as its pool starts, mid-scan or mid-export: every scan process goes too."""
    make_batch(tmp_path / "card", [("card", "P1")] + [("photo",)] * 39, size=SMALL_SIZE, workers=2)
    env = {**os.environ, **app_environment(data_dir, database_url), "INTAKE_SCAN_WORKERS": "2"}
    command = [sys.executable, "-m", "tests.support.stalled_ingest", str(tmp_path / "card"), "--hold-export"]
    victim = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in victim.stdout:
            if line.split() == ["stage", stage]:
                break
        else:
            pytest.fail(f"the processor ended before stage {stage}: exit {victim.wait()}")
        if stage != "pool":  # at pool start the workers are still coming up: that is the moment to test
            assert children_of(victim.pid), "the scan pool has no process to orphan"
        victim.kill()
        victim.wait()
        wait_for(lambda: not session_members(victim.pid), 10, f"the scan processes to die (stage {stage})")
    finally:
        for pid in session_members(victim.pid):  # never leave a test's processes running
            os.kill(pid, signal.SIGKILL)
        victim.stdout.close()
