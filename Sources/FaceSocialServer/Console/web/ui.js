// Small DOM helpers shared by the pages. Text from the API is always set as text, never as HTML.

import { ApiError } from './api.js';

/**
 * Creates an element: `h('button', {type: 'button', class: 'x', onclick: fn, dataset: {id: 1}}, 'text', child)`.
 * Attributes whose value is false, null or undefined are left out.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') element.className = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** Shows an error in the alert region: the API's code and message, and its details. */
export function showError(error) {
  const region = document.getElementById('error');
  const dismiss = h('button', { type: 'button', class: 'dismiss', onclick: clearError }, 'Dismiss');
  if (error instanceof ApiError) {
    const details = Object.entries(error.details || {}).map(([key, value]) => `${key}: ${value}`);
    region.replaceChildren(
      h('strong', {}, error.status ? `${error.code} (${error.status})` : error.code),
      h('span', {}, ` ${error.message}`),
      ...(details.length ? [h('span', { class: 'details' }, ` — ${details.join('; ')}`)] : []),
      dismiss,
    );
  } else {
    region.replaceChildren(h('strong', {}, 'Error'), h('span', {}, ` ${error.message || error}`), dismiss);
  }
  region.hidden = false;
}

export function clearError() {
  const region = document.getElementById('error');
  region.hidden = true;
  region.replaceChildren();
}

/** Runs an action, showing its error (if any) in the alert region; resolves to its value or undefined. */
export async function attempt(action) {
  clearError();
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  }
}

/**
 * A button that erases only on a second click within six seconds, so one stray key press erases
 * nothing; the first click says what the second one will do.
 */
export function eraseButton(confirmText, onConfirm, { label = 'Erase' } = {}) {
  const button = h('button', { type: 'button', class: 'danger' }, label);
  let armed = null;
  button.addEventListener('click', async () => {
    if (!armed) {
      button.textContent = confirmText;
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
      }, 6000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    await onConfirm();
  });
  return button;
}

/**
 * Wires a drop zone: a file dropped on `zone` or picked with `input` calls `onFile(file)`.
 * The zone is marked while a file is dragged over it.
 */
export function dropZone(zone, input, onFile, { multiple = false, done = null } = {}) {
  // Several files go one after the other, so their answers come in the order they were given.
  const take = async (files) => {
    const list = Array.from(files || []).slice(0, multiple ? undefined : 1);
    for (const file of list) await onFile(file);
    if (done && list.length) await done();
  };
  input.addEventListener('change', () => take(input.files));
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    take(event.dataTransfer.files);
  });
}

/** An image file's object URL, revoked when `release` is called (each page keeps one per slot). */
export class PhotoSlot {
  constructor() {
    this.url = null;
  }

  set(file) {
    this.release();
    this.url = URL.createObjectURL(file);
    return this.url;
  }

  release() {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
  }
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatMs(ms) {
  return ms === null || ms === undefined ? '—' : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

/** A number input's value, or undefined when it is empty. */
export function numberValue(input) {
  return input.value.trim() === '' ? undefined : Number(input.value);
}

/** A definition list from [term, value] pairs (pairs whose value is null are left out). */
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs.filter(([, value]) => value !== null && value !== undefined).map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
  );
}
