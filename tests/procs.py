"""Subprocesses a test starts, in a session of their own, so they die with the test.

``subprocess.run(timeout=...)`` kills only the direct child: a ``dvc`` whose stage process outlives it
goes on holding the repository's lock and breaks every later test that uses it. Here the whole process
group is killed when the call ends early for any reason (its own timeout, pytest-timeout's alarm, an
interrupt), and nothing but what the call started is touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group (its session, made by :func:`popen`) and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the leader and every member are already gone
        pass
    proc.wait()


@contextmanager
def popen(cmd: Sequence[str] | str, **kw: Any) -> Iterator[subprocess.Popen]:
    """``subprocess.Popen`` in a new session; on leaving the block its whole group is killed."""
    proc = subprocess.Popen(cmd, start_new_session=True, **kw)
    try:
        yield proc
    finally:
        kill_group(proc)


def run(cmd: Sequence[str] | str, timeout: float | None = None, **kw: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` whose process group never outlives it.
    A run past ``timeout`` seconds raises ``subprocess.TimeoutExpired`` after the group is killed."""
    with popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw) as proc:
        out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
