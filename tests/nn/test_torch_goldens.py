"""cylstm.nn.LSTM / LSTMCell against outputs and gradients written by PyTorch 2.13.

The fixtures and the script that made them are in tests/golden/ (torch_lstm/,
README_torch_onnx.md); these tests need no torch.
"""
import numpy as np
import pytest

import cylstm
from cylstm.nn import LSTM, LSTMCell
from tests.conftest import GOLDEN, TOL, golden_cases, load_golden
from .._helpers import numerical_gradient_at

CASES = golden_cases("torch_lstm", "*_f*.npz")
# cylstm raises ValueError where torch raises RuntimeError (SPEC section 8).
TORCH_ERRORS = (ValueError, RuntimeError)


def _module(arrays, cfg):
    cls = LSTM if cfg["module"] == "LSTM" else LSTMCell
    module = cls(**cfg["kwargs"])
    module.load_state_dict({k[len("sd__"):]: v for k, v in arrays.items()
                            if k.startswith("sd__")})
    return module


def _hx(arrays, cfg):
    return (arrays["h0"], arrays["c0"]) if cfg["has_hx"] else None


def test_every_case_is_covered():
    assert len(CASES) == 48
    families = {load_golden(p)[1]["case"] for p in CASES}
    assert {"default", "proj_bidir_layers2", "unbatched_proj_bidir_layers2_hx",
            "cell_unbatched_hx", "nobias_bidir_layers2_hx", "unbatched_batch_first_proj_hx",
            "nobias_proj_bidir_layers2_batch_first_hx", "dropout_eval_layers2"} <= families


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_forward_matches_torch(path):
    arrays, cfg = load_golden(path)
    module = _module(arrays, cfg).eval()
    tol = TOL[cfg["kwargs"]["dtype"]]
    if cfg["module"] == "LSTM":
        output, (h_n, c_n) = module(arrays["x"], _hx(arrays, cfg))
        expected = [arrays["output"], arrays["h_n"], arrays["c_n"]]
        got = [output, h_n, c_n]
    else:
        h_1, c_1 = module(arrays["x"], _hx(arrays, cfg))
        expected = [arrays["h_1"], arrays["c_1"]]
        got = [h_1, c_1]
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        assert g.dtype == np.dtype(cfg["kwargs"]["dtype"])
        np.testing.assert_allclose(g, e, **tol)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_gradients_match_torch(path):
    arrays, cfg = load_golden(path)
    module = _module(arrays, cfg)
    if cfg["kwargs"].get("dropout"):
        module.eval()  # torch's gradients were taken in eval mode: no dropout
    tol = TOL[cfg["kwargs"]["dtype"]]
    hx = _hx(arrays, cfg)
    if cfg["module"] == "LSTM":
        (output, (h_n, c_n)), backprop = module.forward_train(arrays["x"], hx)
        np.testing.assert_allclose(output, arrays["output"], **tol)
        result = backprop((arrays["d_output"], (arrays["d_h_n"], arrays["d_c_n"])))
    else:
        (h_1, c_1), backprop = module.forward_train(arrays["x"], hx)
        np.testing.assert_allclose(h_1, arrays["h_1"], **tol)
        result = backprop((arrays["d_h_1"], arrays["d_c_1"]))
    if hx is not None:
        dx, (dh0, dc0) = result
        np.testing.assert_allclose(dh0, arrays["grad_h0"], **tol)
        np.testing.assert_allclose(dc0, arrays["grad_c0"], **tol)
    else:
        dx = result
    assert dx.shape == arrays["x"].shape
    np.testing.assert_allclose(dx, arrays["grad_x"], **tol)
    names = [k[len("grad__"):] for k in arrays if k.startswith("grad__")]
    assert sorted(names) == sorted(module.grads)
    for name in names:
        assert module.grads[name].shape == getattr(module, name).shape
        np.testing.assert_allclose(module.grads[name], arrays["grad__" + name], **tol,
                                   err_msg=name)


