#!/usr/bin/env python3
"""Real SFace embeddings of the test photos under augmentations, for the realistic search gallery
(bench/search_gallery.py). Uses the peer's YuNet + SFace pipeline (bench/peer/server.py: same
letterbox, thresholds and 5-point alignment as FaceSocial), so it runs in .venv-peer.

Every face found in a photo is cut out with a margin (twice its box), and each augmentation of
that cut-out (flip, brightness, blur, noise, JPEG, small rotations, off-centre crops, scale) is
detected again and its largest face embedded. Faces are then grouped into identities: the photos
named after one person are one identity, and a face of a group photo joins the identity whose mean
embedding it is closest to when that cosine is >= 0.40 (SFace's same-person threshold is about
0.36), else it is an identity of its own.

`--recognizer w600k_mbf` embeds with InsightFace's 512-d model instead (installed only with its
licence opt-in). Writes an .npz with `embeddings` (n x 128 or 512, L2-normalised float32), `identity` (n, int32) and
`source` (n, int32: which photo face each row came from)."""
import argparse
import glob
import os
import sys

import cv2
import numpy as np


def augmentations(chip, rng):
    """(name, image) pairs: the cut-out itself and its variations."""
    h, w = chip.shape[:2]
    out = [("orig", chip), ("flip", cv2.flip(chip, 1))]
    for gain in (0.5, 0.7, 1.3, 1.6):
        out.append((f"bright{gain}", np.clip(chip.astype(np.float32) * gain, 0, 255).astype(np.uint8)))
    for sigma in (1.0, 2.0, 3.0):
        out.append((f"blur{sigma}", cv2.GaussianBlur(chip, (0, 0), sigma)))
    for angle in (-15, -8, 8, 15):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out.append((f"rot{angle}", cv2.warpAffine(chip, m, (w, h), borderMode=cv2.BORDER_REFLECT)))
    for quality in (20, 40):
        ok, data = cv2.imencode(".jpg", chip, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append((f"jpeg{quality}", cv2.imdecode(data, cv2.IMREAD_COLOR)))
    noise = rng.normal(0, 12, chip.shape)
    out.append(("noise", np.clip(chip + noise, 0, 255).astype(np.uint8)))
    for i in range(6):
        # Off-centre crops keeping 75-90 % of each side.
        fx, fy = rng.uniform(0.75, 0.9, 2)
        cw, ch = int(w * fx), int(h * fy)
        x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        out.append((f"crop{i}", chip[y0 : y0 + ch, x0 : x0 + cw]))
    for scale in (0.5, 0.35):
        small = cv2.resize(chip, (max(8, int(w * scale)), max(8, int(h * scale))), interpolation=cv2.INTER_AREA)
        out.append((f"scale{scale}", small))
    # Two combined ones: flip + dark + blur, rotate + bright + crop.
    combo = cv2.GaussianBlur(np.clip(cv2.flip(chip, 1) * 0.7, 0, 255).astype(np.uint8), (0, 0), 1.5)
    out.append(("combo1", combo))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -10, 1.0)
    combo = cv2.warpAffine(np.clip(chip * 1.3, 0, 255).astype(np.uint8), m, (w, h), borderMode=cv2.BORDER_REFLECT)
    out.append(("combo2", combo[h // 16 : h - h // 16, w // 16 : w - w // 16]))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", default="/work/shared/testdata")
    parser.add_argument("--models", default="var/models")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--recognizer", choices=["sface", "w600k_mbf"], default="sface",
        help="w600k_mbf: InsightFace's 512-d model (non-commercial licence; installed only with the opt-in)")
    args = parser.parse_args()
    os.environ["MODEL_DIR"] = args.models
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "peer"))
    import server  # noqa: E402  (the peer's detector and recognizer)

    embed = server.embed
    if args.recognizer == "w600k_mbf":
        import onnxruntime as ort

        session = ort.InferenceSession(
            os.path.join(args.models, "recognition/w600k_mbf.onnx"), providers=["CPUExecutionProvider"])

        def embed(image, face):
            # The same five-point alignment as SFace's; the network wants RGB in (x - 127.5) / 127.5.
            matrix, _ = cv2.estimateAffinePartial2D(face["landmarks"].astype(np.float32), server.TEMPLATE,
                                                    method=cv2.LMEDS)
            chip = cv2.cvtColor(cv2.warpAffine(image, matrix, (112, 112)), cv2.COLOR_BGR2RGB).astype(np.float32)
            vector = session.run(None, {"input.1": ((chip - 127.5) / 127.5).transpose(2, 0, 1)[None]})[0][0]
            return vector / np.linalg.norm(vector)

    rng = np.random.default_rng(7)
    files = sorted(
        p for p in glob.glob(os.path.join(args.photos, "*")) if p.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    names = {
        "obama": "obama",
        "biden": "biden",
        "kit_harington": "kit_harington",
        "rose_leslie": "rose_leslie",
        "tom_hanks": "tom_hanks",
    }
    embeddings, sources, named = [], [], []
    source = 0
    for path in files:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            continue
        faces = server.detect(image)
        base = os.path.basename(path)
        label = next((v for k, v in names.items() if base.startswith(k)), None)
        for face in faces:
            x, y, w, h = face["bbox"]
            if w < 24 or h < 24:
                continue
            cx, cy, side = x + w / 2, y + h / 2, max(w, h) * 2
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            x1, y1 = int(min(image.shape[1], cx + side / 2)), int(min(image.shape[0], cy + side / 2))
            chip = image[y0:y1, x0:x1]
            count = 0
            for _, variant in augmentations(chip, rng):
                found = server.detect(variant)
                if not found:
                    continue
                largest = max(found, key=lambda f: f["bbox"][2] * f["bbox"][3])
                embeddings.append(embed(variant, largest).astype(np.float32))
                sources.append(source)
                count += 1
            # Single-person files name their identity; faces of group photos are matched later.
            named.append(label if len(faces) == 1 else None)
            print(f"{base}: face {source} ({'?' if named[-1] is None else named[-1]}), {count} embeddings")
            source += 1
    embeddings = np.stack(embeddings)
    sources = np.array(sources, np.int32)
    # Identities: named sources first, then each unnamed one joins the nearest identity or starts one.
    identity_of_source = {}
    centres = {}
    labels = sorted({n for n in named if n is not None})
    for s, n in enumerate(named):
        if n is not None:
            identity_of_source[s] = labels.index(n)
    for i in range(len(labels)):
        members = [s for s, v in identity_of_source.items() if v == i]
        c = embeddings[np.isin(sources, members)].mean(0)
        centres[i] = c / np.linalg.norm(c)
    for s, n in enumerate(named):
        if n is not None:
            continue
        c = embeddings[sources == s].mean(0)
        c /= np.linalg.norm(c)
        best = max(centres, key=lambda i: float(centres[i] @ c)) if centres else None
        if best is not None and float(centres[best] @ c) >= 0.40:
            identity_of_source[s] = best
        else:
            identity_of_source[s] = len(centres)
            centres[len(centres)] = c
    identity = np.array([identity_of_source[s] for s in sources], np.int32)
    np.savez(args.out, embeddings=embeddings, identity=identity, source=sources)
    print(f"{len(embeddings)} embeddings, {source} photo faces, {len(centres)} identities -> {args.out}")


if __name__ == "__main__":
    main()
