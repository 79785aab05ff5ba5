"""A minimal face server in the original design's stack, for benchmarking against FaceSocial.

Same models (YuNet float32, SFace float32), same semantics as FaceSocial's /v1/detect and
/v1/verify: YuNet on a 640x640 top-left letterbox, score = sqrt(cls*obj) >= 0.6, NMS IoU 0.3, boxes
clipped to the image; verification aligns the largest face onto the 112x112 template with a
similarity transform and compares L2-normalised SFace embeddings by cosine. Images are decoded with
OpenCV (EXIF orientation applied), inference runs on onnxruntime's CPU provider.

Run: MODEL_DIR=var/models uvicorn --app-dir bench/peer server:app --workers 1
(PEER_THREADS=1 limits onnxruntime and OpenCV to one thread each per worker.)
"""

import os

import cv2
import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import JSONResponse

MODEL_DIR = os.environ.get("MODEL_DIR", "var/models")
SIZE = 640
STRIDES = (8, 16, 32)
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)

options = ort.SessionOptions()
# PEER_THREADS=1 gives each worker one onnxruntime and one OpenCV thread, so two workers on two
# cores do not fight over them (the benchmark runs the peer both ways). Unset: the libraries' defaults.
if os.environ.get("PEER_THREADS"):
    threads = int(os.environ["PEER_THREADS"])
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    cv2.setNumThreads(threads)
detector = ort.InferenceSession(
    os.path.join(MODEL_DIR, "detection/yunet_2023mar.onnx"), options, providers=["CPUExecutionProvider"]
)
recognizer = ort.InferenceSession(
    os.path.join(MODEL_DIR, "recognition/sface_2021dec.onnx"), options, providers=["CPUExecutionProvider"]
)
output_names = [o.name for o in detector.get_outputs()]

app = FastAPI()


def decode(data: bytes):
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # BGR, EXIF applied
    if image is None:
        raise ValueError("not a decodable image")
    return image


def detect(image, threshold=0.6, nms=0.3):
    height, width = image.shape[:2]
    scale = min(SIZE / width, SIZE / height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = np.zeros((SIZE, SIZE, 3), np.float32)
    canvas[:h, :w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    blob = canvas.transpose(2, 0, 1)[None]
    outputs = dict(zip(output_names, detector.run(output_names, {"input": blob})))
    boxes, scores, landmarks = [], [], []
    for stride in STRIDES:
        cols = SIZE // stride
        cls = np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1)
        score = np.sqrt(cls * obj)
        keep = np.where(score >= threshold)[0]
        if keep.size == 0:
            continue
        row, col = (keep // cols).astype(np.float32), (keep % cols).astype(np.float32)
        b = outputs[f"bbox_{stride}"][0, keep]
        k = outputs[f"kps_{stride}"][0, keep]
        cx, cy = (col + b[:, 0]) * stride, (row + b[:, 1]) * stride
        bw, bh = np.exp(b[:, 2]) * stride, np.exp(b[:, 3]) * stride
        boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1) / scale)
        xs = (col[:, None] + k[:, 0::2]) * stride / scale
        ys = (row[:, None] + k[:, 1::2]) * stride / scale
        landmarks.append(np.stack([xs, ys], 2))
        scores.append(score[keep])
    if not boxes:
        return []
    boxes, scores, landmarks = np.concatenate(boxes), np.concatenate(scores), np.concatenate(landmarks)
    # Clip to the image, as FaceSocial does, then suppress overlaps.
    x0 = np.clip(boxes[:, 0], 0, width)
    y0 = np.clip(boxes[:, 1], 0, height)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    boxes = np.stack([x0, y0, x1 - x0, y1 - y0], 1)
    keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), threshold, nms)
    faces = []
    for i in np.array(keep).reshape(-1):
        faces.append({"bbox": boxes[i], "score": float(scores[i]), "landmarks": landmarks[i]})
    return faces


def as_json(face):
    x, y, w, h = (round(float(v), 2) for v in face["bbox"])
    names = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
    points = {n: {"x": round(float(p[0]), 2), "y": round(float(p[1]), 2)} for n, p in zip(names, face["landmarks"])}
    return {"bbox": {"x": x, "y": y, "width": w, "height": h}, "score": round(face["score"], 4), "landmarks": points}


def embed(image, face):
    matrix, _ = cv2.estimateAffinePartial2D(face["landmarks"].astype(np.float32), TEMPLATE, method=cv2.LMEDS)
    chip = cv2.warpAffine(image, matrix, (112, 112))
    blob = cv2.cvtColor(chip, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None]
    vector = recognizer.run(None, {"data": blob})[0][0]
    return vector / np.linalg.norm(vector)


def error(status, code, message):
    return JSONResponse({"error": {"code": code, "message": message, "details": {}}}, status_code=status)


@app.post("/v1/detect")
async def detect_route(image: UploadFile = File(...)):
    try:
        decoded = decode(await image.read())
    except ValueError as exc:
        return error(422, "INVALID_IMAGE_FORMAT", str(exc))
    faces = detect(decoded)
    height, width = decoded.shape[:2]
    return {"data": {"faces": [as_json(f) for f in faces], "face_count": len(faces),
                     "image": {"width": width, "height": height}}}


@app.post("/v1/verify")
async def verify_route(image1: UploadFile = File(...), image2: UploadFile = File(...)):
    vectors = []
    for upload in (image1, image2):
        try:
            decoded = decode(await upload.read())
        except ValueError as exc:
            return error(422, "INVALID_IMAGE_FORMAT", str(exc))
        faces = detect(decoded)
        if not faces:
            return error(422, "NO_FACE_DETECTED", "no face")
        largest = max(faces, key=lambda f: f["bbox"][2] * f["bbox"][3])
        vectors.append(embed(decoded, largest))
    similarity = float(np.dot(vectors[0], vectors[1]))
    return {"data": {"similarity": round(similarity, 4), "threshold_used": 0.45, "is_same_person": similarity >= 0.45}}


@app.get("/health")
async def health():
    return {"data": {"status": "ok"}}
