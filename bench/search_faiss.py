#!/usr/bin/env python3
"""FAISS baselines for the identify search at 1M-10M rows, on the same gallery files as `facesocial-search-bench`
(written by bench/search_gallery.py: NAME.f32, NAME.subjects.i32, NAME.queries.f32; a size is a
prefix of the file). Engines: IndexFlatIP (exact; also the truth for recall), IndexHNSWFlat (M=32,
efConstruction 40, efSearch swept) and IndexIVFPQ (sqrt-sized lists, 32 sub-quantisers x 8 bits
= 32 bytes a row, nprobe swept; no re-ranking), one query at a time as the server searches. FAISS
has no subjects: recall@10 is over faces. Threads: FAISS's OpenMP default (the machine's cores).
Prints one table row per engine and setting."""
import argparse
import os
import resource
import time

import numpy as np


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def timed(search, queries, k):
    for q in queries[:5]:
        search(q[None], k)
    samples, ids = [], []
    for q in queries:
        start = time.perf_counter()
        _, i = search(q[None], k)
        samples.append((time.perf_counter() - start) * 1000)
        ids.append(i[0])
    return np.array(samples), np.array(ids)


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--hnsw-max-rows", type=int, default=1_000_000, help="larger galleries skip HNSW")
    args = parser.parse_args()
    import faiss

    d = 128
    base = os.path.join(args.data, args.gallery)
    x = np.fromfile(base + ".f32", np.float32, count=args.rows * d).reshape(-1, d)
    q = np.fromfile(base + ".queries.f32", np.float32).reshape(-1, d)[: args.queries]
    n = len(x)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; {args.gallery} {n} rows, {len(q)} queries")
    rows = []

    def report(name, samples, found, truth, mb, build_s):
        rows.append(
            f"| {args.gallery} | {n} | faiss {name} | {np.percentile(samples, 50):.2f} | "
            f"{np.percentile(samples, 99):.2f} | {recall(found, truth):.3f} | {mb:.0f} | {build_s:.1f} |"
        )
        print(rows[-1], flush=True)

    before = rss_mb()
    start = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    build = time.perf_counter() - start
    samples, truth = timed(flat.search, q, args.k)
    report("IndexFlatIP", samples, truth, truth, rss_mb() - before, build)
    del flat

    if n <= args.hnsw_max_rows:
        before = rss_mb()
        start = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        hnsw.add(x)
        build = time.perf_counter() - start
        mb = rss_mb() - before
        for ef in (64, 128, 256):
            hnsw.hnsw.efSearch = ef
            samples, found = timed(hnsw.search, q, args.k)
            report(f"IndexHNSWFlat M32 ef{ef}", samples, found, truth, mb, build)
        del hnsw
    else:
        rows.append(f"| {args.gallery} | {n} | faiss IndexHNSWFlat | not run (> {args.hnsw_max_rows} rows) | | | | |")
        print(rows[-1], flush=True)

    lists = 64
    while lists < 4096 and lists * lists < n:
        lists *= 2
    before = rss_mb()
    start = time.perf_counter()
    coarse = faiss.IndexFlatIP(d)
    ivfpq = faiss.IndexIVFPQ(coarse, d, lists, 32, 8, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(1)
    ivfpq.train(x[rng.choice(n, size=min(n, 64 * lists), replace=False)])
    ivfpq.add(x)
    build = time.perf_counter() - start
    mb = rss_mb() - before
    for nprobe in (64, 256, 512):
        ivfpq.nprobe = nprobe
        samples, found = timed(ivfpq.search, q, args.k)
        report(f"IndexIVFPQ {lists}/{nprobe} PQ32", samples, found, truth, mb, build)
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")


if __name__ == "__main__":
    main()
