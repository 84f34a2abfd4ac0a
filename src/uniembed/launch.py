"""Start the ranks of a one-machine job without torchrun: `uniembed eval|encode|mine ... --processes N`.

`run_ranks` starts N copies of a command, each with the environment torchrun gives its workers (RANK,
LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT on a free loopback port, OMP_NUM_THREADS),
so `parallel.join_world` inside each one forms the same group it would under torchrun. The port is drawn below
the kernel's ephemeral range, and if it is taken anyway before rank 0 listens, the ranks start again on another. The launcher itself
imports neither torch nor anything heavy: torchrun's own start-up costs about 2 CPU seconds before any rank
starts, which on a small machine is a large share of an evaluation.

The ranks write to this process's stdout and stderr as they run (stderr passes through a reader that keeps
each rank's last lines). Ctrl-C or SIGTERM to the launcher reaches every rank once (the ranks run in their own
session, so a terminal's Ctrl-C is not delivered twice). When one rank fails, the others are stopped (SIGTERM,
then SIGKILL after `grace` seconds) and `RankFailed` names the rank, its exit status and its last stderr lines.
A launcher killed outright (SIGKILL) cannot stop its ranks: they run on until their work, or a collective
waiting for a lost peer, ends.
"""
from __future__ import annotations

import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping, Sequence

TAIL_BYTES = 8000  # how much of each rank's stderr is kept for the error
FIRST_PORT = 20000  # rendezvous ports are drawn from FIRST_PORT up to the ephemeral range
EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
RENDEZVOUS_TRIES = 3  # launches when rank 0 finds its port taken (by then the other ranks have done nothing)
PORT_TAKEN = re.compile(r"EADDRINUSE|address already in use", re.IGNORECASE)
TAIL_LINES = 20  # how many of its last lines the error quotes
PROGRESS = re.compile(r"\d+%\|")  # a tqdm bar ("encoding:  45%|####      | 9/20")
log = logging.getLogger(__name__)


