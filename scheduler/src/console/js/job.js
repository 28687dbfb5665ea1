// The job page: the whole definition (edit through PATCH, create, clone), trigger with a
// params override, pause / resume, delete with confirmation, and side by side the next
// fires and the recent runs. A job deleted meanwhile says so once and stops refreshing.

import { api, get, enc, qs } from './api.js';
import { h, setText, Table, cell, badge, notify, notifyError, confirmDialog, field, fieldError, markReady } from './ui.js';
import { fmtTime, fmtIn, rel, dur, when } from './time.js';
import { jobForm } from './jobform.js';

function gone(main, id) {
  main.replaceChildren(h('div', { class: 'empty-state', role: 'status' },
    h('p', {}, `Job ${id} does not exist (any more): it may have been deleted.`),
    h('a', { href: '/jobs' }, 'Back to the jobs')));
}

async function createPage(main, ctx) {
  document.title = 'New job · dotjob';
  const cloneOf = ctx.query.get('clone');
  let src = null;
  if (cloneOf) {
    try {
      const j = await get(`/jobs/${enc(cloneOf)}`);
      src = { ...j, name: `${j.name} (copy)` };
    } catch (e) {
      notifyError(e, `Clone ${cloneOf}`);
    }
  }
  const form = jobForm({
    job: src,
    create: true,
    onSubmit: async (body) => {
      const job = await api('POST', '/jobs', body);
      notify('ok', `Created job ${job.name}.`);
      ctx.navigate(`/jobs/${enc(job.id)}`, true);
      return job;
    },
  });
  main.append(h('div', { class: 'pagehead' }, h('h1', {}, cloneOf ? 'Clone job' : 'New job')), h('section', { class: 'card' }, form.el));
  document.getElementById('f-name').focus();
  markReady(main);
}

