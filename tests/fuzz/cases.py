"""Load one file per child process, under a timeout and a memory cap.

Each case runs in a forked child (the parent has already imported cylstm,
numpy, h5py and onnx, so a case costs milliseconds): the child caps its
address space with ``resource.setrlimit(RLIMIT_AS)`` at what it already uses
plus 10x the file's size plus ``MEMORY_ALLOWANCE`` (room for a small model's
weights), loads the file, and reports through its exit status. The parent
kills it at the per-case timeout. Outcomes: 'ok' (loaded), 'refused'
(ValueError: the contract), 'violation' (any other exception), 'memory'
(MemoryError under the cap), 'crash' (killed by a signal), 'hang' (timeout).
"""
import os
import signal
import sys
import tempfile
import time
import traceback

from .loaders import LOADERS, in_contract, loader_for

MEMORY_ALLOWANCE = 256 * 2**20
CASE_TIMEOUT = 20.0
_EXIT = {0: "ok", 10: "refused", 11: "violation", 12: "memory"}


def _vm_size():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _child(loader, path, report_fd):
    import resource

    vm = _vm_size()
    if vm is not None:
        cap = vm + 10 * os.path.getsize(path) + MEMORY_ALLOWANCE
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    code, text = 0, ""
    try:
        loader(path)
    except MemoryError:
        code, text = 12, traceback.format_exc()
    except Exception as e:  # noqa: BLE001 - classified here
        if in_contract(e):
            code, text = 10, f"{type(e).__name__}: {e}"
        else:
            code, text = 11, traceback.format_exc()
    try:
        os.write(report_fd, text.encode("utf-8", "replace")[-4000:])
    finally:
        os._exit(code)


def run_case(path, name=None, timeout=CASE_TIMEOUT):
    """(outcome, detail) of loading ``path`` with loader ``name`` in a child."""
    name = name or loader_for(path)
    loader = LOADERS[name][0]
    if not hasattr(os, "fork"):
        raise RuntimeError("the corpus pass needs os.fork (Linux or macOS)")
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            _child(loader, os.fspath(path), write_fd)
        finally:
            os._exit(13)
    os.close(write_fd)
    deadline = time.monotonic() + timeout
    status = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_fd)
            return "hang", f"no result within {timeout} s"
        time.sleep(0.002)
    chunks = []
    while True:
        piece = os.read(read_fd, 65536)
        if not piece:
            break
        chunks.append(piece)
    os.close(read_fd)
    detail = b"".join(chunks).decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        return "crash", f"killed by signal {os.WTERMSIG(status)}"
    return _EXIT.get(os.WEXITSTATUS(status), "crash"), detail


def run_corpus(files, timeout=CASE_TIMEOUT, budget_s=None, log=None):
    """Run every file; returns {path: (outcome, detail)} (stops early past budget_s)."""
    start = time.monotonic()
    results = {}
    for path in files:
        if budget_s is not None and time.monotonic() - start > budget_s:
            break
        results[path] = run_case(path, timeout=timeout)
        if log is not None and results[path][0] not in ("ok", "refused"):
            log(f"{results[path][0]}: {path}\n{results[path][1]}")
    return results


BAD = ("violation", "memory", "crash", "hang")


def corpus_pass(random_per_seed=20, timeout=CASE_TIMEOUT, out=None, log=print):
    """Make the corpus in ``out`` (a temporary folder by default) and run it.
    Returns (number of files, list of (path, outcome, detail) that failed)."""
    from .make_corpus import make_corpus

    with tempfile.TemporaryDirectory() as tmp:
        folder = out or tmp
        files = make_corpus(folder, random_per_seed)
        results = run_corpus(files, timeout=timeout, log=log)
    failed = [(p, o, d) for p, (o, d) in results.items() if o in BAD]
    return len(results), failed