def test_gradients_accumulate_and_zero_grad():
    arrays, cfg = load_golden(GOLDEN / "torch_lstm" / "bidir_layers2_hx_f64.npz")
    module = _module(arrays, cfg)
    dy = (arrays["d_output"], (arrays["d_h_n"], arrays["d_c_n"]))
    for _ in range(2):
        _, backprop = module.forward_train(arrays["x"], _hx(arrays, cfg))
        backprop(dy)
    np.testing.assert_allclose(module.grads["weight_hh_l1_reverse"],
                               2 * arrays["grad__weight_hh_l1_reverse"], **TOL["float64"])
    module.zero_grad()
    assert all(not g.any() for g in module.grads.values())


def test_backprop_entries_may_be_none():
    arrays, cfg = load_golden(GOLDEN / "torch_lstm" / "layers2_f64.npz")
    module = _module(arrays, cfg)
    _, backprop = module.forward_train(arrays["x"])
    dx_out = backprop((arrays["d_output"], None))
    _, backprop = module.forward_train(arrays["x"])
    dx_h = backprop((None, (arrays["d_h_n"], None)))
    _, backprop = module.forward_train(arrays["x"])
    dx_c = backprop((None, (None, arrays["d_c_n"])))
    np.testing.assert_allclose(dx_out + dx_h + dx_c, arrays["grad_x"], **TOL["float64"])


# -- state dicts and construction ---------------------------------------------------
def test_state_dict_only_infers_configuration():
    with np.load(GOLDEN / "torch_lstm" / "state_dict_only.npz", allow_pickle=False) as data:
        sd = {k: data[k] for k in data.files}
    lstm = LSTM.from_torch(sd)
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias,
            lstm.bidirectional, lstm.proj_size) == (4, 5, 2, True, True, 3)
    assert lstm.batch_first is False and lstm.dtype == np.float32
    assert list(lstm.state_dict()) == list(sd)  # torch's order
    for k, v in sd.items():
        np.testing.assert_array_equal(lstm.state_dict()[k], v)
    assert LSTM.from_torch(sd, batch_first=True).batch_first is True
    x = np.random.default_rng(0).standard_normal((6, 2, 4)).astype(np.float32)
    output, (h_n, c_n) = lstm(x)
    assert output.shape == (6, 2, 6) and h_n.shape == (4, 2, 3) and c_n.shape == (4, 2, 5)


def test_from_torch_strips_a_module_prefix_and_reads_tensor_like_values():
    class FakeTensor:  # what from_torch needs of a torch tensor: detach().cpu().numpy()
        def __init__(self, a):
            self.a = a

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.a

    arrays, cfg = load_golden(GOLDEN / "torch_lstm" / "proj_hx_batch_first_f64.npz")
    sd = {"encoder.lstm." + k[4:]: FakeTensor(v) for k, v in arrays.items()
          if k.startswith("sd__")}
    sd["encoder.embedding.weight"] = FakeTensor(np.zeros((3, 4)))
    lstm = LSTM.from_torch(sd, batch_first=True).eval()
    assert lstm.dtype == np.float64 and lstm.proj_size == 3
    output, _ = lstm(arrays["x"], (arrays["h0"], arrays["c0"]))
    np.testing.assert_allclose(output, arrays["output"], **TOL["float64"])


def test_from_torch_rejects_what_is_not_an_lstm():
    arrays, _ = load_golden(GOLDEN / "torch_lstm" / "cell_f32.npz")
    cell_sd = {k[4:]: v for k, v in arrays.items() if k.startswith("sd__")}
    with pytest.raises(ValueError, match="LSTMCell.from_torch"):
        LSTM.from_torch(cell_sd)
    cell = LSTMCell.from_torch(cell_sd)
    np.testing.assert_allclose(cell(arrays["x"])[0], arrays["h_1"], **TOL["float32"])
    with pytest.raises(TypeError):
        LSTM.from_torch(42)


