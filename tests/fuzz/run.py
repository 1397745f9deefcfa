"""Fuzzing cylstm's loaders: the corpus pass and the atheris targets.

    # 10 minutes of coverage-guided fuzzing of one loader (or of each: --target all)
    python -m tests.fuzz.run --seconds 600 --target load_model
    # the malformed-file corpus, each file in a child with a timeout and a memory cap
    python -m tests.fuzz.run --corpus
    # CI: the corpus pass plus 3 s of each target (about a minute and a half)
    python -m tests.fuzz.run --ci

Targets: load_model (.cylstm), from_keras (.keras), from_keras_h5 (.h5),
from_keras_weights (.weights.h5), from_onnx (.onnx, by path), from_onnx_bytes,
state_dict_npz (nn.LSTM.from_torch of an .npz). Atheris is in the ``fuzz``
extra (``pip install 'cylstm[fuzz]'``; it builds on Linux and macOS with
clang). Exit status 1 when anything out of contract was found: an exception
other than ValueError, a crash, a hang or a memory blow-up. Crashing inputs
are kept in --artifacts (default fuzz-artifacts/).
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from .loaders import LOADERS

ROOT = pathlib.Path(__file__).resolve().parents[2]
CI_TARGETS = ("load_model", "from_keras", "from_keras_h5", "from_keras_weights", "from_onnx",
              "state_dict_npz")


def seeds_for(target, corpus_dir):
    """The corpus files of this target's format, copied into a fresh folder
    libFuzzer may add to."""
    suffix = LOADERS[target][1]
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"cylstm-corpus-{target}-"))
    for p in pathlib.Path(corpus_dir).rglob("*" + suffix):
        if suffix == ".h5" and p.name.endswith(".weights.h5"):
            continue
        shutil.copy(p, work / p.name)
    return work


def fuzz_target(target, seconds, corpus_dir, artifacts, rss_limit_mb=1024, timeout=20):
    """Run one atheris target for ``seconds``; returns (ok, summary line)."""
    work = seeds_for(target, corpus_dir)
    prefix = pathlib.Path(artifacts) / f"{target}-"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tests.fuzz.atheris_target", target,
           f"-max_total_time={int(seconds)}", f"-timeout={timeout}",
           f"-rss_limit_mb={rss_limit_mb}", f"-malloc_limit_mb={rss_limit_mb}",
           "-max_len=200000", f"-artifact_prefix={prefix}", "-print_final_stats=1",
           str(work)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=seconds + 4 * timeout + 120)
    elapsed = time.monotonic() - start
    log = proc.stderr
    def stat(name):
        found = [line for line in log.splitlines() if f"stat::{name}" in line]
        return found[-1].split(":")[-1].strip() if found else "?"
    executed, peak = stat("number_of_executed_units"), stat("peak_rss_mb")
    shutil.rmtree(work, ignore_errors=True)
    ok = proc.returncode == 0
    summary = (f"{target}: {'ok' if ok else 'FAILED'} after {elapsed:.0f} s, "
               f"{executed} inputs executed, peak RSS {peak} MB")
    if not ok:
        summary += "\n" + log[-6000:]
    return ok, summary


def corpus(random_per_seed, timeout):
    from .cases import corpus_pass

    start = time.monotonic()
    n, failed = corpus_pass(random_per_seed, timeout=timeout, log=lambda s: None)
    lines = [f"corpus: {n} files in {time.monotonic() - start:.0f} s, {len(failed)} failed"]
    for path, outcome, detail in failed:
        lines.append(f"  {outcome}: {path}\n{detail}")
    return not failed, "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Fuzz cylstm's loaders.")
    parser.add_argument("--target", default="all", help=f"one of {sorted(LOADERS)} or 'all'")
    parser.add_argument("--seconds", type=float, default=None,
                        help="atheris: seconds per target")
    parser.add_argument("--corpus", action="store_true", help="run the corpus pass")
    parser.add_argument("--ci", action="store_true",
                        help="corpus pass + 3 s of each target")
    parser.add_argument("--random", type=int, default=20, help="random mutants per seed")
    parser.add_argument("--case-timeout", type=float, default=20.0)
    parser.add_argument("--artifacts", default="fuzz-artifacts")
    args = parser.parse_args(argv)
    ok = True
    if args.ci:
        args.corpus = True
        args.seconds = args.seconds or 3
        args.random = min(args.random, 10)
    if args.corpus:
        good, text = corpus(args.random, args.case_timeout)
        print(text, flush=True)
        ok &= good
    if args.seconds:
        targets = (CI_TARGETS if args.ci else list(LOADERS)) if args.target == "all" \
            else [args.target]
        with tempfile.TemporaryDirectory() as tmp:
            from .make_corpus import make_corpus
            make_corpus(tmp, 2)
            for target in targets:
                good, text = fuzz_target(target, args.seconds, tmp, args.artifacts)
                print(text, flush=True)
                ok &= good
    if not (args.corpus or args.seconds):
        parser.error("nothing to do: give --seconds, --corpus or --ci")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
