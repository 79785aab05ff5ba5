// The audit log (admin:system): GET /v1/audit with its filters, a page at a time, newest first.

import { call } from './api.js';
import { h, attempt } from './ui.js';

const $ = (id) => document.getElementById(id);
let offset = 0;
let lastQuery = {};

export const auditPage = {
  name: 'audit',
  needs: 'admin:system',
  init() {
    $('audit-form').addEventListener('submit', (event) => {
      event.preventDefault();
      offset = 0;
      load();
    });
    $('audit-prev').addEventListener('click', () => {
      offset = Math.max(0, offset - limit());
      load(lastQuery);
    });
    $('audit-next').addEventListener('click', () => {
      offset += limit();
      load(lastQuery);
    });
  },
  show() {
    return load();
  },
  reset() {
    offset = 0;
    document.querySelector('#audit-table tbody').replaceChildren();
    $('audit-summary').textContent = '';
  },
};

function limit() {
  return Number($('audit-form').elements.limit.value) || 50;
}

/** The form's filters as query parameters; times from the local clock to ISO 8601. */
function filters() {
  const form = $('audit-form').elements;
  const query = {};
  for (const name of ['actor', 'action', 'resource_type', 'resource_id', 'outcome']) query[name] = form[name].value.trim();
  for (const name of ['since', 'until']) {
    if (form[name].value) query[name] = new Date(form[name].value).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  query.limit = limit();
  return query;
}

async function load(query = filters()) {
  lastQuery = query;
  const answer = await attempt(() => call('GET', '/v1/audit', { query: { ...query, offset }, label: 'reading the audit log' }));
  if (!answer) return;
  const page = answer.data;
  document.querySelector('#audit-table tbody').replaceChildren(...page.items.map((event) => h('tr', { 'data-action': event.action },
    h('td', {}, (event.time || '').replace('T', ' ')),
    h('td', {}, `${event.actor} (${event.actor_type})`),
    h('td', {}, event.action),
    h('td', {}, `${event.resource_type} ${event.resource_id}`),
    h('td', {}, h('span', { class: `outcome ${event.outcome}` }, event.outcome)),
    h('td', {}, event.ip || ''),
    h('td', { class: 'details' }, Object.entries(event.details || {}).map(([key, value]) => `${key}: ${value}`).join('; ')
      + (event.request_id ? ` (request ${event.request_id})` : '')))));
  const last = Math.min(page.total, page.offset + page.items.length);
  $('audit-summary').textContent = page.total
    ? `Events ${page.offset + 1}–${last} of ${page.total}, newest first.`
    : 'No event matches these filters.';
  $('audit-prev').disabled = page.offset === 0;
  $('audit-next').disabled = last >= page.total;
}
