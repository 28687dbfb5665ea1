// The run page: status, attempts as a timeline, error, trigger kind, shard and parent run,
// the params override and result, a cancel button, and the log, which follows a live run
// as it is written (the follow endpoint through fetch, resuming from the last line seen;
// lines are only ever appended, never fetched again).

import { api, get, enc, followLog } from './api.js';
import { h, setText, badge, notify, notifyError, confirmDialog, json, markReady } from './ui.js';
import { fmtTime, dur, when } from './time.js';

const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'dead', 'skipped', 'cancelled', 'lost']);

function isComplete(r) {
  return FINAL.has(r.status) && !r.retry_at;
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function attemptItem(a, current) {
  const bad = ['failed', 'timed_out', 'dead', 'lost'].includes(a.status);
  const cls = a.status === 'succeeded' ? 'ok' : bad ? 'bad' : current && !FINAL.has(a.status) ? 'live' : '';
  return h('li', { class: cls },
    h('div', {}, h('b', {}, `Attempt ${a.attempt}`), ' ', badge(a.status || 'unknown'), a.code ? h('span', { class: 'muted' }, ` code ${a.code}`) : null),
    h('div', { class: 'muted' }, `${a.started_at ? fmtTime(a.started_at) : 'not started'}${a.finished_at ? ` → ${fmtTime(a.finished_at)}` : ''} · ${dur(a.duration_ms)}${a.worker ? ` · ${a.worker}` : ''}`),
    a.error ? h('pre', { class: 'err' }, a.error) : null);
}

export function mount(main, ctx) {
  const id = ctx.params[0];
  document.title = `Run ${id} · dotjob`;
  const status = h('span');
  const cancelBtn = h('button', { type: 'button', class: 'danger w', hidden: true }, 'Cancel run');
  const jobLink = h('p', { class: 'muted' });
  const details = h('div');
  const timeline = h('ol', { class: 'timeline', 'aria-label': 'Attempts' });
  const extra = h('div');
  const logState = h('span', { class: 'muted', role: 'status' });
  const log = h('pre', { class: 'log', id: 'run-log', tabindex: 0, 'aria-label': 'Log lines' });
  const follow = h('input', { type: 'checkbox', id: 'log-scroll', checked: true });
  main.append(
    h('div', { class: 'pagehead' }, h('h1', {}, 'Run ', h('code', {}, id)), status, h('div', { class: 'actions' }, cancelBtn)),
    jobLink,
    h('div', { class: 'grid2' },
      h('section', { class: 'card' }, h('h2', {}, 'Details'), details, extra),
      h('section', { class: 'card' }, h('h2', {}, 'Attempts'), timeline)),
    h('section', { class: 'card' },
      h('h2', {}, 'Log'),
      h('div', { class: 'logbar' }, logState, h('label', { for: 'log-scroll' }, follow, ' keep the newest line in view')),
      log),
  );

  let run = null;
  let dead = false;
  let key = '';
  let logStarted = false;
  let jobName = '';
  const abort = new AbortController();

  function append(line) {
    log.append(`${line}\n`);
    if (follow.checked) log.scrollTop = log.scrollHeight;
    // The first line says the run started: show its status without waiting for the tick.
    if (run && run.status === 'queued') ctx.refreshNow();
  }

  async function startLog(r) {
    logStarted = true;
    const onEnd = (d) => {
      setText(logState, `Complete: the run ended ${d.status}.`);
      ctx.refreshNow();
    };
    const onError = (e) => setText(logState, `Log unavailable: ${e.message}`);
    if (isComplete(r)) {
      try {
        const l = await get(`/runs/${enc(id)}/logs`, abort.signal);
        for (const line of l.lines) append(line);
        setText(logState, `Complete · ${l.lines.length} line${l.lines.length === 1 ? '' : 's'}.`);
      } catch (e) { if (e.name !== 'AbortError') onError(e); }
      return;
    }
    setText(logState, 'Following the live log…');
    followLog(id, 0, {
      onLine: append,
      onEnd,
      onError,
      onState: (s) => setText(logState, s === 'following' ? 'Following the live log…' : 'Connection lost: reconnecting…'),
    }, abort.signal);
  }

  function show(r) {
    run = r;
    const k = JSON.stringify(r);
    if (k === key) return;
    key = k;
    status.replaceChildren(badge(r.status));
    cancelBtn.hidden = isComplete(r);
    jobLink.replaceChildren('Job ', h('a', { href: `/jobs/${enc(r.job_id)}`, title: r.job_id }, jobName || r.job_id), ` · group `, h('a', { href: `/groups/${enc(r.group)}` }, r.group), ` · job version ${r.job_version}`);
    details.replaceChildren(kv([
      ['Status', badge(r.status)],
      ['Trigger', r.trigger],
      ['Scheduled', when(r.scheduled_at)],
      ['Enqueued', r.enqueued_at ? fmtTime(r.enqueued_at) : null],
      ['Started', r.started_at ? fmtTime(r.started_at) : null],
      ['Finished', r.finished_at ? fmtTime(r.finished_at) : null],
      ['Duration', dur(r.duration_ms)],
      ['Attempt', String(r.attempt)],
      ['Retry at', r.retry_at ? when(r.retry_at) : null],
      ['Worker', r.worker],
      ['Bound to executor', r.executor ? `${r.executor} (broadcast: runs there only)` : null],
      ['Code', r.code === null || r.code === undefined ? null : String(r.code)],
      ['Shard', r.shards ? `${r.shard + 1} of ${r.shards}` : null],
      ['Shard param', r.shard_param === undefined ? null : h('code', {}, JSON.stringify(r.shard_param))],
      ['Parent run', r.parent_run ? h('a', { href: `/runs/${enc(r.parent_run)}` }, r.parent_run) : null],
      ['Fired by', r.fired_by],
      ['Stream entry', r.entry],
    ]));
    extra.replaceChildren(...[
      r.error ? h('div', {}, h('h3', {}, 'Error'), h('pre', { class: 'err' }, r.error)) : null,
      r.params !== undefined ? h('div', {}, h('h3', {}, 'Params override'), h('pre', { class: 'json' }, json(r.params))) : null,
      r.result !== null && r.result !== undefined ? h('div', {}, h('h3', {}, 'Result'), h('pre', { class: 'json' }, json(r.result))) : null,
    ].filter(Boolean));
    const current = { attempt: r.attempt, status: r.status, started_at: r.started_at, finished_at: r.finished_at, duration_ms: r.duration_ms, worker: r.worker, code: r.code, error: r.error };
    const items = r.attempts.map((a) => attemptItem(a, false));
    if (r.attempt > 0 || r.started_at || !r.attempts.length) items.push(attemptItem(current, true));
    timeline.replaceChildren(...items);
  }

  cancelBtn.addEventListener('click', async () => {
    if (!await confirmDialog(`Cancel run ${id}? A running handler is told to stop.`, 'Stop the run', true)) return;
    try {
      const r = await api('POST', `/runs/${enc(id)}/cancel`);
      notify('ok', r.status === 'cancelled' ? 'Run cancelled.' : 'Cancel requested: the executor is stopping the handler.');
      show(r);
      ctx.refreshNow();
    } catch (e) { notifyError(e, 'Cancel'); }
  });

  return {
    async refresh() {
      if (dead) return false;
      let r;
      try {
        r = await get(`/runs/${enc(id)}`);
      } catch (e) {
        if (e.status === 404) {
          dead = true;
          main.replaceChildren(h('div', { class: 'empty-state', role: 'status' }, h('p', {}, `Run ${id} does not exist (any more): retention or a job deletion may have removed it.`), h('a', { href: '/runs' }, 'Back to the runs')));
          return false;
        }
        throw e;
      }
      show(r);
      if (!logStarted) {
        startLog(r);
        get(`/jobs/${enc(r.job_id)}`).then((j) => { jobName = j.name; key = ''; show(run); }).catch(() => {});
      }
      markReady(main);
      return true;
    },
    unmount() { abort.abort(); },
  };
}