def test_load_state_dict_strict_and_shapes():
    lstm = LSTM(4, 5, num_layers=2, seed=0)
    sd = {k: v.copy() for k, v in lstm.state_dict().items()}
    other = LSTM(4, 5, num_layers=2, seed=1)
    missing = dict(sd)
    del missing["bias_hh_l1"]
    with pytest.raises(ValueError, match="Missing key.*bias_hh_l1"):
        other.load_state_dict(missing)
    with pytest.raises(ValueError, match="Unexpected key.*extra"):
        other.load_state_dict({**sd, "extra": np.zeros(1)})
    bad = dict(sd, weight_ih_l0=np.zeros((20, 3)))
    with pytest.raises(ValueError, match="size mismatch for weight_ih_l0"):
        other.load_state_dict(bad)
    result = other.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["bias_hh_l1"] and result.unexpected_keys == []
    other.load_state_dict(sd)
    for k in sd:
        np.testing.assert_array_equal(other.state_dict()[k], sd[k])


def test_default_init_is_torchs_uniform_and_seeded():
    lstm = LSTM(3, 16, num_layers=2, bidirectional=True, proj_size=4, seed=5)
    bound = 1 / np.sqrt(16)
    for name, value in lstm.named_parameters():
        assert value.dtype == np.float32
        assert np.abs(value).max() <= bound and np.abs(value).max() > 0.8 * bound, name
    again = LSTM(3, 16, num_layers=2, bidirectional=True, proj_size=4, seed=5)
    for (_, a), b in zip(lstm.named_parameters(), again.parameters()):
        np.testing.assert_array_equal(a, b)
    names = [n for n, _ in lstm.named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                         "weight_hr_l0"]
    assert names[5] == "weight_ih_l0_reverse" and names[-1] == "weight_hr_l1_reverse"
    assert lstm.weight_ih_l1.shape == (64, 8) and lstm.weight_hh_l0.shape == (64, 4)
    assert lstm.weight_hr_l0_reverse.shape == (4, 16)


def test_weight_edits_take_effect_without_flatten_parameters():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 3))
    lstm = LSTM(3, 6, dtype=np.float64, seed=0).eval()
    before = lstm(x)[0]
    lstm.weight_ih_l0[...] *= 0.5          # in place (an optimizer step)
    lstm.bias_hh_l0[...] += 0.25
    reference = LSTM(3, 6, dtype=np.float64, seed=0).eval()
    reference.load_state_dict({k: v.copy() for k, v in lstm.state_dict().items()})
    after = lstm(x)[0]
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(after, reference(x)[0])
    lstm.weight_hh_l0 = np.zeros((24, 6))  # assignment copies into the module
    assert not lstm.weight_hh_l0.any() and lstm.weight_hh_l0.shape == (24, 6)
    with pytest.raises(ValueError, match="size mismatch"):
        lstm.weight_hh_l0 = np.zeros((6, 24))
    lstm.flatten_parameters()  # exists for torch code; nothing to do


def test_float64_module_and_input_casting():
    lstm = LSTM(3, 4, dtype="float64", seed=0)
    out, (h, c) = lstm(np.ones((2, 1, 3), np.float32))
    assert out.dtype == h.dtype == c.dtype == np.float64
    assert lstm.weight_ih_l0.dtype == np.float64
    lstm32 = LSTM(3, 4, seed=0)
    assert lstm32(np.ones((2, 1, 3), np.int64))[0].dtype == np.float32
    with pytest.raises(ValueError, match="float32"):
        LSTM(3, 4, dtype=np.float16)


def test_repr_like_torch():
    assert repr(LSTM(4, 5)) == "LSTM(4, 5)"
    assert repr(LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True, proj_size=3)) \
        == "LSTM(4, 5, proj_size=3, num_layers=2, batch_first=True, bidirectional=True)"
    assert repr(LSTMCell(4, 5, bias=False)) == "LSTMCell(4, 5, bias=False)"


def test_to_torch_without_torch_raises_a_clear_import_error(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="needs PyTorch"):
        LSTM(4, 5).to_torch()
    with pytest.raises(ImportError, match="needs PyTorch"):
        LSTMCell(4, 5).to_torch()


def test_to_torch_round_trip_when_torch_is_installed():
    torch = pytest.importorskip("torch")
    lstm = LSTM(4, 5, num_layers=2, bidirectional=True, proj_size=3, batch_first=True, seed=3)
    module = lstm.to_torch()
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float32)
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(lstm.eval()(x)[0], expected, **TOL["float32"])
    back = LSTM.from_torch(module)
    assert back.batch_first and back.proj_size == 3


