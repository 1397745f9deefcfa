"""Variable-length sequence classification with masking: JapaneseVowels.

Nine male speakers say the Japanese vowels /ae/; each utterance is a series of
12 LPC cepstrum coefficients, 7 to 29 frames long. Task: name the speaker.
270 training and 370 test utterances, the archive's split.

Data: M. Kudo, J. Toyama and M. Shimbo (1999), "Multidimensional curve
classification using passing-through regions", Pattern Recognition Letters
20(11-13):1103-1111 (UCI Machine Learning Repository), as distributed in the
UEA multivariate time series classification archive: A. Bagnall, H. A. Dau,
J. Lines, M. Flynn, J. Large, A. Bostrom, P. Southam and E. Keogh (2018),
"The UEA multivariate time series classification archive, 2018",
arXiv:1811.00075 (please cite the archive when using the data). The ``.ts``
files are read from the sktime (or aeon) package.

Published test accuracy on this split: 94.1 % (Kudo et al. 1999), 94.9 %
(1-NN with dynamic time warping, UEA archive). Fawaz et al. (2019) report
FCN 99.3 % and MLP 97.6 % on an equal-length copy of the data.

Model: each feature standardised with training statistics, sequences padded
at the end with ``pad_sequences(..., dtype='float32', padding='post')``, then
``Masking(0.0)`` so the LSTM skips the padding (a real frame is never all
zeros), LSTM(64) -> Dense(9, softmax), Adam(1e-3), sparse categorical
cross-entropy, batch 32, 50 epochs (one setting, also tried at 100 epochs with
the same accuracy; no further tuning).

    python examples/japanese_vowels.py [--epochs 50] [--seeds 5] [--verbose 1] [--quick]
"""
import argparse
import time

import numpy as np

import _data
import cylstm
from cylstm.layers import LSTM, Dense, Masking
from cylstm.preprocessing.sequence import pad_sequences

PUBLISHED = (("Kudo et al. 1999 (published)", 94.1), ("1-NN DTW, UEA archive (published)", 94.9))


def prepare(series, mean, std):
    """(12, T) arrays -> one (n, T_max, 12) float32 array, padded with zeros at the end."""
    return pad_sequences([((s.T - mean) / std) for s in series], dtype="float32", padding="post")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5, help="runs with seeds 0..N-1")
    parser.add_argument("--verbose", type=int, default=0, help="fit's verbose (0, 1, 2)")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 seed (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds = 1, 1

    start = time.perf_counter()
    train_series, train_labels = _data.load_japanese_vowels("train")
    test_series, test_labels = _data.load_japanese_vowels("test")
    frames = np.concatenate([s.T for s in train_series])
    mean, std = frames.mean(axis=0), frames.std(axis=0)
    x_train, x_test = prepare(train_series, mean, std), prepare(test_series, mean, std)
    classes = np.unique(train_labels)
    y_train = np.searchsorted(classes, train_labels)
    y_test = np.searchsorted(classes, test_labels)
    lengths = [s.shape[1] for s in train_series + test_series]
    print(f"JapaneseVowels: {len(train_series)} train / {len(test_series)} test utterances, "
          f"12 features, {min(lengths)}-{max(lengths)} frames, {len(classes)} speakers")
    print(f"padded: x_train {x_train.shape}, x_test {x_test.shape}")
    print(f"Masking -> LSTM(64) -> Dense({len(classes)}, softmax), Adam(1e-3), batch 32, "
          f"{args.epochs} epochs, seeds 0..{args.seeds - 1}")

    accuracies = []
    for seed in range(args.seeds):
        cylstm.utils.set_random_seed(seed)
        model = cylstm.Sequential([
            Masking(mask_value=0.0, input_shape=(None, 12)),
            LSTM(64),
            Dense(len(classes), activation="softmax"),
        ])
        model.compile(optimizer=cylstm.optimizers.Adam(learning_rate=1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        t = time.perf_counter()
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=args.verbose)
        loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        accuracies.append(100 * accuracy)
        print(f"  seed {seed}: test accuracy {accuracies[-1]:.1f} %   "
              f"({time.perf_counter() - t:.1f} s)")

    chance = 100 * np.bincount(y_test).max() / len(y_test)
    print("\nTest accuracy (370 utterances):")
    rows = [("cylstm Masking + LSTM(64)", float(np.mean(accuracies))),
            ("always the most frequent test speaker", chance)] + list(PUBLISHED)
    for name, value in rows:
        print(f"  {name:<38}{value:6.1f} %")
    if len(accuracies) > 1:
        print(f"  (cylstm: mean of {len(accuracies)} seeds; min {min(accuracies):.1f} %, "
              f"max {max(accuracies):.1f} %)")
    wall = time.perf_counter() - start
    print(f"Wall time: {wall:.1f} s")
    return {"accuracy": accuracies, "wall": wall}


if __name__ == "__main__":
    main()
