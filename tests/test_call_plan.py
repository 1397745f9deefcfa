"""Call plans (cylstm/_call_plan.py, backends/cpu_plan.py): a repeated call of
``layers.LSTM`` / ``nn.LSTM`` reuses its plan, and anything that changes the
answer between calls -- weights, shapes, dtypes, masks, states, options,
thread count, backend, training mode -- gives the answer of a fresh call.
The reference is the NumPy twin (``use_backend("numpy")``), which has no plan.
"""
import pickle
import threading

import numpy as np
import pytest

import cylstm
from cylstm._call_plan import _layer_unchanged, _module_unchanged
from cylstm.backends import use_backend
from cylstm.backends.cpu_plan import ForwardPlan

TOL = dict(rtol=2e-5, atol=2e-6)


@pytest.fixture
def plan_runs(monkeypatch):
    """How many calls ran through a plan."""
    count = [0]
    real = ForwardPlan.run

    def counting(self, *args):
        count[0] += 1
        return real(self, *args)

    monkeypatch.setattr(ForwardPlan, "run", counting)
    return count


def _ref(fn, *args, **kwargs):
    with use_backend("numpy"):
        return fn(*args, **kwargs)


def _close(a, b):
    if isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b):
            _close(u, v)
        return
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, **TOL)


def _x(rng, shape, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


# -- layers.LSTM -------------------------------------------------------------------


def test_layer_repeated_calls_use_the_plan(rng, plan_runs):
    layer = cylstm.layers.LSTM(6, return_sequences=True, return_state=True)
    x = _x(rng, (3, 5, 4))
    first = layer(x)
    assert plan_runs[0] == 1 and layer._call_plan is not None
    plan = layer._call_plan
    for _ in range(3):
        _close(layer(x), first)
    assert plan_runs[0] == 4 and layer._call_plan is plan
    _close(first, _ref(layer, x))


def test_layer_weights_changed_between_calls(rng):
    layer = cylstm.layers.LSTM(5)
    x = _x(rng, (2, 4, 3))
    before = layer(x)
    layer.set_weights([w * 0.5 for w in layer.get_weights()])
    after = layer(x)
    assert not np.allclose(before, after)
    _close(after, _ref(layer, x))
    layer.cell.recurrent_kernel[...] *= -1          # in place, as an optimizer step
    _close(layer(x), _ref(layer, x))
    layer.cell._params["kernel"] = layer.cell.kernel * 2   # a new array
    _close(layer(x), _ref(layer, x))


def test_layer_shape_and_dtype_changes(rng, plan_runs):
    layer = cylstm.layers.LSTM(4, return_sequences=True)
    for shape in [(2, 3, 5), (2, 7, 5), (6, 3, 5), (1, 2, 5), (2, 3, 5)]:
        x = _x(rng, shape)
        _close(layer(x), _ref(layer, x))
    x = _x(rng, (2, 3, 5), "float64")       # cast to the layer's float32
    _close(layer(x), layer(x.astype("float32")))
    assert layer(x).dtype == np.float32
    xt = _x(rng, (5, 3, 2)).transpose(2, 1, 0)    # not contiguous
    _close(layer(xt), layer(np.ascontiguousarray(xt)))
    with pytest.raises(ValueError, match="features"):
        layer(_x(rng, (2, 3, 6)))
    runs = plan_runs[0]
    layer(x.astype("float32"))
    assert plan_runs[0] == runs + 1


def test_layer_float64(rng):
    layer = cylstm.layers.LSTM(4, dtype="float64", return_state=True)
    x = _x(rng, (3, 4, 2), "float64")
    first = layer(x)
    _close(layer(x), first)
    _close(first, _ref(layer, x))


def test_layer_masks_and_states_after_a_plan(rng):
    layer = cylstm.layers.LSTM(4, return_sequences=True, return_state=True)
    x = _x(rng, (3, 5, 2))
    layer(x)
    mask = np.ones((3, 5), bool)
    mask[0, 3:] = False
    _close(layer(x, mask=mask), _ref(layer, x, mask=mask))
    states = [_x(rng, (3, 4)), _x(rng, (3, 4))]
    kept = [s.copy() for s in states]
    _close(layer(x, initial_state=states), _ref(layer, x, initial_state=states))
    _close(layer(x, initial_state=states), _ref(layer, x, initial_state=states))
    np.testing.assert_array_equal(states[0], kept[0])     # not modified
    _close(layer(x), _ref(layer, x))                      # zeros again
    as64 = [s.astype("float64") for s in states]
    _close(layer(x, initial_state=as64), _ref(layer, x, initial_state=states))
    with pytest.raises(ValueError, match="initial_state"):
        layer(x, initial_state=[states[0][:2], states[1][:2]])


def test_layer_options_changed_between_calls(rng):
    layer = cylstm.layers.LSTM(4)
    x = _x(rng, (2, 5, 3))
    layer(x)
    layer.return_sequences = True
    assert layer(x).shape == (2, 5, 4)
    layer.go_backwards = True
    _close(layer(x), _ref(layer, x))
    layer.return_state = True
    assert len(layer(x)) == 3
    layer.cell.activation = cylstm.activations.get("relu")
    _close(layer(x), _ref(layer, x))


def test_layer_dropout_only_in_training(rng, plan_runs):
    layer = cylstm.layers.LSTM(4, dropout=0.5, recurrent_dropout=0.3, seed=1)
    x = _x(rng, (3, 5, 2))
    infer = layer(x)
    runs = plan_runs[0]
    trained = layer(x, training=True)
    assert plan_runs[0] == runs and not np.allclose(trained, infer)
    _close(layer(x), infer)
    plain = cylstm.layers.LSTM(4, seed=1)
    plain(x)
    _close(plain(x, training=True), plain(x))    # no dropout: training changes nothing


def test_layer_thread_setting_and_backend(rng, plan_runs):
    layer = cylstm.layers.LSTM(8, return_sequences=True)
    x = _x(rng, (64, 6, 16))
    base = layer(x)
    plan = layer._call_plan
    with cylstm.threads(1):
        _close(layer(x), base)
        one = layer._call_plan
        assert one is not plan and len(one.forward.slices) == 1
    with cylstm.threads(2):
        _close(layer(x), base)
        assert layer._call_plan is not one
    runs = plan_runs[0]
    with use_backend("numpy"):
        _close(layer(x), base)
    assert plan_runs[0] == runs


def test_layer_stateful_and_stepper_untouched(rng, plan_runs):
    layer = cylstm.layers.LSTM(4, stateful=True)
    x = _x(rng, (2, 3, 2))
    a, b = layer(x), layer(x)
    assert not np.allclose(a, b) and plan_runs[0] == 0
    step = cylstm.layers.LSTM(4, return_sequences=True)
    x1 = _x(rng, (2, 1, 2))
    _close(step(x1), step(x1))
    _close(step(x1), _ref(step, x1))


def test_layer_concurrent_calls_match_serial(rng):
    layer = cylstm.layers.LSTM(16, return_sequences=True)
    xs = [_x(rng, (4, 20, 8)) for _ in range(4)]
    serial = [layer(x) for x in xs]
    out = [None] * 4

    def work(i):
        for _ in range(20):
            out[i] = layer(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(out, serial):
        np.testing.assert_array_equal(a, b)


def test_layer_pickles_without_its_plan(rng):
    layer = cylstm.layers.LSTM(4)
    x = _x(rng, (2, 3, 2))
    y = layer(x)
    copy = pickle.loads(pickle.dumps(layer))
    assert copy._call_plan is None
    _close(copy(x), y)


# -- nn.LSTM -----------------------------------------------------------------------


def test_module_repeated_calls_use_the_plan(rng, plan_runs):
    m = cylstm.nn.LSTM(3, 5, batch_first=True)
    x = _x(rng, (2, 4, 3))
    out, (h, c) = m(x)
    assert plan_runs[0] == 1
    out2, (h2, c2) = m(x)
    assert plan_runs[0] == 2
    _close([out2, h2, c2], [out, h, c])
    _close([out, h, c], list(_flat(_ref(m, x))))
    assert h.shape == (1, 2, 5) and not np.shares_memory(out, h)


def _flat(res):
    out, (h, c) = res
    return out, h, c


def test_module_weights_changed_between_calls(rng):
    m = cylstm.nn.LSTM(3, 5, proj_size=2)
    x = _x(rng, (4, 2, 3))
    before = m(x)[0]
    sd = {k: v * 0.5 for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    after = m(x)[0]
    assert not np.allclose(before, after)
    _close(after, _ref(m, x)[0])
    m.bias_hh_l0[...] += 1.0                       # in place: the summed bias follows
    _close(m(x)[0], _ref(m, x)[0])
    m.weight_ih_l0 = np.ones_like(m.weight_ih_l0)  # attribute assignment
    _close(m(x)[0], _ref(m, x)[0])


def test_module_shapes_states_unbatched_dtypes(rng):
    m = cylstm.nn.LSTM(3, 4)
    for shape in [(5, 2, 3), (1, 2, 3), (5, 7, 3), (5, 3)]:
        x = _x(rng, shape)
        for _ in range(2):
            _close(list(_flat(m(x))), list(_flat(_ref(m, x))))
    x = _x(rng, (5, 2, 3))
    hx = (_x(rng, (1, 2, 4)), _x(rng, (1, 2, 4)))
    for _ in range(2):
        _close(list(_flat(m(x, hx))), list(_flat(_ref(m, x, hx))))
    _close(list(_flat(m(x))), list(_flat(_ref(m, x))))
    xu = _x(rng, (5, 3))
    hu = (_x(rng, (1, 4)), _x(rng, (1, 4)))
    for _ in range(2):
        _close(list(_flat(m(xu, hu))), list(_flat(_ref(m, xu, hu))))
    _close(list(_flat(m(x.astype("float64")))), list(_flat(m(x))))
    with pytest.raises(ValueError, match="hidden"):
        m(x, (hx[0][:, :1], hx[1]))


def test_module_options_threads_training(rng, plan_runs):
    m = cylstm.nn.LSTM(3, 4, batch_first=True)
    x = _x(rng, (2, 6, 3))
    base = m(x)[0]
    m.batch_first = False
    _close(m(x)[0], _ref(m, x)[0])
    m.batch_first = True
    with cylstm.threads(1):
        _close(m(x)[0], base)
    m.eval()
    _close(m(x)[0], base)
    runs = plan_runs[0]
    with use_backend("numpy"):
        m(x)
    assert plan_runs[0] == runs
    deep = cylstm.nn.LSTM(3, 4, num_layers=2, dropout=0.5, seed=0)
    xs = _x(rng, (5, 2, 3))
    a, b = deep(xs)[0], deep(xs)[0]
    assert not np.allclose(a, b)            # training mode: new dropout masks every call
    deep.eval()
    _close(deep(xs)[0], deep(xs)[0])
    assert plan_runs[0] == runs             # stacked layers take the general path


def test_layer_time_major_read_only_and_packed(rng):
    layer = cylstm.layers.LSTM(64, time_major=True, return_sequences=True, return_state=True)
    x = _x(rng, (5, 8, 6))          # (T, B, I); 8 rows and 64 units: the packed kernel
    x.setflags(write=False)
    first = layer(x)
    _close(layer(x), first)
    _close(first, _ref(layer, x))


def test_layer_rows_split_over_threads(rng, monkeypatch):
    from cylstm.backends import backend_named
    monkeypatch.setattr(backend_named("cpu"), "PARALLEL_MIN_WORK", 0)
    layer = cylstm.layers.LSTM(16, return_sequences=True, return_state=True)
    x = _x(rng, (9, 4, 5))
    with cylstm.threads(3):
        first = layer(x)
        assert len(layer._call_plan.forward.slices) == 3
        _close(layer(x), first)
    _close(first, _ref(layer, x))


def test_module_reverse_float64_projection(rng):
    m = cylstm.nn.LSTM(3, 6, proj_size=4, dtype=np.float64)
    m._reverse_only = True           # as cylstm.from_onnx sets for a reverse node
    x = _x(rng, (5, 2, 3), "float64")
    first = _flat(m(x))
    _close(list(_flat(m(x))), list(first))
    _close(list(first), list(_flat(_ref(m, x))))
    m._reverse_only = False
    _close(list(_flat(m(x))), list(_flat(_ref(m, x))))


def test_plan_casts_real_inputs_and_is_kept(rng, plan_runs):
    layer = cylstm.layers.LSTM(4)
    m = cylstm.nn.LSTM(3, 4)
    x = _x(rng, (2, 5, 3))
    for call in (layer, m):
        call(x)
        plan = call._call_plan
        for other in (x.astype("float64"), (x * 10).astype("int32"), x.tolist()):
            got = call(other)
            want = call(np.asarray(other, "float32"))
            _close(list(got) if isinstance(got, tuple) else got,
                   list(want) if isinstance(want, tuple) else want)
        assert call._call_plan is plan
        with pytest.raises(TypeError, match="real numbers"):
            call(x.astype("complex64"))


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 1, 3), (1, 9, 3), (2, 12, 3)])
def test_module_two_biases_in_the_kernel(rng, shape):
    """One-step and few-row plans add bias_hh in the kernel (no per-call sum):
    both biases count, and an in-place edit of either shows in the next call."""
    m = cylstm.nn.LSTM(3, 5, batch_first=True)
    m.load_state_dict({k: rng.uniform(-0.5, 0.5, v.shape).astype(np.float32)
                       for k, v in m.state_dict().items()})
    x = _x(rng, shape)
    for _ in range(2):
        out, (h, c) = m(x)
        _close([out, h, c], list(_flat(_ref(m, x))))
    assert h.shape == (1, shape[0], 5) and c.shape == (1, shape[0], 5)
    assert not np.shares_memory(out, h)
    m.bias_hh_l0[...] += 0.75
    _close(list(_flat(m(x))), list(_flat(_ref(m, x))))
    m.bias_ih_l0[...] -= 0.5
    _close(list(_flat(m(x))), list(_flat(_ref(m, x))))


