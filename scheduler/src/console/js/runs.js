// Runs across all jobs (`GET /runs`), newest first, filtered by group, job, status and
// time (kept in the URL), paged by cursor; job names are looked up once per job.

import { get, qs, enc } from './api.js';
import { h, setText, Table, cell, badge, shortId, debounce, markReady } from './ui.js';
import { dur, when, fromInput, toInput } from './time.js';

const PAGE = 50;
const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'dead', 'skipped', 'cancelled', 'lost'];
const names = new Map();

export function mount(main, ctx) {
  document.title = 'Runs · dotjob';
  const q = ctx.query;
  let cursors = [''];
  let pageIndex = 0;
  let last = null;

  const mk = (tag, props) => h(tag, props);
  const group = mk('select', { id: 'run-group' }, []);
  group.append(h('option', { value: '' }, 'all groups'));
  const job = mk('input', { id: 'run-job', type: 'search', placeholder: 'job id', value: q.get('job') || '', autocomplete: 'off', spellcheck: 'false' });
  const status = h('select', { id: 'run-status' }, h('option', { value: '' }, 'any'), STATUSES.map((s) => h('option', { value: s }, s.replace('_', ' '))));
  status.value = q.get('status') || '';
  const from = mk('input', { id: 'run-from', type: 'datetime-local', step: 1, value: toInput(q.get('from')) });
  const to = mk('input', { id: 'run-to', type: 'datetime-local', step: 1, value: toInput(q.get('to')) });
  const filters = h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
    h('label', { for: 'run-group' }, 'Group', group),
    h('label', { for: 'run-job' }, 'Job', job),
    h('label', { for: 'run-status' }, 'Status', status),
    h('label', { for: 'run-from' }, 'Scheduled from', from),
    h('label', { for: 'run-to' }, 'to', to));
  const table = new Table({
    label: 'Runs',
    key: (r) => r.id,
    href: (r) => `/runs/${enc(r.id)}`,
    navigate: ctx.navigate,
    columns: [
      { label: 'Status', value: (r) => cell(`${r.id}|${r.status}`, () => h('a', { href: `/runs/${enc(r.id)}`, 'aria-label': `Run ${r.id}: ${r.status}` }, badge(r.status))) },
      { label: 'Job', value: (r) => cell(`${r.job_id}|${names.get(r.job_id) || ''}`, () => h('a', { href: `/jobs/${enc(r.job_id)}`, title: r.job_id }, names.get(r.job_id) || shortId(r.job_id))) },
      { label: 'Group', cls: 'opt', value: (r) => r.group },
      { label: 'Scheduled', value: (r) => when(r.scheduled_at) },
      { label: 'Duration', cls: 'num', value: (r) => dur(r.duration_ms) },
      { label: 'Trigger', cls: 'opt', value: (r) => r.trigger + (r.shards ? ` · shard ${r.shard + 1}/${r.shards}` : '') },
      { label: 'Attempt', cls: 'num opt', value: (r) => r.attempt },
      { label: 'Worker', cls: 'opt', value: (r) => r.worker || '—' },
    ],
    empty: () => (filtered() ? 'No run matches these filters: widen the time range or clear a filter.' : 'No runs yet: they appear as jobs fire or are triggered (Jobs → a job → Trigger).'),
  });
  const summary = h('span', { class: 'muted', role: 'status' });
  const prev = h('button', { type: 'button', class: 'ghost' }, '← Newer');
  const next = h('button', { type: 'button', class: 'ghost' }, 'Older →');
  main.append(h('div', { class: 'pagehead' }, h('h1', {}, 'Runs')), filters, table.el, h('div', { class: 'pager' }, prev, next, summary));

  const filtered = () => group.value || job.value.trim() || status.value || from.value || to.value;
  const params = () => ({ group: group.value, job: job.value.trim(), status: status.value, from: fromInput(from.value), to: fromInput(to.value) });
  function changed() {
    history.replaceState(null, '', `/runs${qs(params())}`);
    cursors = [''];
    pageIndex = 0;
    ctx.refreshNow();
  }
  job.addEventListener('input', debounce(changed, 300));
  for (const el of [group, status, from, to]) el.addEventListener('change', changed);
  prev.addEventListener('click', () => { if (pageIndex > 0) { pageIndex -= 1; ctx.refreshNow(); } });
  next.addEventListener('click', () => { if (last && last.next_cursor) { cursors[pageIndex + 1] = last.next_cursor; pageIndex += 1; ctx.refreshNow(); } });

  get('/groups').then((gs) => {
    const want = q.get('group') || '';
    for (const g of gs) group.append(h('option', { value: g.name }, g.name));
    group.value = want;
  }).catch(() => {});

  async function lookupNames(items) {
    const missing = [...new Set(items.map((r) => r.job_id))].filter((id) => !names.has(id));
    await Promise.all(missing.slice(0, 50).map(async (id) => {
      try { names.set(id, (await get(`/jobs/${enc(id)}`)).name); } catch { names.set(id, ''); }
    }));
  }

  return {
    async refresh() {
      const p = params();
      let page;
      try {
        page = await get(`/runs${qs({ ...p, cursor: cursors[pageIndex], limit: PAGE })}`);
      } catch (e) {
        if (e.status !== 400 && e.status !== 404) throw e;
        table.update([]);
        setText(summary, e.message);
        markReady(main);
        return;
      }
      last = page;
      table.update(page.items);
      markReady(main);
      setText(summary, page.items.length ? `page ${pageIndex + 1} · ${page.items.length} runs${page.next_cursor ? '' : ' · the oldest kept'}` : '');
      prev.disabled = pageIndex === 0;
      next.disabled = !page.next_cursor;
      await lookupNames(page.items);
      table.update(page.items);
    },
  };
}
