"""Start and stop the local BigQuery emulator (bqemulator, in its own venv `.bqemu/`).

`make bqemu` (a dependency of `make test`) builds `.bqemu/` from `requirements-bqemu.lock`
and installs DuckDB's spatial extension there from a wheel, so the emulator starts
offline. This module starts `.bqemu/bin/bqemulator` on free loopback ports, waits for
`/healthz` and stops exactly the process it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BQEMU = REPO / ".bqemu"
PYTHON = BQEMU / "bin" / "python"
SERVE = REPO / "scripts" / "bqemu" / "serve.py"  # bqemulator's CLI plus small SQL fixes
HOME = BQEMU / "home"  # where `make bqemu` installed the spatial extension
START_TIMEOUT_SECONDS = 90.0


class EmulatorError(RuntimeError):
    """The emulator is not installed or did not come up."""


@dataclass
class Emulator:
    process: subprocess.Popen[bytes]
    rest_port: int
    grpc_port: int
    project: str
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop the emulator process this object started (SIGTERM, then SIGKILL)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(log_path: Path, project: str = "test-project") -> Emulator:
    """Start the emulator on free ports of 127.0.0.1 and wait until /healthz answers."""
    if not (BQEMU / "bin" / "bqemulator").exists():
        raise EmulatorError(
            f"the BigQuery emulator is not installed ({BQEMU}/bin/bqemulator is missing): "
            "run `make bqemu` (`make test` does it)"
        )
    rest_port, grpc_port = free_port(), free_port()
    while grpc_port == rest_port:
        grpc_port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BQEMU_", "BIGQUERY_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        HOME=str(HOME),
        PATH=f"{BQEMU / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        BQEMU_ENABLE_FORMAT_EXTENSIONS="false",  # avro would be downloaded: not offline
        BQEMU_LOG_LEVEL="warning",
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        command = [str(PYTHON), str(SERVE), "start", "--ephemeral", "--project", project]
        command += ["--rest-host", "127.0.0.1", "--rest-port", str(rest_port)]
        command += ["--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port)]
        process = subprocess.Popen(
            command,
            cwd=str(BQEMU),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    emulator = Emulator(process, rest_port, grpc_port, project, log_path)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorError(
                f"the BigQuery emulator exited with code {process.returncode} during start-up; "
                f"log {log_path}:\n{emulator.log_tail()}"
            )
        if emulator.healthy():
            return emulator
        time.sleep(0.25)
    emulator.stop()
    raise EmulatorError(
        f"the BigQuery emulator did not answer /healthz within {START_TIMEOUT_SECONDS:.0f}s; "
        f"log {log_path}:\n{emulator.log_tail()}"
    )