def test_module_subclass_forward_is_called(rng):
    """LSTM.__call__ goes straight to a plan only for LSTM's own forward."""
    class Doubled(cylstm.nn.LSTM):
        def forward(self, input, hx=None):
            out, state = super().forward(input, hx)
            return out * 2, state

    m = Doubled(3, 4, batch_first=True)
    x = _x(rng, (1, 1, 3))
    first = m(x)[0]
    _close(m(x)[0], first)
    _close(first, 2 * _ref(cylstm.nn.LSTM.forward, m, x)[0])


@pytest.mark.parametrize("batch_first", [True, False])
def test_module_streaming_with_states(rng, batch_first):
    """module(x_t, hx) step after step (one-step plan with states given),
    including states that are not C-contiguous and a float64 input."""
    m = cylstm.nn.LSTM(3, 5, batch_first=batch_first)
    m.load_state_dict({k: rng.uniform(-0.5, 0.5, v.shape).astype(np.float32)
                       for k, v in m.state_dict().items()})
    hx = ref_hx = None
    for t in range(4):
        x = _x(rng, (2, 1, 3) if batch_first else (1, 2, 3))
        out, hx = m(x if t != 2 else x.astype("float64"), hx)
        rout, ref_hx = _ref(m, x, ref_hx)
        _close([out, *hx], [rout, *ref_hx])
        assert not np.shares_memory(out, hx[0])
    h_wide = np.zeros((1, 2, 10), np.float32)
    h_wide[..., ::2] = hx[0]
    out, (h, c) = m(x, (h_wide[..., ::2], hx[1]))
    _close([out, h, c], list(_flat(_ref(m, x, (hx[0], hx[1])))))


