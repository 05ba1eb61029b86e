"""No picture may stall a run: detection runs under a time limit in watched processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import pytest
from PIL import Image

from charaid import watchdog
from charaid.config import Thresholds
from charaid.pipeline.prepare import DetectorSpec, prepare_many

HANG = "hanging_detector:HangingDetector"


@pytest.fixture
def pictures(tmp_path, monkeypatch):
    """Five pictures; the third is 77 px wide, which the hanging detector never returns from."""
    paths = []
    for i, w in enumerate([120, 130, 77, 140, 150]):
        p = tmp_path / f"p{i}.png"
        Image.new("RGB", (w, 100), (200, 180, 170)).save(p)
        paths.append(p)
    tests = os.path.dirname(__file__)
    monkeypatch.setenv("PYTHONPATH", tests + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(tests)
    return paths


@pytest.mark.parametrize("workers", [0, 2])
def test_a_detector_that_never_returns_gives_that_file_an_error(pictures, workers):
    spec = DetectorSpec(HANG, thresholds=replace(Thresholds(), detect_timeout_s=2.0))
    t0 = time.time()
    out = list(prepare_many(pictures, True, spec, workers=workers))
    assert [o.path for o in out] == [str(p) for p in pictures], "every file answered, in order"
    assert [o.ok for o in out] == [True, True, False, True, True]
    assert out[2].error == "face detection took over 2 s (stopped)"
    assert all(len(o.faces) == 1 for i, o in enumerate(out) if i != 2)
    assert time.time() - t0 < 60


def test_call_times_out_and_the_next_call_works():
    with pytest.raises(watchdog.CallTimeout):
        watchdog.call(time.sleep, (30,), 1.0)
    assert watchdog.call(pow, (2, 10), 5.0) == 1024
    with pytest.raises(ZeroDivisionError):
        watchdog.call(divmod, (1, 0), 5.0)


def test_a_crashing_worker_is_reported_and_replaced():
    with watchdog.TimedPool(1, 10.0) as pool:
        got = list(pool.imap(_crash_on_two, [1, 2, 3]))
    assert [r for _, r, _ in got] == [1, None, 3]
    assert isinstance(got[1][2], watchdog.WorkerDied) and "SIGKILL" in str(got[1][2])


def _crash_on_two(x):
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@pytest.mark.slow
def test_workers_die_with_their_parent(tmp_path):
    script = textwrap.dedent("""
        import sys, time
        from charaid import watchdog
        pool = watchdog.TimedPool(2, 600)
        it = pool.imap(time.sleep, [600, 600, 600])
        import threading
        threading.Thread(target=lambda: next(it), daemon=True).start()
        time.sleep(3)
        print(" ".join(str(c.proc.pid) for c in pool._children), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(v) for v in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.kill()
    proc.wait()
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids), "workers outlived their parent"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_warmed_pool_starts_its_children_before_the_jobs_and_answers_the_same(tmp_path):
    """``TimedPool.warm``: the children start (and run the warm-up) at once; the jobs after
    give the answers and errors an unwarmed pool gives, and a failing warm-up changes nothing."""
    jobs = [1, 2, 3, 4]
    with watchdog.TimedPool(2, 10.0) as cold:
        want = [(j, r, type(e)) for j, r, e in cold.imap(_square, jobs)]
    for warm_fn in (_square, _boom):
        with watchdog.TimedPool(2, 10.0).warm(warm_fn, (5,)) as pool:
            assert len(pool._children) == 2, "started at warm(), before any job"
            got = [(j, r, type(e)) for j, r, e in pool.imap(_square, jobs)]
        assert got == want


def _square(x):
    if x == 3:
        raise ValueError("three")
    return x * x


def _boom(x):
    raise RuntimeError("a warm-up that fails")


def test_prepare_many_takes_the_pool_warmed_for_it(tmp_path):
    from charaid.pipeline import prepare

    paths = []
    for k in range(3):
        p = tmp_path / f"{k}.png"
        Image.new("RGB", (64 + 8 * k, 64), (40 * k, 90, 200)).save(p)
        paths.append(p)
    (tmp_path / "bad.jpg").write_bytes(b"not a picture")
    paths.append(tmp_path / "bad.jpg")
    spec = DetectorSpec()
    cold = [(r.path, r.size, r.error, len(r.faces)) for r in prepare_many(paths, True, spec, workers=2)]
    prepare.warm_workers(spec, 2)
    assert len(prepare._WARM) == 1
    warm = [(r.path, r.size, r.error, len(r.faces)) for r in prepare_many(paths, True, spec, workers=2)]
    assert warm == cold and cold[-1][2] and not prepare._WARM, "the warm pool was taken, and gave the same answers"
