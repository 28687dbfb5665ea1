// The console shell: sign-in, routes (History API: every page has a URL, the back button
// works, links can be shared), the header tools (pause, local/UTC, role, connection) and
// the refresh loop that asks the current page to update itself in place every 3 s.

import { ApiError, auth, cachedRole, conn, setToken, whoami } from './api.js';
import { h, notify, field, fieldError } from './ui.js';
import { setTimeMode, timeMode, fmtTime } from './time.js';

const REFRESH_MS = 3000;

const ROUTES = [
  [/^\/$/, 'overview', () => import('./overview.js')],
  [/^\/jobs$/, 'jobs', () => import('./jobs.js')],
  [/^\/jobs\/new$/, 'jobs', () => import('./job.js'), { create: true }],
  [/^\/jobs\/([^/]+)$/, 'jobs', () => import('./job.js')],
  [/^\/runs$/, 'runs', () => import('./runs.js')],
  [/^\/runs\/([^/]+)$/, 'runs', () => import('./run.js')],
  [/^\/groups$/, 'groups', () => import('./groups.js')],
  [/^\/groups\/([^/]+)$/, 'groups', () => import('./groups.js')],
];

const main = document.getElementById('main');
let page = null;
let paused = false;
let timer = null;
let generation = 0;

/** Goes to `path` (pushes a history entry unless `replace`). */
export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render(true);
}

function findRoute(path) {
  for (const [re, nav, load, extra] of ROUTES) {
    const m = path.match(re);
    if (m) return { nav, load, params: m.slice(1).map(decodeURIComponent), extra: extra || {} };
  }
  return null;
}

async function render(focus) {
  const gen = ++generation;
  if (page && page.unmount) page.unmount();
  page = null;
  clearTimeout(timer);
  const route = findRoute(location.pathname);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (route && a.dataset.nav === route.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!route) {
    main.replaceChildren(h('div', { class: 'empty-state' }, h('p', {}, 'There is no console page at this address.'), h('a', { href: '/' }, 'Go to the overview')));
    return;
  }
  const mod = await route.load();
  if (gen !== generation) return;
  main.replaceChildren();
  delete main.dataset.ready;
  delete main.dataset.readyAt;
  const ctx = { params: route.params, query: new URLSearchParams(location.search), navigate, refreshNow, ...route.extra };
  page = mod.mount(main, ctx) || {};
  if (focus) main.focus({ preventScroll: true });
  await tick(gen);
}

async function tick(gen, force) {
  clearTimeout(timer);
  if (gen !== generation || !page) return;
  if ((force || !paused) && page.refresh && !document.hidden) {
    try {
      const more = await page.refresh();
      if (more === false) return; // the page has nothing more to refresh (e.g. it is gone)
    } catch (e) {
      if (!(e instanceof ApiError) || e.status === 0 || e.status >= 500) {
        // Shown by the connection indicator; try again at the next tick.
      } else if (e.status === 401) {
        signIn('Your token is no longer accepted.');
        return;
      } else {
        notify('error', e.message);
      }
    }
  }
  if (gen === generation) timer = setTimeout(() => tick(gen), REFRESH_MS);
}

/** Refreshes the current page now (after a write, or a time-mode change), even when paused. */
export function refreshNow() {
  return tick(generation, true);
}

function showConn() {
  const live = document.getElementById('live');
  if (conn.down) {
    live.textContent = `Disconnected${conn.lastOk ? ` · last update ${fmtTime(new Date(conn.lastOk).toISOString())}` : ''}`;
    live.classList.add('down');
  } else {
    live.textContent = paused ? 'Paused' : `Updated ${fmtTime(new Date(conn.lastOk).toISOString()).slice(-8)}`;
    live.classList.remove('down');
  }
}

function showWho() {
  const who = document.getElementById('who');
  document.body.classList.toggle('ro', auth.role === 'read');
  who.classList.toggle('ro', auth.role === 'read');
  who.textContent = auth.role === 'read' ? 'read-only' : auth.open ? 'open API' : 'admin';
  document.getElementById('signout').hidden = !auth.token;
}

function signIn(message) {
  generation += 1;
  clearTimeout(timer);
  if (page && page.unmount) page.unmount();
  page = null;
  const input = h('input', { type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const remember = h('input', { type: 'checkbox', id: 'remember' });
  const form = h('form', { class: 'card' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'This API needs a token: the admin token (DOTJOB_ADMIN_TOKEN) for everything, or the read token (DOTJOB_READ_TOKEN) for a read-only console.'),
    field('token', 'Token', input),
    h('div', { class: 'field checkrow' }, remember, h('label', { for: 'remember' }, 'Remember on this device')),
    h('div', { class: 'formbar' }, h('button', { type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setToken(input.value.trim(), remember.checked);
    try {
      await whoami();
      showWho();
      render(true);
    } catch (e) {
      setToken('', false);
      fieldError('token', e.status === 401 ? 'This token is not accepted.' : e.message);
    }
  });
  main.replaceChildren(h('div', { class: 'signin' }, form));
  if (message) fieldError('token', message);
  input.focus();
}

async function start() {
  document.getElementById('tz').textContent = timeMode() === 'utc' ? 'UTC' : 'Local';
  // A role this tab already learned for this token shows the page at once; it is checked
  // again in the background (a token that stopped working leads to the sign-in form).
  const known = cachedRole();
  if (known) {
    auth.role = known.role;
    auth.open = known.open;
    showWho();
    render(false);
    whoami().then(() => {
      if (auth.role !== known.role) { showWho(); render(false); }
    }).catch((e) => { if (e.status === 401) signIn('Your token is no longer accepted.'); });
    return;
  }
  for (;;) {
    try {
      await whoami();
      break;
    } catch (e) {
      if (e.status === 401) {
        setToken('', false);
        showWho();
        signIn(auth.token ? 'This token is not accepted.' : '');
        return;
      }
      showConn();
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  showWho();
  render(false);
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[href]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  if (a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
  if (!findRoute(a.pathname)) return;
  ev.preventDefault();
  if (a.pathname + a.search !== location.pathname + location.search) navigate(a.pathname + a.search);
});
window.addEventListener('popstate', () => render(true));
window.addEventListener('dotjob:conn', showConn);
window.addEventListener('dotjob:tz', () => {
  document.getElementById('tz').textContent = timeMode() === 'utc' ? 'UTC' : 'Local';
  showConn();
  refreshNow();
});
document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshNow(); });
document.getElementById('pause').addEventListener('click', (ev) => {
  paused = !paused;
  ev.currentTarget.setAttribute('aria-pressed', String(paused));
  ev.currentTarget.textContent = paused ? 'Resume updates' : 'Pause updates';
  showConn();
  if (!paused) refreshNow();
});
document.getElementById('tz').addEventListener('click', () => setTimeMode(timeMode() === 'utc' ? 'local' : 'utc'));
document.getElementById('signout').addEventListener('click', () => {
  setToken('', false);
  auth.role = null;
  showWho();
  signIn('');
});

start();
