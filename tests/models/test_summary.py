"""Sequential.summary(): Keras 3's table, character for character (goldens written
by Keras's rich-based printer), and the tutorial model's parameter counts."""
import numpy as np
import pytest

import cylstm
from cylstm.layers import LSTM, Dense, Embedding

from .conftest import load_cases

SUMMARIES = {case["case"]: case for case, _ in load_cases("summary.npz")}


def tutorial_model():
    """The MachineCurve IMDB model, with Keras's default layer names."""
    model = cylstm.Sequential(name="sequential")
    model.add(Embedding(5000, 15, input_length=300, name="embedding"))
    model.add(LSTM(10, name="lstm"))
    model.add(Dense(1, activation="sigmoid", name="dense"))
    return model


def capture(model, **kwargs):
    out = []
    model.summary(print_fn=out.append, **kwargs)
    assert len(out) == 1          # Keras 3 hands print_fn the whole summary at once
    return out[0]


@pytest.mark.parametrize("line_length", [76, 88, 100])
def test_tutorial_model_table_is_keras_3s(line_length):
    text = capture(tutorial_model(), line_length=line_length)
    assert text == SUMMARIES[f"tutorial_{line_length}"]["text"]


def test_tutorial_param_counts_right_after_add():
    model = tutorial_model()
    assert [layer.count_params() for layer in model.layers] == [75000, 1040, 11]
    assert model.count_params() == 76051
    text = capture(model, line_length=76)
    for count in ("75,000", "1,040", " 11 "):
        assert count in text
    assert "Total params: 76,051 (297.07 KB)" in text
    assert "Trainable params: 76,051 (297.07 KB)" in text
    assert "Non-trainable params: 0 (0.00 B)" in text


def test_show_trainable_and_optimizer_params_after_fit():
    model = tutorial_model()
    assert capture(model, line_length=76, show_trainable=True) == \
        SUMMARIES["tutorial_trainable_76"]["text"]
    model.compile(cylstm.optimizers.Adam(), "binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).integers(0, 5000, (4, 300))
    model.fit(x, np.array([0, 1, 0, 1.0]), verbose=0)
    assert capture(model, line_length=76) == SUMMARIES["tutorial_after_fit_76"]["text"]


def test_return_state_shapes_wrap_like_rich():
    model = cylstm.Sequential([LSTM(4, return_sequences=True, return_state=True,
                                    name="lstm_state", input_shape=(5, 3))], name="states")
    assert capture(model, line_length=76) == SUMMARIES["return_state_76"]["text"]


def test_long_names_are_cut_with_an_ellipsis_and_frozen_layers_counted():
    model = cylstm.Sequential([
        LSTM(64, return_sequences=True, input_shape=(10, 8),
             name="a_very_long_layer_name_that_goes_on_and_on"),
        Dense(1, name="dense_out")], name="my_model")
    model.layers[1].trainable = False
    assert capture(model, line_length=76, show_trainable=True) == \
        SUMMARIES["long_name_frozen_76"]["text"]
    assert capture(model, line_length=60) == SUMMARIES["long_name_frozen_60"]["text"]


def test_unbuilt_and_empty_models():
    unbuilt = cylstm.Sequential([LSTM(4, name="lstm_u")], name="unbuilt")
    assert capture(unbuilt, line_length=76) == SUMMARIES["unbuilt_76"]["text"]
    assert capture(cylstm.Sequential(name="empty"), line_length=76) == \
        SUMMARIES["empty_76"]["text"]
    with pytest.raises(ValueError, match="isn't built"):
        unbuilt.count_params()


def test_default_prints_to_stdout_with_terminal_width(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")          # Keras: min(88, columns - 4) = 76
    tutorial_model().summary()
    assert capsys.readouterr().out == SUMMARIES["tutorial_76"]["text"]
    monkeypatch.setenv("COLUMNS", "200")         # a wide terminal: 88
    tutorial_model().summary()
    assert capsys.readouterr().out == SUMMARIES["tutorial_88"]["text"]
