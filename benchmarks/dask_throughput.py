"""cylstm.dask measured: predict throughput, fit_many scaling, worker memory,
task overhead and the model's broadcast cost.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/dask_throughput.py \
        [--rows 3840] [--series 32] [--epochs 10] [--repeat 3] [--quick] [--json out.json]

1. predict, on (N, 100, 128) float32 sequences and LSTM(256) (the grid's
   64,100,128,256 case: batches of 64): sequences per second of
   - one process: cylstm (``Sequential.predict``, batch 64) on 1 and 2
     threads, torch.nn.LSTM (``no_grad``, batches of 64) on 1 and 2 threads;
   - ``cylstm.dask.predict`` on a LocalCluster of 1 and of 2 worker processes
     (one thread each), the data persisted on the workers first, the outputs
     brought back to the client; best of ``--repeat`` computes.
   Scaling efficiency: rate(2 workers) / (2 x rate(1 worker)).
2. fit_many on the first ``--series`` US employment series of
   examples/dask_many_series.py (same model and windows): one by one in one
   process (1 thread), and on 1 and 2 worker processes.
3. Resident memory of a worker process: a bare Dask worker, after importing
   cylstm and predicting, after importing torch and running its LSTM, after
   importing tensorflow and running a Keras LSTM (each in its own worker).
4. Dask's own cost: per-task overhead (many empty tasks), the model's pickled
   size and its pickle / unpickle time.

Timings on a shared machine are noisy: compare ratios within one run.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "examples")]

B, T, I, H = 64, 100, 128, 256


def best_of(repeat, fn):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cylstm_model():
    import cylstm
    from cylstm.layers import LSTM

    cylstm.utils.set_random_seed(0)
    model = cylstm.Sequential([LSTM(H, input_shape=(T, I))])
    model.build((None, T, I))
    return model


def single_process_rates(x, repeat, cpu):
    import cylstm

    model = cylstm_model()
    out = {}
    for n in (1, 2):
        with cylstm.threads(n):
            model.predict(x[:B], batch_size=B, verbose=0)
            c0 = time.process_time()
            out[f"cylstm, 1 process, {n} thread(s)"] = len(x) / best_of(
                repeat, lambda: model.predict(x, batch_size=B, verbose=0))
            if n == 1:
                cpu["cylstm, 1 process, 1 thread"] = (time.process_time() - c0) / (repeat * len(x))
    try:
        import torch
    except ImportError:
        return out
    lstm = torch.nn.LSTM(I, H, batch_first=True).eval()
    xt = torch.from_numpy(x)
    for n in (1, 2):
        torch.set_num_threads(n)

        def run():
            with torch.no_grad():
                for i in range(0, len(xt), B):
                    lstm(xt[i:i + B])
        run()
        out[f"torch {torch.__version__}, 1 process, {n} thread(s)"] = len(x) / best_of(repeat, run)
    return out


def cluster(n_workers, **kwargs):
    from distributed import Client, LocalCluster

    c = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                     dashboard_address=None, **kwargs)
    return c, Client(c)


def _cpu_seconds():
    return time.process_time()


def cluster_rates(x, repeat, cpu):
    import dask.array as da
    from distributed import wait

    import cylstm.dask

    model = cylstm_model()
    out = {}
    for n in (1, 2):
        c, client = cluster(n)
        try:
            # made on the workers (as data read there would be), not sent from here
            data = da.random.default_rng(0).standard_normal(
                x.shape, chunks=(8 * B, T, I), dtype="float32").persist()
            wait(data)
            y = cylstm.dask.predict(model, data, batch_size=B)
            client.compute(y).result()          # warm: model on the workers, imports done
            w0, c0 = client.run(_cpu_seconds), time.process_time()
            out[f"cylstm.dask, {n} worker process(es) x 1 thread"] = len(x) / best_of(
                repeat, lambda: client.compute(y).result())
            w1, c1 = client.run(_cpu_seconds), time.process_time()
            per = repeat * len(x)
            cpu[f"cylstm.dask, {n} worker(s): workers"] = sum(w1[k] - w0[k] for k in w1) / per
            cpu[f"cylstm.dask, {n} worker(s): client + scheduler"] = (c1 - c0) / per
        finally:
            client.close()
            c.close()
    return out


def fit_many_times(n_series, epochs):
    import _data
    import cylstm
    import cylstm.dask
    import dask_many_series as ex

    _, _, _, values = _data.load_us_employment(since=1990)
    logs = np.log(values[:n_series, :-ex.HORIZON])
    data = {k: ex.scaled_windows(lv, float(np.std(lv[12:] - lv[:-12])))
            for k, lv in enumerate(logs)}
    kwargs = dict(epochs=epochs, batch_size=32)
    out, cpu = {}, {}
    t, c0 = time.perf_counter(), time.process_time()
    with cylstm.threads(1):
        for k, (x, y) in data.items():
            cylstm.utils.set_random_seed(k)
            ex.build_model().fit(x, y, verbose=0, **kwargs)
    out["one by one, 1 process, 1 thread"] = time.perf_counter() - t
    cpu["one by one, 1 process, 1 thread"] = time.process_time() - c0
    for n in (1, 2):
        c, client = cluster(n)
        try:
            client.run(_warm_fit)               # imports and first fit done on every worker
            w0, c0 = client.run(_cpu_seconds), time.process_time()
            t = time.perf_counter()
            fits = cylstm.dask.fit_many(ex.build_model, data, fit_kwargs=kwargs)
            out[f"fit_many, {n} worker process(es)"] = time.perf_counter() - t
            w1, c1 = client.run(_cpu_seconds), time.process_time()
            cpu[f"fit_many, {n} worker(s): workers"] = sum(w1[k] - w0[k] for k in w1)
            cpu[f"fit_many, {n} worker(s): client + scheduler"] = c1 - c0
            assert all(f.ok for f in fits.values())
        finally:
            client.close()
            c.close()
    return out, cpu


def _warm_fit():
    import dask_many_series as ex
    ex.build_model().fit(np.zeros((32, ex.LOOKBACK, 1), "float32"),
                         np.zeros((32, ex.HORIZON), "float32"), epochs=1, verbose=0)


# -- memory ------------------------------------------------------------------------------

def _rss():
    import psutil
    return psutil.Process().memory_info().rss


def _use_cylstm():
    import cylstm
    from cylstm.layers import LSTM
    m = cylstm.Sequential([LSTM(H, input_shape=(T, I))])
    m.predict(np.zeros((B, T, I), "float32"), verbose=0)
    return _rss()


def _use_torch():
    import torch
    with torch.no_grad():
        torch.nn.LSTM(I, H, batch_first=True)(torch.zeros(B, T, I))
    return _rss()


def _use_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    layer = keras.layers.LSTM(H)
    layer(np.zeros((B, T, I), "float32"))
    return _rss()


def worker_memory():
    import importlib.util
    uses = [("cylstm", _use_cylstm)]
    if importlib.util.find_spec("torch"):
        uses.append(("torch", _use_torch))
    if importlib.util.find_spec("tensorflow") and importlib.util.find_spec("keras"):
        uses.append(("tensorflow (keras 3)", _use_tensorflow))
    c, client = cluster(len(uses), memory_limit=0)
    try:
        workers = sorted(client.scheduler_info()["workers"])
        out = {}
        for (name, use), w in zip(uses, workers):
            bare = client.run(_rss, workers=[w])[w]
            after = client.run(use, workers=[w])[w]
            out[name] = {"bare worker MiB": bare / 2**20, "after import + one LSTM call MiB":
                         after / 2**20, "added MiB": (after - bare) / 2**20}
        return out
    finally:
        client.close()
        c.close()


# -- Dask's own costs --------------------------------------------------------------------

def overheads():
    import pickle

    import dask.array as da

    model = cylstm_model()
    blob = pickle.dumps(model)
    dumps = best_of(5, lambda: pickle.dumps(model))
    loads = best_of(5, lambda: pickle.loads(blob))
    out = {"model pickled bytes": len(blob), "pickle.dumps s": dumps, "pickle.loads s": loads,
           "weights bytes": sum(w.nbytes for w in model.get_weights())}
    c, client = cluster(2)
    try:
        n = 2000
        x = da.ones(n, chunks=1).map_blocks(lambda b: b + 1)
        client.compute(x.sum()).result()
        per_task = best_of(3, lambda: client.compute(x.sum()).result()) / (2 * n)
        out["seconds per task (2 workers, tiny tasks)"] = per_task
    finally:
        client.close()
        c.close()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=60 * B)
    parser.add_argument("--series", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--parts", nargs="+", default=["predict", "fit_many", "memory", "costs"],
                        choices=["predict", "fit_many", "memory", "costs"])
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.series, args.epochs, args.repeat = 8 * B, 4, 1, 1

    import cylstm
    import dask
    import distributed

    cpu = "?"
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    report = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
              "cylstm": cylstm.__version__, "dask": dask.__version__,
              "distributed": distributed.__version__, "numpy": np.__version__}
    print(json.dumps(report))
    if "predict" in args.parts:
        predict_part(args, report)
    if "fit_many" in args.parts:
        fit_many_part(args, report)
    if "memory" in args.parts:
        memory_part(report)
    if "costs" in args.parts:
        costs_part(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


def predict_part(args, report):
    x = np.random.default_rng(0).standard_normal((args.rows, T, I)).astype("float32")
    print(f"\npredict, {args.rows} sequences of ({T}, {I}) -> LSTM({H}), batches of {B}")
    cpu = {}
    rates = single_process_rates(x, args.repeat, cpu)
    rates.update(cluster_rates(x, args.repeat, cpu))
    for name, r in rates.items():
        print(f"  {name:<48} {r:10,.0f} sequences/s")
    print("  CPU time per sequence (counts work, not waiting for a busy core):")
    for name, c in cpu.items():
        print(f"    {name:<46} {c * 1e3:8.3f} ms")
    report["predict CPU s per sequence"] = cpu
    one = rates["cylstm.dask, 1 worker process(es) x 1 thread"]
    two = rates["cylstm.dask, 2 worker process(es) x 1 thread"]
    base = rates["cylstm, 1 process, 1 thread(s)"]
    report["predict sequences/s"] = rates
    report["predict scaling efficiency, 2 workers"] = two / (2 * one)
    report["predict 2 workers / one process 1 thread"] = two / base
    print(f"  scaling efficiency 2 workers vs 1: {two / (2 * one):.2f}; 2 workers vs one "
          f"process on 1 thread: {two / base:.2f}x; 1 worker vs one process: {one / base:.2f}x")


def fit_many_part(args, report):
    print(f"\nfit_many, {args.series} US employment series, {args.epochs} epochs")
    times, cpu = fit_many_times(args.series, args.epochs)
    for name, s in times.items():
        print(f"  {name:<48} {s:8.2f} s  ({args.series / s:6.2f} series/s)")
    print("  CPU time in all:")
    for name, c in cpu.items():
        print(f"    {name:<46} {c:8.2f} s")
    report["fit_many CPU s"] = cpu
    f1, f2 = times["fit_many, 1 worker process(es)"], times["fit_many, 2 worker process(es)"]
    report["fit_many seconds"] = times
    report["fit_many scaling efficiency, 2 workers"] = f1 / (2 * f2)
    print(f"  scaling efficiency 2 workers vs 1: {f1 / (2 * f2):.2f}")


def memory_part(report):
    print("\nresident memory of one worker process")
    memory = worker_memory()
    for name, m in memory.items():
        print(f"  {name:<22} bare {m['bare worker MiB']:6.0f} MiB -> "
              f"{m['after import + one LSTM call MiB']:6.0f} MiB (+{m['added MiB']:.0f} MiB)")
    report["worker RSS"] = memory


def costs_part(report):
    print("\nDask's own costs")
    costs = overheads()
    for name, v in costs.items():
        print(f"  {name:<44} {v:.6g}")
    report["costs"] = costs


if __name__ == "__main__":
    main()
