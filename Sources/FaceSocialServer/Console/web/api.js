// The API client of the console: every call goes through `call`, which adds the bearer token,
// refreshes it once on a 401, turns the error envelope into an ApiError and drives the progress
// indicator. The tokens live in this module's variables only (never in the browser's storage), so
// a reload signs out.

/** An answer outside 2xx, from the API's error envelope `{error: {code, message, details}}`. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

const session = { access: null, refresh: null, principal: null };
const listeners = new Set();

/** The signed-in principal from `GET /v1/auth/me`, or null. */
export function principal() {
  return session.principal;
}

/** Whether the signed-in principal holds a permission (`face:analyze`, `admin:system`, ...). */
export function can(permission) {
  return !!session.principal && session.principal.permissions.includes(permission);
}

/** Calls `fn` after every sign-in and sign-out. */
export function onSessionChange(fn) {
  listeners.add(fn);
}

function changed() {
  for (const fn of listeners) fn(session.principal);
}

// --- progress ------------------------------------------------------------------------------

let running = 0;
let shownTimer = null;
const labels = new Map();
let nextLabel = 0;

function progressElement() {
  return document.getElementById('progress');
}

function renderProgress() {
  const el = progressElement();
  if (!el) return;
  document.getElementById('main')?.setAttribute('aria-busy', running > 0 ? 'true' : 'false');
  if (running === 0) {
    clearTimeout(shownTimer);
    shownTimer = null;
    el.replaceChildren();
    el.classList.remove('active');
    return;
  }
  // Shown only when a call takes more than a moment, so quick ones do not flicker.
  if (!el.classList.contains('active') && !shownTimer) {
    shownTimer = setTimeout(() => {
      shownTimer = null;
      if (running > 0) {
        el.classList.add('active');
        renderProgress();
      }
    }, 250);
    return;
  }
  if (el.classList.contains('active')) {
    const spinner = document.createElement('span');
    spinner.className = 'spinner';
    spinner.setAttribute('aria-hidden', 'true');
    const text = document.createElement('span');
    text.textContent = `Working: ${[...labels.values()].join(', ')}…`;
    el.replaceChildren(spinner, text);
  }
}

function begin(label) {
  const id = nextLabel++;
  labels.set(id, label);
  running++;
  renderProgress();
  return id;
}

function end(id) {
  labels.delete(id);
  running--;
  renderProgress();
}

// --- calls ---------------------------------------------------------------------------------

/**
 * One API call. `options`: `query` (object; empty values are left out), `json` (a body sent as
 * JSON), `form` (a FormData), `quiet` (no progress indicator: background refreshes), `label`
 * (what the progress indicator says). Resolves to the parsed envelope `{data, meta}`; rejects with
 * an ApiError.
 */
export async function call(method, path, options = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(options.query || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const url = query.size ? `${path}?${query}` : path;
  const id = options.quiet ? null : begin(options.label || `${method} ${path}`);
  try {
    let response = await send(method, url, options);
    if (response.status === 401 && session.refresh && !options.noRefresh) {
      if (await refresh()) response = await send(method, url, options);
    }
    return await parse(response);
  } finally {
    if (id !== null) end(id);
  }
}

async function send(method, url, options) {
  const headers = { Accept: 'application/json' };
  if (session.access) headers.Authorization = `Bearer ${session.access}`;
  let body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form;
  }
  try {
    return await fetch(url, { method, headers, body, credentials: 'omit', cache: 'no-store' });
  } catch (error) {
    throw new ApiError(0, 'NETWORK_ERROR', `the server could not be reached (${error.message})`);
  }
}

async function parse(response) {
  const type = response.headers.get('Content-Type') || '';
  const body = type.includes('json') ? await response.json().catch(() => null) : null;
  if (response.ok) return body || {};
  const error = body && body.error;
  if (error) throw new ApiError(response.status, error.code, error.message, error.details);
  throw new ApiError(response.status, `HTTP_${response.status}`, response.statusText || 'the server refused the call');
}

// --- session -------------------------------------------------------------------------------

function keep(tokens) {
  session.access = tokens.access_token;
  session.refresh = tokens.refresh_token;
}

/** Signs in with the existing auth: login, then `GET /v1/auth/me` for the permissions. */
export async function signIn(email, password) {
  const answer = await call('POST', '/v1/auth/login', { json: { email, password }, label: 'signing in', noRefresh: true });
  keep(answer.data);
  try {
    session.principal = (await call('GET', '/v1/auth/me', { label: 'reading your permissions' })).data;
  } catch (error) {
    forget();
    throw error;
  }
  changed();
  return session.principal;
}

async function refresh() {
  const token = session.refresh;
  session.access = null;
  try {
    const answer = await call('POST', '/v1/auth/refresh', {
      json: { refresh_token: token }, quiet: true, noRefresh: true,
    });
    keep(answer.data);
    return true;
  } catch {
    // The refresh token expired or was revoked: signed out.
    forget();
    changed();
    return false;
  }
}

function forget() {
  session.access = null;
  session.refresh = null;
  session.principal = null;
}

/** Revokes the refresh token's family and forgets both tokens. */
export async function signOut() {
  const token = session.refresh;
  try {
    if (token) await call('POST', '/v1/auth/logout', { json: { refresh_token: token }, label: 'signing out', noRefresh: true });
  } finally {
    forget();
    changed();
  }
}
