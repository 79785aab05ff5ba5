// Verify: two photos side by side through POST /v1/verify, the similarity on a scale with the
// model's threshold marked.

import { call } from './api.js';
import { h, attempt, dropZone, PhotoSlot, numberValue } from './ui.js';
import { photo } from './draw.js';

const $ = (id) => document.getElementById(id);
const sides = [
  { file: null, slot: new PhotoSlot(), input: 'verify-file1', holder: 'verify-photo1', key: 'image1' },
  { file: null, slot: new PhotoSlot(), input: 'verify-file2', holder: 'verify-photo2', key: 'image2' },
];

export const verifyPage = {
  name: 'verify',
  needs: null, // anonymous callers may verify in development; the API decides
  init() {
    const zones = document.querySelectorAll('#page-verify [data-drop]');
    sides.forEach((side, index) => {
      dropZone(zones[index], $(side.input), (file) => {
        side.file = file;
        show(side, []);
        if (sides.every((s) => s.file)) run();
      });
    });
    $('verify-again').addEventListener('click', () => (sides.every((s) => s.file) ? run() : $('verify-file1').focus()));
  },
};

function show(side, faces) {
  const figure = photo({ url: side.slot.set(side.file), alt: side.file.name, faces });
  $(side.holder).replaceChildren(figure);
}

async function run() {
  const result = $('verify-result');
  const form = new FormData();
  for (const side of sides) form.append(side.key, side.file, side.file.name);
  const threshold = numberValue($('verify-threshold'));
  const answer = await attempt(() =>
    call('POST', '/v1/verify', { form, query: { threshold }, label: 'comparing the two faces' }));
  if (!answer) {
    result.replaceChildren();
    return;
  }
  const data = answer.data;
  sides.forEach((side) => {
    const face = data.faces[side.key];
    show(side, face ? [face] : []);
  });
  result.replaceChildren(scale(data));
}

/** The similarity on a 0–1 scale (a negative one sits at 0) with the threshold marked. */
function scale(data) {
  const position = (value) => `${Math.max(0, Math.min(1, value)) * 100}%`;
  const same = data.is_same_person;
  const value = h('div', { class: 'scale-value' });
  value.style.width = position(data.similarity);
  const mark = h('div', { class: 'scale-threshold', title: `threshold ${data.threshold_used}` },
    h('span', {}, `threshold ${data.threshold_used.toFixed(2)}`));
  mark.style.left = position(data.threshold_used);
  return h('div', { class: `card verdict ${same ? 'match' : 'no-match'}` },
    h('p', { class: 'verdict-text', 'data-verdict': same ? 'match' : 'no-match' },
      same ? 'Same person' : 'Different people'),
    h('div', {
      class: 'scale', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 1,
      'aria-valuenow': data.similarity, 'aria-label': `similarity ${data.similarity.toFixed(3)}, threshold ${data.threshold_used.toFixed(2)}`,
    }, value, mark),
    h('div', { class: 'scale-axis', 'aria-hidden': 'true' }, h('span', {}, '0'), h('span', {}, '0.5'), h('span', {}, '1')),
    h('p', {}, `Cosine similarity ${data.similarity.toFixed(3)} with ${data.model}; `
      + `the same person from ${data.threshold_used.toFixed(2)} up.`));
}
