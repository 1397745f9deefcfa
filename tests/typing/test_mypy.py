"""The public API's annotations, from a user's side: ``mypy --strict`` passes on
a program over the whole API (user_script.py: README's snippets and the seed
tutorials), rejects the wrong calls of user_errors.py with exactly the
expected errors, and the program also runs. Needs mypy (the test extra);
skipped without it.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
EXPECTED = re.compile(r"#\s*E:\s*([\w-]+)")
REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")


def _mypy(*files):
    pytest.importorskip("mypy")
    config = ROOT / "pyproject.toml"
    args = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--show-error-codes",
            "--no-error-summary", "--cache-dir", os.devnull]   # no cache written
    if config.exists():
        args += ["--config-file", str(config)]
    args += [str(HERE / f) for f in files]
    # From the checkout root, so that `import cylstm` finds this tree (the
    # extension built in place), as the other tests do.
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _errors(stdout, name):
    found = set()
    for line in stdout.splitlines():
        m = REPORTED.match(line)
        if m and Path(m["file"]).name == name:
            found.add((int(m["line"]), m["code"]))
    return found


def test_user_script_passes_strict_and_wrong_calls_are_caught():
    result = _mypy("user_script.py", "user_errors.py")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert _errors(result.stdout, "user_script.py") == set(), result.stdout
    # Nothing else failed (a crash, an error in a cylstm module or the config).
    unexpected = [l for l in result.stdout.splitlines()
                  if ": error:" in l and "user_errors.py" not in l]
    assert not unexpected, result.stdout
    lines = (HERE / "user_errors.py").read_text(encoding="utf-8").splitlines()
    expected = {(i, m.group(1)) for i, text in enumerate(lines, 1)
                for m in [EXPECTED.search(text)] if m}
    assert len(expected) >= 15
    assert _errors(result.stdout, "user_errors.py") == expected, result.stdout


def test_user_script_runs(tmp_path, capsys):
    sys.path.insert(0, str(HERE))
    try:
        import user_script
    finally:
        sys.path.remove(str(HERE))
    user_script.main()
    out = capsys.readouterr().out
    assert "(32, 10, 4) (32, 4) (32, 4)" in out
    assert "LSTM Output shape: (None, 10, 64)" in out
