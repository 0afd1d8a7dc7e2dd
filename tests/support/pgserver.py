"""Throwaway PostgreSQL server for the test suite (stdlib + psycopg only).

Usage from a conftest::

    @pytest.fixture(scope="session")
    def pg_server():
        with pgserver.postgres_server() as server:  # files in /dev/shm if roomy, else $TMPDIR
            yield server

    url = pg_server.create_database("test_foo")  # SQLAlchemy URL of a fresh database

Set INTAKE_TEST_PG_URL (a SQLAlchemy URL to a superuser-ish role) to use an
existing server instead of starting one.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

EXTERNAL_URL_ENV = "INTAKE_TEST_PG_URL"
PG_CONFIG = "pg_config"
BINDIR_GLOB = "/usr/lib/postgresql/*/bin"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
SERVICE_USER = "postgres"  # system user created by `apt install postgresql`
RAM_DIR = "/dev/shm"
RAM_DIR_MIN_FREE_BYTES = 2 * 1024**3  # cluster ~40 MB + ~8 MB per created database
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # plain identifier, safe in a URL path

# Durability is pointless for a throwaway cluster; skipping it makes commits and DDL cheap.
SERVER_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "100"}


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed or the throwaway server could not start."""


def find_pg_bindir() -> Path:
    """Directory holding initdb and postgres: pg_config's, else the newest Debian one."""
    candidates = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        bindir = subprocess.run(
            [PG_CONFIG, "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        candidates.append(Path(bindir))
    # Debian's pg_config may come from libpq-dev alone and point at a bindir without a server.
    versioned = glob.glob(BINDIR_GLOB)
    candidates += sorted((Path(p) for p in versioned), key=_major_version, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, postgres) not found via `pg_config --bindir` "
        f"or {BINDIR_GLOB}. Run the project's setup script, which apt-installs `postgresql`."
    )


def _major_version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


class PgServer:
    """A running server (or an external one) that hands out fresh databases."""

    def __init__(self, url: str, process: subprocess.Popen | None = None, workdir: Path | None = None) -> None:
        self.url = url  # SQLAlchemy URL of the maintenance database
        self.process = process  # the postmaster; None for an external server
        self.workdir = workdir  # removed on stop(); None for an external server

    def create_database(self, name: str) -> str:
        """(Re)create an empty database and return its SQLAlchemy URL."""
        if not DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name must match {DATABASE_NAME.pattern}: {name!r}")
        with psycopg.connect(libpq_url(self.url), autocommit=True) as conn:
            # Dropping first lets an external server survive a crashed earlier run.
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return with_database(self.url, name)

    def stop(self) -> None:
        """Fast-shutdown the server we started, escalating to kill; idempotent."""
        atexit.unregister(self.stop)
        if self.process is not None and self.process.poll() is None:
            # SIGINT = fast shutdown (disconnects clients); SIGQUIT = immediate; SIGKILL last.
            for sig, timeout in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
                self.process.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout)
                    break
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy URL (postgresql+psycopg://...) into one libpq/psycopg accepts."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def with_database(url: str, name: str) -> str:
    """Same URL, other database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def postgres_server(tmpdir: str | os.PathLike | None = None) -> Iterator[PgServer]:
    """Yield the INTAKE_TEST_PG_URL server if set, else a throwaway one stopped on exit."""
    external_url = os.environ.get(EXTERNAL_URL_ENV)
    server = PgServer(external_url) if external_url else start_postgres(tmpdir)
    try:
        yield server
    finally:
        server.stop()


def start_postgres(tmpdir: str | os.PathLike | None = None) -> PgServer:
    """Start a throwaway server with its files in a new directory under tmpdir.

    Without tmpdir (recommended: fastest) the files go to /dev/shm when it has room.
    """
    bindir = find_pg_bindir()
    # PostgreSQL refuses to run as root, so root (CI, containers) runs it as the service user.
    owner = _service_user() if os.geteuid() == 0 else None
    workdir = _make_workdir(tmpdir, owner)
    server = PgServer("", workdir=workdir)
    try:
        _initdb(bindir, workdir, owner)
        port = _free_port()
        server.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        server.process = _spawn_postmaster(bindir, workdir, owner, port)
        atexit.register(server.stop)  # don't leak a server if the session dies without teardown
        _wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"Running as root but no {SERVICE_USER!r} system user exists. "
            "Run the project's setup script, which apt-installs `postgresql` (and creates that user)."
        ) from None


def _make_workdir(tmpdir, owner: pwd.struct_passwd | None) -> Path:
    # pytest's temp dirs are 0700 when running as root, so the service user cannot reach
    # a directory inside them; then fall back to RAM, then to the system temp dir.
    for parent in [p for p in (tmpdir, _roomy_ram_dir(), tempfile.gettempdir()) if p]:
        workdir = Path(tempfile.mkdtemp(prefix="intake-pg-", dir=parent))
        if owner is None:
            return workdir
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        if _run_as(["test", "-w", str(workdir)], owner, workdir=None).returncode == 0:
            return workdir
        workdir.rmdir()
    raise PostgresUnavailable(f"No temp directory the {SERVICE_USER!r} user can write to.")


def _roomy_ram_dir() -> str | None:
    # initdb and CREATE DATABASE write hundreds of small files: on tmpfs they are ~3x/15x
    # faster than on a VM's ext4. Docker's default 64 MB /dev/shm is too small, hence the check.
    with contextlib.suppress(OSError):
        stats = os.statvfs(RAM_DIR)
        if stats.f_bavail * stats.f_frsize >= RAM_DIR_MIN_FREE_BYTES and os.access(RAM_DIR, os.W_OK):
            return RAM_DIR
    return None


def _as_user(owner: pwd.struct_passwd | None) -> dict:
    """Popen arguments that drop root to the service user (direct exec, so the pid is ours)."""
    if owner is None:
        return {}
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


def _run_as(cmd: list[str], owner, workdir: Path | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd,
        check=False,
        cwd=workdir or "/",
        capture_output=True,
        text=True,
        env=_server_env(),
        timeout=120,
        **_as_user(owner),
    )


def _server_env() -> dict[str, str]:
    # C locale keeps initdb independent of the host's locales; PG* vars could redirect the tools.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _initdb(bindir: Path, workdir: Path, owner) -> None:
    result = _run_as(
        [
            str(bindir / "initdb"),
            "--pgdata",
            str(workdir / "data"),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ],
        owner,
        workdir,
    )
    if result.returncode != 0:
        raise PostgresUnavailable(f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn_postmaster(bindir: Path, workdir: Path, owner, port: int) -> subprocess.Popen:
    settings = [arg for key, value in SERVER_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
    # Loopback TCP only; the unix socket lives in the (0700) workdir so nothing else shares it.
    command = [
        str(bindir / "postgres"),
        "-D",
        str(workdir / "data"),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        "-k",
        str(workdir),
        *settings,
    ]
    with open(workdir / "server.log", "ab") as log:
        return subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_server_env(),
            **_as_user(owner),
        )


def _wait_until_ready(server: PgServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            psycopg.connect(libpq_url(server.url), connect_timeout=2).close()
            return
        except psycopg.OperationalError as error:
            exited = server.process.poll() is not None
            if exited or time.monotonic() > deadline:
                log = (server.workdir / "server.log").read_text(errors="replace")
                problem = (
                    f"exited with code {server.process.returncode} during startup"
                    if exited
                    else f"not accepting connections within {READY_TIMEOUT_S:.0f}s"
                )
                raise PostgresUnavailable(f"PostgreSQL {problem} ({error}).\nServer log:\n{log}") from error
        time.sleep(0.05)
