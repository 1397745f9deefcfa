"""64-byte aligned arrays (cylstm/_kernels/memory.py): the helpers, the
arrays the package makes with them, and that alignment changes no result."""
import pickle

import numpy as np
import pytest

import cylstm
from cylstm import layers, nn, optimizers
from cylstm._kernels.memory import ALIGNMENT, aligned_empty, aligned_zeros, is_aligned


def _misaligned_copy(a, offset=16):
    """A C-contiguous copy of ``a`` whose data start ``offset`` bytes past a
    64-byte boundary (NumPy's own arrays mostly sit at 16)."""
    buf = np.empty(a.nbytes + 2 * ALIGNMENT, np.uint8)
    start = (-buf.ctypes.data) % ALIGNMENT + offset
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % ALIGNMENT == offset
    return out


@pytest.mark.parametrize("make", [aligned_empty, aligned_zeros])
@pytest.mark.parametrize("shape", [(), 0, 1, 7, (3, 5), (2, 0, 4), (129, 1024)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint16])
def test_helpers_give_aligned_contiguous_arrays(make, shape, dtype):
    a = make(shape, dtype)
    expected = (shape,) if isinstance(shape, int) else shape
    assert a.shape == expected and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable
    assert is_aligned(a) or a.size == 0      # an empty array has no data to align
    if make is aligned_zeros:
        assert not np.any(a)
    a[...] = 1                       # the whole array is writable memory of its own
    assert np.all(a == 1)


def test_negative_dimension_is_a_value_error():
    with pytest.raises(ValueError, match="negative dimensions"):
        aligned_empty((3, -1), np.float32)


def test_arrays_do_not_overlap():
    a, b = aligned_zeros((16,), np.float32), aligned_zeros((16,), np.float32)
    a[...] = 1
    assert not np.any(b) and not np.shares_memory(a, b)


def test_layer_weights_gradients_and_slots_are_aligned():
    layer = layers.LSTM(37)
    layer(np.zeros((2, 3, 5), np.float32))
    arrays = list(layer.cell._params.values()) + list(layer.cell.grads.values())
    assert arrays and all(is_aligned(a) for a in arrays)
    model = cylstm.Sequential([layers.LSTM(7), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(), loss="mse")
    model.fit(np.ones((4, 3, 5), np.float32), np.ones((4, 1), np.float32), epochs=1, verbose=0)
    slots = [s for per_var in model.optimizer._slots.values() for s in per_var.values()]
    assert slots and all(is_aligned(s) for s in slots)
    for w in model.layers[0].cell._params.values():
        assert is_aligned(w)


def test_set_weights_keeps_the_aligned_arrays():
    layer = layers.LSTM(9)
    layer(np.zeros((1, 2, 4), np.float32))
    before = [id(a) for a in layer.cell._params.values()]
    layer.set_weights([_misaligned_copy(w) + 1 for w in layer.get_weights()])
    assert [id(a) for a in layer.cell._params.values()] == before
    assert all(is_aligned(a) for a in layer.cell._params.values())


def test_nn_weights_are_aligned_and_stay_so():
    module = nn.LSTM(6, 11, num_layers=2, bidirectional=True, proj_size=4)
    names = ("kernel", "recurrent", "projection", "bias_ih", "bias_hh",
             "g_kernel", "g_recurrent", "g_projection", "g_bias_ih", "g_bias_hh")
    slots = [slot for row in module._slots for slot in row]
    assert len(slots) == 4
    for slot in slots:
        assert all(is_aligned(getattr(slot, n)) for n in names)
    state = {k: _misaligned_copy(np.ascontiguousarray(v)) for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    for slot in slots:
        assert all(is_aligned(getattr(slot, n)) for n in names)


def test_packed_kernels_are_aligned():
    from cylstm._kernels.lstm_forward import pack_fused
    packed = pack_fused(np.ones((13, 4 * 21), np.float32))
    if packed is None:
        pytest.skip("no fused kernel on this CPU")
    assert is_aligned(packed)


@pytest.mark.parametrize("shape", [(1, 1, 32, 48), (1, 9, 7, 130), (3, 6, 37, 19), (12, 4, 16, 64)])
@pytest.mark.parametrize("offset", [4, 16, 32, 48])
def test_results_do_not_depend_on_alignment(shape, offset):
    """The kernels read weights in place at any alignment: copies of the
    weights 4-48 bytes off a cache line give the same bits, layers and nn, one
    step and sequences (the fused, few-row and unfused paths)."""
    B, T, I, H = shape
    rng = np.random.default_rng(sum(shape) + offset)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    layer = layers.LSTM(H, return_sequences=True, return_state=True)
    layer(x)
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3
                       for w in layer.get_weights()])
    expected = [a.copy() for a in layer(x)]
    params = layer.cell._params
    for name in list(params):
        params[name] = _misaligned_copy(params[name], offset)
    got = layer(x)
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g, e)

    module = nn.LSTM(I, H, batch_first=True)
    module.load_state_dict({k: rng.standard_normal(v.shape).astype(np.float32) * 0.3
                            for k, v in module.state_dict().items()})
    out, (h, c) = module(x)
    expected = [out.copy(), h.copy(), c.copy()]
    slot = module._slots[0][0]
    for name in ("kernel", "recurrent", "bias_ih", "bias_hh"):
        object.__setattr__(slot, name, _misaligned_copy(getattr(slot, name), offset))
    module._register([(slot, "_l0")])
    module._call_plan = None
    out, (h, c) = module(x)
    for e, g in zip(expected, (out, h, c)):
        np.testing.assert_array_equal(g, e)


def test_pickled_layers_and_modules_arrive_aligned():
    """NumPy unpickles arrays at its own alignment: weights and gradients go
    back into the backend's own arrays, with the same values and results."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6)).astype(np.float32)
    model = cylstm.Sequential([layers.LSTM(9, return_sequences=True), layers.LSTM(4)])
    expected = model.predict(x, verbose=0)
    y, backprop = model.layers[0].forward_train(x)
    backprop(np.ones_like(y))                      # non-zero gradients travel too
    again = pickle.loads(pickle.dumps(model))
    for layer, before in zip(again.layers, model.layers):
        for kind in ("_params", "grads"):
            arrays, old = getattr(layer.cell, kind), getattr(before.cell, kind)
            assert arrays and all(is_aligned(a) for a in arrays.values())
            for n in arrays:
                np.testing.assert_array_equal(arrays[n], old[n])
    np.testing.assert_array_equal(again.predict(x, verbose=0), expected)

    module = nn.LSTM(6, 7, num_layers=2, proj_size=3, batch_first=True)
    out, _ = module(x)
    copy = pickle.loads(pickle.dumps(module))
    for slot in (s for row in copy._slots for s in row):
        for n in slot.__slots__:
            assert is_aligned(getattr(slot, n)), n
    np.testing.assert_array_equal(copy(x)[0], out)
    copy.weight_ih_l0[...] += 1          # the torch-named views are the slots' arrays
    assert not np.array_equal(copy(x)[0], out)
