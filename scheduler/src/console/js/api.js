// The admin API client: the bearer token (sessionStorage, or localStorage when the user
// asked to be remembered), JSON calls with typed errors, the connection state the header
// shows, and a log follower reading the Server-Sent Events stream through fetch (so the
// token can be sent), resuming from the last line it saw.

const KEY = 'dotjob.token';
const ROLE = 'dotjob.role';

/** Who is signed in: the token, its role (`admin` or `read`) and whether the API is open. */
export const auth = {
  token: sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '',
  role: null,
  open: false,
};

/** A short fingerprint of the token (FNV-1a), to tell tokens apart without storing one twice. */
function tag(token) {
  let x = 0x811c9dc5;
  for (let i = 0; i < token.length; i += 1) x = Math.imul(x ^ token.charCodeAt(i), 0x01000193) >>> 0;
  return `${token.length}:${x.toString(16)}`;
}

/** The role this tab last learned for the current token (`{role, open}`), if any. */
export function cachedRole() {
  try {
    const c = JSON.parse(sessionStorage.getItem(ROLE) || 'null');
    return c && c.tag === tag(auth.token) ? c : null;
  } catch {
    return null;
  }
}

export function setToken(token, remember) {
  auth.token = token;
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ROLE);
  localStorage.removeItem(KEY);
  if (token) (remember ? localStorage : sessionStorage).setItem(KEY, token);
}

export function isReadOnly() {
  return auth.role === 'read';
}

/** An error answer of the API: status, code, message and the field it names. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

/** Connection state: last success, and whether the last call failed to reach the server. */
export const conn = { lastOk: 0, down: false };

function setConn(down) {
  if (down !== conn.down || !down) {
    conn.down = down;
    if (!down) conn.lastOk = Date.now();
    window.dispatchEvent(new CustomEvent('dotjob:conn'));
  }
}

function headers(json) {
  const h = {};
  if (auth.token) h.authorization = `Bearer ${auth.token}`;
  if (json) h['content-type'] = 'application/json';
  return h;
}

async function toError(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  const e = body && body.error;
  return new ApiError(res.status, e ? e.code : 'http', e ? e.message : `HTTP ${res.status}`, e && e.field);
}

/** Calls `/api/v1<path>`; resolves the JSON answer (null for 204), rejects an ApiError. */
export async function api(method, path, body, signal) {
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    setConn(true);
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  if (res.status >= 500) {
    setConn(true);
    throw await toError(res);
  }
  setConn(false);
  if (!res.ok) throw await toError(res);
  if (res.status === 204) return null;
  return res.json();
}

export const get = (path, signal) => api('GET', path, undefined, signal);

/** A query string of the set values of `params` (`?a=1&b=2`, or ''). */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const enc = encodeURIComponent;

/** The caller's role; rejects 401 when no valid token is set. */
export async function whoami() {
  const me = await get('/whoami');
  auth.role = me.role;
  auth.open = me.open;
  sessionStorage.setItem(ROLE, JSON.stringify({ tag: tag(auth.token), role: me.role, open: me.open }));
  return me;
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

function parseEvent(block) {
  const ev = { event: 'message', data: '' };
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const k = i < 0 ? line : line.slice(0, i);
    const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (k === 'data') ev.data += (ev.data ? '\n' : '') + v;
    else ev[k] = v;
  }
  return ev;
}

/**
 * Follows a run's log from line `from`: `onLine(text, n)` per line, then `onEnd({status,
 * next, complete})` once the run is final, or `onError(error)`. Reconnects with backoff
 * from the last line seen until `signal` aborts.
 */
export async function followLog(runId, from, { onLine, onEnd, onError, onState }, signal) {
  let next = from;
  for (let attempt = 0; !signal.aborted; attempt += 1) {
    try {
      const res = await fetch(`/api/v1/runs/${enc(runId)}/logs?follow=true&from=${next}`, { headers: headers(false), signal });
      if (!res.ok) throw await toError(res);
      attempt = 0;
      if (onState) onState('following');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = parseEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
          if (ev.event === 'line') {
            const d = JSON.parse(ev.data);
            next = d.n + 1;
            onLine(d.line, d.n);
          } else if (ev.event === 'end') {
            const d = JSON.parse(ev.data);
            next = d.next;
            if (d.complete) { onEnd(d); return; }
          } else if (ev.event === 'error') {
            const d = JSON.parse(ev.data);
            onError(new ApiError(404, d.code, d.message));
            return;
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status > 0 && e.status < 500) { onError(e); return; }
    }
    if (onState) onState('reconnecting');
    await sleep(Math.min(500 * 2 ** attempt, 8000), signal);
  }
}
