"""The lines README.md and docs/interop.md give for serving a PyTorch-trained LSTM
run as written: the code blocks are read from the files and executed.

Without torch, the serving block runs on a state dict PyTorch 2.13 wrote
(tests/golden/torch_lstm/); with torch, the saving block runs too, on a real
torch model, and the served outputs are compared with torch's.
"""
import re

import numpy as np
import pytest

import cylstm
from tests.conftest import GOLDEN, TOL, load_golden

ROOT = GOLDEN.parent.parent
SECTION = "## Serving a PyTorch-trained LSTM"


def _blocks(name):
    """The two python blocks of the serving section: (save, serve)."""
    if not (ROOT / name).is_file():  # tests run from an installed wheel, out of a checkout
        pytest.skip(f"needs {name} of a cylstm checkout")
    text = (ROOT / name).read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], re.S)
    assert len(blocks) >= 2, f"{name}: the serving section lost its code blocks"
    save, serve = blocks[0], blocks[1]
    assert "state_dict()" in save and "np.savez(\"lstm.npz\"" in save
    assert "cylstm.nn.LSTM.from_torch" in serve and "lstm(x)" in serve
    return save, serve


@pytest.mark.parametrize("name", ["README.md", "docs/interop.md"])
def test_serving_block_runs_without_torch(name, tmp_path, monkeypatch):
    _, serve = _blocks(name)
    arrays, cfg = load_golden(GOLDEN / "torch_lstm" / "batch_first_f32.npz")
    assert cfg["kwargs"]["batch_first"] and not cfg["has_hx"]
    np.savez(tmp_path / "lstm.npz", **{k[len("sd__"):]: v for k, v in arrays.items()
                                       if k.startswith("sd__")})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(__import__("sys").modules, "torch", None)   # a server without torch
    scope = {"np": np, "cylstm": cylstm, "x": arrays["x"]}
    exec(compile(serve, f"{name} (serving block)", "exec"), scope)
    np.testing.assert_allclose(scope["output"], arrays["output"], **TOL["float32"])
    np.testing.assert_allclose(scope["h_n"], arrays["h_n"], **TOL["float32"])
    np.testing.assert_allclose(scope["c_n"], arrays["c_n"], **TOL["float32"])


@pytest.mark.parametrize("name", ["README.md", "docs/interop.md"])
def test_save_and_serve_blocks_with_a_real_torch_model(name, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    save, serve = _blocks(name)

    class Model(torch.nn.Module):   # a model with an LSTM inside, as the block assumes
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(6, 8, num_layers=2, batch_first=True,
                                      bidirectional=True, proj_size=3)
            self.head = torch.nn.Linear(6, 1)

    torch.manual_seed(0)
    model = Model().eval()
    x = np.random.default_rng(0).standard_normal((4, 9, 6)).astype(np.float32)
    with torch.no_grad():
        want, (want_h, want_c) = model.lstm(torch.from_numpy(x))
    monkeypatch.chdir(tmp_path)
    exec(compile(save, f"{name} (saving block)", "exec"), {"np": np, "model": model})
    scope = {"np": np, "cylstm": cylstm, "x": x}
    exec(compile(serve, f"{name} (serving block)", "exec"), scope)
    assert scope["lstm"].proj_size == 3 and scope["lstm"].num_layers == 2
    np.testing.assert_allclose(scope["output"], want.numpy(), **TOL["float32"])
    np.testing.assert_allclose(scope["h_n"], want_h.numpy(), **TOL["float32"])
    np.testing.assert_allclose(scope["c_n"], want_c.numpy(), **TOL["float32"])