export function mount(main, ctx) {
  if (ctx.create) {
    createPage(main, ctx);
    return {};
  }
  const id = ctx.params[0];
  document.title = 'Job · dotjob';
  const title = h('h1', {}, id);
  const state = h('span');
  const meta = h('p', { class: 'muted' });
  const pauseBtn = h('button', { type: 'button', class: 'ghost', w: true }, 'Pause');
  const cloneLink = h('a', { class: 'button ghost w', href: `/jobs/new?clone=${enc(id)}` }, 'Clone');
  const delBtn = h('button', { type: 'button', class: 'danger', w: true }, 'Delete');
  const params = h('textarea', { rows: 3, spellcheck: 'false', placeholder: 'empty: the job\'s own params' });
  const runNow = h('button', { type: 'button', w: true }, 'Run now');
  const triggered = h('p', { role: 'status' });
  const trigger = h('details', { class: 'card w' }, h('summary', {}, 'Trigger with params'),
    field('trigger-params', 'Params override (JSON, optional)', params), h('div', { class: 'formbar' }, runNow), triggered);
  const upcoming = h('ol', { class: 'preview', 'aria-label': 'Upcoming fires' });
  const upNote = h('p', { class: 'muted' });
  const runs = new Table({
    label: 'Recent runs',
    key: (r) => r.id,
    href: (r) => `/runs/${enc(r.id)}`,
    navigate: ctx.navigate,
    columns: [
      { label: 'Status', value: (r) => cell(`${r.id}|${r.status}`, () => h('a', { href: `/runs/${enc(r.id)}`, 'aria-label': `Run ${r.id}: ${r.status}` }, badge(r.status))) },
      { label: 'Scheduled', value: (r) => when(r.scheduled_at) },
      { label: 'Duration', cls: 'num', value: (r) => dur(r.duration_ms) },
      { label: 'Trigger', cls: 'opt', value: (r) => r.trigger },
      { label: 'Attempt', cls: 'num opt', value: (r) => r.attempt },
    ],
    empty: () => 'No runs yet: it runs at its next fire, or use "Trigger with params" above.',
  });
  const formBox = h('section', { class: 'card', 'aria-label': 'Definition' });
  main.append(
    h('div', { class: 'pagehead' }, title, state, h('div', { class: 'actions' }, pauseBtn, cloneLink, delBtn)),
    meta, trigger,
    h('div', { class: 'grid2' },
      h('section', { class: 'card' }, h('h2', {}, 'Upcoming'), upNote, upcoming),
      h('section', { class: 'card' }, h('h2', {}, 'Recent runs'), runs.el, h('p', {}, h('a', { href: `/runs${qs({ job: id })}` }, 'All runs of this job →')))),
    h('h2', { class: 'section' }, 'Definition'), formBox,
  );

  let job = null;
  let form = null;
  let upKey = '';
  let upUntil = 0;
  let dead = false;

  function showJob(j) {
    job = j;
    document.title = `${j.name} · dotjob`;
    setText(title, j.name);
    state.replaceChildren(badge(j.enabled ? 'enabled' : 'paused', j.enabled ? 'enabled' : 'paused'));
    setText(meta, `${j.group} · ${j.handler} · version ${j.version} · updated ${fmtTime(j.updated_at)} (${rel(j.updated_at)}) · id ${j.id}`);
    setText(pauseBtn, j.enabled ? 'Pause' : 'Resume');
    if (!form) {
      form = jobForm({ job: j, create: false, onSubmit: async (body) => {
        const saved = await api('PATCH', `/jobs/${enc(id)}`, body);
        showJob(saved);
        return saved;
      } });
      formBox.append(form.el);
    } else if (!form.isDirty()) {
      form.fill(j);
    }
  }

  async function showUpcoming(j) {
    const key = `${j.schedule}|${j.timezone}|${j.enabled}`;
    if (key === upKey && Date.now() < upUntil) return;
    upKey = key;
    if (!j.schedule) { upcoming.replaceChildren(); setText(upNote, 'No schedule: it runs only when triggered.'); upUntil = Infinity; return; }
    const p = await api('POST', '/schedule/preview', { schedule: j.schedule, timezone: j.timezone, count: 5 });
    upUntil = p.fires.length ? new Date(p.fires[0]).getTime() : Infinity;
    setText(upNote, j.enabled ? `Next fire ${rel(j.next_fire_at) || '—'}.` : 'Paused: these ticks fire only once it is resumed.');
    upcoming.replaceChildren(...p.fires.map((f) => h('li', {}, fmtTime(f), h('span', { class: 'muted' }, ` · ${fmtIn(f, j.timezone)}`))));
  }

  pauseBtn.addEventListener('click', async () => {
    try {
      showJob(await api('POST', `/jobs/${enc(id)}/${job && job.enabled ? 'pause' : 'resume'}`));
      upKey = '';
      ctx.refreshNow();
    } catch (e) { notifyError(e, 'Pause/resume'); }
  });
  delBtn.addEventListener('click', async () => {
    if (!await confirmDialog(`Delete job "${job ? job.name : id}" with its schedule and run history? This cannot be undone.`, 'Delete job', true)) return;
    try {
      await api('DELETE', `/jobs/${enc(id)}`);
      notify('ok', `Deleted job ${job ? job.name : id}.`);
      ctx.navigate('/jobs', true);
    } catch (e) { notifyError(e, 'Delete'); }
  });
  runNow.addEventListener('click', async () => {
    fieldError('trigger-params', '');
    let body;
    const t = params.value.trim();
    if (t) {
      try { body = { params: JSON.parse(t) }; } catch (e) { fieldError('trigger-params', `Not valid JSON: ${e.message}`); return; }
    }
    try {
      const r = await api('POST', `/jobs/${enc(id)}/trigger`, body);
      const more = r.runs && r.runs.length > 1 ? ` and ${r.runs.length - 1} more (one per shard or executor)` : '';
      triggered.replaceChildren('Queued run ', h('a', { href: `/runs/${enc(r.run_id)}` }, r.run_id), `${more}.`);
      ctx.refreshNow();
    } catch (e) {
      if (e.field && e.field.startsWith('params')) fieldError('trigger-params', e.message);
      else notifyError(e, 'Trigger');
    }
  });

  return {
    async refresh() {
      if (dead) return false;
      let j;
      let page;
      try {
        [j, page] = await Promise.all([get(`/jobs/${enc(id)}`), get(`/jobs/${enc(id)}/runs?limit=10`)]);
      } catch (e) {
        if (e.status === 404) { dead = true; gone(main, id); return false; }
        throw e;
      }
      showJob(j);
      runs.update(page.items);
      await showUpcoming(j);
      markReady(main);
      return true;
    },
  };
}
