// Galleries: collections, subjects with thumbnails cut from the enrolled photos in this browser
// only, enrolment by drop, identify with each face labelled, erase and export a subject; faces
// added without a name, shown in the groups the server made of them, named or erased a group at a time.

import { call, can } from './api.js';
import { h, attempt, dropZone, eraseButton, PhotoSlot, numberValue } from './ui.js';
import { photo, thumbnails } from './draw.js';

const $ = (id) => document.getElementById(id);
// An external id made from a display name when none is given: "Rose Leslie" → "rose-leslie".
const slug = (text) => text.trim().toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
/** subject id → canvases of its enrolled faces: page memory only, gone on reload. */
const thumbs = new Map();
/** unnamed face id → its canvas, cut in this browser when the photo was added: page memory only. */
const unnamedThumbs = new Map();
const identifySlot = new PhotoSlot();
// The identify panel's "keep unknown faces" box, kept across the page's re-renders.
let keepUnmatched = false;
let selected = null;

export const galleriesPage = {
  name: 'galleries',
  needs: 'collections:read',
  init() {
    $('collection-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const name = $('collection-name').value.trim();
      const json = { name, recognition_model: $('collection-model').value };
      const answer = await attempt(() => call('POST', '/v1/collections', { json, label: 'creating the collection' }));
      if (!answer) return;
      $('collection-name').value = '';
      selected = answer.data.id;
      await loadCollections();
    });
  },
  async show() {
    for (const element of document.querySelectorAll('#page-galleries [data-needs]')) {
      element.hidden = !can(element.dataset.needs);
    }
    await loadCollections();
  },
  reset() {
    thumbs.clear();
    unnamedThumbs.clear();
    identifySlot.release();
    selected = null;
    $('collections').replaceChildren();
    $('collection-view').replaceChildren(h('p', { class: 'note' }, 'Choose or create a collection.'));
  },
};

async function loadCollections() {
  const answer = await attempt(() => call('GET', '/v1/collections', { label: 'reading the collections' }));
  if (!answer) return;
  const items = answer.data.items;
  $('collections').replaceChildren(...items.map((collection) => h('li', {},
    h('button', {
      type: 'button', class: collection.id === selected ? 'link current' : 'link',
      'aria-current': collection.id === selected ? 'true' : false,
      onclick: () => {
        selected = collection.id;
        loadCollections();
      },
    }, collection.name))));
  if (!items.length) $('collections').append(h('li', { class: 'note' }, 'No collection yet.'));
  const collection = items.find((item) => item.id === selected);
  if (collection) await showCollection(collection);
}

async function showCollection(collection) {
  const answer = await attempt(() =>
    call('GET', `/v1/collections/${collection.id}/subjects`, { query: { limit: 500 }, label: 'reading the people' }));
  if (!answer) return;
  const subjects = answer.data.items;
  const view = $('collection-view');
  const previous = view.dataset.collection === collection.id ? view.querySelector('#identify-result') : null;
  view.dataset.collection = collection.id;
  const faces = subjects.reduce((sum, subject) => sum + (subject.face_count || 0), 0);
  view.replaceChildren(
    h('h2', {}, collection.name),
    h('p', { class: 'note' }, `${answer.data.total} ${answer.data.total === 1 ? 'person' : 'people'}, ${faces} `
      + `${faces === 1 ? 'face' : 'faces'} enrolled${answer.data.total > subjects.length ? ` (the first ${subjects.length} shown)` : ''}; `
      + `recognition model ${collection.recognition_model}.`),
    can('collections:write') ? subjectForm(collection) : null,
    h('ul', { class: 'subjects', 'aria-label': 'People' },
      subjects.length ? subjects.map((subject) => subjectCard(collection, subject)) : h('li', { class: 'note' }, 'No one enrolled yet.')),
    await unnamedPanel(collection, subjects),
    identifyPanel(collection, previous),
  );
}

/** Faces not named yet: photos dropped here are enrolled without a subject and the server groups
 * their faces by who they look like; each group can be named (a new person or one listed above)
 * or erased. */
async function unnamedPanel(collection, subjects) {
  const base = `/v1/collections/${collection.id}`;
  const answer = await attempt(() => call('GET', `${base}/clusters`, {
    query: { faces: 8, limit: 100 }, label: 'reading the groups of unnamed faces',
  }));
  const clusters = answer ? answer.data.items : [];
  const input = h('input', { id: 'unnamed-file', type: 'file', accept: 'image/jpeg,image/png,image/webp', multiple: true });
  const zone = h('div', { class: 'drop small', 'data-drop': true },
    h('label', { for: 'unnamed-file' }, 'Add photos of people not named yet',
      h('span', {}, 'drop them here, or choose files: their faces are grouped by who they look like')), input);
  dropZone(zone, input, async (file) => {
    const form = new FormData();
    form.append('image', file, file.name);
    const added = await attempt(() => call('POST', `${base}/faces`, { form, query: { mode: 'all' }, label: `adding ${file.name}` }));
    if (!added) return;
    const placed = added.data.faces;
    const canvases = await thumbnails(file, placed.map((item) => item.face.bbox)).catch(() => []);
    placed.forEach((item, index) => { if (canvases[index]) unnamedThumbs.set(item.face.id, canvases[index]); });
  }, { multiple: true, done: () => loadCollections() });
  return h('div', { class: 'card unnamed', id: 'unnamed' },
    h('h2', {}, 'Not named yet'),
    h('p', { class: 'note' }, clusters.length
      ? `${answer.data.total} ${answer.data.total === 1 ? 'group' : 'groups'} of faces, largest first.`
      : 'No unnamed faces.'),
    can('face:enroll') ? zone : null,
    h('ul', { class: 'subjects', 'aria-label': 'Groups of unnamed faces' },
      clusters.map((cluster) => clusterCard(base, cluster, subjects))));
}

