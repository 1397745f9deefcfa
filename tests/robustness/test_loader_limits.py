"""Regression tests for the loader items of issue 10 (6: declared sizes,
7: the error contract, 8: hangs), and the malformed-file corpus pass.

The memory cases run in a forked child under an address-space cap
(tests/fuzz/cases.py), so an allocation the loader should not make fails
the test instead of the machine."""
import json
import os
import pathlib
import sys
import zipfile

import numpy as np
import pytest

import cylstm
from cylstm import nn

pytest.importorskip("h5py")
onnx = pytest.importorskip("onnx")

from tests.fuzz import cases, make_corpus  # noqa: E402
from tests.fuzz.loaders import GOLDEN, make_seeds  # noqa: E402

DATA = pathlib.Path(__file__).parent / "data"
needs_fork = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux",
                                reason="the capped child runs need fork and /proc (Linux)")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    return {p.name.split(".", 1)[1]: p for p in make_seeds(folder)}


def _refused(path, match=None):
    outcome, detail = cases.run_case(path, timeout=60)
    assert outcome == "refused", (outcome, detail)
    assert repr(os.fspath(path)) in detail or os.fspath(path) in detail
    if match:
        assert match in detail, detail
    return detail


# -- 6. declared sizes -------------------------------------------------------------------

@needs_fork
def test_cylstm_unused_compressed_member_is_not_read(seeds, tmp_path):
    out = tmp_path / "bomb.cylstm"
    members = dict((i.filename, d) for i, d in make_corpus._zip_members(seeds["cylstm"]))
    make_corpus._replace(seeds["cylstm"], out, "config.json", members["config.json"],
                         extra=[("padding.bin", bytes(512 * 2**20), zipfile.ZIP_DEFLATED)])
    assert out.stat().st_size < 2 * 2**20
    _refused(out, "exactly these two")


@needs_fork
@pytest.mark.parametrize("units", [4000, 8000])
def test_cylstm_config_larger_than_its_weights(seeds, tmp_path, units):
    members = dict((i.filename, d) for i, d in make_corpus._zip_members(seeds["cylstm"]))
    text = members["config.json"].decode().replace('"units": 3', f'"units": {units}')
    out = tmp_path / "units.cylstm"
    make_corpus._replace(seeds["cylstm"], out, "config.json", text.encode())
    _refused(out, "do not fit")


@needs_fork
def test_keras_archive_without_weights_builds_nothing(seeds, tmp_path):
    """Found by the from_keras fuzz target: a .keras without model.weights.h5
    and a large units value drew 2.2 GB of random weights (112 s) before saying
    the weights were missing."""
    make_corpus.keras_files(seeds["keras"], tmp_path)
    _refused(tmp_path / "no_weights_big_config.keras", "no 'model.weights.h5'")


@needs_fork
def test_npy_header_declaring_1e12_values(seeds, tmp_path):
    make_corpus.cylstm_files(seeds["cylstm"], tmp_path)
    _refused(tmp_path / "npz_header_1e12.cylstm", "declares shape (1000000000000,)")
    make_corpus.npz_files(seeds["npz"], tmp_path)
    _refused(tmp_path / "header_1e12.npz", "declares shape (1000000000000,)")


@needs_fork
@pytest.mark.parametrize("suffix", [".h5", ".weights.h5", ".keras"])
def test_h5_dataset_larger_than_its_storage(seeds, tmp_path, suffix):
    if suffix == ".keras":
        make_corpus.keras_files(seeds["keras"], tmp_path)
    else:
        make_corpus.h5_files(seeds[suffix[1:]], tmp_path, suffix)
    _refused(tmp_path / f"h5_huge_chunked{suffix}", "the file does not hold its data")


@needs_fork
def test_onnx_external_data_is_checked_before_reading(seeds, tmp_path):
    make_corpus.onnx_files(seeds["onnx"], tmp_path)
    assert (tmp_path / "sparse.bin").stat().st_size > 2**31
    _refused(tmp_path / "ext_length_lies.onnx", "external data of length")
    _refused(tmp_path / "dims_huge_external.onnx", "disagrees with W [2, 65536, 16384]")
    _refused(tmp_path / "ext_parent.onnx", "not a file name inside the model's folder")
    _refused(tmp_path / "ext_short.onnx", "which has 64")


