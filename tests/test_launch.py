"""`uniembed.launch.run_ranks` with real processes: torchrun's environment, a failing rank stops the others and is
named, and Ctrl-C / SIGTERM reach every rank once. The ranks here are small Python scripts (no torch)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uniembed.launch import RankFailed, run_ranks


def script(body: str) -> list[str]:
    return [sys.executable, "-c", "import os, sys, time, json, signal\nrank = int(os.environ['RANK'])\n" + body]


def wait_for_files(*paths: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in paths):
        assert time.monotonic() < deadline, f"never written: {[str(p) for p in paths if not p.exists()]}"
        time.sleep(0.05)


def test_every_rank_gets_torchruns_environment(tmp_path):
    keys = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS"]
    body = f"json.dump({{k: os.environ.get(k) for k in {keys!r}}}, open(sys.argv[1] + f'/{{rank}}.json', 'w'))"
    assert run_ranks([*script(body), str(tmp_path)], 3) == 0
    seen = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in range(3)]
    assert [(s["RANK"], s["LOCAL_RANK"], s["WORLD_SIZE"], s["LOCAL_WORLD_SIZE"]) for s in seen] == \
        [(str(r), str(r), "3", "3") for r in range(3)]
    assert {s["MASTER_ADDR"] for s in seen} == {"127.0.0.1"}
    assert len({s["MASTER_PORT"] for s in seen}) == 1 and int(seen[0]["MASTER_PORT"]) > 0
    assert all(s["OMP_NUM_THREADS"] for s in seen)


def test_a_failing_rank_stops_the_others_and_is_named(tmp_path):
    # rank 0 waits for ever; rank 1 fails once rank 0 runs
    body = (f"folder = {str(tmp_path)!r}\n"
            "if rank == 0:\n"
            "    open(folder + '/pid0', 'w').write(str(os.getpid()))\n"
            "    time.sleep(600)\n"
            "while not os.path.exists(folder + '/pid0'): time.sleep(0.05)\n"
            "print('reading the tasks', file=sys.stderr)\n"
            "sys.stderr.write('encoding:  10%|#   | 1/10\\rencoding:  20%|##  | 2/10\\r')\n"
            "print('ValueError: bad row 3 in tasks.jsonl', file=sys.stderr)\n"
            "sys.exit(3)\n")
    with pytest.raises(RankFailed) as failed:
        run_ranks(script(body), 2, grace=5)
    assert (failed.value.rank, failed.value.status) == (1, 3)
    message = str(failed.value)
    assert message.startswith("rank 1 exited with status 3") and "bad row 3 in tasks.jsonl" in message
    assert "reading the tasks" in message and "%|" not in message  # its last lines, less progress bars
    pid = int((tmp_path / "pid0").read_text())
    with pytest.raises(ProcessLookupError):  # rank 0 was stopped (and reaped), not left sleeping
        os.kill(pid, 0)


def test_the_rank_that_failed_first_is_named_not_the_peer_it_took_down(tmp_path):
    # rank 1 fails; rank 0 fails half a second later (as a rank does when a collective loses its peer); the
    # launcher polls only every 2 s, so it finds both failed at once
    body = (f"folder = {str(tmp_path)!r}\n"
            "open(folder + f'/started{rank}', 'w').close()\n"
            "while not all(os.path.exists(folder + f'/started{r}') for r in (0, 1)): time.sleep(0.02)\n"
            "if rank == 1:\n"
            "    sys.exit('rank 1: the real cause')\n"
            "time.sleep(0.5)\n"
            "sys.exit('rank 0: connection closed by peer')\n")
    with pytest.raises(RankFailed) as failed:
        run_ranks(script(body), 2, poll=2.0)
    assert failed.value.rank == 1 and "the real cause" in str(failed.value)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_launcher_reaches_every_rank_once(tmp_path, signum):
    body = (f"folder = {str(tmp_path)!r}\n"
            "def got(number, frame):\n"
            "    with open(folder + f'/got{rank}', 'a') as f: f.write(f'{number}\\n')\n"
            "    time.sleep(0.5)\n"  # a second delivery would land here
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGINT, got)\n"
            "signal.signal(signal.SIGTERM, got)\n"
            "open(folder + f'/ready{rank}', 'w').close()\n"
            "time.sleep(600)\n")
    launcher = ("import sys\nfrom uniembed.launch import run_ranks\n"
                f"sys.exit(run_ranks({script(body)!r}, 2, grace=20))")
    process = subprocess.Popen([sys.executable, "-c", launcher], stderr=subprocess.PIPE, text=True)
    try:
        wait_for_files(tmp_path / "ready0", tmp_path / "ready1")
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr
    for rank in range(2):
        assert (tmp_path / f"got{rank}").read_text() == f"{int(signum)}\n"


def test_processes_must_be_positive():
    with pytest.raises(ValueError, match="processes must be >= 1"):
        run_ranks([sys.executable, "-c", "pass"], 0)


def test_rendezvous_ports_are_drawn_below_the_ephemeral_range_and_free():
    import socket

    from uniembed import launch

    low = launch._ephemeral_low()
    if low is None:
        pytest.skip("no /proc/sys/net/ipv4/ip_local_port_range here: the kernel's choice is used")
    with socket.socket() as held:  # a port something listens on is never handed out
        held.bind(("127.0.0.1", 0))
        held.listen()
        ports = {launch.free_port() for _ in range(50)}
        assert held.getsockname()[1] not in ports
    assert all(launch.FIRST_PORT <= port < low for port in ports) and len(ports) > 40


def test_rank_0_finding_its_port_taken_starts_every_rank_again_on_another_port(tmp_path, monkeypatch, caplog):
    import socket

    from uniembed import launch

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    chosen = iter([taken.getsockname()[1], launch.free_port()])  # the first port is taken meanwhile
    monkeypatch.setattr(launch, "free_port", lambda host="127.0.0.1": next(chosen))
    # rank 0 listens on MASTER_PORT as torch's TCPStore does; rank 1 records each port it was given
    body = (f"folder = {str(tmp_path)!r}\n"
            "port = int(os.environ['MASTER_PORT'])\n"
            "open(folder + f'/rank{rank}-{port}', 'w').close()\n"
            "if rank == 0:\n"
            "    import socket\n"
            "    socket.socket().bind(('127.0.0.1', port))\n")
    try:
        with caplog.at_level("WARNING", logger="uniembed.launch"):
            assert run_ranks(script(body), 2, grace=5) == 0
    finally:
        taken.close()
    assert len(list(tmp_path.glob("rank1-*"))) == 2 and len(list(tmp_path.glob("rank0-*"))) == 2
    assert "rank 0 could not listen on port" in caplog.text


def test_a_rank_0_port_that_stays_taken_fails_after_the_last_try(tmp_path, monkeypatch):
    import socket

    from uniembed import launch

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    monkeypatch.setattr(launch, "free_port", lambda host="127.0.0.1": taken.getsockname()[1])
    body = "import socket\nif rank == 0:\n    socket.socket().bind(('127.0.0.1', int(os.environ['MASTER_PORT'])))\n"
    try:
        with pytest.raises(RankFailed, match="Address already in use"):
            run_ranks(script(body), 2, grace=5)
    finally:
        taken.close()
