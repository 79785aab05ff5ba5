// Draws faces on a photo: the photo is an <img> from an object URL, each face box an element
// positioned over it in percent of the image (so it follows the layout at any width), the five
// landmarks as dots and, when asked, the dense mesh on a canvas. Nothing here keeps image bytes.

import { h } from './ui.js';

const LANDMARKS = ['right_eye', 'left_eye', 'nose', 'mouth_right', 'mouth_left'];

/** Resolves to the image's natural size once it has loaded. */
function naturalSize(img) {
  if (img.complete && img.naturalWidth) return Promise.resolve({ width: img.naturalWidth, height: img.naturalHeight });
  return new Promise((resolve, reject) => {
    img.addEventListener('load', () => resolve({ width: img.naturalWidth, height: img.naturalHeight }), { once: true });
    img.addEventListener('error', () => reject(new Error('the browser cannot show this image')), { once: true });
  });
}

function place(element, box, size) {
  element.style.left = `${(box.x / size.width) * 100}%`;
  element.style.top = `${(box.y / size.height) * 100}%`;
  element.style.width = `${(box.width / size.width) * 100}%`;
  element.style.height = `${(box.height / size.height) * 100}%`;
}

/**
 * A photo with its faces. `faces`: objects with `bbox` and optionally `landmarks` and
 * `dense_landmarks`; `label(face, index)` gives each box's caption (default: its number);
 * `tone(face)` a class for the box (`match`, `unknown`); `size` the image size the server
 * measured (the loaded image's own size otherwise). Returns the figure; its boxes appear once the
 * image has loaded (`figure.ready` resolves then).
 */
export function photo({ url, alt, faces = [], size = null, label = null, tone = null, mesh = false }) {
  const img = h('img', { src: url, alt });
  const overlay = h('div', { class: 'overlay' });
  const figure = h('div', { class: 'photo' }, img, overlay);
  figure.ready = naturalSize(img).then((natural) => {
    const measured = size && size.width ? size : natural;
    if (mesh) overlay.append(meshCanvas(faces, measured));
    faces.forEach((face, index) => {
      const caption = label ? label(face, index) : String(index + 1);
      const box = h('div', { class: `box ${tone ? tone(face) : ''}`, 'data-face-box': true, 'data-face': index + 1 },
        h('span', { class: 'tag' }, caption));
      place(box, face.bbox, measured);
      overlay.append(box);
      for (const name of LANDMARKS) {
        const point = face.landmarks && face.landmarks[name];
        if (!point) continue;
        const dot = h('span', { class: 'landmark', title: name.replace('_', ' ') });
        dot.style.left = `${(point.x / measured.width) * 100}%`;
        dot.style.top = `${(point.y / measured.height) * 100}%`;
        overlay.append(dot);
      }
    });
    return measured;
  });
  return figure;
}

/** The dense landmarks of every face as points on a canvas the size of the overlay. */
function meshCanvas(faces, size) {
  const scale = Math.min(1, 1600 / Math.max(size.width, size.height));
  const canvas = h('canvas', { class: 'mesh', width: Math.round(size.width * scale), height: Math.round(size.height * scale) });
  const context = canvas.getContext('2d');
  context.fillStyle = 'rgba(80, 220, 255, 0.85)';
  const radius = Math.max(1, 1.5 * scale * Math.max(size.width, size.height) / 1000);
  for (const face of faces) {
    for (const point of (face.dense_landmarks && face.dense_landmarks.points) || []) {
      context.beginPath();
      context.arc(point[0] * scale, point[1] * scale, radius, 0, 2 * Math.PI);
      context.fill();
    }
  }
  return canvas;
}

/**
 * Cuts the boxes out of an image file into small canvases (gallery thumbnails), in the browser
 * only. The decoded bitmap is closed at once; the canvases are the only copies and live as long
 * as the page keeps them.
 */
export async function thumbnails(file, boxes, side = 72) {
  const bitmap = await createImageBitmap(file);
  try {
    return boxes.map((box) => {
      const canvas = h('canvas', { class: 'thumb', width: side, height: side, role: 'img', 'aria-label': 'enrolled face' });
      const context = canvas.getContext('2d');
      // A square around the box, a little larger, so the whole face shows.
      const edge = Math.max(box.width, box.height) * 1.15;
      const x = box.x + box.width / 2 - edge / 2;
      const y = box.y + box.height / 2 - edge / 2;
      context.drawImage(bitmap, x, y, edge, edge, 0, 0, side, side);
      return canvas;
    });
  } finally {
    bitmap.close();
  }
}