class RankFailed(RuntimeError):
    """One rank of a launched job exited with a non-zero status; the others were stopped."""

    def __init__(self, rank: int, status: int, stderr_tail: str) -> None:
        self.rank, self.status, self.stderr_tail = rank, status, stderr_tail
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        lines = [line.rstrip() for line in stderr_tail.replace("\r", "\n").splitlines()
                 if line.strip() and not PROGRESS.search(line)]  # a progress bar's redraws are not the error
        tail = "\n".join(lines[-TAIL_LINES:]) or "(nothing on stderr)"
        super().__init__(f"rank {rank} {how}; the other ranks were stopped. Its last stderr lines:\n{tail}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on (just now): the ranks' rendezvous port.

    Drawn at random below the kernel's ephemeral range where there is one (Linux: 32768-60999 by default): a
    port the kernel hands out itself can be taken by any outgoing connection (another job's gloo links) in the
    seconds before rank 0, done importing torch, listens on it. Elsewhere, or when nothing there is free, the
    kernel's choice."""
    low = _ephemeral_low()
    if low is not None and low > FIRST_PORT + 1000:
        draw = random.SystemRandom()
        for _ in range(100):
            port = draw.randrange(FIRST_PORT, low)
            if _bindable(host, port):
                return port
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int | None:
    try:
        return int(Path(EPHEMERAL_RANGE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def rank_environment(rank: int, processes: int, port: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment torchrun gives worker `rank` of `processes` on one machine (plus OMP_NUM_THREADS: the
    machine's cores split among the ranks, unless already set)."""
    env = dict(os.environ if base is None else base)
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_WORLD_SIZE=str(processes),
               GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    return env


@dataclass
class _Rank:
    rank: int
    process: subprocess.Popen
    tail: bytearray = field(default_factory=bytearray)
    reader: threading.Thread | None = None
    closed: list[float] = field(default_factory=list)  # when its stderr closed (it ended): who failed first


def _pump(source: IO[bytes], sink: IO[bytes] | None, tail: bytearray, closed: list[float]) -> None:
    """Copy a rank's stderr to ours as it comes (progress bars' carriage returns included), keeping its tail."""
    while True:
        chunk = os.read(source.fileno(), 65536)
        if not chunk:
            break
        tail.extend(chunk)
        del tail[:-TAIL_BYTES]
        if sink is not None:
            try:
                sink.write(chunk)
                sink.flush()
            except (OSError, ValueError):  # our stderr closed: keep draining, keep the tail
                sink = None
    closed.append(time.monotonic())
    source.close()


def run_ranks(command: Sequence[str], processes: int, env: Mapping[str, str] | None = None, grace: float = 30.0,
              poll: float = 0.1) -> int:
    """Run `processes` copies of `command` as the ranks of one job; 0 when all succeed.

    Raises `RankFailed` for the first rank (in time) that exits non-zero. After Ctrl-C / SIGTERM the ranks get the
    same signal and are waited for (then killed after `grace` seconds); returns 128 + the signal's number. When rank
    0 fails because its rendezvous port was taken after `free_port` chose it (EADDRINUSE: the ranks have done
    nothing yet), all of them start again on another port, up to `RENDEZVOUS_TRIES` launches.
    """
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    sink = getattr(sys.stderr, "buffer", None)
    ranks: list[_Rank] = []
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        for entry in ranks:
            if entry.process.poll() is None:
                entry.process.send_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for launch in range(1, RENDEZVOUS_TRIES + 1):
            port = free_port()
            ranks.clear()
            for rank in range(processes):
                if received:  # Ctrl-C while starting: start no more
                    break
                process = subprocess.Popen(list(command), env=rank_environment(rank, processes, port, env),
                                           stderr=subprocess.PIPE, start_new_session=True)
                entry = _Rank(rank, process)
                entry.reader = threading.Thread(target=_pump, args=(process.stderr, sink, entry.tail, entry.closed),
                                                daemon=True)
                entry.reader.start()
                ranks.append(entry)
            failed = _wait(ranks, received, poll)
            _stop(ranks, grace, signalled=bool(received))
            for entry in ranks:
                entry.reader.join(timeout=5)
            if received:
                return 128 + received[0]
            if failed is None:
                return 0
            tail = failed.tail.decode("utf-8", "replace")
            if failed.rank == 0 and PORT_TAKEN.search(tail) and launch < RENDEZVOUS_TRIES:
                log.warning("rank 0 could not listen on port %d (another program took it after it was chosen): "
                            "starting the %d ranks again on another port", port, processes)
                continue
            raise RankFailed(failed.rank, failed.process.returncode, tail)
        raise AssertionError("unreachable: the last launch returns or raises")
    finally:
        _stop(ranks, grace)  # an exception here (or in Popen) leaves no rank behind
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait(ranks: list[_Rank], received: list[int], poll: float) -> _Rank | None:
    """Until every rank has ended, one failed or a signal came: the failed rank, else None."""
    while not received:
        statuses = [entry.process.poll() for entry in ranks]
        failed = [entry for entry, status in zip(ranks, statuses) if status not in (None, 0)]
        if failed:  # several in one poll (one failed, its peer's collective then): the first to end is named
            return min(failed, key=lambda entry: entry.closed[0] if entry.closed else float("inf"))
        if None not in statuses:
            return None
        time.sleep(poll)
    return None


def _stop(ranks: list[_Rank], grace: float, signalled: bool = False) -> None:
    """SIGTERM to every rank still running (unless `signalled`: they got the launcher's signal already, and
    their own handling of it, e.g. Ctrl-C's "finished work is kept", is left to run), SIGKILL to those still
    running after `grace` seconds."""
    for entry in ranks:
        if entry.process.poll() is None and not signalled:
            entry.process.terminate()
    deadline = time.monotonic() + grace
    for entry in ranks:
        try:
            entry.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            entry.process.kill()
            entry.process.wait()
