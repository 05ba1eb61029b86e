"""Time limits for work on one picture: worker processes that are killed when a call overruns.

animeface-2009's C ``detect`` can run for ever on some pictures, and C code cannot be
interrupted from Python: only its process can be stopped. So such work runs in child processes
here, each call with a deadline. Past it, the child is killed (and a new one started for the
next call), and the call raises :class:`CallTimeout`; a child that dies (a crash in C code)
raises :class:`WorkerDied`. Either way the caller reports that one file and goes on.

- :class:`TimedPool` runs many calls on N children and yields results in input order; a slow
  call holds only its own child, the others go on with the calls behind it.
- :func:`call` runs one call in this process's own sandbox child (started on first use), for
  code that is not already in a watched child.

Children exit when their parent dies: they are told by the kernel (Linux), and an idle child
sees its pipe close.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

#: True inside a watched child: code there may call native code directly (the parent keeps the time).
IN_WATCHED_CHILD = False


class CallTimeout(Exception):
    """A call ran past its time limit; its process was killed."""


class WorkerDied(Exception):
    """The process running a call died (a crash in native code, or killed from outside)."""


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the kernel kills us when the parent goes
    except (OSError, AttributeError):  # not Linux: an idle child still sees its pipe close
        pass


def _child(conn: Connection, parent: int, threads: int) -> None:
    global IN_WATCHED_CHILD
    IN_WATCHED_CHILD = True
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before we could ask to follow it
        os._exit(0)
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            os._exit(0)
        try:
            msg = ("ok", fn(*args))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            msg = ("err", e if _picklable(e) else RuntimeError(f"{type(e).__name__}: {e}"))
        try:
            conn.send(msg)
        except (EOFError, OSError, BrokenPipeError):
            os._exit(0)


def _picklable(e: BaseException) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return True
    except Exception:
        return False


_START_LOCK = threading.Lock()


@contextlib.contextmanager
def _main_unseen():
    """Start a child without it running the parent's ``__main__`` again: spawn re-imports the
    main script, which in a script without an ``if __name__ == "__main__"`` guard would redo the
    script's work (and start children of its own). Children need only charaid's modules."""
    main = sys.modules.get("__main__")
    with _START_LOCK:
        saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if main is not None and hasattr(main, k)}
        try:
            if "__file__" in saved:
                del main.__file__
            if "__spec__" in saved:
                main.__spec__ = None
            yield
        finally:
            for k, v in saved.items():
                setattr(main, k, v)


class _Child:
    """One child process and the pipe to it."""

    def __init__(self, threads: int = 1):
        ctx = mp.get_context("spawn")  # never fork a process that may have PyTorch's threads running
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_child, args=(theirs, os.getpid(), threads), daemon=True)
        with _main_unseen():
            self.proc.start()
        theirs.close()
        self.deadline: float | None = None
        self.job: Any = None

    def send(self, fn: Callable, args: tuple, timeout: float, job: Any = None) -> None:
        self.conn.send((fn, args))
        self.deadline = time.monotonic() + timeout
        self.job = job

    def receive(self) -> Any:
        """The result of the call in flight (raises what it raised, or WorkerDied)."""
        self.deadline = None
        try:
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(1)
            code = self.proc.exitcode
            raise WorkerDied(f"worker process died ({_exit_reason(code)})") from None
        if kind == "err":
            raise value
        return value

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


#: The job of a child running :meth:`TimedPool.warm`'s call.
_WARMING = ("warming", None)


class TimedPool:
    """``workers`` child processes running ``fn(job)`` for many jobs, each within ``timeout``
    seconds. :meth:`imap` yields ``(job, result, error)`` in input order, ``error`` being the
    exception of a job that failed, overran or killed its worker (``result`` is then None)."""

    def __init__(self, workers: int, timeout: float, threads: int = 1):
        self.workers = max(1, workers)
        self.timeout = timeout
        self.threads = threads
        self._children: list[_Child] = []

    def __enter__(self) -> TimedPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for c in self._children:
            c.kill()
        self._children = []

    def warm(self, fn: Callable, args: tuple = ()) -> TimedPool:
        """Start every child now and have each run ``fn(*args)`` (load its models), so that
        their start-up overlaps whatever this process does before :meth:`imap`; what it
        answers, or how it fails, is left to the first real job. Returns self."""
        while len(self._children) < self.workers:
            self._spawn().send(fn, args, self.timeout, _WARMING)
        return self

    def imap(self, fn: Callable, jobs: Iterable, window: int = 64) -> Iterator[tuple[Any, Any, BaseException | None]]:
        it = iter(jobs)
        order: list[int] = []  # job numbers in flight or done, oldest first
        done: dict[int, tuple[Any, Any, BaseException | None]] = {}
        waiting: list[tuple[int, Any]] = []
        n = 0
        exhausted = False
        idle = [c for c in self._children if c.job is None]
        while True:
            while not exhausted and len(order) < window:
                try:
                    job = next(it)
                except StopIteration:
                    exhausted = True
                    break
                order.append(n)
                waiting.append((n, job))
                n += 1
            while waiting and (idle or len(self._children) < self.workers):
                child = idle.pop() if idle else self._spawn()
                k, job = waiting.pop(0)
                child.send(fn, (job,), self.timeout, (k, job))
            while order and order[0] in done:
                yield done.pop(order.pop(0))
            if exhausted and not waiting and not order:
                return  # (a child still warming up stays so, for the next call)
            busy = [c for c in self._children if c.job is not None]
            if not busy:
                continue
            now = time.monotonic()
            first = min(c.deadline for c in busy if c.deadline is not None)
            ready = wait([c.conn for c in busy], timeout=max(0.0, first - now))
            for c in busy:
                if c.job is _WARMING:
                    self._warmed(c, c.conn in ready, idle)
                    continue
                k, job = c.job
                if c.conn in ready:
                    try:
                        done[k] = (job, c.receive(), None)
                    except (CallTimeout, WorkerDied) as e:
                        done[k] = (job, None, e)
                        self._replace(c)
                        continue
                    except Exception as e:  # noqa: BLE001 - the job's own error, for its file
                        done[k] = (job, None, e)
                    c.job = None
                    idle.append(c)
                elif c.deadline is not None and time.monotonic() >= c.deadline:
                    done[k] = (job, None, CallTimeout(f"took over {self.timeout:g} s (stopped)"))
                    self._replace(c)

    def wait_warm(self) -> None:
        """Block until every child has finished its warm-up (a benchmark's clock starts after it)."""
        for c in list(self._children):
            if c.job is _WARMING:
                self._warmed(c, bool(c.conn.poll(self.timeout)), [])

    def _warmed(self, c: _Child, ready: bool, idle: list[_Child]) -> None:
        """A child's warm-up call is over (``ready``) or may have overrun: it joins ``idle``."""
        if ready:
            try:
                c.receive()
            except (CallTimeout, WorkerDied):
                self._replace(c)
                return
            except Exception:  # noqa: BLE001, S110 - the first real job meets the same error, for its file
                pass
            c.job = None
            idle.append(c)
        elif c.deadline is not None and time.monotonic() >= c.deadline:
            self._replace(c)

    def _spawn(self) -> _Child:
        c = _Child(self.threads)
        self._children.append(c)
        return c

    def _replace(self, c: _Child) -> None:
        c.kill()
        self._children.remove(c)


_SANDBOX: dict[int, _Child] = {}
_SANDBOX_LOCK = threading.Lock()


def call(fn: Callable, args: tuple, timeout: float) -> Any:
    """``fn(*args)`` within ``timeout`` seconds: directly inside a watched child, else in this
    process's sandbox child (one per thread, started on first use, replaced after a timeout)."""
    if IN_WATCHED_CHILD:
        return fn(*args)
    key = threading.get_ident()
    with _SANDBOX_LOCK:
        child = _SANDBOX.get(key)
        if child is None or not child.proc.is_alive():
            child = _SANDBOX[key] = _Child(threads=1)
    child.send(fn, args, timeout)
    if not child.conn.poll(timeout):
        with _SANDBOX_LOCK:
            _SANDBOX.pop(key, None)
        child.kill()
        raise CallTimeout(f"took over {timeout:g} s (stopped)")
    try:
        return child.receive()
    except WorkerDied:
        with _SANDBOX_LOCK:
            _SANDBOX.pop(key, None)
        child.kill()
        raise
