"""Run a sweep's trials as Ray tasks: :class:`RayExecutor` (the ``[sweep]`` extra).

Each trial is a Ray task (``max_retries``: a trial whose worker dies is run again), over an
embedded local Ray (``ray.init()`` over this machine's CPUs and GPUs) or an existing cluster
(``address``, else ``$DPPLAN_RAY_ADDRESS``). Trials share GPUs through fractional GPU
resources (``gpus_per_trial``). MNIST reaches the workers through Ray's object store (the
driver loads and splits it once), or, with ``ship_data=False``, from each worker's own data
folder (``options.data_dir``).

Starting is checked before anything is stored: bad counts and malformed addresses are
refused when the executor is built, an address where nothing listens by a short TCP probe,
and a connection that hangs after :data:`CONNECT_SECONDS` (SIGTERM and SIGINT end it at
once). The embedded Ray keeps Ray's token authentication without its notices, and a small
reaper process ends its processes when the driver ends, even by SIGKILL (Ray alone leaves its
agents running for about a minute; its session folder under ``/tmp/ray`` stays, as always).

Ray is an optional extra; without it, :func:`import_ray` raises
:class:`~dpplan.errors.MissingDependencyError` naming ``pip install -e ".[sweep]"``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from dpplan.errors import MissingDependencyError, PlanError, UsageError
from dpplan.sweep.trials import TrialFunction, run_trial, split_arrays

__all__ = [
    "CONNECT_SECONDS",
    "CONNECT_SECONDS_ENV",
    "RAY_ADDRESS_ENV",
    "RAY_HINT",
    "RayExecutor",
    "import_ray",
]

#: Environment variable naming an existing Ray cluster (as ``--ray-address``).
RAY_ADDRESS_ENV = "DPPLAN_RAY_ADDRESS"
RAY_HINT = 'Install the sweep extra: pip install -e ".[sweep]" (or pip install "ray>=2.60,<3").'


def import_ray() -> Any:
    """Return the ``ray`` module.

    Raises:
        MissingDependencyError: if Ray is not installed, naming the extra to install.
    """
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "ray", extra="sweep", purpose="to run a sweep on Ray", hint=RAY_HINT
        ) from None
    return ray


CONNECT_SECONDS = 30.0
CONNECT_SECONDS_ENV = "DPPLAN_RAY_CONNECT_SECONDS"
#: How long the TCP probe of a cluster's address waits for an answer (seconds).
_PROBE_SECONDS = 5.0
_START_CLUSTER_HINT = (
    "Start a cluster with 'ray start --head' (it prints the address to pass), or leave out "
    f"--ray-address and ${RAY_ADDRESS_ENV} to run on an embedded Ray over this machine."
)


def _env_number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _split_host_port(address: str) -> tuple[str, int]:
    """Return (host, port) of ``host:port``, ``[v6]:port`` or ``ray://host:port``.

    Raises:
        PlanError: (field ``ray_address``) if there is no host or the port is not a number in
            [1, 65535].
    """
    rest = address.split("://", 1)[1] if "://" in address else address
    rest = rest.split("/", 1)[0]
    host, colon, port = rest.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if (
        not colon
        or not host
        or not (port.isascii() and port.isdigit())
        or not (1 <= int(port) <= 65535)
    ):
        raise PlanError(
            "ray_address",
            address,
            "'auto', HOST:PORT or ray://HOST:PORT with a port in [1, 65535]",
            "Pass the address 'ray start --head' printed (e.g. --ray-address 127.0.0.1:6379).",
        )
    return host, int(port)


def _check_address(address: str) -> str:
    """Check an existing cluster's address without touching the network; return it.

    Raises:
        PlanError: (field ``ray_address``) for a malformed address, or ``ray://`` without
            Ray's client (``ray[client]``).
    """
    address = address.strip()
    if address == "auto":
        return address
    _split_host_port(address)
    if "://" in address:
        scheme = address.split("://", 1)[0]
        if scheme != "ray":
            raise PlanError(
                "ray_address",
                address,
                "'auto', HOST:PORT or ray://HOST:PORT",
                f"The scheme {scheme!r} is not Ray's; a Ray Client address starts with ray://.",
            )
        try:
            import grpc  # noqa: F401 - Ray Client's transport, part of ray[client]
        except ImportError:
            raise PlanError(
                "ray_address",
                address,
                "HOST:PORT or 'auto' here: ray:// needs Ray's client",
                'Install it with pip install "ray[client]>=2.60,<3", or pass the cluster\'s '
                "GCS address (HOST:PORT, from 'ray start --head') from one of its nodes.",
            ) from None
    return address


def _probe(address: str) -> None:
    """Refuse an address where nothing listens (a short TCP connect), before Ray retries.

    ``auto`` is resolved the way Ray resolves it (the cluster ``ray start`` recorded on
    this machine); Ray's own resolution of the host (its node IP for ``127.0.0.1``) is
    probed too, since Ray connects there.

    Raises:
        PlanError: (field ``ray_address``) naming the address and how to start a cluster.
    """
    import socket

    shown = address
    if address == "auto":
        try:
            from ray._private import services

            address = services.canonicalize_bootstrap_address_or_die("auto")
        except (ConnectionError, ValueError) as exc:
            raise PlanError(
                "ray_address",
                shown,
                "the address of a running Ray cluster",
                f"No running cluster was found on this machine ({exc}). {_START_CLUSTER_HINT}",
            ) from None
        except Exception:  # noqa: BLE001 - Ray's private API moved: let ray.init resolve it
            return
    host, port = _split_host_port(address)
    candidates = [host]
    if "://" not in address:
        try:
            from ray._private import services

            resolved = services.resolve_ip_for_localhost(host)
            if resolved != host:
                candidates.append(resolved)
        except Exception:  # noqa: BLE001, S110 - Ray's private API moved: probe the host only
            pass
    errors = []
    for candidate in candidates:
        try:
            socket.create_connection((candidate, port), timeout=_PROBE_SECONDS).close()
            return
        except OSError as exc:
            errors.append(f"{candidate}:{port}: {exc.strerror or exc}")
    raise PlanError(
        "ray_address",
        shown,
        "the address of a running Ray cluster",
        f"Nothing answers there ({'; '.join(errors)}). {_START_CLUSTER_HINT}",
    )


@contextlib.contextmanager
def _bounded_connect(address: str, seconds: float) -> Iterator[None]:
    """Bound ``ray.init(address=...)``: honour SIGTERM and SIGINT, and give up after ``seconds``.

    Ray's GCS client blocks in C++ while it retries, so Python's signal handlers (Ray's own
    SIGTERM handler included) only run when it returns, minutes later. A watcher thread
    reads the signals from Python's wakeup file descriptor (written by the C-level handler
    at once) and ends the process; the same thread ends it when the connection takes longer
    than ``seconds``. Nothing has been stored yet at this point, so exiting is safe.
    """
    import signal
    import socket
    import sys
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)

    def leave(signum: int, _frame: Any) -> None:
        sys.exit(128 + signum)

    handlers = {}
    for number in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(number) in (signal.SIG_DFL, None):
            # A Python-level handler is needed for the wakeup fd to see the signal.
            handlers[number] = signal.signal(number, leave)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    done = threading.Event()

    def watch() -> None:
        reader.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while not done.is_set():
            try:
                data = reader.recv(16)
            except TimeoutError:
                data = b""
            except OSError:
                return
            hit = [b for b in data if b in (signal.SIGTERM, signal.SIGINT)]
            if hit and not done.is_set():
                print(
                    f"error: interrupted (signal {hit[0]}) while connecting to the Ray "
                    f"cluster at {address}; nothing was stored.",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(128 + hit[0])
            if time.monotonic() > deadline and not done.is_set():
                print(
                    f"error: ray_address={address!r} is invalid: must be the address of a "
                    f"running Ray cluster. Ray could not connect within {seconds:g} s. "
                    f"{_START_CLUSTER_HINT} Nothing was stored.",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(2)

    watcher = threading.Thread(target=watch, daemon=True, name="dpplan-ray-connect")
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous)
        for number, handler in handlers.items():
            if signal.getsignal(number) is leave:  # Ray's own handler (set by init) stays
                signal.signal(number, handler)
        watcher.join(timeout=1.0)
        reader.close()
        writer.close()


@contextlib.contextmanager
def _quiet_embedded_start() -> Iterator[None]:
    """Start an embedded Ray without Ray's notices about its own defaults.

    Ray 2.60 enables token authentication for a new local cluster and logs "Token
    authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out."
    on every start. The embedded cluster keeps token authentication (anyone who can reach
    its ports must hold the token); only the notice is silenced. A user's own
    ``RAY_AUTH_MODE`` is respected, and clusters given by address keep their settings.
    """
    import logging

    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


#: The reaper of an embedded Ray (stdlib only; run with ``python -c``). It reads its stdin
#: until the driver closes it or dies (SIGKILL included: the kernel closes the pipe), then
#: ends those of the given Ray processes that still run (SIGTERM, then SIGKILL after 3 s).
#: PIDs are checked against their start times, so a reused PID is never signalled.
_REAPER = """
import os, signal, sys, time
def started(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(") ", 1)[-1].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None
targets = [(int(p), s) for p, s in (a.split(":", 1) for a in sys.argv[1:])]
sys.stdin.buffer.read()
for sig in (signal.SIGTERM, signal.SIGKILL):
    alive = [pid for pid, start in targets if started(pid) == start]
    for pid in alive:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + 3.0
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if started(pid) is not None]
"""


def _child_pids() -> set[int]:
    """Return the PIDs of this process's descendants (empty without psutil)."""
    try:
        import psutil  # a dependency of Ray
    except ImportError:
        return set()
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _ray_processes(before: set[int]) -> list[tuple[int, str]]:
    """Return (PID, start time) of this process's descendants started since ``before`` whose
    command line is Ray's (the embedded cluster's GCS, raylet, agents, monitors)."""
    try:
        import psutil
    except ImportError:
        return []
    from dpplan.store import process_start

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except (psutil.Error, OSError):
            continue
        start = process_start(child.pid)
        if child.pid not in before and start is not None and "ray" in line:
            found.append((child.pid, start))
    return found


