"""A real OpenSSH server on 127.0.0.1 for the executor tests: generated host and client keys, key-only root login,
the host key pinned in a known_hosts file; and helpers that look for a step's processes in /proc (the "remote"
instance is this machine).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskmaster.executors.ssh import SshInstance
from tests.support.eventually import eventually_sync
from tests.support.net import free_port
from tests.support.processes import processes_with

SSHD = "/usr/sbin/sshd"
# sshd refuses to start without its privilege separation directory; it is made at boot on a normal system.
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class Keys:
    host: Path
    client: Path
    other_client: Path  # a key the server does not know
    other_host: Path  # a host key the server does not have


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


class Sshd:
    """One sshd (`-D -e`) on a fixed loopback port that can be killed, with its connections, and started again."""

    def __init__(self, base: Path, keys: Keys) -> None:
        self.base = base
        self.keys = keys
        self.port = free_port()
        self.workspace_root = base / "workspaces"
        self.workspace_root.mkdir(parents=True, exist_ok=True)
        self.config = base / "sshd_config"
        self.log = base / "sshd.log"
        self.authorized_keys = base / "authorized_keys"
        self.authorized_keys.write_text(keys.client.with_suffix(".pub").read_text())
        self.known_hosts = base / "known_hosts"
        host_key = keys.host.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {keys.host}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin yes",  # the tests run as root
                    f"PidFile {base / 'sshd.pid'}",
                    "MaxSessions 20",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def instance(self, name: str = "local", **overrides: Any) -> SshInstance:
        """An `SshInstance` for this server, as root with the known client key and the pinned host key."""
        fields: dict[str, Any] = {
            "name": name,
            "host": "127.0.0.1",
            "port": self.port,
            "username": "root",
            "client_keys": [str(self.keys.client)],
            "known_hosts": str(self.known_hosts),
            "workspace_root": str(self.workspace_root),
            "max_concurrent_steps": 4,
            "connect_timeout": 5.0,
        }
        fields.update(overrides)
        return SshInstance(**fields)

    def start(self) -> None:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while f"Server listening on 127.0.0.1 port {self.port}" not in (
            text := self.log.read_bytes()[offset:].decode(errors="replace")
        ):
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd did not start:\n{text}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"sshd did not listen within 10 s:\n{text}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the listener and every per-connection sshd under it: the instance goes away mid-whatever."""
        if self.proc is None:
            return
        for pid in [*_sshd_descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def connections(self) -> list[int]:
        return _sshd_descendants(self.proc.pid) if self.proc else []


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _sshd_descendants(root: int) -> list[int]:
    """The per-connection sshd processes under the listener (the sessions' own processes are left alone)."""
    tree, found, todo = _children(), [], [root]
    while todo:
        for child in tree.get(todo.pop(), []):
            try:
                comm = Path(f"/proc/{child}/comm").read_text().strip()
            except OSError:
                continue
            if comm == "sshd":
                found.append(child)
                todo.append(child)
    return found


def wait_for_processes(marker: str, timeout: float = 10.0) -> list[int]:
    """Wait until some process carries `marker`; fail the test if none does in time."""
    return eventually_sync(lambda: processes_with(marker), timeout=timeout, what=f"a process with {marker!r}")


def unique_sleep() -> tuple[str, str]:
    """A `sleep` argument no other process has (e.g. "4000.1234567"), to find the step's processes by it."""
    marker = f"4000.{uuid.uuid4().int % 10**9:09d}"
    return f"sleep {marker}", marker


def kill_marked(marker: str) -> None:
    """Clean up after a failed test: no stray sleeps left on the machine."""
    for pid in processes_with(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