def _hx_variants(h, c):
    """hx as a caller may pass it: the kernel takes the first as given; the
    others (another byte order, dtype or memory layout, lists, 2-D states of a
    batched call) go the checked way, or raise as the general path does."""
    yield "as given", (h, c)
    yield "list", [h, c]
    yield "byte-swapped", (h.astype(">f4"), c.astype(">f4"))
    yield "float64", (h.astype("float64"), c.astype("float64"))
    yield "Fortran order", (np.asfortranarray(h), np.asfortranarray(c))
    yield "2-D", (h[0], c[0])
    yield "unaligned", tuple(np.frombuffer(b"\0" + a.tobytes(), np.float32, a.size, 1)
                             .reshape(a.shape) for a in (h, c))


@pytest.mark.parametrize("batch", [1, 3])
def test_module_streaming_hx_checked_by_the_kernel(rng, batch, monkeypatch):
    """A streaming call whose hx the kernel takes as given (no reshape in
    Python) gives the reference's answer, and any other hx the answer (or the
    error) of the general path."""
    from cylstm.backends.cpu_plan import StepPlan
    taken = []
    real = StepPlan.run_torch

    def counting(self, x, h0, c0, states_3d=False):
        res = real(self, x, h0, c0, states_3d)
        taken.append(states_3d and res is not None)
        return res

    monkeypatch.setattr(StepPlan, "run_torch", counting)
    m = cylstm.nn.LSTM(4, 6)
    m.load_state_dict({k: rng.uniform(-0.5, 0.5, v.shape).astype(np.float32)
                       for k, v in m.state_dict().items()})
    x = _x(rng, (1, batch, 4))
    h, c = _x(rng, (1, batch, 6)), _x(rng, (1, batch, 6))
    m(x, (h, c))   # the plan
    for name, hx in _hx_variants(h, c):
        del taken[:]
        try:
            want = _ref(m, x, (np.asarray(hx[0]), np.asarray(hx[1])))
        except (ValueError, TypeError) as e:
            with pytest.raises(type(e)):
                m(x, hx)
            continue
        got = m(x, hx)
        _close(list(_flat(got)), list(_flat(want)))
        as_given = all(a.ndim == 3 and a.dtype == np.float32 and a.dtype.isnative
                       and a.flags.c_contiguous and a.flags.aligned for a in hx)
        assert as_given == (name in ("as given", "list") or (name == "Fortran order"
                                                             and batch == 1)), name
        assert taken[:1] == [as_given], name


