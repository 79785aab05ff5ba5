#!/usr/bin/env python3
"""Galleries for the identify search benchmark (scripts/bench-search.sh), written as raw files that
both `facesocial-search-bench` and the FAISS baseline (bench/search_baseline.py) read:
NAME.f32 (rows x 128 float32, unit rows; realistic: the dimension of the real embeddings), NAME.subjects.i32 (rows int32) and NAME.queries.f32.
Smaller galleries are prefixes of the file (`--rows` in the readers), so one file serves 1M and 10M.

random: uniform unit vectors (Gaussian, normalised), one face per subject; queries likewise. The
worst case for any index: nothing clusters.

realistic: built from real SFace embeddings of the test photos under augmentations
(bench/search_embeddings.py), since a 10M gallery cannot be 10M real people:
  * identity centres: the real identities' mean embeddings give a mean m and a covariance S; S has
    rank < 13, so it is shrunk towards the isotropic matrix of the same trace,
    C = (1 - a) S + a tr(S)/128 I with a = 0.5, and a centre is normalise(m + t * N(0, C)), with
    t chosen so that synthetic centres have the real centres' mean pairwise cosine;
  * faces: normalise(centre + N(0, W)), W the covariance of the real embeddings around their
    identity's centre (all augmentations: the measured within-identity spread);
  * faces per identity: 1 + Poisson(4) (mean 5: 10M faces are about 2M people);
  * the real augmented embeddings themselves come first (two thirds of each real identity's; the
    rest are queries);
  * queries: half the held-out real embeddings, half fresh faces (not enrolled) of enrolled
    synthetic identities from the first 100,000 identities (so every prefix of >= 1M rows holds them).
Prints the cosine statistics of the real and the synthetic data side by side."""
import argparse
import os

import numpy as np


