#!/usr/bin/env python3
"""Brute-force top-k search baselines for `facesocial bench search`: numpy (BLAS matrix-vector
product + argpartition) and, when installed, FAISS IndexFlatIP. Same sizes, dimension, k and
query count as the Swift benchmark; vectors are random and L2-normalised (so inner product is
cosine). Prints p50/p99 per engine and size, and which BLAS kernel numpy ran."""
import argparse
import time

import numpy as np


def percentile(samples, p):
    return float(np.percentile(np.array(samples), p))


def unit(rng, n, d):
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def time_queries(search, queries, warmup=5):
    for q in queries[:warmup]:
        search(q)
    samples = []
    for q in queries:
        start = time.perf_counter()
        search(q)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dimension", type=int, default=128)
    args = parser.parse_args()

    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            print(
                f"blas: {info.get('internal_api')} {info.get('version')} "
                f"kernel={info.get('architecture')} threads={info.get('num_threads')}"
            )
    except ImportError:
        print("blas: threadpoolctl not installed")
    try:
        import faiss

        print(f"faiss: {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    except ImportError:
        faiss = None
        print("faiss: not installed")

    print(f"numpy {np.__version__}; dimension {args.dimension}, k {args.k}, {args.queries} queries")
    print(f"{'engine':<16}{'rows':>10}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    rng = np.random.default_rng(42)
    for n in [int(x) for x in args.rows.split(",")]:
        gallery = unit(rng, n, args.dimension)
        queries = unit(rng, args.queries, args.dimension)
        k = args.k

        def numpy_search(q):
            scores = gallery @ q
            top = np.argpartition(-scores, k)[:k]
            return top[np.argsort(-scores[top])]

        engines = [("numpy", numpy_search)]
        if faiss is not None:
            index = faiss.IndexFlatIP(args.dimension)
            index.add(gallery)
            engines.append(("faiss-flatip", lambda q: index.search(q.reshape(1, -1), k)))
        for name, search in engines:
            samples = time_queries(search, list(queries))
            print(
                f"{name:<16}{n:>10}{percentile(samples, 50):>10.2f}{percentile(samples, 99):>10.2f}"
                f"{np.mean(samples):>10.2f}"
            )
        del gallery


if __name__ == "__main__":
    main()
