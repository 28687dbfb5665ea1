// DOM helpers: an element builder, tables updated in place (rows diffed by key, cells
// patched only when their content changed, so focus, selection and scroll survive a
// refresh), notices that stay until dismissed, a confirmation dialog and status badges.

import { isReadOnly } from './api.js';

/**
 * Builds an element. Props: `class`, `text`, `on<event>` handlers, `dataset`, `for`,
 * `w` (a write control: disabled and hidden for a read-only token), other attributes
 * (`true` sets a boolean attribute, `false`/null/undefined skip it).
 */
export function h(tag, props, ...kids) {
  const el = tag === 'svg' || tag === 'rect' || tag === 'text' || tag === 'title' || tag === 'g'
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'for') el.htmlFor = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'w') {
      el.classList.add('w');
      if (isReadOnly()) { el.disabled = true; el.setAttribute('aria-disabled', 'true'); }
    } else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

/** Sets an element's text only when it differs (no needless DOM writes). */
export function setText(el, text) {
  const t = String(text ?? '');
  if (el.textContent !== t) el.textContent = t;
}

/** A status badge. */
export function badge(status, label) {
  return h('span', { class: `badge st-${status}` }, label || String(status).replace('_', ' '));
}

/** A cell whose content is a node, rebuilt only when `key` changes. */
export function cell(key, build) {
  return { key: String(key), build };
}

/**
 * A table whose rows are diffed by key. `columns`: `{label, cls, value(item)}` where value
 * returns text or a `cell(key, build)`. `href(item)` makes a row open a page on Enter or
 * click; `empty()` returns what to show when there are no rows.
 */
export class Table {
  constructor({ columns, key, href, empty, label, navigate }) {
    this.columns = columns;
    this.key = key;
    this.href = href;
    this.empty = empty;
    this.navigate = navigate;
    this.tbody = h('tbody');
    const head = h('tr', {}, columns.map((c) => h('th', { class: c.cls, scope: 'col' }, c.label)));
    this.table = h('table', { 'aria-label': label }, h('thead', {}, head), this.tbody);
    this.el = h('div', { class: 'tablewrap' }, this.table);
    this.rows = new Map();
    this.emptyRow = null;
  }

  row(item) {
    const tr = h('tr');
    for (const c of this.columns) tr.append(h('td', { class: c.cls }));
    if (this.href) {
      tr.classList.add('link');
      tr.tabIndex = 0;
      const open = (ev) => {
        if (ev.target.closest('a, button, input, select, label, textarea')) return;
        if (ev.type === 'keydown' && ev.key !== 'Enter') return;
        this.navigate(tr.dataset.href);
      };
      tr.addEventListener('click', open);
      tr.addEventListener('keydown', open);
    }
    return tr;
  }

  patch(tr, item) {
    if (this.href) tr.dataset.href = this.href(item);
    this.columns.forEach((c, i) => {
      const td = tr.cells[i];
      const v = c.value(item);
      if (v && typeof v === 'object' && 'build' in v) {
        if (td.dataset.k !== v.key) {
          td.replaceChildren(v.build());
          td.dataset.k = v.key;
        }
      } else {
        delete td.dataset.k;
        setText(td, v);
      }
    });
  }

  /** Shows `items` in this order, reusing the rows of keys already shown. */
  update(items) {
    const seen = new Set();
    let prev = null;
    for (const item of items) {
      const k = String(this.key(item));
      seen.add(k);
      let tr = this.rows.get(k);
      if (!tr) {
        tr = this.row(item);
        tr.dataset.key = k;
        this.rows.set(k, tr);
      }
      this.patch(tr, item);
      const want = prev ? prev.nextSibling : this.tbody.firstChild;
      if (want !== tr) this.tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const [k, tr] of this.rows) {
      if (!seen.has(k)) { tr.remove(); this.rows.delete(k); }
    }
    if (items.length === 0 && this.empty) {
      if (!this.emptyRow) {
        this.emptyRow = h('tr', {}, h('td', { class: 'empty', colspan: this.columns.length }, this.empty()));
        this.tbody.append(this.emptyRow);
      }
    } else if (this.emptyRow) {
      this.emptyRow.remove();
      this.emptyRow = null;
    }
  }
}

/** Shows a message that stays until dismissed; the same text again bumps a counter. */
export function notify(kind, text) {
  const box = document.getElementById('notices');
  for (const n of box.children) {
    if (n.dataset.text === text && n.dataset.kind === kind) {
      const c = Number(n.dataset.count || 1) + 1;
      n.dataset.count = c;
      setText(n.querySelector('.count'), ` (×${c})`);
      return n;
    }
  }
  const close = h('button', { type: 'button', class: 'ghost small', 'aria-label': 'Dismiss message' }, 'Dismiss');
  const n = h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status', dataset: { text, kind } },
    h('p', {}, text, h('span', { class: 'count' })), close);
  close.addEventListener('click', () => n.remove());
  box.append(n);
  return n;
}

/** Shows an API error (with its field) as a notice. */
export function notifyError(e, what) {
  const field = e.field ? ` (${e.field})` : '';
  return notify('error', `${what ? `${what}: ` : ''}${e.message}${field}`);
}

/** Asks for confirmation in a modal dialog; resolves true when confirmed. */
export function confirmDialog(message, okLabel = 'Confirm', danger = false) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'danger' : '' }, okLabel);
    const cancel = h('button', { type: 'button', class: 'ghost' }, 'Cancel');
    const dlg = h('dialog', { 'aria-label': okLabel }, h('p', {}, message), h('div', { class: 'formbar' }, cancel, ok));
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', (ev) => { ev.preventDefault(); done(false); });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/** Pretty JSON. */
export function json(v) {
  return JSON.stringify(v, null, 2);
}

/** Calls `fn` once input has been quiet for `ms`. */
export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/** A short id for tables (full id in the title). */
export function shortId(id, n = 10) {
  return id && id.length > n + 2 ? `${id.slice(0, n)}…` : id || '';
}

/** A labelled form control: `<div class=field><label for>…<control><hint><err>`. */
export function field(id, label, control, hint, cls) {
  control.id = id;
  const err = h('div', { class: 'err', id: `${id}-err`, 'aria-live': 'polite' });
  const hintEl = hint ? h('div', { class: 'hint', id: `${id}-hint` }, hint) : null;
  control.setAttribute('aria-describedby', [hint ? `${id}-hint` : '', `${id}-err`].filter(Boolean).join(' '));
  return h('div', { class: `field ${cls || ''}` }, h('label', { for: id }, label), control, hintEl, err);
}

/** Shows (or clears, with '') the error of a field made by `field`. */
export function fieldError(id, message) {
  const input = document.getElementById(id);
  const err = document.getElementById(`${id}-err`);
  if (!input || !err) return false;
  setText(err, message);
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
  return true;
}

/** Marks the page's data as shown (tests and timings read `data-ready-at`). */
export function markReady(main) {
  if (!main.dataset.ready) {
    main.dataset.ready = '1';
    main.dataset.readyAt = String(Math.round(performance.now()));
  }
}
