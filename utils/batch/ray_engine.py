"""The Ray engine: Ray Data reads the file list, an actor pool of predictors counts it.

Ray is an optional extra (``pip install ".[scale]"``), imported only here, inside functions.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..progress import tqdm
from .rows import BOXES_KEY, COLUMNS, BatchError, Row, class_columns, count_image

NODE_KEY = "_node"  # internal column: the Ray node that counted the row; never written
NODE_CHECK_SECONDS = 5.0  # how often the job asks Ray which nodes are still alive

RAY_MISSING = (
    'the Ray engine needs Ray Data, an optional extra: pip install ".[scale]" '
    '(or pip install "ray[data]"), or use --engine plain'
)


# ----------------------------------------------------------------------------- Ray Data


class ClusterError(BatchError):
    """The Ray job stopped part-way: a node, an actor or an object was lost beyond Ray's
    retries. What was counted before is kept; the same command, run again, counts the rest."""


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs both; a bare `ray` lacks Data)
    except ImportError as error:
        raise BatchError(RAY_MISSING) from error
    return ray


class RayCounter:
    """The callable class of ``map_batches``: one predictor per Ray actor, loaded once.

    Each row also names the Ray node that counted it (:data:`NODE_KEY`, never written to
    the table): the caller can see that the work spread over the cluster's machines.

    The model travels as a path on one machine, and as bytes when joining a cluster (an
    ``.onnx`` file: no shared disk needed; ``.pt`` and ``.xml`` must be on every node). One ONNX Runtime thread per actor:
    Ray runs one actor per CPU, so more threads would only fight over the same cores.
    """

    def __init__(
        self,
        model: bytes | str,
        threshold: float,
        boxes: bool,
        threads: int = 1,
        scale: float | None = None,
    ):
        from ..loading import load_predictor
        from ..runtime import OnnxPredictor

        if isinstance(model, bytes):
            self.predictor = OnnxPredictor(model, threads=threads)
        else:
            self.predictor = load_predictor(model, threads=threads)
        self.threshold, self.boxes, self.scale = threshold, boxes, scale
        self.node = _import_ray().get_runtime_context().get_node_id()  # a restart sets it anew

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = [
            count_image(self.predictor, path, self.threshold, self.boxes, self.scale)
            for path in batch["path"]
        ]
        for row, name in zip(rows, batch["file"]):
            row["file"] = str(name)  # the path as given, not the absolute one a worker reads
            row[NODE_KEY] = self.node
        keys = [*COLUMNS, NODE_KEY] + ([BOXES_KEY] if self.boxes else [])
        keys += class_columns(self.predictor.config.class_names)  # one count per class if several
        return {key: [row.get(key) for row in rows] for key in keys}


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment (Python exceptions still propagate)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray quietly.

    Without either, always a new local Ray: a plain ``ray.init()`` would join whatever
    cluster ``ray start`` last started on this machine (and refuse ``num_cpus`` there).
    Returns True when this call started (or joined) Ray, so the caller shuts it down after.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    import logging

    address = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {
        "address": address,
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    if address == "local":
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray's C++ core writes warnings straight to stderr (a notebook shows them); fatal only.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address != "local":
        _check_reachable(address)
    try:
        with _quiet_stderr():  # Ray's C++ core announces its log level on fd 2, below Python
            ray.init(**kwargs)
    except ConnectionError as error:
        if address == "local":
            raise
        raise BatchError(_join_hint(address, error)) from error
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours (one text bar) is the one a notebook keeps
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return True


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse at once an address where nothing listens: Ray itself retries for many minutes
    (over 10 on this machine) before it gives up on a wrong ``--address``."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:  # "auto", ray://: Ray decides
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise BatchError(
            f"cannot join the Ray cluster at {address}: nothing answers there "
            f"({error.strerror or type(error).__name__}); start it with "
            f"`ray start --head --port={port}` on {host}, or check the address"
        ) from error


def _join_hint(address: str, error: ConnectionError) -> str:
    """Why joining ``address`` failed, and what to check: Ray says only that it failed, the
    reason is the last line of the traceback it keeps as text in the cause."""
    cause = str(error.__cause__ or error).strip()
    reason = cause.splitlines()[-1].strip() if cause else type(error).__name__
    if "AuthenticationError" in reason or "InvalidAuthToken" in reason:
        return (
            f"cannot join the Ray cluster at {address}: it asks for a token (Ray's token "
            "authentication, which `ray start --head` turns on when ~/.ray/auth_token "
            "exists); set RAY_AUTH_MODE=token here, with the cluster's token in "
            "~/.ray/auth_token or RAY_AUTH_TOKEN"
        )
    return (
        f"cannot join the Ray cluster at {address} ({reason[:200]}): is "
        "`ray start --head` running there, and does this machine reach that port?"
    )


def stop_ray() -> None:
    ray = _import_ray()
    if ray.is_initialized():
        ray.shutdown()


class NodeWatch:
    """Says on stderr, once per node, that a Ray node alive when the job began has left.

    Ray recovers from it without a word (and waits, silently, while no node has a CPU free
    for the lost actor): this line is how the person running the job learns why it slows
    down or stalls. A background thread asks every ``every`` seconds; :meth:`stop` asks a
    last time. ``ray.nodes()`` is Ray's developer API: if it fails, the watch stays quiet.
    """

    def __init__(self, ray, every: float = NODE_CHECK_SECONDS):
        self.ray, self.lost = ray, {}
        self.known = self._alive() or {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _alive(self) -> dict[str, str] | None:
        try:
            return {n["NodeID"]: n["NodeManagerAddress"] for n in self.ray.nodes() if n["Alive"]}
        except Exception:  # a Ray without this API, or a head that no longer answers
            return None

    def check(self) -> None:
        alive = self._alive()
        if alive is None:
            return
        for node, address in self.known.items():
            if node not in alive and node not in self.lost:
                self.lost[node] = address
                print(
                    f"warning: Ray node {node[:8]} ({address}) left the cluster during the "
                    "job; Ray starts its actors again on the nodes left and retries their "
                    "batches (it waits while no node has a CPU free)",
                    file=sys.stderr,
                    flush=True,
                )
        self.known.update(alive)  # nodes that join later are watched too

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.check()


def ray_count(
    model_path: str | Path,
    files: Sequence[str | Path],
    threshold: float,
    workers: int = 2,
    batch_size: int = 8,
    boxes: bool = False,
    address: str | None = None,
    progress: bool = True,
    scale: float | None = None,
) -> Iterator[Row]:
    """The Ray engine: Ray Data reads the list of files and an actor pool of ``workers``
    predictors counts them in batches of ``batch_size``; rows stream back as they finish
    (in no fixed order). Starts a local Ray unless one runs or ``address`` names a cluster,
    and shuts down what it started.

    A node lost mid-job (a machine switched off, its raylet killed) costs time, not rows:
    Ray Data restarts the lost actors and retries their batches (its default
    ``max_restarts`` and ``max_task_retries`` are unlimited) on the nodes left, once one has
    a CPU free, and :class:`NodeWatch` says so on stderr. A failure beyond that raises
    :class:`ClusterError`; the rows yielded before it stand.
    """
    ray = _import_ray()

    if not files:
        return
    model_path = Path(model_path)
    model: bytes | str = str(model_path.resolve())
    joining = bool(address or os.environ.get("RAY_ADDRESS"))
    if joining and model_path.suffix.lower() == ".onnx":
        model = model_path.read_bytes()  # other nodes may not see this machine's disk
    started = start_ray(address, num_cpus=None)
    try:
        items = [{"file": Path(f).as_posix(), "path": str(Path(f).resolve())} for f in files]
        # Small blocks (a batch or two each) keep both actors busy until the end: with one
        # big block per actor, the faster one would idle while the other finishes.
        blocks = max(1, min(math.ceil(len(items) / batch_size), max(64, 16 * workers)))
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        counted = dataset.map_batches(
            RayCounter,
            fn_constructor_kwargs={
                "model": model,
                "threshold": threshold,
                "boxes": boxes,
                "scale": scale,
            },
            batch_size=batch_size,
            concurrency=min(workers, blocks),  # never more actors than blocks
            num_cpus=1,
            batch_format="numpy",
            # No max_restarts / max_task_retries here: Ray Data's defaults (unlimited) are
            # what survives a lost node (tests/test_batch_cluster.py), and passing them is
            # deprecated (`ray_remote_args`, Ray 2.60).
        )
        bar = tqdm(
            total=len(items),
            desc=f"count (Ray, {workers} workers)",
            unit="img",
            disable=not progress,
            mininterval=2,
        )
        watch = NodeWatch(ray)
        with bar:
            try:
                for batch in counted.iter_batches(batch_size=None, batch_format="numpy"):
                    keys = list(batch)
                    for values in zip(*(batch[k] for k in keys)):
                        row = {k: _python(v) for k, v in zip(keys, values)}
                        bar.update(1)
                        yield row
            except ray.exceptions.RayError as error:
                raise ClusterError(f"the Ray job stopped: {_first_line(error)}") from error
            finally:
                watch.stop()
    finally:
        if started:
            stop_ray()


def _first_line(error: BaseException) -> str:
    """``Type: first line`` of a Ray error (its tracebacks run to pages)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else 'no message'}"


def _python(value: Any) -> Any:
    """NumPy scalars from Ray's batches as plain Python (None for a missing number)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
