// Jobs: the server-paged job table (`/views/jobs`: cursor pages, total count) with search
// by name and filters by group, state and last run status kept in the URL; each row shows
// the last run and the next fire in the viewer's zone and the job's own; selected jobs can
// be paused or resumed together.

import { api, get, qs, enc } from './api.js';
import { h, setText, Table, cell, badge, notify, notifyError, debounce, markReady } from './ui.js';
import { fmtTime, fmtIn, rel, timeMode, viewerZone } from './time.js';

const PAGE = 50;
const STATUSES = ['succeeded', 'failed', 'timed_out', 'dead', 'running', 'queued', 'skipped', 'cancelled', 'lost'];

function select(label, id, options, value) {
  const s = h('select', { id, name: id }, options.map(([v, t]) => h('option', { value: v }, t)));
  s.value = value || '';
  return { s, el: h('label', { for: id }, label, s) };
}

export function mount(main, ctx) {
  document.title = 'Jobs · dotjob';
  const q = ctx.query;
  const selected = new Set();
  let cursors = [''];
  let pageIndex = 0;
  let last = null;

  const search = h('input', { type: 'search', id: 'job-search', placeholder: 'name contains…', value: q.get('name') || '', autocomplete: 'off' });
  const group = select('Group', 'job-group', [['', 'all groups']], q.get('group'));
  const enabled = select('State', 'job-enabled', [['', 'any'], ['true', 'enabled'], ['false', 'paused']], q.get('enabled'));
  const lastStatus = select('Last run', 'job-last', [['', 'any'], ...STATUSES.map((s) => [s, s.replace('_', ' ')]), ['none', 'never ran']], q.get('last'));
  const filters = h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
    h('label', { for: 'job-search' }, 'Search by name', search), group.el, enabled.el, lastStatus.el);

  const count = h('span', { role: 'status' });
  const pauseBtn = h('button', { type: 'button', class: 'ghost', w: true }, 'Pause selected');
  const resumeBtn = h('button', { type: 'button', class: 'ghost', w: true }, 'Resume selected');
  const clearBtn = h('button', { type: 'button', class: 'ghost' }, 'Clear selection');
  const bulk = h('div', { class: 'bulk', hidden: true }, count, pauseBtn, resumeBtn, clearBtn);

  const all = h('input', { type: 'checkbox', 'aria-label': 'Select every job shown' });
  const table = new Table({
    label: 'Jobs',
    key: (r) => r.job.id,
    href: (r) => `/jobs/${enc(r.job.id)}`,
    navigate: ctx.navigate,
    columns: [
      { label: all, cls: 'check', value: (r) => cell(r.job.id, () => {
        const box = h('input', { type: 'checkbox', 'aria-label': `Select ${r.job.name}`, dataset: { id: r.job.id } });
        box.checked = selected.has(r.job.id);
        box.addEventListener('change', () => { if (box.checked) selected.add(r.job.id); else selected.delete(r.job.id); showBulk(); });
        return box;
      }) },
      { label: 'Name', value: (r) => cell(`${r.job.id}|${r.job.name}`, () => h('a', { href: `/jobs/${enc(r.job.id)}` }, r.job.name)) },
      { label: 'Group', cls: 'opt', value: (r) => r.job.group },
      { label: 'Schedule', cls: 'opt', value: (r) => cell(r.job.schedule || '', () => (r.job.schedule ? h('code', {}, r.job.schedule) : h('span', { class: 'muted' }, 'by hand'))) },
      { label: 'Last run', value: (r) => {
        const lr = r.last_run;
        const t = lr ? rel(lr.finished_at || lr.scheduled_at) : '';
        return cell(lr ? `${lr.id}|${lr.status}|${t}` : 'none', () => (lr
          ? h('span', {}, h('a', { href: `/runs/${enc(lr.id)}`, 'aria-label': `Last run: ${lr.status}` }, badge(lr.status)), ' ', h('span', { class: 'muted' }, t))
          : h('span', { class: 'muted' }, 'never ran')));
      } },
      { label: `Next fire`, value: (r) => {
        const n = r.job.next_fire_at;
        const zone = r.job.timezone;
        return cell(`${n}|${zone}|${timeMode()}|${rel(n)}`, () => {
          if (!n) return h('span', { class: 'muted' }, r.job.enabled ? (r.job.schedule ? 'none left' : 'by hand') : 'paused');
          const kids = [h('span', { title: viewerZone() }, fmtTime(n)), h('span', { class: 'muted' }, ` · ${rel(n)}`)];
          if (zone !== viewerZone()) kids.push(h('div', { class: 'muted' }, `${fmtIn(n, zone)} (job zone)`));
          return h('div', {}, kids);
        });
      } },
      { label: 'State', value: (r) => cell(r.job.enabled, () => badge(r.job.enabled ? 'enabled' : 'paused', r.job.enabled ? 'enabled' : 'paused')) },
    ],
    empty: () => (filtered()
      ? h('span', {}, 'No job matches these filters. ', h('button', { type: 'button', class: 'ghost small', onclick: clearFilters }, 'Clear filters'))
      : h('span', {}, 'No jobs yet. ', h('a', { href: '/jobs/new', class: 'w' }, 'Create the first job'), ' or load a file with `dotjob apply -f jobs/`.')),
  });

  const summary = h('span', { class: 'muted', role: 'status' });
  const prev = h('button', { type: 'button', class: 'ghost' }, '← Previous');
  const next = h('button', { type: 'button', class: 'ghost' }, 'Next →');
  main.append(
    h('div', { class: 'pagehead' }, h('h1', {}, 'Jobs'), h('div', { class: 'actions' }, h('a', { class: 'button w', href: '/jobs/new' }, 'New job'))),
    filters, bulk, table.el, h('div', { class: 'pager' }, prev, next, summary),
  );

  function filtered() {
    return search.value || group.s.value || enabled.s.value || lastStatus.s.value;
  }
  function params() {
    return { name: search.value.trim(), group: group.s.value, enabled: enabled.s.value, last_status: lastStatus.s.value };
  }
  function showBulk() {
    bulk.hidden = selected.size === 0;
    setText(count, `${selected.size} selected`);
    const rows = last ? last.items : [];
    all.checked = rows.length > 0 && rows.every((r) => selected.has(r.job.id));
  }
  function filtersChanged() {
    const p = params();
    const url = `/jobs${qs({ name: p.name, group: p.group, enabled: p.enabled, last: p.last_status })}`;
    history.replaceState(null, '', url);
    cursors = [''];
    pageIndex = 0;
    ctx.refreshNow();
  }
  function clearFilters() {
    search.value = '';
    group.s.value = '';
    enabled.s.value = '';
    lastStatus.s.value = '';
    filtersChanged();
  }
  search.addEventListener('input', debounce(filtersChanged, 250));
  for (const s of [group.s, enabled.s, lastStatus.s]) s.addEventListener('change', filtersChanged);
  all.addEventListener('change', () => {
    for (const r of last ? last.items : []) {
      if (all.checked) selected.add(r.job.id); else selected.delete(r.job.id);
    }
    for (const box of table.tbody.querySelectorAll('input[type=checkbox][data-id]')) box.checked = selected.has(box.dataset.id);
    showBulk();
  });
  clearBtn.addEventListener('click', () => {
    selected.clear();
    for (const box of table.tbody.querySelectorAll('input[type=checkbox][data-id]')) box.checked = false;
    showBulk();
  });
  async function bulkSet(action) {
    const ids = [...selected];
    let done = 0;
    const failed = [];
    for (const id of ids) {
      try { await api('POST', `/jobs/${enc(id)}/${action}`); done += 1; } catch (e) { failed.push(`${id}: ${e.message}`); }
    }
    if (done) notify('ok', `${action === 'pause' ? 'Paused' : 'Resumed'} ${done} job${done === 1 ? '' : 's'}.`);
    if (failed.length) notify('error', `Could not ${action} ${failed.length}: ${failed.join('; ')}`);
    ctx.refreshNow();
  }
  pauseBtn.addEventListener('click', () => bulkSet('pause'));
  resumeBtn.addEventListener('click', () => bulkSet('resume'));
  prev.addEventListener('click', () => { if (pageIndex > 0) { pageIndex -= 1; ctx.refreshNow(); } });
  next.addEventListener('click', () => { if (last && last.next_cursor) { cursors[pageIndex + 1] = last.next_cursor; pageIndex += 1; ctx.refreshNow(); } });

  get('/groups').then((groups) => {
    const want = q.get('group') || '';
    for (const g of groups) group.s.append(h('option', { value: g.name }, g.name));
    if (want && !groups.some((g) => g.name === want)) group.s.append(h('option', { value: want }, want));
    group.s.value = want;
  }).catch((e) => notifyError(e, 'Groups'));

  return {
    async refresh() {
      const p = params();
      let page;
      try {
        page = await get(`/views/jobs${qs({ ...p, cursor: cursors[pageIndex], limit: PAGE })}`);
      } catch (e) {
        if (e.status === 404 && p.group) {
          notifyError(e, 'Filter');
          group.s.value = '';
          filtersChanged();
          return;
        }
        throw e;
      }
      last = page;
      table.update(page.items);
      const from = pageIndex * PAGE + 1;
      const to = pageIndex * PAGE + page.items.length;
      const total = page.total.toLocaleString('en');
      setText(summary, page.items.length ? `${from}–${to} of ${total} job${page.total === 1 ? '' : 's'}` : `0 of ${total}`);
      prev.disabled = pageIndex === 0;
      next.disabled = !page.next_cursor;
      showBulk();
      markReady(main);
    },
  };
}
