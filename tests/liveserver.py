"""A real gunicorn serving the app on loopback, for tests that need real processes."""
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
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, app_environment

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    env: dict[str, str]
    data_dir: Path

    def flask(self, *args: str, input_text: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run `flask --app app ...` against the same database and data directory."""
        return subprocess.run([str(VENV_BIN / "flask"), "--app", "app", *args], cwd=REPO, env=self.env,
                              input=input_text, capture_output=True, text=True, timeout=timeout)

    def report(self, batch_id: int) -> dict:
        result = self.flask("report", str(batch_id), "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def worker_pids(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return pids

    def processor_pid(self) -> int | None:
        """The worker holding the host's processor lock (from /proc/locks)."""
        inode = (self.data_dir / "processor.lock").stat().st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            parts = line.split()
            if "FLOCK" in parts and parts[-3].endswith(f":{inode}"):
                return int(parts[-4])
        return None


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not become healthy in time")


@contextmanager
def gunicorn(data_dir: Path, database_url: str, workers: int = 2, **extra_env: str):
    """Start gunicorn (and, unless INTAKE_PROCESSOR=0, the processor in its workers); stop it after."""
    port = free_port()
    env = {**os.environ, **app_environment(data_dir, database_url), "INTAKE_PROCESSOR": "1",
           "INTAKE_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers), "INTAKE_ACCESS_LOG": "",
           "INTAKE_PROCESSOR_POLL": "0.3", **extra_env}
    log = (data_dir / "gunicorn.log").open("w")
    process = subprocess.Popen([str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"], cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer(f"http://127.0.0.1:{port}", process, env, data_dir)
    try:
        wait_until_healthy(server.url, process)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