def test_real_torch_modules_tensors_and_bigger_models():
    torch = pytest.importorskip("torch")

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.lstm = torch.nn.LSTM(4, 6, num_layers=2, dropout=0.25, batch_first=True,
                                      dtype=torch.float64)

    torch.manual_seed(0)
    model = Model()
    with pytest.raises(ValueError, match=r"got a 'Model'.*model\.lstm"):
        LSTM.from_torch(model)
    from_module = LSTM.from_torch(model.lstm)
    assert (from_module.batch_first, from_module.dropout) == (True, 0.25)
    assert from_module.training and from_module.dtype == np.float64
    from_sd = LSTM.from_torch(model.state_dict(), batch_first=True)   # prefix 'lstm.' found
    ours = LSTM(4, 6, num_layers=2, batch_first=True, dtype=np.float64)
    ours.load_state_dict(model.lstm.state_dict())                      # torch tensors
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    with torch.no_grad():
        want = model.lstm.eval()(torch.from_numpy(x))[0].numpy()
    for lstm in (from_module, from_sd, ours):
        np.testing.assert_allclose(lstm.eval()(x)[0], want, **TOL["float64"])


# -- errors -----------------------------------------------------------------------
def test_input_errors_have_torchs_messages():
    lstm = LSTM(4, 5, num_layers=2)
    with pytest.raises(TORCH_ERRORS,
                       match=r"input.size\(-1\) must be equal to input_size. Expected 4, got 3"):
        lstm(np.zeros((5, 2, 3)))
    with pytest.raises(TORCH_ERRORS, match="Expected input to be 2D or 3D, got 4D"):
        lstm(np.zeros((5, 2, 3, 4)))
    with pytest.raises(TORCH_ERRORS, match="sequence length"):
        lstm(np.zeros((0, 2, 4)))
    with pytest.raises(TORCH_ERRORS,
                       match=r"Expected hidden\[0\] size \(2, 2, 5\), got \[2, 3, 5\]"):
        lstm(np.zeros((5, 2, 4)), (np.zeros((2, 3, 5)), np.zeros((2, 2, 5))))
    with pytest.raises(TORCH_ERRORS,
                       match=r"Expected hidden\[1\] size \(2, 2, 5\), got \[1, 2, 5\]"):
        lstm(np.zeros((5, 2, 4)), (np.zeros((2, 2, 5)), np.zeros((1, 2, 5))))
    with pytest.raises(TORCH_ERRORS, match="For batched 3-D input, hx and cx should also be 3-D"):
        lstm(np.zeros((5, 2, 4)), (np.zeros((2, 5)), np.zeros((2, 5))))
    with pytest.raises(TORCH_ERRORS,
                       match="For unbatched 2-D input, hx and cx should also be 2-D"):
        lstm(np.zeros((5, 4)), (np.zeros((2, 1, 5)), np.zeros((2, 1, 5))))
    with pytest.raises(ValueError, match="tuple"):
        lstm(np.zeros((5, 2, 4)), np.zeros((2, 2, 5)))
    with pytest.raises(TypeError):
        lstm(np.array([["a"]]))


def test_empty_batch_gives_empty_outputs():
    output, (h_n, c_n) = LSTM(4, 5, bidirectional=True)(np.zeros((3, 0, 4)))
    assert output.shape == (3, 0, 10) and h_n.shape == (2, 0, 5) and c_n.shape == (2, 0, 5)


def test_constructor_errors_match_torch():
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        LSTM(4, 5, proj_size=5)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        LSTM(4, 5, dropout=1.5)
    with pytest.raises(TypeError, match="bias should be of type bool"):
        LSTM(4, 5, bias=1)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        LSTM(4, 0)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        LSTM(4, 5, num_layers=0)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        LSTM(4, 5, dropout=0.5)