@pytest.mark.parametrize("shape", [(1, 1, 8), (2, 1, 8), (1, 12, 8)])
def test_module_concurrent_calls_match_serial(rng, shape):
    """Python threads calling one nn.LSTM's one-step / few-row plan (both
    biases added in the kernel, states given and not) get the serial results."""
    m = cylstm.nn.LSTM(8, 70, batch_first=True)
    m.load_state_dict({k: rng.uniform(-0.3, 0.3, v.shape).astype(np.float32)
                       for k, v in m.state_dict().items()})
    xs = [_x(rng, shape) for _ in range(4)]
    hxs = [(_x(rng, (1, shape[0], 70)), _x(rng, (1, shape[0], 70))) for _ in range(4)]
    serial = [(list(_flat(m(x))), list(_flat(m(x, hx)))) for x, hx in zip(xs, hxs)]
    out = [None] * 4

    def work(i):
        with cylstm.threads(2):
            for _ in range(30):
                out[i] = (list(_flat(m(xs[i]))), list(_flat(m(xs[i], hxs[i]))))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(out, serial):
        for a, b in zip(got[0] + got[1], want[0] + want[1]):
            np.testing.assert_array_equal(a, b)


# -- what the plan's check covers ---------------------------------------------------
# Each change below must make the check fail (_layer_unchanged / _module_unchanged
# in cylstm/_call_plan.py); a check that skipped the entry would fail its case.