def normalise(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def offdiag_mean(g):
    n = g.shape[0]
    return float((g.sum() - np.trace(g)) / (n * n - n))


def realistic(args, rng, out):
    real = np.load(args.real)
    e, ident = real["embeddings"].astype(np.float64), real["identity"]
    d = e.shape[1]  # 128 for SFace, 512 for w600k_mbf
    ids = np.unique(ident)
    centres = normalise(np.stack([e[ident == i].mean(0) for i in ids])).astype(np.float64)
    of = {i: k for k, i in enumerate(ids)}
    resid = e - centres[[of[i] for i in ident]]
    within = np.cov(resid.T)
    m = centres.mean(0)
    s = np.cov(centres.T)
    c = 0.5 * s + 0.5 * np.trace(s) / s.shape[0] * np.eye(s.shape[0])
    lc = np.linalg.cholesky(c + 1e-9 * np.eye(c.shape[0]))
    lw = np.linalg.cholesky(within + 1e-9 * np.eye(within.shape[0]))
    target = offdiag_mean(centres @ centres.T)
    # The spread t that gives the real centres' mean pairwise cosine (bisection on a sample).
    probe = rng.standard_normal((2000, d))
    lo, hi = 0.1, 20.0
    for _ in range(40):
        t = (lo + hi) / 2
        x = normalise(m + t * probe @ lc.T)
        if offdiag_mean(x @ x.T) > target:
            lo = t
        else:
            hi = t
    t = (lo + hi) / 2

    # Real embeddings: two thirds of each identity into the gallery, the rest held out as queries.
    keep = np.zeros(len(e), bool)
    for i in ids:
        rows = np.where(ident == i)[0]
        rng.shuffle(rows)
        keep[rows[: (2 * len(rows)) // 3]] = True
    held = normalise(e[~keep])
    rows_written = 0
    vec = open(out + ".f32", "wb")
    sub = open(out + ".subjects.i32", "wb")
    real_rows = normalise(e[keep])
    vec.write(real_rows.tobytes())
    sub.write(ident[keep].astype(np.int32).tobytes())
    rows_written += len(real_rows)
    next_subject = int(ids.max()) + 1
    first_synthetic = next_subject
    chunk_ids = 50_000
    m32, lc32, lw32 = m.astype(np.float32), lc.T.astype(np.float32), lw.T.astype(np.float32)
    query_centres = None
    while rows_written < args.rows:
        cs = normalise(m32 + np.float32(t) * (rng.standard_normal((chunk_ids, d), dtype=np.float32) @ lc32))
        if query_centres is None or len(query_centres) < 100_000:
            part = cs[: 100_000 - (0 if query_centres is None else len(query_centres))]
            query_centres = part if query_centres is None else np.concatenate([query_centres, part])
        counts = 1 + rng.poisson(4, chunk_ids)
        owner = np.repeat(np.arange(chunk_ids), counts)
        faces = cs[owner]
        faces += rng.standard_normal((len(owner), d), dtype=np.float32) @ lw32
        faces = normalise(faces)
        take = min(len(faces), args.rows - rows_written)
        vec.write(faces[:take].tobytes())
        sub.write((owner[:take] + next_subject).astype(np.int32).tobytes())
        rows_written += take
        next_subject += chunk_ids
    vec.close()
    sub.close()
    half = args.queries // 2
    pick = rng.choice(len(held), size=min(half, len(held)), replace=False)
    qid = rng.integers(0, len(query_centres), args.queries - len(pick))
    fresh = normalise(query_centres[qid] + rng.standard_normal((len(qid), d)) @ lw.T)
    queries = np.concatenate([held[pick], fresh]).astype(np.float32)
    queries = queries[rng.permutation(len(queries))]
    queries.tofile(out + ".queries.f32")

    # What the model reproduces: cosine statistics, real vs synthetic.
    gallery = np.fromfile(out + ".f32", np.float32, count=200_000 * d).reshape(-1, d)
    gsub = np.fromfile(out + ".subjects.i32", np.int32, count=200_000)
    syn = gallery[gsub >= first_synthetic][:20_000]
    syn_sub = gsub[gsub >= first_synthetic][:20_000]
    g = syn @ syn.T
    same = syn_sub[:, None] == syn_sub[None, :]
    np.fill_diagonal(same, False)
    diff = syn_sub[:, None] != syn_sub[None, :]
    er = normalise(e)
    gr = er @ er.T
    same_r = ident[:, None] == ident[None, :]
    np.fill_diagonal(same_r, False)
    print(
        f"realistic: {len(e)} real embeddings of {len(ids)} identities; centre spread t={t:.3f}\n"
        f"  same-person cosine  real {gr[same_r].mean():.3f} ± {gr[same_r].std():.3f}   "
        f"synthetic {g[same].mean():.3f} ± {g[same].std():.3f}\n"
        f"  other-person cosine real {gr[~(ident[:, None] == ident[None, :])].mean():.3f} ± "
        f"{gr[~(ident[:, None] == ident[None, :])].std():.3f}   synthetic {g[diff].mean():.3f} ± {g[diff].std():.3f}\n"
        f"  {rows_written} rows, {next_subject} subject numbers, {len(queries)} queries "
        f"({len(pick)} held-out real, {len(qid)} fresh synthetic)"
    )


def uniform(args, rng, out):
    with open(out + ".f32", "wb") as vec:
        done = 0
        while done < args.rows:
            n = min(1_000_000, args.rows - done)
            vec.write(normalise(rng.standard_normal((n, 128), dtype=np.float32)).tobytes())
            done += n
    np.arange(args.rows, dtype=np.int32).tofile(out + ".subjects.i32")
    normalise(rng.standard_normal((args.queries, 128), dtype=np.float32)).tofile(out + ".queries.f32")
    print(f"random: {args.rows} rows, one subject each, {args.queries} queries")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, help="folder for the files")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--real", help="the .npz of bench/search_embeddings.py")
    parser.add_argument("--kind", choices=["random", "realistic"], required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(2024 if args.kind == "random" else 2025)
    out = os.path.join(args.out, args.kind)
    (uniform if args.kind == "random" else realistic)(args, rng, out)


if __name__ == "__main__":
    main()
