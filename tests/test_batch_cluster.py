"""The archive job on a real Ray cluster: two nodes on this machine (a head and a worker,
one CPU each, 100 MB object stores), joined with ``address=`` as ``python -m utils count
--engine ray --address HEAD:PORT`` does, and the same cluster losing its worker mid-job.

The job runs in a child process (the driver, as the CLI would be), so a hang cannot outlast
:data:`JOB_TIMEOUT_S` and this process never joins Ray itself. The cluster lives in a
temporary folder of its own (``RAY_TMPDIR``): a ``ray.init()`` elsewhere on the machine does
not find it, and every process it started is found by that folder and ended at teardown.
Dashboard and usage statistics are off.

Counts are compared with the plain engine's at the archive model's threshold, which lies in a
gap of these photos' scores (``test_batch.test_archive_threshold_sits_in_a_gap``: the same
eight scenes), so one ONNX Runtime thread per actor and the plain engine's threads agree.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from utils import batch
from utils.synth import TEST_SEEDS, generate_image

JOB_TIMEOUT_S = 240  # one job with its actors' start-up: 11-30 s on this busy 2-core machine
EXIT_TIMEOUT_S = 30  # for the cluster's processes to end after shutdown
NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
# A node that stops answering is declared dead after 3 missed checks 0.5 s apart (Ray's
# defaults take longer; the job's recovery is the same, only later).
HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
COPIES = 3  # each scene three times: 24 photos, one per batch, enough for both nodes

# The driver: what `python -m utils count --engine ray --address ...` runs (batch.run), plus
# a report of the node of each row and, for the fault, a SIGKILL of every process of the
# worker node right after its first row arrives (so the node dies with work left to do).
# It then waits until Ray has noticed (as any job longer than Ray's health checks would), so
# the job's own warning about the lost node is due, not a matter of timing.
DRIVER = r"""
import json, os, signal, sys, time
import ray
from utils import batch

job = json.loads(sys.argv[1])
# Both actors up before the first batch: otherwise the first ready one may take them all.
ray.data.DataContext.get_current().wait_for_min_actors_s = 120
kill, seen = job.get("kill"), []

def on_row(row):
    seen.append(row["file"])
    if kill and "after" not in kill and row[batch.NODE_KEY] == kill["node"]:
        for pid in kill["pids"]:
            os.kill(pid, signal.SIGKILL)
        kill["after"] = len(seen)
        deadline = time.monotonic() + 60
        while any(n["NodeID"] == kill["node"] and n["Alive"] for n in ray.nodes()):
            assert time.monotonic() < deadline, "Ray did not notice the dead node in 60 s"
            time.sleep(0.1)

new = batch.run(job["model"], job["files"], job["out"], engine="ray", workers=2,
                batch_size=1, address=job["address"], progress=False, on_row=on_row)
report = {"rows": [[r["file"], r[batch.NODE_KEY]] for r in new],
          "killed_after": (kill or {}).get("after")}
with open(job["report"], "w") as handle:
    json.dump(report, handle)
"""


def _ours(root: str) -> list[int]:
    """Processes whose command line names the cluster's folder (its raylets, agents, workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if root.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:  # ended meanwhile
                continue
    return pids