def test_onnx_external_data_round_trip(seeds, tmp_path):
    """Valid external data still loads (and only the node's tensors are read)."""
    model = onnx.load(seeds["onnx"])
    onnx.save_model(model, tmp_path / "ext.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.bin", size_threshold=0)
    ref = cylstm.from_onnx(str(seeds["onnx"]))
    got = cylstm.from_onnx(str(tmp_path / "ext.onnx"))
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(got.state_dict()[k], v)


def test_building_from_a_file_draws_no_random_weights(seeds, monkeypatch):
    from cylstm import initializers

    def refuse(*args, **kwargs):
        raise AssertionError("a loader drew random weights")
    for name in ("GlorotUniform", "Orthogonal"):
        monkeypatch.setattr(getattr(initializers, name), "__call__", refuse)
    monkeypatch.setattr(nn.LSTM, "reset_parameters", refuse)
    cylstm.models.load_model(seeds["cylstm"])
    cylstm.from_keras(str(seeds["keras"]))
    cylstm.from_keras(str(seeds["h5"]))
    cylstm.from_onnx(str(seeds["onnx"]))
    nn.LSTM.from_torch(str(seeds["npz"]))


def test_npz_state_dict_loads_like_the_mapping(seeds):
    with np.load(seeds["npz"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
        from_file = nn.LSTM.from_torch(npz)
    ref = nn.LSTM.from_torch(arrays)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(from_file.state_dict()[k], v)
    np.testing.assert_array_equal(nn.LSTM.from_torch(str(seeds["npz"])).weight_ih_l0,
                                  ref.weight_ih_l0)


# -- 7. the error contract -----------------------------------------------------------------

def _cylstm_with_config(seed, tmp_path, edit):
    members = dict((i.filename, d) for i, d in make_corpus._zip_members(seed))
    config = json.loads(members["config.json"])
    edit(config)
    out = tmp_path / "edited.cylstm"
    make_corpus._replace(seed, out, "config.json", json.dumps(config).encode())
    return out


@pytest.mark.parametrize("dtype", [5, {"config": 3}, "f4,(", [1]])
def test_load_model_dtype_configs(seeds, tmp_path, dtype):
    def edit(config):
        config["model"]["config"]["layers"][0]["config"]["dtype"] = dtype
    path = _cylstm_with_config(seeds["cylstm"], tmp_path, edit)
    with pytest.raises(ValueError, match="edited.cylstm"):
        cylstm.models.load_model(path)


def test_deeply_nested_json(seeds, tmp_path):
    out = tmp_path / "deep.cylstm"
    make_corpus._replace(seeds["cylstm"], out, "config.json", make_corpus._deep_json(100_000))
    with pytest.raises(ValueError, match="nested too deeply"):
        cylstm.models.load_model(out)
    make_corpus.keras_files(seeds["keras"], tmp_path)
    with pytest.raises(ValueError, match="nested too deeply"):
        cylstm.from_keras(str(tmp_path / "cfg_deep.keras"))


@pytest.mark.parametrize("data", [b"", b"\x0a\xff\xff\xff\xff\x0f", b"\xff" * 40,
                                  b"\x12\x04\xff\xfe\xfd\xfc"])
def test_from_onnx_bytes_contract(data):
    with pytest.raises(ValueError):
        cylstm.from_onnx(data)


def test_from_onnx_attribute_not_utf8(seeds, tmp_path):
    make_corpus.onnx_files(seeds["onnx"], tmp_path)
    with pytest.raises(ValueError, match="attr_not_utf8"):
        cylstm.from_onnx(str(tmp_path / "attr_not_utf8.onnx"))


def test_from_keras_truncated_archive(seeds, tmp_path):
    data = seeds["keras"].read_bytes()
    for cut in (30, len(data) // 3, len(data) - 30):
        out = tmp_path / f"cut{cut}.keras"
        out.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}"):
            cylstm.from_keras(str(out))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("load", [cylstm.models.load_model, cylstm.from_keras,
                                  cylstm.from_onnx, nn.LSTM.from_torch])
def test_non_regular_files_are_refused(load):
    with pytest.raises(ValueError, match="not a regular file"):
        load("/dev/zero")


def test_missing_files(tmp_path):
    from cylstm.saving import ModelFileNotFoundError
    for load in (cylstm.models.load_model, cylstm.from_keras, cylstm.from_onnx,
                 nn.LSTM.from_torch, nn.LSTMCell.from_torch):
        with pytest.raises(ModelFileNotFoundError):
            load(str(tmp_path / "missing.bin"))


def test_argument_errors_stay_type_errors(seeds):
    with pytest.raises(TypeError):
        cylstm.from_keras(str(seeds["weights.h5"]), model="not a model")
    with pytest.raises(TypeError):
        cylstm.from_onnx(3)


# -- 8. hangs --------------------------------------------------------------------------------

@needs_fork
def test_global_heap_loop_is_refused():
    """Found by the from_keras_h5 fuzz target: libhdf5 spun forever reading
    model_config from a global heap with a zero-size free-space object."""
    outcome, detail = cases.run_case(DATA / "gcol_zero_size_loop.h5", timeout=60)
    assert outcome == "refused", (outcome, detail)
    assert "global heap" in detail


@needs_fork
def test_hdf5_metadata_length_past_the_file_is_refused():
    """Found by the from_keras_h5 fuzz target: a 17 KB file whose superblock
    points its driver information block at bytes declaring 4 GB made libhdf5
    allocate that much while opening the file."""
    outcome, detail = cases.run_case(DATA / "driver_block_4gb.h5", timeout=60)
    assert outcome == "refused", (outcome, detail)
    assert "driver information block declares 4294967295 bytes" in detail


@needs_fork
def test_hdf5_vlen_attribute_length_past_the_file_is_refused():
    """Found by the from_keras_h5 fuzz target: a variable-length string
    attribute (layer_names) declaring a 4 GB string made libhdf5 allocate it
    before finding the string was not there."""
    outcome, detail = cases.run_case(DATA / "vlen_length_4gb.h5", timeout=60)
    assert outcome == "refused", (outcome, detail)
    assert "declares a variable-length value of 4244635655 bytes" in detail


@pytest.mark.parametrize("suffix", [".h5", ".weights.h5"])
def test_h5_links_and_external_storage_refused(seeds, tmp_path, suffix):
    make_corpus.h5_files(seeds[suffix[1:]], tmp_path, suffix)
    model = cylstm.from_keras(str(GOLDEN / "keras_files" / "lstm_dense.keras"))
    kwargs = {"model": model} if suffix == ".weights.h5" else {}
    for label, match in (("soft_link", "SoftLink"), ("external_link", "ExternalLink"),
                         ("external_storage", "external files"),
                         ("hard_cycle", "nested more than")):
        with pytest.raises(ValueError, match=match):
            cylstm.from_keras(str(tmp_path / f"h5_{label}{suffix}"), **kwargs)


def test_time_bounded_load(seeds, tmp_path):
    model = cylstm.from_keras(str(seeds["h5"]), timeout=120)
    assert model.count_params() > 0
    with pytest.raises(ValueError, match="global heap"):
        cylstm.from_keras(str(DATA / "gcol_zero_size_loop.h5"), timeout=120)
    with pytest.raises(ValueError, match="timeout"):
        cylstm.from_keras(str(seeds["h5"]), timeout=0)


# -- the corpus pass -------------------------------------------------------------------------

@needs_fork
def test_malformed_corpus_in_capped_children():
    n, failed = cases.corpus_pass(random_per_seed=4, timeout=60, log=lambda s: None)
    assert n > 100
    assert not failed, "\n".join(f"{o}: {p}\n{d}" for p, o, d in failed)
