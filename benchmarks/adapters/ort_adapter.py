"""ONNX Runtime: one ONNX `LSTM` node built with onnx.helper.

ORT's CPU LSTM accepts only layout=0 (time-major), so the timed call includes
the batch-first -> time-major transposes of the input and the output (as
contiguous copies, like every other framework's output).  ONNX gate order is
i,o,f,c and its bias is [Wb, Rb]; Keras's i,f,c,o blocks are permuted.
Threads: intra_op_num_threads=n, inter_op_num_threads=1.
"""
import numpy as np

from adapters import Bench

ort = onnx = None
_threads = 1


def setup(threads):
    global ort, onnx, _threads
    import onnx as onnx_mod
    import onnxruntime as ort_mod
    ort, onnx, _threads = ort_mod, onnx_mod, threads
    return {"onnxruntime": ort.__version__, "onnx": onnx.__version__,
            "ort_intra_op_threads": threads, "ort_inter_op_threads": 1}


def _onnx_weights(w):
    H = w["recurrent_kernel"].shape[0]
    order = np.concatenate([np.arange(g * H, (g + 1) * H) for g in (0, 3, 1, 2)])  # i,o,f,c
    W = w["kernel"].T[order][None]
    R = w["recurrent_kernel"].T[order][None]
    B = np.concatenate([w["bias"][order], np.zeros(4 * H, np.float32)])[None]
    return [np.ascontiguousarray(a, np.float32) for a in (W, R, B)]


def _session(w, T, B, with_state):
    """LSTM over X (T, B, I); outputs Y (T, 1, B, H), or Y_h, Y_c with state inputs."""
    from onnx import TensorProto, helper, numpy_helper
    I, H = w["kernel"].shape[0], w["recurrent_kernel"].shape[0]
    f32 = TensorProto.FLOAT
    inits = [numpy_helper.from_array(a, n) for a, n in zip(_onnx_weights(w), "WRB")]
    inputs = [helper.make_tensor_value_info("X", f32, [T, B, I])]
    node_in = ["X", "W", "R", "B"]
    if with_state:
        inputs += [helper.make_tensor_value_info(n, f32, [1, B, H]) for n in ("h0", "c0")]
        node_in += ["", "h0", "c0"]  # sequence_lens left out
        outputs = [helper.make_tensor_value_info(n, f32, [1, B, H]) for n in ("Y_h", "Y_c")]
        node_out = ["", "Y_h", "Y_c"]
    else:
        outputs = [helper.make_tensor_value_info("Y", f32, [T, 1, B, H])]
        node_out = ["Y"]
    node = helper.make_node("LSTM", node_in, node_out, hidden_size=H, layout=0)
    graph = helper.make_graph([node], "lstm", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = _threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def inference(w, x):
    B, T, I = x.shape
    sess = _session(w, T, B, with_state=False)

    def fn():
        xt = np.ascontiguousarray(x.transpose(1, 0, 2))
        y = sess.run(None, {"X": xt})[0]
        return np.ascontiguousarray(y[:, 0].transpose(1, 0, 2))

    return [Bench("ort", fn, lambda: [fn()])]


def training(w, x):
    return []


def streaming(w, x_t):
    B, I = x_t.shape
    H = w["recurrent_kernel"].shape[0]
    sess = _session(w, 1, B, with_state=True)
    x1 = x_t[None]  # (1, B, I): time-major is a free view for one step
    zero = np.zeros((1, B, H), np.float32)
    state = [zero, zero]

    def fn():
        state[:] = sess.run(None, {"X": x1, "h0": state[0], "c0": state[1]})
        return state[0]

    check = lambda: [sess.run(None, {"X": x1, "h0": zero, "c0": zero})[0][0]]
    return [Bench("ort", fn, check)]
