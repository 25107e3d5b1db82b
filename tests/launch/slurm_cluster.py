"""A real one-node SLURM cluster for the job-script tests: Debian's slurmctld, slurmd and munge, started as root with
every file (munge key and socket, slurm.conf, state, spool, logs) in a scratch folder, so nothing of the machine's own
setup is used or changed apart from the installed packages.

Without root or apt the cluster cannot exist and the tests skip; with MQA_REQUIRE_SLURM=1 (CI) that is a failure.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
PROGRAMS = ("slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "scancel", "munged")
INSTALL_TIMEOUT_S = 600
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
# A requeued job may start again once the job credential's lifetime has passed (120 s by default), at the next
# scheduling pass (every 60 s, backfill every 30 s by default): all shortened here
REQUEUE_DELAY_S = 10
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED"}


def _unavailable(reason: str) -> None:
    if os.environ.get("MQA_REQUIRE_SLURM") == "1":
        pytest.fail(f"MQA_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


def _install_packages(search_path: str) -> None:
    """apt-get install the daemons and clients unless `search_path` (a PATH value) already has them all."""
    if all(shutil.which(program, path=search_path) for program in PROGRAMS):
        return
    if shutil.which("apt-get") is None:
        _unavailable("the SLURM tests install Debian's slurmctld, slurmd, slurm-client and munge, but apt-get is "
                     "not available")
    installed = subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES],
                               env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, capture_output=True,
                               text=True, timeout=INSTALL_TIMEOUT_S)
    if installed.returncode != 0:
        pytest.fail(f"apt-get install {' '.join(PACKAGES)} exited {installed.returncode} (run apt-get update "
                    f"first if the package lists are missing):\n{installed.stderr[-3000:]}")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for bound in sockets:
        bound.bind(("", 0))
    ports = [bound.getsockname()[1] for bound in sockets]
    for bound in sockets:
        bound.close()
    return ports


def _slurm_conf(root: Path, host: str, munge_socket: Path) -> str:
    controller_port, node_port = _free_ports(2)
    return f"""\
ClusterName=mqa-test
SlurmctldHost={host}
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket},cred_expire={REQUEUE_DELAY_S}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerParameters=sched_interval=1,bf_interval=1
MpiDefault=none
NodeName={host} CPUs=2 State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _run(command: list[str], environment: dict[str, str], timeout: float = START_TIMEOUT_S) -> str:
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout)
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {finished.returncode}: {finished.stderr.strip()}")
    return finished.stdout


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float, files: list[Path]) -> None:
    """Poll `condition`; on timeout fail with the ends of `files` (daemon logs, job output)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {path}\n{path.read_text()[-3000:]}" for path in files if path.is_file())
            pytest.fail(f"{what} within {timeout_s:.0f} s:\n{tails}")
        time.sleep(0.5)


def _node_is_idle(environment: dict[str, str]) -> bool:
    finished = subprocess.run(["sinfo", "--noheader", "--format=%t"], env=environment, capture_output=True,
                              text=True, timeout=START_TIMEOUT_S)
    return finished.returncode == 0 and finished.stdout.strip() == "idle"


def _stop_daemon(pid_file: Path) -> None:
    """SIGTERM the daemon whose pid the file holds, if it still runs, and wait for it to end."""
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def _is_running(pid: int) -> bool:
    """Alive and not a zombie (a daemon's parent is init, which may reap it late)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@contextmanager
def one_node_cluster(root: Path) -> Iterator[dict[str, str]]:
    """Install (if needed) and start munged, slurmctld and slurmd; yields the environment (SLURM_CONF, PATH) that
    points sbatch & co. at this cluster. Stops the daemons on exit."""
    if os.geteuid() != 0:
        _unavailable("the SLURM tests run slurmctld/slurmd/munged as root; run as root")
    environment = {**os.environ, "PATH": os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"])}
    _install_packages(environment["PATH"])
    for folder in ("state", "spool", "log"):
        (root / folder).mkdir(parents=True)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    munge_socket = root / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, socket.gethostname().split(".")[0], munge_socket))
    environment["SLURM_CONF"] = str(conf)
    try:
        _run(["munged", "--force", f"--socket={munge_socket}", f"--key-file={key}",
              f"--pid-file={root / 'munged.pid'}", f"--seed-file={root / 'munged.seed'}",
              f"--log-file={root / 'log' / 'munged.log'}"], environment)
        _run(["slurmctld", "-f", str(conf)], environment)
        _run(["slurmd", "-f", str(conf)], environment)
        _wait_until(lambda: _node_is_idle(environment), "the node did not become idle", START_TIMEOUT_S,
                    sorted((root / "log").glob("*.log")))
        yield environment
    finally:
        subprocess.run(["scancel", "--full", "--user=root"], env=environment, capture_output=True,
                       timeout=STOP_TIMEOUT_S)
        for daemon in ("slurmd", "slurmctld", "munged"):
            _stop_daemon(root / f"{daemon}.pid")


def job_state(job_id: str, environment: dict[str, str]) -> tuple[str, int]:
    """(JobState, Restarts) of a job the controller still knows."""
    fields = dict(field.split("=", 1) for field in
                  _run(["scontrol", "--oneliner", "show", "job", job_id], environment).split() if "=" in field)
    return fields["JobState"], int(fields["Restarts"])


def wait_for_job(job_id: str, environment: dict[str, str], timeout_s: float, output: Path) -> tuple[str, int]:
    """Block until the job has ended for good (a requeued job is PENDING again, so it is waited for too)."""
    state: list[tuple[str, int]] = []

    def ended() -> bool:
        state[:] = [job_state(job_id, environment)]
        return state[0][0] in FINAL_STATES

    _wait_until(ended, f"job {job_id} did not end", timeout_s, [output])
    return state[0]