def _start_reaper(processes: list[tuple[int, str]]) -> Any:
    """Start the reaper of an embedded Ray's processes (Linux; None elsewhere)."""
    import subprocess
    import sys

    if not processes or not os.path.isdir("/proc"):
        return None
    return subprocess.Popen(
        [sys.executable, "-c", _REAPER, *(f"{pid}:{start}" for pid, start in processes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives a signal to the driver's process group
    )


class RayExecutor:
    """Runs trials as Ray tasks, retried when their worker dies.

    Everything that can be checked without the network is checked when the executor is
    built; :meth:`prepare` then reaches the cluster (a short TCP probe first, so an address
    where nothing listens is refused at once, and a connection bounded by
    :data:`CONNECT_SECONDS`) and refuses trials that no node could ever run.

    Args:
        address: an existing cluster (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``);
            None uses ``$DPPLAN_RAY_ADDRESS`` if set, else starts an embedded Ray over this
            machine (or joins the one this process already initialised).
        num_cpus: CPUs of the embedded Ray (default: all), an integer >= 1.
        num_gpus: GPUs of the embedded Ray (default: all CUDA GPUs Ray finds), >= 0.
        cpus_per_trial: CPUs each trial reserves.
        gpus_per_trial: GPU fraction each trial reserves (e.g. 0.25: four trials share a
            GPU); None: 0.25 when the cluster has GPUs and ``options.device`` allows CUDA,
            else 0 (CPU trials).
        max_retries: how many times a trial whose worker died is run again.
        ship_data: send MNIST through the object store (True) or let each worker read its
            own ``options.data_dir`` (False; for clusters whose nodes have the data).
        trial: the function each task runs (default :func:`dpplan.train.trial.run_trial`);
            Ray pickles it by reference, so it must be importable on the workers.

    Raises:
        PlanError: if Ray is not installed (naming the extra), or an argument is invalid
            (``ray_address`` malformed or ``ray://`` without ``ray[client]``; ``num_cpus``
            below 1 or given with an existing cluster; ``cpus_per_trial`` above
            ``num_cpus``; ...).
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: float | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float | None = None,
        max_retries: int = 2,
        ship_data: bool = True,
        trial: TrialFunction = run_trial,
    ) -> None:
        from dpplan import _validate

        self.cpus_per_trial = _validate.finite_positive(
            maximum=4096.0, cpus_per_trial=cpus_per_trial
        )
        if gpus_per_trial is not None:
            gpus_per_trial = _validate.closed_interval(
                low=0.0, high=64.0, gpus_per_trial=gpus_per_trial
            )
        self.gpus_per_trial = gpus_per_trial
        self.max_retries = _validate.integer(minimum=0, maximum=100, max_retries=max_retries)
        if num_cpus is not None:
            num_cpus = _validate.integer(
                minimum=1,
                maximum=4096,
                hint="A Ray with no CPU can run no trial; leave out --num-cpus to use all CPUs.",
                num_cpus=num_cpus,
            )
            if self.cpus_per_trial > num_cpus:
                raise PlanError(
                    "cpus_per_trial",
                    cpus_per_trial,
                    f"at most num_cpus={num_cpus}",
                    "A trial that needs more CPUs than the embedded Ray has could never run.",
                )
        if num_gpus is not None:
            num_gpus = _validate.closed_interval(low=0.0, high=64.0, num_gpus=num_gpus)
        self.ray = import_ray()
        given = address if address is not None else os.environ.get(RAY_ADDRESS_ENV) or None
        self.address = _check_address(given) if given is not None else None
        if self.address is not None and (num_cpus is not None or num_gpus is not None):
            raise UsageError(
                "num_cpus" if num_cpus is not None else "num_gpus",
                num_cpus if num_cpus is not None else num_gpus,
                f"omitted with an existing cluster (ray_address={self.address!r})",
                "It sizes the embedded Ray only; an existing cluster has its own resources.",
            )
        self.ship_data = ship_data
        self.trial = trial
        self._num_cpus, self._num_gpus = num_cpus, num_gpus
        self._owns = False
        self._reaper: Any = None
        self._refs: dict[Any, str] = {}
        self._data_ref = None
        self._remote = None
        self.capacity = 1

    def _start(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"log_to_driver": False}
        if self.address is None:
            import logging

            kwargs.update(
                include_dashboard=False,
                num_cpus=self._num_cpus,
                num_gpus=self._num_gpus,
                logging_level=logging.WARNING,
            )
            before = _child_pids()
            with _quiet_embedded_start():
                ray.init(**kwargs)
            self._reaper = _start_reaper(_ray_processes(before))
        else:
            _probe(self.address)
            seconds = CONNECT_SECONDS
            if os.environ.get(CONNECT_SECONDS_ENV):
                from dpplan import _validate

                seconds = _validate.finite_positive(
                    maximum=3600.0,
                    hint=f"Set ${CONNECT_SECONDS_ENV} to a number of seconds, or unset it.",
                    **{CONNECT_SECONDS_ENV: _env_number(os.environ[CONNECT_SECONDS_ENV])},
                )
            with _bounded_connect(self.address, seconds):
                try:
                    ray.init(address=self.address, **kwargs)
                except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
                    # e.g. no cluster for "auto", or the cluster wants a token this process lacks
                    token = ""
                    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                        token = (
                            " If the cluster uses token authentication ('ray start' enables "
                            "it by default), set RAY_AUTH_MODE=token for this command (the "
                            "token comes from $RAY_AUTH_TOKEN or ~/.ray/auth_token)."
                        )
                    raise PlanError(
                        "ray_address",
                        self.address,
                        "the address of a running Ray cluster this process can join",
                        f"Ray could not connect: {type(exc).__name__}: {exc}.{token} "
                        + _START_CLUSTER_HINT,
                    ) from None
        self._owns = True

    def _largest_node(self) -> tuple[float, float]:
        """Return the most CPUs and GPUs any one alive node offers (a task runs on one node)."""
        ray = self.ray
        cpus = gpus = 0.0
        try:
            nodes = [node for node in ray.nodes() if node.get("Alive", True)]
        except Exception:  # noqa: BLE001 - e.g. Ray Client without the state API
            nodes = []
        for node in nodes:
            resources = node.get("Resources", {})
            cpus = max(cpus, float(resources.get("CPU", 0.0)))
            gpus = max(gpus, float(resources.get("GPU", 0.0)))
        if not nodes:
            resources = ray.cluster_resources()
            cpus, gpus = float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))
        return cpus, gpus

    def prepare(self, options: Any, *, task: str | None = None) -> None:
        """Start or join Ray, size the trials' resources and put MNIST in the object store.

        Called again with the executor prepared, it does nothing. On an error, Ray started
        here is shut down again.

        Raises:
            PlanError: for an address where no cluster answers (field ``ray_address``); for
                ``device="cuda"`` on a cluster without GPUs or with ``gpus_per_trial=0``; for
                a trial that needs more CPUs or GPUs than any node of the cluster has.
        """
        if self._remote is not None:
            return
        try:
            self._prepare(options, task)
        except BaseException:
            self.close()
            raise

    def _prepare(self, options: Any, task: str | None = None) -> None:
        ray = self.ray
        self._start()
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0.0))
        node_cpus, node_gpus = self._largest_node()
        per_gpu = self.gpus_per_trial
        if per_gpu is None:
            per_gpu = 0.25 if gpus > 0 and options.device != "cpu" else 0.0
        if options.device == "cuda" and not (per_gpu > 0 and gpus > 0):
            raise PlanError(
                "gpus_per_trial",
                per_gpu,
                "> 0 on a cluster with GPUs for device='cuda'",
                f"The Ray cluster has {gpus:g} GPUs.",
            )
        if per_gpu > node_gpus:
            raise PlanError(
                "gpus_per_trial",
                per_gpu,
                f"at most the {node_gpus:g} GPUs of the cluster's largest node",
                "A trial runs on one node; one that needs more GPUs could never run.",
            )
        if self.cpus_per_trial > node_cpus:
            raise PlanError(
                "cpus_per_trial",
                self.cpus_per_trial,
                f"at most the {node_cpus:g} CPUs of the cluster's largest node",
                "A trial runs on one node; one that needs more CPUs could never run.",
            )
        self.gpus_per_trial = per_gpu
        slots = int(float(resources.get("CPU", 0.0)) // self.cpus_per_trial)
        if per_gpu > 0:
            slots = min(slots, int(gpus / per_gpu + 1e-9))
        self.capacity = max(1, slots)
        remote = ray.remote(
            num_cpus=self.cpus_per_trial,
            num_gpus=per_gpu,
            max_retries=self.max_retries,
            retry_exceptions=False,
            max_calls=0,  # keep workers warm (Ray's default for GPU tasks is one call each)
        )(self.trial)
        if self.ship_data and task is None:  # a user's task: each worker imports it
            self._data_ref = ray.put(split_arrays(options))
        self._remote = remote

    def submit(self, key: str, payload: dict[str, Any]) -> None:
        self._refs[self._remote.remote(payload, self._data_ref)] = key

    @property
    def in_flight(self) -> int:
        return len(self._refs)

    def wait(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """Wait for a trial; return (key, result dict or its exception), or None on timeout."""
        done, _ = self.ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if not done:
            return None
        key = self._refs.pop(done[0])
        try:
            return key, self.ray.get(done[0])
        except self.ray.exceptions.RayError as exc:  # the task failed or its worker died
            return key, exc

    def close(self) -> None:
        for ref in list(self._refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001, S110 - best effort at shutdown
                pass
        self._refs.clear()
        self._remote = self._data_ref = None
        if self._owns:
            self.ray.shutdown()
            self._owns = False
        if self._reaper is not None:
            self._reaper.stdin.close()  # the reaper ends whatever Ray left running
            try:
                self._reaper.wait(timeout=10)
            except Exception:  # noqa: BLE001, S110 - it runs on in its own session
                pass
            self._reaper = None