def test_cell_errors_have_torchs_messages():
    cell = LSTMCell(4, 5)
    with pytest.raises(TORCH_ERRORS, match="Expected input to be 1D or 2D, got 3D"):
        cell(np.zeros((1, 2, 4)))
    with pytest.raises(TORCH_ERRORS, match="inconsistent input_size: got 3 expected 4"):
        cell(np.zeros((2, 3)))
    with pytest.raises(TORCH_ERRORS,
                       match="hidden0 has inconsistent hidden_size: got 6, expected 5"):
        cell(np.zeros((2, 4)), (np.zeros((2, 6)), np.zeros((2, 5))))
    with pytest.raises(TORCH_ERRORS,
                       match="Input batch size 2 doesn't match hidden0 batch size 3"):
        cell(np.zeros((2, 4)), (np.zeros((3, 5)), np.zeros((3, 5))))
    with pytest.raises(TORCH_ERRORS, match="hidden1 has inconsistent hidden_size"):
        cell(np.zeros((2, 4)), (np.zeros((2, 5)), np.zeros((2, 4))))


def test_backprop_errors():
    lstm = LSTM(4, 5)
    x = np.zeros((3, 2, 4))
    _, backprop = lstm.forward_train(x)
    with pytest.raises(ValueError, match="d_output"):
        backprop((np.zeros((3, 2, 4)), None))
    _, backprop = lstm.forward_train(x)
    backprop((np.zeros((3, 2, 5)), None))
    with pytest.raises(RuntimeError, match="already called"):
        backprop((np.zeros((3, 2, 5)), None))


# -- train / eval and inter-layer dropout ---------------------------------------------
def test_dropout_acts_only_in_training_and_is_reproducible():
    x = np.random.default_rng(0).standard_normal((7, 3, 4)).astype(np.float32)
    lstm = LSTM(4, 6, num_layers=2, dropout=0.5, seed=11)
    assert lstm.training
    train_1 = lstm(x)[0]
    train_2 = lstm(x)[0]
    assert not np.allclose(train_1, train_2)  # a fresh mask per call
    twin = LSTM(4, 6, num_layers=2, dropout=0.5, seed=11)
    np.testing.assert_array_equal(twin(x)[0], train_1)  # same seed, same weights and masks
    assert lstm.eval() is lstm and not lstm.training
    eval_1, (h_1, _) = lstm(x)
    eval_2, (h_2, _) = lstm(x)
    np.testing.assert_array_equal(eval_1, eval_2)
    assert not np.allclose(eval_1, train_1)
    nodrop = LSTM(4, 6, num_layers=2, dropout=0.0, seed=11)  # same weights: same init draws
    np.testing.assert_array_equal(nodrop(x)[0], eval_1)
    # Dropout acts between layers only: layer 0's own final state does not
    # depend on the mode, and nothing is dropped after the last layer.
    lstm.train()
    out_train, (h_train, _) = lstm(x)
    np.testing.assert_array_equal(h_train[0], h_1[0])
    np.testing.assert_array_equal(out_train[-1], h_train[1])


def test_dropout_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 3))
    d_out = rng.standard_normal((4, 2, 5))
    lstm = LSTM(3, 5, num_layers=2, dropout=0.4, dtype=np.float64, seed=2)
    state = lstm._rng.bit_generator.state

    def objective(xv):
        lstm._rng.bit_generator.state = state  # the same dropout mask every time
        return float(np.sum(lstm(xv)[0] * d_out))

    lstm._rng.bit_generator.state = state
    _, backprop = lstm.forward_train(x)
    dx = backprop((d_out, None))
    numeric = numerical_gradient_at(objective, x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


def test_top_level_names():
    assert cylstm.nn.LSTM is LSTM and cylstm.nn.LSTMCell is LSTMCell


def test_in_place_sgd_steps_through_named_parameters_train_the_module():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4, 3))
    target = rng.standard_normal((6, 4, 10)) * 0.1
    lstm = LSTM(3, 5, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    losses = []
    for _ in range(30):
        lstm.zero_grad()
        (output, _), backprop = lstm.forward_train(x)
        losses.append(0.5 * float(np.sum((output - target) ** 2)))
        backprop((output - target, None))
        for name, param in lstm.named_parameters():
            param -= 0.05 * lstm.grads[name]   # in place: the kernels see it at once
    assert losses[-1] < 0.5 * losses[0]
