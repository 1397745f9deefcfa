"""benchmarks/paired.py: the per-round verdict, and a whole run against the
NumPy baseline (the peers are not installed here)."""
import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
pytestmark = pytest.mark.skipif(not (BENCHMARKS / "paired.py").is_file(),
                                reason="no benchmarks/ beside tests/ (a copy of tests/ alone)")


@pytest.fixture(scope="module")
def paired():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("paired", BENCHMARKS / "paired.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_ratio_is_taken_round_by_round(paired):
    # Over the rounds' medians cylstm (2.0) beats the fastest peer's 2.5 if the
    # peers' rounds were pooled; round by round it wins one and loses two.
    rounds = [{"cylstm": 1.0, "torch": 2.0, "ort": 1.5},
              {"cylstm": 3.0, "torch": 2.0, "ort": 4.0},
              {"cylstm": 2.0, "torch": 1.9, "ort": 2.5}]
    s = paired.summarize("infer", (16, 100, 64, 128), rounds)
    o = s["cylstm"]
    assert o["ratio_median"] == pytest.approx(2.0 / 1.9)
    assert (o["ratio_min"], o["ratio_max"]) == pytest.approx((1.0 / 1.5, 1.5))
    assert o["met_rounds"] == 1 and o["rounds"] == 3
    assert o["met"] is False
    assert o["median_s"] == 2.0
    assert s["fastest_peers"] == ["ort", "torch"]
    assert "cylstm-nn" not in s


def test_training_is_judged_against_torch(paired):
    # Keras is the fastest peer, but the training target is torch.
    rounds = [{"cylstm": 1.0, "torch": 1.2, "keras-fn": 0.8}] * 3
    o = paired.summarize("train", (16, 100, 64, 128), rounds)["cylstm"]
    assert o["ratio_median"] == pytest.approx(1.25)
    assert o["met"] is True and o["met_rounds"] == 3


def test_one_step_target_is_a_third(paired):
    rounds = [{"cylstm-nn": 0.3, "ort": 1.0}, {"cylstm-nn": 0.4, "ort": 1.0},
              {"cylstm-nn": 0.2, "ort": 1.0}]
    s = paired.summarize("stream", (1, 1, 64, 64), rounds)
    assert s["target"] == pytest.approx(1 / 3)
    assert s["cylstm-nn"]["met"] is True and s["cylstm-nn"]["met_rounds"] == 2


def test_rounds_without_a_peer_give_no_ratio(paired):
    rounds = [{"cylstm": 1.0, "numpy": 5.0}, {"cylstm": 3.0}]
    o = paired.summarize("infer", (1, 100, 32, 128), rounds)["cylstm"]
    assert o["median_s"] == 2.0
    assert o["ratio_median"] is None and o["met"] is None and o["rounds"] == 0
    assert paired.ratio_text(o) == "-"


@pytest.mark.parametrize("text", ["infer", "infer:", "fit:1,2,3,4", "infer:1,2,3"])
def test_bad_cells_are_refused(paired, text):
    with pytest.raises(Exception, match="B,T,I,H|section"):
        paired.parse_cell(text)


def test_parse_cell(paired):
    assert paired.parse_cell("train:16,100,64,128") == ("train", (16, 100, 64, 128))


def test_a_whole_run(tmp_path):
    """Two workers up at once, answering in turns; the checksums compared
    (a disagreement would fail the run); the report and the raw rounds."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "paired.py"), "--quick", "--threads", "1",
         "--frameworks", "cylstm", "numpy", "--cells", "infer:2,3,4,5", "stream:1,1,4,5",
         "--rounds", "3", "--gap", "0", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "paired.json").read_text())
    assert [c["section"] for c in results["cells"]] == ["infer", "stream"]
    for cell in results["cells"]:
        assert len(cell["rounds"]) == 3
        for r in cell["rounds"]:
            assert set(r) == {"cylstm", "cylstm-nn", "numpy"}
            assert all(t > 0 for t in r.values())
        first = cell["first"]
        assert "checksum" in first["cylstm"]["cylstm"] and "checksum" in first["numpy"]["numpy"]
    for s in results["summary"]:
        assert s["cylstm"]["median_s"] > 0 and s["cylstm"]["ratio_median"] is None
    text = (tmp_path / "paired.md").read_text()
    assert "| infer | 2,3,4,5 | 1 | layers.LSTM |" in text
    assert "| stream | 1,1,4,5 | 1 | nn.LSTM |" in text
