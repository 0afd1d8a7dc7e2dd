"""A real gunicorn serving the app on loopback, for tests that need real processes."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.support.apps import REPO, app_environment
from tests.support.processes import children_of

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """gunicorn on loopback for one data directory and database; restartable, and kill() is a crash."""

    def __init__(self, data_dir: Path, database_url: str, workers: int = 2, **extra_env: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **app_environment(data_dir, database_url),
            "INTAKE_PROCESSOR": "1",
            "INTAKE_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "INTAKE_ACCESS_LOG": "",
            "INTAKE_PROCESSOR_POLL": "0.3",
            **extra_env,
        }
        self.log = data_dir / "gunicorn.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            # Its own process group, so a crash can take the master and its workers down at once.
            self.process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_healthy(self.url, self.process, self.log)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def flask(self, *args: str, input_text: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run `flask --app app ...` against the same database and data directory."""
        return subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "app", *args],
            cwd=REPO,
            env=self.env,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def report(self, batch_id: int) -> dict:
        result = self.flask("report", str(batch_id), "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid)

    def processor_pid(self) -> int | None:
        """The worker holding the host's processor lock (from /proc/locks)."""
        inode = (self.data_dir / "processor.lock").stat().st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            parts = line.split()
            if "FLOCK" in parts and parts[-3].endswith(f":{inode}"):
                return int(parts[-4])
        return None


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not become healthy in time:\n{log.read_text()[-3000:]}")


@contextmanager
def gunicorn(data_dir: Path, database_url: str, workers: int = 2, **extra_env: str):
    """Start gunicorn (and, unless INTAKE_PROCESSOR=0, the processor in its workers); stop it after."""
    server = LiveServer(data_dir, database_url, workers, **extra_env)
    server.start()
    try:
        yield server
    finally:
        server.stop()
