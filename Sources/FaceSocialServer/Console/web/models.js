// Models and memory: each device and pool as a bar, each model's state and numbers, refreshed
// every two seconds while the page is shown; load and unload for admin:system.

import { call, can } from './api.js';
import { h, attempt, formatBytes, formatMs, showError } from './ui.js';

const $ = (id) => document.getElementById(id);
const rows = new Map(); // model id → its row's cells, updated in place so focus stays put
let timer = null;
let refreshing = false;

export const modelsPage = {
  name: 'models',
  needs: 'system:monitor',
  init() {},
  async show() {
    await refresh(false);
    schedule();
  },
  hide() {
    clearTimeout(timer);
    timer = null;
  },
  reset() {
    rows.clear();
    document.querySelector('#models-table tbody').replaceChildren();
    $('devices').replaceChildren();
  },
};

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    await refresh(true);
    if (timer) schedule();
  }, 2000);
}

async function refresh(quiet) {
  if (refreshing) return;
  refreshing = true;
  try {
    const [vram, models] = await Promise.all([
      call('GET', '/system/vram', { quiet, label: 'reading memory' }),
      call('GET', '/system/models', { quiet, label: 'reading models' }),
    ]);
    renderDevices(vram.data.devices);
    renderModels(models.data.models);
    $('models-updated').textContent = `Last read ${new Date().toLocaleTimeString()}.`;
  } catch (error) {
    showError(error);
  } finally {
    refreshing = false;
  }
}

/** A bar the width of the budget: the used part filled, the free part empty. */
function bar(label, used, budget, total) {
  const fill = h('span', { class: 'bar-used' });
  fill.style.width = `${budget > 0 ? Math.min(100, (used / budget) * 100) : 0}%`;
  return h('div', { class: 'bar-block' },
    h('div', { class: 'bar-label' }, h('strong', {}, label),
      ` used ${formatBytes(used)} of ${formatBytes(budget)} budget, ${formatBytes(Math.max(0, budget - used))} free`
      + (total ? `; device ${formatBytes(total)}` : '')),
    h('div', {
      class: 'bar', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': budget, 'aria-valuenow': used,
      'aria-label': `${label}: ${formatBytes(used)} used of ${formatBytes(budget)}`,
    }, fill));
}

function renderDevices(devices) {
  $('devices').replaceChildren(...devices.map((device) => h('div', { class: 'card device', 'data-device': device.name },
    bar(`${device.name} (${device.kind})`, device.used_bytes, device.budget_bytes, device.total_bytes),
    device.unavailable_reason ? h('p', { class: 'note' }, device.unavailable_reason) : null,
    h('div', { class: 'pools' }, device.pools.map((pool) => h('div', { class: 'pool' },
      bar(`pool ${pool.name}`, pool.used_bytes, pool.budget_bytes),
      h('p', { class: 'note' }, pool.models.length
        ? pool.models.map((model) => `${model.id} ${formatBytes(model.bytes)}`).join(' · ')
        : 'no model resident')))))));
}

function renderModels(models) {
  const body = document.querySelector('#models-table tbody');
  const admin = can('admin:system');
  for (const model of models) {
    let row = rows.get(model.id);
    if (!row) {
      row = { cells: {}, element: h('tr', { 'data-model': model.id }) };
      for (const key of ['id', 'state', 'place', 'bytes', 'latency', 'uses', 'fallbacks', 'evictions']) {
        row.cells[key] = h(key === 'id' ? 'th' : 'td', key === 'id' ? { scope: 'row' } : {});
        row.element.append(row.cells[key]);
      }
      const actions = h('td', { class: 'row-actions' });
      if (admin) {
        row.load = h('button', { type: 'button', 'data-action': 'load', onclick: () => act(model.id, 'load') }, 'Load');
        row.unload = h('button', { type: 'button', 'data-action': 'unload', onclick: () => act(model.id, 'unload') }, 'Unload');
        actions.append(row.load, row.unload);
      } else {
        actions.append(h('span', { class: 'note' }, 'admin:system loads and unloads'));
      }
      row.element.append(actions);
      rows.set(model.id, row);
      body.append(row.element);
    }
    const c = row.cells;
    c.id.textContent = `${model.id}@${model.version} (${model.service}, ${model.priority})`;
    c.state.replaceChildren(h('span', { class: `state ${model.state}`, 'data-state': model.state }, model.state));
    if (model.failure) c.state.append(h('span', { class: 'note' }, ` ${model.failure}`));
    c.place.textContent = model.device ? `${model.device}:${model.pool}` : `— (${model.placement.join(' > ')})`;
    c.bytes.textContent = model.bytes === null ? `— (estimate ${formatBytes(model.estimated_bytes)})` : formatBytes(model.bytes);
    c.latency.textContent = `${formatMs(model.p50_ms)} / ${formatMs(model.p95_ms)}`;
    c.uses.textContent = String(model.uses);
    c.fallbacks.textContent = String(model.fallbacks);
    c.evictions.textContent = String(model.evictions);
    if (row.load) {
      row.load.disabled = model.state === 'loaded' || model.state === 'loading';
      row.unload.disabled = model.state !== 'loaded';
    }
  }
}

async function act(id, action) {
  const focused = document.activeElement;
  const answer = await attempt(() => call('POST', `/system/models/${encodeURIComponent(id)}/${action}`, {
    label: `${action === 'load' ? 'loading' : 'unloading'} ${id}`,
  }));
  if (answer) renderModels([answer.data]);
  await refresh(true);
  // Focus stays on the row: the button just used may now be disabled, so move to its sibling.
  const row = rows.get(id);
  if (row && focused && focused.disabled) {
    (action === 'load' ? row.unload : row.load).focus();
  }
}
