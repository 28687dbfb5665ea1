// Groups: every group with its counts; one group's executors (heartbeat age, in-flight
// runs, handlers, version, host; disable / enable) and its dead letters (re-queue one, or
// every one shown).

import { api, get, enc, qs } from './api.js';
import { h, setText, Table, cell, badge, notify, notifyError, confirmDialog, shortId, markReady } from './ui.js';
import { fmtTime, rel } from './time.js';

function list(main, ctx) {
  document.title = 'Groups · dotjob';
  const table = new Table({
    label: 'Groups',
    key: (g) => g.name,
    href: (g) => `/groups/${enc(g.name)}`,
    navigate: ctx.navigate,
    columns: [
      { label: 'Group', value: (g) => cell(g.name, () => h('a', { href: `/groups/${enc(g.name)}` }, g.name)) },
      { label: 'Jobs', cls: 'num', value: (g) => g.jobs },
      { label: 'Executors', cls: 'num', value: (g) => g.executors },
      { label: 'Queue depth', cls: 'num', value: (g) => (g.lag === null ? '—' : g.lag) },
      { label: 'In flight', cls: 'num', value: (g) => g.pending },
      { label: 'Stream', cls: 'num opt', value: (g) => g.stream_length },
      { label: 'Dead letters', cls: 'num', value: (g) => g.dead_letters },
    ],
    empty: () => h('span', {}, 'No groups yet: a group appears with its first job. ', h('a', { href: '/jobs/new', class: 'w' }, 'Create a job')),
  });
  main.append(h('div', { class: 'pagehead' }, h('h1', {}, 'Groups')), table.el);
  return {
    async refresh() {
      table.update(await get('/groups'));
      markReady(main);
    },
  };
}

function detail(main, ctx, group) {
  document.title = `${group} · dotjob`;
  const g = enc(group);
  const setDisabled = async (e, disable) => {
    try {
      await api('POST', `/groups/${g}/executors/${enc(e.id)}/${disable ? 'disable' : 'enable'}`);
      notify('ok', `Executor ${e.id} ${disable ? 'disabled: it finishes what it holds and claims nothing new' : 'enabled'}.`);
      ctx.refreshNow();
    } catch (err) { notifyError(err, 'Executor'); }
  };
  const executors = new Table({
    label: 'Executors',
    key: (e) => e.id,
    columns: [
      { label: 'Executor', value: (e) => e.id },
      { label: 'State', value: (e) => cell(`${e.alive}|${e.disabled}`, () => h('span', {},
        badge(e.alive ? 'succeeded' : 'failed', e.alive ? 'alive' : 'silent'), e.disabled ? [' ', badge('paused', 'disabled')] : null)) },
      { label: 'Heartbeat', value: (e) => (e.last_heartbeat ? `${rel(e.last_heartbeat)}` : 'never') },
      { label: 'In flight', cls: 'num', value: (e) => e.pending },
      { label: 'Handlers', cls: 'opt', value: (e) => (e.handlers || []).join(', ') || '—' },
      { label: 'Version', cls: 'opt', value: (e) => e.version || '—' },
      { label: 'Host', cls: 'opt', value: (e) => `${e.host || '?'}${e.pid ? ` (pid ${e.pid})` : ''}` },
      { label: 'Action', value: (e) => cell(`${e.id}|${e.disabled}`, () => h('button', {
        type: 'button', class: 'ghost small', w: true, 'aria-label': `${e.disabled ? 'Enable' : 'Disable'} executor ${e.id}`,
        onclick: () => setDisabled(e, !e.disabled),
      }, e.disabled ? 'Enable' : 'Disable')) },
    ],
    empty: () => `No executor has registered for ${group}: start a worker with \`dotjob-worker --group ${group}\` or embed the worker library.`,
  });
  let shown = [];
  const requeue = async (d) => {
    try {
      const r = await api('POST', `/groups/${g}/dead/${enc(d.entry)}/requeue`);
      notify('ok', `Re-queued ${d.run} as run ${r.run_id}.`);
      return true;
    } catch (err) { notifyError(err, `Re-queue ${d.entry}`); return false; }
  };
  const dead = new Table({
    label: 'Dead letters',
    key: (d) => d.entry,
    columns: [
      { label: 'Failed', value: (d) => `${fmtTime(d.failed_at)} · ${rel(d.failed_at)}` },
      { label: 'Run', value: (d) => cell(d.run, () => h('a', { href: `/runs/${enc(d.run)}`, title: d.run }, d.run.startsWith(`${d.job}-`) ? `…${d.run.slice(d.job.length)}` : shortId(d.run, 18))) },
      { label: 'Job', cls: 'opt', value: (d) => cell(d.job, () => h('a', { href: `/jobs/${enc(d.job)}`, title: d.job }, shortId(d.job))) },
      { label: 'Attempts', cls: 'num', value: (d) => d.attempts },
      { label: 'Error', value: (d) => d.error },
      { label: 'Action', value: (d) => cell(d.entry, () => h('button', {
        type: 'button', class: 'ghost small', w: true, 'aria-label': `Re-queue dead letter ${d.entry}`,
        onclick: async () => { if (await requeue(d)) ctx.refreshNow(); },
      }, 'Re-queue')) },
    ],
    empty: () => 'No dead letters: runs land here when they fail every attempt.',
  });
  const all = h('button', { type: 'button', class: 'ghost', w: true, disabled: true }, 'Re-queue all shown');
  all.addEventListener('click', async () => {
    const items = shown;
    if (!items.length || !await confirmDialog(`Re-queue all ${items.length} dead letters shown?`, 'Re-queue all')) return;
    for (const d of items) await requeue(d);
    ctx.refreshNow();
  });
  const head = h('p', { class: 'muted' });
  main.append(
    h('div', { class: 'pagehead' }, h('h1', {}, `Group ${group}`), h('div', { class: 'actions' },
      h('a', { class: 'button ghost', href: `/jobs${qs({ group })}` }, 'Jobs'),
      h('a', { class: 'button ghost', href: `/runs${qs({ group })}` }, 'Runs'))),
    head,
    h('section', { class: 'card' }, h('h2', {}, 'Executors'), executors.el),
    h('section', { class: 'card' }, h('div', { class: 'pagehead' }, h('h2', {}, 'Dead letters'), h('div', { class: 'actions' }, all)), dead.el),
  );
  let gone = false;
  return {
    async refresh() {
      if (gone) return false;
      let ex;
      let dl;
      let info;
      try {
        [ex, dl, info] = await Promise.all([get(`/groups/${g}/executors`), get(`/groups/${g}/dead?limit=100`), get('/groups')]);
      } catch (e) {
        if (e.status === 404) {
          gone = true;
          main.replaceChildren(h('div', { class: 'empty-state', role: 'status' }, h('p', {}, `There is no group ${group}.`), h('a', { href: '/groups' }, 'All groups')));
          return false;
        }
        throw e;
      }
      executors.update(ex);
      shown = dl.items;
      dead.update(dl.items);
      all.disabled = dl.items.length === 0 || document.body.classList.contains('ro');
      const o = info.find((x) => x.name === group);
      if (o) setText(head, `${o.jobs} jobs · ${o.executors} executors · queue depth ${o.lag ?? '—'} · ${o.pending} in flight · ${o.dead_letters} dead letters`);
      markReady(main);
      return true;
    },
  };
}

export function mount(main, ctx) {
  return ctx.params.length ? detail(main, ctx, ctx.params[0]) : list(main, ctx);
}
