// The console's entry: sign-in, the pages behind the URL's fragment (#analyze, #verify, ...) and
// which of them the signed-in principal's permissions show. The API enforces the same
// permissions; hiding is only so nobody is offered what would be refused.

import { can, principal, signIn, signOut, onSessionChange } from './api.js';
import { attempt, clearError } from './ui.js';
import { analyzePage } from './analyze.js';
import { verifyPage } from './verify.js';
import { galleriesPage } from './galleries.js';
import { modelsPage } from './models.js';
import { auditPage } from './audit.js';

const $ = (id) => document.getElementById(id);
const signinPage = { name: 'signin', needs: null, init: initSignIn };
const pages = [analyzePage, verifyPage, galleriesPage, modelsPage, auditPage, signinPage];
let current = null;

function allowed(page) {
  return !page.needs || can(page.needs);
}

function initSignIn() {
  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const email = $('signin-email').value.trim();
    const password = $('signin-password').value;
    const who = await attempt(() => signIn(email, password));
    $('signin-password').value = '';
    if (who) location.hash = '#analyze';
  });
  $('sign-out').addEventListener('click', async () => {
    await attempt(() => signOut());
    $('signin-form').reset();
    location.hash = '#analyze';
  });
}

function renderAccount(who) {
  $('who').textContent = who ? `${who.email || who.id} (${who.role || who.kind})` : 'Not signed in';
  $('sign-in-link').hidden = !!who;
  $('sign-out').hidden = !who;
  for (const link of document.querySelectorAll('[data-page-link]')) {
    const page = pages.find((p) => p.name === link.dataset.pageLink);
    link.hidden = !allowed(page);
  }
}

async function route() {
  const name = location.hash.replace(/^#/, '') || 'analyze';
  const page = pages.find((p) => p.name === name) || analyzePage;
  if (current && current !== page && current.hide) current.hide();
  clearError();
  for (const section of document.querySelectorAll('[data-page]')) section.hidden = true;
  for (const link of document.querySelectorAll('[data-page-link]')) {
    if (link.dataset.pageLink === page.name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  current = page;
  if (!allowed(page)) {
    $('denied-text').textContent = principal()
      ? `This page needs the ${page.needs} permission, which your role (${principal().role || principal().kind}) does not have.`
      : `This page needs the ${page.needs} permission: sign in first.`;
    $('page-denied').hidden = false;
    document.title = 'Not available · FaceSocial console';
    return;
  }
  const section = $(`page-${page.name}`);
  section.hidden = false;
  document.title = `${section.querySelector('h1').textContent} · FaceSocial console`;
  if (page.show) await page.show();
}

function start() {
  for (const page of pages) page.init();
  onSessionChange((who) => {
    if (!who) for (const page of pages) if (page.reset) page.reset();
    renderAccount(who);
  });
  renderAccount(null);
  window.addEventListener('hashchange', () => {
    route();
    // Keyboard and screen-reader users land on the new page's content.
    $('main').focus({ preventScroll: true });
  });
  route();
}

start();