def _end_leftovers(root: str) -> list[int]:
    """Wait for the cluster's processes to end; SIGKILL what is left. Returns what was left."""
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while (left := _ours(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


@pytest.fixture(scope="module")
def cluster() -> Iterator:
    """A Ray head node (1 CPU) in a temporary folder; shut down, and its processes gone,
    whatever happened."""
    from ray.cluster_utils import Cluster

    root = tempfile.mkdtemp(prefix="rayc")  # short: Ray's socket paths must fit 107 bytes
    env = {"RAY_TMPDIR": root, "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in [*env, "RAY_ADDRESS"]}
    os.environ.update(env)
    os.environ.pop("RAY_ADDRESS", None)
    head = Cluster(initialize_head=False, shutdown_at_exit=True)
    try:
        head.add_node(**NODE, include_dashboard=False, _system_config=HEALTH)
        yield head
    finally:
        try:
            head.shutdown()
        finally:
            left = _end_leftovers(root)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes outlived the cluster's shutdown: {left}"


@pytest.fixture
def worker(cluster):
    """A second node (1 CPU) for one test; removed after, dead or alive."""
    node = cluster.add_node(**NODE)
    try:
        yield node
    finally:
        if node in cluster.worker_nodes:
            cluster.remove_node(node, allow_graceful=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """test_batch's eight held-out scenes, each saved :data:`COPIES` times."""
    folder = tmp_path_factory.mktemp("cluster_photos")
    paths = []
    for seed in TEST_SEEDS[:8]:
        image, _, _ = generate_image(seed, 256)
        for copy in range(COPIES):
            paths.append(folder / f"copy{copy}_held_out_{seed}.jpg")
            image.save(paths[-1], quality=90)
    return sorted(paths)


@pytest.fixture(scope="module")
def plain(archive_onnx, photos) -> dict[str, batch.Row]:
    """The plain engine's rows, in this process: the counts the cluster must reproduce."""
    return {r["file"]: r for r in batch.run(archive_onnx, photos, engine="plain", progress=False)}


def _job(cluster, model: Path, photos: list[Path], out: Path, kill=None) -> dict:
    """Run the driver against ``cluster``; its report (rows with their nodes, kill point)."""
    report = out.with_suffix(".report.json")
    job = {
        "model": str(model),
        "files": [str(p) for p in photos],
        "out": str(out),
        "address": cluster.address,
        "report": str(report),
        "kill": kill,
    }
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-c", DRIVER, json.dumps(job)]
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as hung:  # killed: show what it said
        pytest.fail(f"the job hung for {JOB_TIMEOUT_S} s; its stderr:\n{_tail(hung.stderr)}")
    assert done.returncode == 0, _tail(done.stderr)
    return {**json.loads(report.read_text()), "stderr": done.stderr}


def _tail(text: str | bytes | None) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "")[-3000:]


def _assert_complete(out: Path, photos: list[Path], plain: dict[str, batch.Row]) -> None:
    """The output file: one row per photo, each with the plain engine's count."""
    rows = batch.read_table(out)
    assert sorted(r["file"] for r in rows) == sorted(p.as_posix() for p in photos)
    for row in rows:
        expected = plain[row["file"]]
        assert row["error"] == "" and row["count"] == expected["count"], row["file"]
        assert row["mean_score"] == pytest.approx(expected["mean_score"], abs=1e-4)
    assert len({r["count"] for r in rows}) > 2  # counts that differ from photo to photo


def test_two_nodes_share_the_job_and_count_what_plain_counts(
    cluster, worker, archive_onnx, photos, plain, tmp_path
) -> None:
    out = tmp_path / "counts.csv"
    report = _job(cluster, archive_onnx, photos, out)
    nodes = Counter(node for _, node in report["rows"])
    assert set(nodes) == {cluster.head_node.node_id, worker.node_id}, nodes  # both counted
    assert sorted(f for f, _ in report["rows"]) == sorted(p.as_posix() for p in photos)
    _assert_complete(out, photos, plain)
    assert out.read_text().splitlines()[0] == ",".join(batch.COLUMNS)  # no node column
    assert "left the cluster" not in report["stderr"]


def test_losing_the_worker_node_mid_job_loses_no_row(
    cluster, worker, archive_onnx, photos, plain, tmp_path
) -> None:
    """Every process of the worker node is killed (SIGKILL, as if the machine died) when its
    first row reaches the driver: Ray restarts its actor on the head and retries its batches,
    and the job says on stderr which node it lost."""
    out = tmp_path / "counts.parquet"
    pids = [info.process.pid for infos in worker.all_processes.values() for info in infos]
    report = _job(cluster, archive_onnx, photos, out, kill={"node": worker.node_id, "pids": pids})
    after = report["killed_after"]
    assert after is not None and after < len(photos) // 2, after  # early: most work left
    # After the kill the worker's rows are only those it had finished (on their way to the
    # driver); the head counts the rest, its own share and the lost actor's batches.
    later = Counter(node for _, node in report["rows"][after:])
    assert later[cluster.head_node.node_id] > later[worker.node_id], later
    _assert_complete(out, photos, plain)
    lost = [line for line in report["stderr"].splitlines() if "left the cluster" in line]
    assert lost == [  # said once, with the node's short id: why the job slowed down
        f"warning: Ray node {worker.node_id[:8]} ({worker.node_ip_address}) left the cluster "
        "during the job; Ray starts its actors again on the nodes left and retries their "
        "batches (it waits while no node has a CPU free)"
    ], report["stderr"][-3000:]


def test_a_failed_cluster_job_keeps_its_rows_and_says_how_to_go_on(
    archive_onnx, photos, plain, tmp_path, monkeypatch
) -> None:
    """When Ray gives up (ClusterError), what was counted is saved, the message says how many
    and what to do, and the same job run again counts only the rest."""

    def two_then_fail(model_path, files, *args, **kwargs):
        for path in files[:2]:
            yield plain[Path(path).as_posix()]
        raise batch.ClusterError("the Ray job stopped: ActorDiedError: The actor died.")

    monkeypatch.setattr("utils.batch.job.ray_count", two_then_fail)
    out = tmp_path / "counts.csv"
    with pytest.raises(batch.ClusterError) as failed:
        batch.run(archive_onnx, photos, out, engine="ray", progress=False)
    message = str(failed.value)
    assert message.startswith("the Ray job stopped: ActorDiedError: The actor died.; ")
    assert "the 2 photos counted before it are saved in counts.csv" in message
    assert f"run the same command again to count the other {len(photos) - 2}" in message
    assert str(tmp_path) not in message  # no machine path
    assert len(batch.read_table(out)) == 2
    again = batch.run(archive_onnx, photos, out, engine="plain", progress=False)
    assert len(again) == len(photos) - 2
    _assert_complete(out, photos, plain)


def test_an_address_where_nothing_listens_is_refused_at_once(archive_onnx, photos) -> None:
    """Ray would retry a wrong --address for many minutes; the job says so in seconds."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(batch.BatchError, match=rf"127\.0\.0\.1:{port}: nothing answers there"):
        batch.run(archive_onnx, photos, engine="ray", address=f"127.0.0.1:{port}", progress=False)


def test_a_token_refusal_says_how_to_send_the_token() -> None:
    """Ray hides why it could not join (the reason is the last line of a traceback kept as
    text); a cluster with token authentication gets the two settings to make."""
    from utils.batch.ray_engine import _join_hint

    cause = RuntimeError(
        "Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
        '  File "node.py", line 996, in _init_gcs_client\n'
        "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication "
        "token is missing or incorrect.\n"
    )
    error = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    error.__cause__ = cause
    hint = _join_hint("10.0.0.1:6379", error)
    assert "set RAY_AUTH_MODE=token here" in hint and "RAY_AUTH_TOKEN" in hint
    error.__cause__ = RuntimeError("Failed to connect to GCS.\nTimeoutError: deadline exceeded")
    assert "(TimeoutError: deadline exceeded): is `ray start --head` running" in _join_hint(
        "10.0.0.1:6379", error
    )