def _layer_with_plan(rng):
    layer = cylstm.layers.LSTM(4)
    layer(_x(rng, (2, 3, 2)))
    assert layer._call_plan is not None
    return layer


def _new_array(params, name):
    params[name] = params[name].copy()


_LAYER_CHANGES = {
    "return_sequences": lambda l: setattr(l, "return_sequences", True),
    "return_state": lambda l: setattr(l, "return_state", True),
    "go_backwards": lambda l: setattr(l, "go_backwards", True),
    "stateful": lambda l: setattr(l, "stateful", True),
    "time_major": lambda l: setattr(l, "time_major", True),
    "activity_regularizer": lambda l: setattr(l, "activity_regularizer",
                                              cylstm.regularizers.L2(0.1)),
    "use_cudnn": lambda l: setattr(l, "use_cudnn", True),
    "dtype": lambda l: l.__dict__.__setitem__("dtype", np.dtype("float64")),
    "built": lambda l: l.__dict__.__setitem__("built", False),
    "backend name": lambda l: l.__dict__.__setitem__("_backend_name", "numpy"),
    "cell activation": lambda l: setattr(l.cell, "activation", cylstm.activations.get("relu")),
    "cell recurrent_activation": lambda l: setattr(
        l.cell, "recurrent_activation", cylstm.activations.get("hard_sigmoid")),
    "cell use_bias": lambda l: setattr(l.cell, "use_bias", False),
    "cell dtype": lambda l: l.cell.__dict__.__setitem__("dtype", np.dtype("float64")),
    "cell dropout": lambda l: setattr(l.cell, "dropout", 0.5),
    "cell recurrent_dropout": lambda l: setattr(l.cell, "recurrent_dropout", 0.5),
    "kernel array": lambda l: _new_array(l.cell._params, "kernel"),
    "recurrent_kernel array": lambda l: _new_array(l.cell._params, "recurrent_kernel"),
    "bias array": lambda l: _new_array(l.cell._params, "bias"),
}


