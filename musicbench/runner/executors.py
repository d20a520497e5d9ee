"""Executors: where the runner's cells are computed.

- ``serial``: in this process, one cell after another.
- ``processes``: worker processes on this machine, the cores divided between them (each
  worker gets ``cores // jobs`` BLAS, OpenMP and torch threads).
- ``dask``: Dask distributed; a ``LocalCluster`` of ``jobs`` single-threaded workers, or
  any running scheduler by address (``dask scheduler`` + ``dask worker`` on a lab's
  machines, or ``dask-jobqueue`` on HPC). Cells that need a GPU ask for the worker
  resource ``GPU=1``.

An executor only computes: the runner stays the one writer of results and of MLflow.
Calls are submitted by key and come back, as they finish, as ``(key, result)`` where a
result may be an exception: the call's own, or ``WorkerDied`` for a call whose worker
process died under it ``max_deaths`` times (each death but the last is retried).
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any

from musicbench.errors import ConfigError
from musicbench.registry import Registry

MAX_DEATHS = 3  # a cell whose worker dies this many times is recorded as failed
Done = list[tuple[str, Any]]


class WorkerDied(RuntimeError):
    """A cell's worker process was killed (out of memory, a crash in native code, a
    signal) as many times as an executor retries it."""


def limit_threads(threads: int) -> None:
    """Cap BLAS, OpenMP and torch threads in this worker process."""
    from threadpoolctl import threadpool_limits

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["MUSICBENCH_JOBS"] = str(threads)  # extraction inside a cell stays in its share
    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def worker_context() -> BaseContext:
    """How worker processes start: forked from a clean server process that has imported
    the runner (``forkserver``; ``spawn`` where there is none), never from this process.
    Once torch or scikit-learn has run an OpenMP parallel region here, a child forked from
    here waits forever in its first parallel region of more than one thread."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["musicbench.runner.execute"])
    forkserver.ensure_running()  # its imports overlap what this process does before the cells
    return ctx


def _limited(threads: int, fn: Callable, *args: Any) -> Any:
    limit_threads(threads)
    return fn(*args)


class Executor(ABC):
    """Computes calls submitted by key; ``slots`` is how many run at once."""

    slots: int = 1
    takes_scheduler = False  # whether ``--scheduler ADDRESS`` means anything to it

    @classmethod
    def create(cls, jobs: int, scheduler: str | None = None, gpu: bool = False,
               log: Callable[[str], None] | None = None) -> Executor:
        """The executor for ``jobs`` parallel calls, from the run's options."""
        return cls()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Stop the workers."""

    @abstractmethod
    def submit(self, key: str, fn: Callable, *args: Any, gpu: bool = False) -> None:
        """Start ``fn(*args)``; ``gpu``: the call needs a GPU of its own."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> Done:
        """The calls finished since the last ``wait`` (at least one unless ``timeout``
        passes first or none is running)."""


class SerialExecutor(Executor):
    """One cell after another in this process (the default)."""

    def __init__(self) -> None:
        self._done: Done = []

    def submit(self, key: str, fn: Callable, *args: Any, gpu: bool = False) -> None:
        try:
            self._done.append((key, fn(*args)))
        except Exception as exc:  # noqa: BLE001 - a call's failure is its result
            self._done.append((key, exc))

    def wait(self, timeout: float | None = None) -> Done:
        done, self._done = self._done, []
        return done


