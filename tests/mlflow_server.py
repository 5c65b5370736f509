"""A real `mlflow server` for tests: on 127.0.0.1 and a free port, with a SQLite store, in a
process group of its own, so that stopping it stops exactly the processes it started (the
server, its uvicorn worker). Optionally with MLflow's basic-auth app and its own user
database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """`start()` / `stop()` may alternate: a restarted server has the same port and store."""

    def __init__(self, folder: Path, *, admin: tuple[str, str] | None = None,
                 port: int | None = None):
        self.folder = folder
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.store = f"sqlite:///{folder / 'mlflow.db'}"
        self.admin = admin
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def environment(self) -> dict[str, str]:
        env = {**os.environ,
               # The server's asynchronous job runner (a handful of huey processes) serves
               # none of these tests and slows a 2-core machine down.
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        if self.admin:
            # basic-auth keeps its users in a database of its own, named by a config file
            # (mlflow/server/auth/basic_auth.ini holds the defaults); it creates the admin
            # user with this password on first start, and needs a static key for CSRF.
            config = self.folder / "basic_auth.ini"
            config.write_text(
                "[mlflow]\n"
                "default_permission = READ\n"
                f"database_uri = sqlite:///{self.folder / 'basic_auth.db'}\n"
                f"admin_username = {self.admin[0]}\n"
                f"admin_password = {self.admin[1]}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
            env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", "quokka-test-flask-secret-key")
        return env

    def start(self, timeout_s: float = 180) -> None:
        command = [str(BIN / "mlflow"), "server", "--backend-store-uri", self.store,
                   "--artifacts-destination", (self.folder / "artifacts").as_uri(),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        if self.admin:
            command[2:2] = ["--app-name", "basic-auth"]
        self.starts += 1
        log = open(self.folder / f"server-{self.starts}.log", "w")  # noqa: SIM115 - the server's
        self.process = subprocess.Popen(command, env=self.environment(), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        cwd=self.folder)
        log.close()  # the server holds its own descriptor
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer in {timeout_s:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGKILL the server's process group: a crash, as far as its clients can tell."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def log_tail(self, chars: int = 3000) -> str:
        return (self.folder / f"server-{self.starts}.log").read_text()[-chars:]
