// Analyze: one photo through POST /v1/analyze, every face drawn on it with its analyses.

import { call } from './api.js';
import { h, attempt, dropZone, PhotoSlot, numberValue, facts, formatMs } from './ui.js';
import { photo } from './draw.js';

const slot = new PhotoSlot();
let file = null;

const $ = (id) => document.getElementById(id);

export const analyzePage = {
  name: 'analyze',
  needs: null, // anonymous callers may analyse in development; the API decides
  init() {
    const zone = document.querySelector('#page-analyze [data-drop]');
    dropZone(zone, $('analyze-file'), (picked) => {
      file = picked;
      run();
    });
    $('analyze-again').addEventListener('click', () => (file ? run() : $('analyze-file').focus()));
  },
};

function settings() {
  const analyses = [...document.querySelectorAll('#page-analyze input[name=analysis]:checked')].map((box) => box.value);
  return {
    confidence_threshold: numberValue($('analyze-confidence')),
    min_face_size: numberValue($('analyze-min-size')),
    max_faces: numberValue($('analyze-max-faces')),
    min_quality: numberValue($('analyze-min-quality')),
    liveness_threshold: numberValue($('analyze-liveness')),
    // Quality is always computed; asking for it alone keeps the others off.
    analyses: (analyses.length ? analyses : ['quality']).join(','),
  };
}

async function run() {
  const result = $('analyze-result');
  const query = settings();
  const form = new FormData();
  form.append('image', file, file.name);
  const answer = await attempt(() => call('POST', '/v1/analyze', { form, query, label: 'analysing the photo' }));
  if (!answer) {
    result.replaceChildren();
    slot.release();
    return;
  }
  const { faces, image } = answer.data;
  const figure = photo({
    url: slot.set(file),
    alt: `${file.name} with ${faces.length} ${faces.length === 1 ? 'face' : 'faces'} drawn`,
    faces,
    size: image,
    mesh: query.analyses.includes('landmarks'),
  });
  const summary = h('p', { class: 'summary', 'data-face-count': faces.length },
    `${faces.length} ${faces.length === 1 ? 'face' : 'faces'} in ${image.width} × ${image.height} px, `
    + `${formatMs(answer.meta.processing_ms)} in all.`);
  const timing = h('div', { class: 'timing' });
  result.replaceChildren(summary, h('div', { class: 'analysis' }, figure, h('ol', { class: 'faces' }, faces.map(faceCard))), timing);
  await figure.ready.catch(() => {});
  timing.append(await modelTimes(answer.meta));
}

function faceCard(face, index) {
  const quality = face.quality;
  const reasons = quality
    ? Object.entries(quality.parts || {}).filter(([, value]) => value < 1).map(([part, value]) => `${part} ${value.toFixed(2)}`)
    : [];
  const attributes = face.attributes || {};
  const liveness = face.liveness;
  const mesh = face.dense_landmarks;
  return h('li', { class: 'card face', 'data-face': index + 1 },
    h('h2', {}, `Face ${index + 1}`),
    facts([
      ['Detector score', face.score.toFixed(3)],
      ['Age', attributes.age ? `${attributes.age.value.toFixed(0)} (${attributes.age.low.toFixed(0)}–${attributes.age.high.toFixed(0)})` : null],
      ['Gender', attributes.gender ? `${attributes.gender.value} (${(attributes.gender.confidence * 100).toFixed(0)} %)` : null],
      ['Liveness', liveness
        ? `${liveness.is_real ? 'real' : 'spoof'} (margin ${liveness.score.toFixed(2)}, threshold ${liveness.threshold.toFixed(2)}, `
          + `p ${liveness.probability.toFixed(3)})`
        : null],
      ['Quality', quality ? `${quality.score.toFixed(2)}${reasons.length ? ` — lowered by ${reasons.join(', ')}` : ' — nothing lowers it'}` : null],
      ['Quality checks (medium)', quality
        ? ((quality.problems || []).length
          ? quality.problems.map((p) => `${p.code} (${p.measure} ${p.value.toFixed(1)}, limit ${p.threshold})`).join('; ')
          : 'all passed')
        : null],
      ['Head pose', face.pose
        ? `yaw ${face.pose.yaw.toFixed(1)}°, pitch ${face.pose.pitch.toFixed(1)}°, roll ${face.pose.roll.toFixed(1)}° `
          + `(from the ${face.pose.source === 'mesh' ? '468-point mesh' : 'five landmarks'})`
        : null],
      ['Face size', quality ? `${quality.size.toFixed(0)} px, sharpness ${quality.sharpness.toFixed(0)}, brightness ${quality.brightness.toFixed(0)}` : null],
      ['Mesh', mesh ? `${mesh.count} points (presence ${mesh.presence.toFixed(2)})` : null],
      ['Expression', face.emotion
        ? Object.entries(face.emotion.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 3)
          .map(([label, p]) => `${label} ${(p * 100).toFixed(0)} %`).join(', ')
        : null],
      ['Found turned', face.rotation ? `${face.rotation}° clockwise` : null],
    ]));
}

/**
 * The models that served the call: the time each took in this call (`meta.model_ms`, summed over
 * the faces, which run in parallel), and its median and 95th percentile over recent uses from
 * GET /system/models when this caller may read it.
 */
async function modelTimes(meta) {
  const used = meta.models || [];
  const spent = meta.model_ms || {};
  let models = null;
  try {
    models = (await call('GET', '/system/models', { quiet: true })).data.models;
  } catch {
    // Not readable by this caller (production without system:monitor): this call's times alone.
  }
  const byID = new Map((models || []).map((model) => [model.id, model]));
  return h('div', { class: 'card' },
    h('h2', {}, 'Models of this call'),
    h('p', { class: 'note' }, `The call took ${formatMs(meta.processing_ms)} on the server. `
      + '"This call" is each model\'s time in it, summed over the faces (they run in parallel). '
      + (models ? 'p50 and p95 are over the model\'s recent uses.' : 'Sign in with system:monitor to see each model\'s typical time.')),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Model', 'This call', 'p50', 'p95', 'Uses', 'Device'].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, used.map((label) => {
        const model = byID.get(label.split('@')[0]);
        return h('tr', { 'data-model-time': label },
          h('td', {}, label),
          h('td', {}, label in spent ? formatMs(spent[label]) : '—'),
          h('td', {}, model ? formatMs(model.p50_ms) : '—'),
          h('td', {}, model ? formatMs(model.p95_ms) : '—'),
          h('td', {}, model ? String(model.uses) : '—'),
          h('td', {}, model && model.device ? `${model.device}:${model.pool}` : '—'));
      })))));
}
