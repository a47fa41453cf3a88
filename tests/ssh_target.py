"""A real target on loopback for the remote-latency tests and benchmark: Debian's OpenSSH server started
as the current user on 127.0.0.1 with throwaway host and user keys, and a torch-free interpreter.

``start(root)`` returns a ``Loopback`` whose ``ssh_config`` is what ``$BNECK_SSH_CONFIG`` names (``ssh -F``):
the user key, its own known_hosts, no agent. ``target_python(root, modules)`` is a virtual environment
without pip whose only third-party modules are symlinks to ``modules`` of this interpreter's
site-packages (numpy and onnxruntime import nothing else of it): built offline in a second.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


@dataclass
class Loopback:
    root: Path
    port: int
    user: str
    ssh_config: Path
    known_hosts: Path
    target_dir: Path  # the runner's lock, log and cache ($BNECK_TARGET_DIR there)
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def sessions(self) -> list[int]:
        """Pids of the sshd processes serving connections now (children of the listener)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def drop_connections(self) -> int:
        """Kill every open session, as a cut network would; returns how many."""
        pids = self.sessions()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def config_with(self, name: str, known_hosts: str) -> Path:
        """Another ssh_config, the same but for its known_hosts content (unknown host, changed key)."""
        kh = self.root / f"known_hosts_{name}"
        kh.write_text(known_hosts)
        path = self.root / f"ssh_config_{name}"
        path.write_text(self.ssh_config.read_text().replace(str(self.known_hosts), str(kh)))
        return path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None


def start(root: Path) -> Loopback:
    import getpass

    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    target_dir = root / "target"
    target_dir.mkdir()
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = getpass.getuser()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"SetEnv BNECK_TARGET_DIR={target_dir}\nMaxStartups 50\nMaxSessions 50\nLogLevel ERROR\n")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stderr=open(root / "sshd.log", "w"))
    host_key = (root / "host_key.pub").read_text().split()
    known = root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    config = root / "ssh_config"
    config.write_text(f"Host 127.0.0.1\n  IdentityFile {root / 'user_key'}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
                      f"  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n")
    deadline = time.monotonic() + 20
    while True:  # the listener is up when a connection is accepted
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()[-500:]}") from None
            time.sleep(0.1)
    return Loopback(root, port, user, config, known, target_dir, process)


def target_python(root: Path, modules=("numpy", "numpy.libs", "onnxruntime")) -> Path:
    """A venv (no pip) that sees only ``modules`` of this interpreter's site-packages; returns its python."""
    import numpy

    site = Path(numpy.__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    libs = root / "libs"
    libs.mkdir()
    for name in modules:
        if (site / name).exists():
            (libs / name).symlink_to(site / name)
    own = subprocess.run([str(root / "bin" / "python"), "-c", "import site; print(site.getsitepackages()[0])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    Path(own, "libs.pth").write_text(f"{libs}\n")
    return root / "bin" / "python"