function clusterCard(base, cluster, subjects) {
  const id = `cluster-name-${cluster.id}`;
  const name = h('input', { id, maxlength: 200, placeholder: 'a new person' });
  const existing = h('select', { 'aria-label': 'or add to a person listed above' },
    h('option', { value: '' }, 'or add to…'), subjects.map((subject) => h('option', { value: subject.id }, subject.name)));
  const assign = async (event) => {
    event.preventDefault();
    const json = existing.value
      ? { subject_id: existing.value }
      : {
        external_id: slug(name.value),
        name: name.value.trim(),
      };
    if (!json.subject_id && !json.name) return;
    const answer = await attempt(() => call('POST', `${base}/clusters/${cluster.id}/assign`, { json, label: 'naming the group' }));
    if (!answer) return;
    // The group's thumbnails follow its faces to the person.
    const moved = cluster.faces.map((face) => unnamedThumbs.get(face.id)).filter(Boolean);
    thumbs.set(answer.data.subject.id, [...(thumbs.get(answer.data.subject.id) || []), ...moved]);
    loadCollections();
  };
  const erase = eraseButton(cluster.size === 1 ? 'Confirm: erase this face' : `Confirm: erase these ${cluster.size} faces`, async () => {
    if (await attempt(() => call('DELETE', `${base}/clusters/${cluster.id}`, { label: 'erasing the group' }))) loadCollections();
  });
  const canvases = cluster.faces.map((face) => unnamedThumbs.get(face.id)).filter(Boolean);
  // Each face of a larger group can be taken out (a stranger grouped in by mistake); the server
  // groups the rest again, so the group may split.
  const removable = cluster.size > 1 && can('collections:write');
  const faceItems = cluster.faces.map((face, index) => h('figure', { class: 'cluster-face', 'data-face': face.id },
    unnamedThumbs.get(face.id) || h('span', { class: 'note' }, `face ${index + 1}, quality ${face.quality.toFixed(2)}`),
    removable ? eraseButton('Confirm: erase this face', async () => {
      const path = `${base}/clusters/${cluster.id}/faces/${face.id}`;
      if (await attempt(() => call('DELETE', path, { label: 'erasing the face' }))) loadCollections();
    }, { label: 'Not this person' }) : null));
  return h('li', { class: 'card subject cluster', 'data-cluster-size': String(cluster.size) },
    h('h3', {}, `${cluster.size} ${cluster.size === 1 ? 'face' : 'faces'}`),
    canvases.length || removable ? h('div', { class: 'thumbs' }, faceItems) : null,
    canvases.length ? null : h('p', { class: 'note' }, 'Added earlier: no photo here (the server keeps none).'),
    can('collections:write') ? h('form', { class: 'inline-form', onsubmit: assign },
      h('label', { for: id }, 'Name'), name, existing, h('button', { type: 'submit' }, 'Name this group')) : null,
    can('collections:write') ? h('div', { class: 'actions' }, erase) : null);
}

function subjectForm(collection) {
  const name = h('input', { id: 'subject-name', required: true, maxlength: 200 });
  const external = h('input', { id: 'subject-external', maxlength: 200, placeholder: 'from the name' });
  return h('form', {
    class: 'card inline-form',
    onsubmit: async (event) => {
      event.preventDefault();
      const externalID = external.value.trim() || slug(name.value);
      const answer = await attempt(() => call('POST', `/v1/collections/${collection.id}/subjects`, {
        json: { external_id: externalID, name: name.value.trim() }, label: 'adding the person',
      }));
      if (answer) loadCollections();
    },
  },
  h('label', { for: 'subject-name' }, 'New person: name'), name,
  h('label', { for: 'subject-external' }, 'External id'), external,
  h('button', { type: 'submit' }, 'Add'));
}

