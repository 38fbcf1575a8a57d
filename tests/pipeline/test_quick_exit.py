"""``python -m pipeline`` ends without the interpreter's teardown, after the exit work that has an effect.

Each case runs in a fresh interpreter: what is under test is how a process ends. A module-level object whose
``__del__`` prints shows whether the teardown ran; an ``atexit`` callback shows that Python's exit work did.
"""

from __future__ import annotations

import textwrap

from tests.support.cli import CliRunner, run_python, run_subprocess

PROBE = textwrap.dedent(
    """
    import atexit, sys, threading

    from pipeline.quick_exit import exit_now


    class Teardown:
        def __del__(self):
            sys.__stderr__.write("teardown ran\\n")


    marker = Teardown()
    atexit.register(lambda: print("atexit ran", file=sys.stderr))
    print("buffered line", end="")  # stdout is a pipe: this stays in its buffer until a flush
    {setup}
    exit_now(3)
    print(" and after", end="")
    sys.stderr.write("exit_now returned\\n")
    {after}
    raise SystemExit(3)
    """
)


def probe(setup: str = "", after: str = "") -> tuple[int, str, str]:
    proc = run_python("-c", PROBE.format(setup=setup, after=after), timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


def test_it_runs_the_atexit_callbacks_flushes_and_skips_the_teardown() -> None:
    code, out, err = probe()
    assert code == 3
    assert out == "buffered line"  # flushed, and nothing after exit_now ran
    assert err.splitlines() == ["atexit ran"]  # no "teardown ran"


def test_without_it_the_teardown_runs() -> None:
    # The control: the marker does tell a teardown when there is one (the test above can fail).
    proc = run_python("-c", PROBE.format(setup="", after="").replace("exit_now(3)", "pass"), timeout=30)
    assert proc.returncode == 3
    assert proc.stdout == "buffered line and after"
    assert proc.stderr.splitlines() == ["exit_now returned", "atexit ran", "teardown ran"]


def test_it_waits_for_the_threads_python_would_wait_for() -> None:
    # A worker of an executor nobody shut down (the page cleaner's) and a plain thread still at work: Python's exit
    # waits for both, and so does exit_now. Without the wait, os._exit would end them before they print.
    setup = textwrap.dedent(
        """
        import concurrent.futures, time
        go = threading.Event()
        def work(name):
            go.wait()
            time.sleep(0.05)  # still at work when exit_now begins
            sys.stderr.write(name + " finished\\n")  # one write: the two threads print at the same time
        concurrent.futures.ThreadPoolExecutor(1).submit(work, "task")
        threading.Thread(target=work, args=("thread",)).start()
        go.set()
        """
    )
    code, out, err = probe(setup=setup)
    assert code == 3
    assert out == "buffered line"
    lines = err.splitlines()
    assert sorted(lines[:2]) == ["task finished", "thread finished"]
    assert lines[2:] == ["atexit ran"]


def test_a_stream_that_cannot_be_flushed_leaves_the_exit_to_python() -> None:
    # A reader that went away (`| head`): the flush fails, and Python's exit reports it as it always does.
    setup = textwrap.dedent(
        """
        import io
        class Gone(io.RawIOBase):
            def writable(self):
                return True
            def write(self, data):
                raise BrokenPipeError(32, "Broken pipe")
        sys.stdout = io.TextIOWrapper(Gone())
        print("lost", end="")
        """
    )
    code, out, err = probe(setup=setup)
    assert out == "buffered line"  # the real stream flushed it when the script replaced it
    lines = err.splitlines()
    assert lines[:2] == ["atexit ran", "exit_now returned"]  # the callbacks ran once, before the flush failed
    assert "BrokenPipeError" in err  # Python's exit tried the flush again and said so
    assert code == 120  # what Python exits with when it cannot flush stdout


def test_the_command_line_keeps_its_exit_code_and_its_whole_output(run_cli: CliRunner) -> None:
    listed = run_subprocess("stages")
    assert listed.returncode == 0
    assert listed.stdout == run_cli("stages").stdout  # every line, as main() printed it in this process
    failed = run_subprocess("run", "--config", "no/such/config.yml")
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: ") and "no/such/config.yml" in failed.stderr