def test_layer_replaced_recurrent_kernel_and_bias(rng):
    """New arrays put in the cell's weights dict are the ones the next call uses."""
    layer = cylstm.layers.LSTM(5, return_sequences=True)
    x = _x(rng, (2, 4, 3))
    layer(x)
    p = layer.cell._params
    p["recurrent_kernel"] = rng.uniform(-1, 1, p["recurrent_kernel"].shape).astype(np.float32)
    _close(layer(x), _ref(layer, x))
    p["bias"] = rng.uniform(-1, 1, p["bias"].shape).astype(np.float32)
    _close(layer(x), _ref(layer, x))


def _module_with_plan(rng):
    m = cylstm.nn.LSTM(3, 4, proj_size=2)     # every slot array present
    m(_x(rng, (2, 1, 3)))
    assert m._call_plan is not None
    return m


def _new_slot_array(m, name):
    slot = m._slots[0][0]
    setattr(slot, name, getattr(slot, name).copy())


class _OtherLSTM(cylstm.nn.LSTM):
    pass


_MODULE_CHANGES = {
    "batch_first": lambda m: setattr(m, "batch_first", True),
    "num_layers": lambda m: m.__dict__.__setitem__("num_layers", 2),
    "bidirectional": lambda m: m.__dict__.__setitem__("bidirectional", True),
    "dtype": lambda m: m.__dict__.__setitem__("dtype", np.dtype("float64")),
    "_reverse_only": lambda m: setattr(m, "_reverse_only", True),
    "_activation": lambda m: setattr(m, "_activation", cylstm.activations.get("relu")),
    "_recurrent_activation": lambda m: setattr(
        m, "_recurrent_activation", cylstm.activations.get("hard_sigmoid")),
    "backend name": lambda m: m.__dict__.__setitem__("_backend_name", "numpy"),
    "class": lambda m: setattr(m, "__class__", _OtherLSTM),
    "slot": lambda m: m._slots[0].__setitem__(0, pickle.loads(pickle.dumps(m._slots[0][0]))),
    "kernel array": lambda m: _new_slot_array(m, "kernel"),
    "recurrent array": lambda m: _new_slot_array(m, "recurrent"),
    "projection array": lambda m: _new_slot_array(m, "projection"),
    "bias_ih array": lambda m: _new_slot_array(m, "bias_ih"),
    "bias_hh array": lambda m: _new_slot_array(m, "bias_hh"),
}


# api: (a layer or module with a plan, the check, the changes it must see)
_APIS = {"layers.LSTM": (_layer_with_plan, _layer_unchanged, _LAYER_CHANGES),
         "nn.LSTM": (_module_with_plan, _module_unchanged, _MODULE_CHANGES)}


@pytest.mark.parametrize("api,change", [(api, change) for api, (_, _, changes) in _APIS.items()
                                        for change in sorted(changes)])
def test_check_sees_each_change(rng, api, change):
    make, unchanged, changes = _APIS[api]
    called = make(rng)
    plan = called._call_plan
    assert unchanged(plan, called)
    changes[change](called)
    assert not unchanged(plan, called)


@pytest.mark.parametrize("api", sorted(_APIS))
def test_check_sees_threads_and_forced_backend(rng, api):
    make, unchanged, _ = _APIS[api]
    called = make(rng)
    plan = called._call_plan
    with cylstm.threads(cylstm.get_num_threads() + 1):
        assert not unchanged(plan, called)
    with use_backend("numpy"):
        assert not unchanged(plan, called)
    assert unchanged(plan, called)


@pytest.mark.parametrize("name", ["kernel", "recurrent", "bias_ih", "bias_hh"])
def test_module_replaced_slot_array(rng, name):
    """A new array put in the slot (as ``to`` and unpickling do) is the one the
    next call uses, for the one-step and the sequence plan."""
    m = cylstm.nn.LSTM(3, 5, batch_first=True)
    for shape in [(1, 1, 3), (2, 6, 3)]:
        x = _x(rng, shape)
        m(x)
        slot = m._slots[0][0]
        old = getattr(slot, name)
        setattr(slot, name, rng.uniform(-1, 1, old.shape).astype(np.float32))
        m._register(m._slots_and_suffixes())      # torch names view the new arrays
        _close(list(_flat(m(x))), list(_flat(_ref(m, x))))