class ProcessExecutor(Executor):
    """Cells in parallel worker processes on this machine.

    A pool of ``jobs`` processes. A killed worker breaks the whole pool: the pool is
    started again and the calls it was running are retried, each alone, so that a call
    that kills its worker is identified and failed after ``max_deaths`` deaths while the
    innocent ones complete."""

    @classmethod
    def create(cls, jobs: int, scheduler: str | None = None, gpu: bool = False,
               log: Callable[[str], None] | None = None) -> Executor:
        return cls(jobs)

    def __init__(self, jobs: int, max_deaths: int = MAX_DEATHS):
        self.slots = jobs
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self.max_deaths = max_deaths
        self._pool: ProcessPoolExecutor | None = None
        self._calls: dict[str, tuple[Callable, tuple]] = {}
        self._queue: deque[str] = deque()
        self._running: dict[Future, str] = {}
        self._deaths: dict[str, int] = {}
        self._done: Done = []
        self._context = worker_context()

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.slots, mp_context=self._context,
                                             initializer=limit_threads, initargs=(self.threads,))
        return self._pool

    def _pump(self) -> None:
        """Start queued calls: suspects (calls whose worker died) only alone."""
        while self._queue and len(self._running) < self.slots:
            key = self._queue[0]
            suspect = key in self._deaths
            if self._running and (suspect or any(k in self._deaths for k in self._running.values())):
                return
            self._queue.popleft()
            fn, args = self._calls[key]
            self._running[self._start().submit(fn, *args)] = key

    def submit(self, key: str, fn: Callable, *args: Any, gpu: bool = False) -> None:
        self._calls[key] = (fn, args)
        self._queue.append(key)
        self._pump()

    def _finish(self, key: str, result: Any) -> None:
        self._calls.pop(key, None)
        self._deaths.pop(key, None)
        self._done.append((key, result))

    def wait(self, timeout: float | None = None) -> Done:
        if self._running and not self._done:
            finished, _ = wait(list(self._running), timeout, FIRST_COMPLETED)
            broken = False
            for fut in finished:
                key = self._running.pop(fut)
                try:
                    self._finish(key, fut.result())
                except BrokenProcessPool:
                    broken = True
                    self._running[fut] = key
                except Exception as exc:  # noqa: BLE001 - a call's failure is its result
                    self._finish(key, exc)
            if broken:
                self._restart()
        self._pump()
        done, self._done = self._done, []
        return done

    def _restart(self) -> None:
        """The pool lost a worker: every call it was running is suspect."""
        victims = list(self._running.values())
        self._running.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        for key in reversed(victims):
            self._deaths[key] = self._deaths.get(key, 0) + 1
            if self._deaths[key] >= self.max_deaths:
                self._finish(key, WorkerDied(f"its worker process died {self.max_deaths} times "
                                             "(killed, out of memory or crashed); not retried"))
            else:
                self._queue.appendleft(key)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(Executor):
    """A Dask LocalCluster, or the scheduler given by --scheduler.

    Dask distributed: a ``LocalCluster`` of ``jobs`` workers, or the scheduler at
    ``address``. The scheduler retries a call whose worker died on another worker and
    gives up after ``distributed.scheduler.allowed-failures`` deaths (``KilledWorker``)."""

    takes_scheduler = True

    @classmethod
    def create(cls, jobs: int, scheduler: str | None = None, gpu: bool = False,
               log: Callable[[str], None] | None = None) -> Executor:
        return cls(jobs, scheduler, gpu, log=log)

    def __init__(self, jobs: int, address: str | None = None, gpu: bool = False,
                 max_deaths: int = MAX_DEATHS, log: Callable[[str], None] | None = None):
        try:
            import dask
            from distributed import Client, LocalCluster
        except ModuleNotFoundError:
            raise ConfigError("--executor dask needs Dask distributed: pip install "
                              "'musicbench[dask]'") from None
        self.cluster = None
        if address:
            self.client = Client(address, timeout="30s")
            nthreads = self.client.nthreads()
            self.slots = max(1, sum(nthreads.values()))
            workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
            if gpu and not any(w.get("resources", {}).get("GPU") for w in workers):
                raise ConfigError(f"the cells need a GPU but no worker of the scheduler at {address} "
                                  "offers the resource GPU; start them with `dask worker ADDRESS "
                                  "--nthreads 1 --resources GPU=1`")
            self.threads = 1
        else:
            # Dask's default MALLOC_TRIM_THRESHOLD_ for its workers turns off glibc's
            # dynamic mmap threshold: every large numpy temporary is then mmapped and
            # page-faulted afresh (measured: VQ cells 2-3x slower than in `processes`).
            # Its statistical profiler samples every 10 ms, contending for the GIL.
            environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
                       if k != "MALLOC_TRIM_THRESHOLD_"}
            # worker-saturation 1: a worker holds only the cell it computes, so a worker's
            # death counts against that cell alone, never against one queued behind it
            with dask.config.set({"distributed.scheduler.allowed-failures": max_deaths - 1,
                                  "distributed.scheduler.worker-saturation": 1.0,
                                  "distributed.nanny.pre-spawn-environ": environ,
                                  "distributed.worker.profile.enabled": False}):
                self.cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                            dashboard_address=None,
                                            resources={"GPU": 1} if gpu else None)
            self.client = Client(self.cluster)
            self.slots = jobs
            self.threads = max(1, (os.cpu_count() or 1) // jobs)
        if log:
            log(f"dask: scheduler {self.client.scheduler.address}, {self.slots} worker thread(s)")
        self._running: dict[Any, str] = {}

    def submit(self, key: str, fn: Callable, *args: Any, gpu: bool = False) -> None:
        fut = self.client.submit(_limited, self.threads, fn, *args, pure=False, retries=0,
                                 resources={"GPU": 1} if gpu else None)
        self._running[fut] = key

    def wait(self, timeout: float | None = None) -> Done:
        from distributed import wait as dask_wait
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        if not self._running:
            return []
        try:
            finished = dask_wait(list(self._running), timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return []
        done = []
        for fut in finished:
            key = self._running.pop(fut)
            try:
                done.append((key, fut.result()))
            except KilledWorker as exc:
                done.append((key, WorkerDied(f"its worker process died on every try ({exc})")))
            except FutureCancelledError as exc:
                done.append((key, WorkerDied(f"cancelled by the scheduler ({exc})")))
            except Exception as exc:  # noqa: BLE001 - a call's failure is its result
                done.append((key, exc))
        return done

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(name: str, jobs: int | None = None, scheduler: str | None = None, gpu: bool = False,
                  log: Callable[[str], None] | None = None) -> Executor:
    """The executor ``name`` (one of ``EXECUTORS``); ``jobs`` defaults to the cores."""
    cls = EXECUTORS[name]
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: must be >= 1")
    if scheduler and not cls.takes_scheduler:
        with_scheduler = [n for n in EXECUTORS.names() if EXECUTORS[n].takes_scheduler]
        raise ConfigError(f"--scheduler is for --executor {' or '.join(with_scheduler)}, not {name}")
    return cls.create(jobs or os.cpu_count() or 1, scheduler, gpu, log=log)


def summaries() -> dict[str, str]:
    """Each executor's name and the first line of its docstring, for ``--executor``'s help."""
    return {name: (EXECUTORS[name].__doc__ or "").strip().splitlines()[0].rstrip(".")
            for name in EXECUTORS}


EXECUTORS: Registry[type[Executor]] = Registry("executor", {
    "serial": SerialExecutor,
    "processes": ProcessExecutor,
    "dask": DaskExecutor,
}, doc="what --executor names: runs a plan's cells (in process, a process pool, Dask)")
