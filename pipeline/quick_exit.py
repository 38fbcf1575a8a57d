"""How ``python -m pipeline`` ends: Python's exit work, then no teardown.

When a command has returned, every file it wrote is committed and closed, and its sessions and
event loop are closed. The interpreter's teardown would still clear every module and free, one
by one, the objects that pandas, pyarrow, pydantic and aiohttp keep. That took 25-30 ms of every
run's tail on the 2-core VM (``benchmarks/feeds.py``), for memory the operating system takes back
at once anyway. Instagram's servers skip this teardown with ``os._exit``; so does this module, for
the CLI only, after the same exit work Python does first, in the same order:

- Every non-daemon thread is waited for, as Python waits (``threading._shutdown``, which the
  interpreter itself calls at exit, as ``multiprocessing`` does before its children's
  ``os._exit``): the page cleaner's worker, a chart's warm-up.
- Every ``atexit`` callback runs: logging's flush, and whatever a stage or one of its libraries
  registered (an error tracker that sends its queue at exit).
- The standard streams are flushed, and the process exits with the command's code.

A standard stream that cannot be flushed (a closed pipe) leaves the exit to Python, which
reports it as it always does. An exception that escapes the command never gets here. Importing
``pipeline`` as a library never calls this module.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_now(code: int) -> None:
    """Wait for the other threads, run the ``atexit`` callbacks, flush stdout and stderr, end with ``code``.

    Returns only if a stream cannot be flushed (or on a Python without ``threading._shutdown``); the caller then
    exits as usual, with ``SystemExit``.
    """
    shutdown_threads = getattr(threading, "_shutdown", None)  # Python's own first exit step; idempotent
    if shutdown_threads is None:  # an interpreter without it: its own exit, as usual
        return
    shutdown_threads()
    atexit._run_exitfuncs()  # logging.shutdown() among them
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed pipe or stream: Python's exit says so, and sets the code
        return
    os._exit(code)