function subjectCard(collection, subject) {
  const base = `/v1/collections/${collection.id}/subjects/${subject.id}`;
  const id = `enrol-${subject.id}`;
  const canvases = thumbs.get(subject.id) || [];
  const input = h('input', { id, type: 'file', accept: 'image/jpeg,image/png,image/webp' });
  const zone = h('div', { class: 'drop small', 'data-drop': true },
    h('label', { for: id }, `Enrol a photo of ${subject.name}`, h('span', {}, 'drop it here, or choose a file')), input);
  dropZone(zone, input, (file) => enrol(base, subject, file));
  const erase = eraseButton(`Confirm: erase ${subject.name} and every embedding`, async () => {
    const answer = await attempt(() => call('DELETE', base, { label: `erasing ${subject.name}` }));
    if (answer) {
      thumbs.delete(subject.id);
      loadCollections();
    }
  });
  return h('li', { class: 'card subject', 'data-subject': subject.external_id },
    h('h3', {}, subject.name),
    h('p', { class: 'note' }, `${subject.external_id} · ${subject.face_count ?? 0} ${subject.face_count === 1 ? 'face' : 'faces'} enrolled`),
    h('div', { class: 'thumbs' }, canvases.length ? canvases : h('span', { class: 'note' },
      subject.face_count ? 'Enrolled earlier: no photo here (the server keeps none).' : 'No face yet.')),
    can('face:enroll') ? zone : null,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => exportSubject(base, subject) }, 'Export'),
      can('collections:write') ? erase : null));
}

async function enrol(base, subject, file) {
  const form = new FormData();
  form.append('image', file, file.name);
  const answer = await attempt(() => call('POST', `${base}/faces`, { form, label: `enrolling ${subject.name}` }));
  if (!answer) return;
  const canvases = await thumbnails(file, answer.data.faces.map((face) => face.bbox)).catch(() => []);
  thumbs.set(subject.id, [...(thumbs.get(subject.id) || []), ...canvases]);
  loadCollections();
}

async function exportSubject(base, subject) {
  const answer = await attempt(() => call('GET', `${base}/export`, { label: `exporting ${subject.name}` }));
  if (!answer) return;
  const blob = new Blob([JSON.stringify(answer.data, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: `${subject.external_id}-export.json`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function identifyPanel(collection, previous) {
  const input = h('input', { id: 'identify-file', type: 'file', accept: 'image/jpeg,image/png,image/webp' });
  const zone = h('div', { class: 'drop', 'data-drop': true },
    h('label', { for: 'identify-file' }, 'Who is in this photo?', h('span', {}, 'drop it here, or choose a file')), input);
  const threshold = h('input', { id: 'identify-threshold', type: 'number', min: -1, max: 1, step: 0.01 });
  const topK = h('input', { id: 'identify-top-k', type: 'number', min: 1, max: 100, step: 1, value: 3 });
  // Faces that match nobody can be kept as unnamed faces, grouped with the others to name later.
  const keep = h('input', { id: 'identify-keep', type: 'checkbox' });
  keep.checked = keepUnmatched;
  keep.addEventListener('change', () => { keepUnmatched = keep.checked; });
  const result = previous || h('div', { id: 'identify-result', class: 'result' });
  dropZone(zone, input, async (file) => {
    const form = new FormData();
    form.append('image', file, file.name);
    const answer = await attempt(() => call('POST', `/v1/collections/${collection.id}/identify`, {
      form,
      query: { threshold: numberValue(threshold), top_k: numberValue(topK), ...(keep.checked ? { keep_unmatched: 'true' } : {}) },
      label: 'identifying the faces',
    }));
    if (!answer) {
      result.replaceChildren();
      identifySlot.release();
      return;
    }
    const { faces, image } = answer.data;
    const name = (face) => (face.unknown || !face.matches.length ? 'unknown' : face.matches[0].name);
    const kept = faces.filter((face) => face.kept);
    if (kept.length) {
      const canvases = await thumbnails(file, kept.map((face) => face.bbox)).catch(() => []);
      kept.forEach((face, index) => { if (canvases[index]) unnamedThumbs.set(face.kept.id, canvases[index]); });
    }
    result.replaceChildren(
      h('p', { class: 'summary' }, `${faces.length} ${faces.length === 1 ? 'face' : 'faces'}; threshold ${answer.data.threshold_used}, `
        + `${answer.data.gallery_size} faces in the gallery.`),
      h('div', { class: 'analysis' },
        photo({
          url: identifySlot.set(file), alt: `${file.name} with each face labelled`, faces, size: image,
          label: name, tone: (face) => (name(face) === 'unknown' ? 'unknown' : 'match'),
        }),
        h('ol', { class: 'faces' }, faces.map((face, index) => h('li', { class: 'card face', 'data-identified': name(face) },
          h('h3', {}, `Face ${index + 1}: ${name(face)}`),
          face.kept ? h('p', { class: 'note', 'data-kept': face.kept.cluster_id }, 'Kept under "Not named yet".') : null,
          h('ul', {}, face.matches.map((match) => h('li', {},
            `${match.name} (${match.external_id}): ${match.similarity.toFixed(3)}${match.is_match ? ', a match' : ''}`))))))));
    // The kept faces join the groups of the "Not named yet" panel.
    if (kept.length) loadCollections();
  });
  return h('div', { class: 'card identify' },
    h('h2', {}, 'Identify'),
    zone,
    h('div', { class: 'fields' },
      h('label', {}, 'Threshold (empty: server default)', threshold),
      h('label', {}, 'Candidates per face', topK),
      can('face:enroll') ? h('label', { class: 'check' }, keep, 'Keep unknown faces to name later') : null),
    result);
}
