// Overview: one card per group (runs per minute by status over the last hour, failure
// rate, p95 duration, queue depth and lag, executors, a warning when work waits with no
// live executor) and the scheduler replicas with the groups each holds.

import { get } from './api.js';
import { h, setText, Table, cell, badge, markReady } from './ui.js';
import { dur, rel, fmtTime } from './time.js';
import { minuteChart, legend } from './chart.js';

function pct(x) {
  return x === null || x === undefined ? '—' : `${(x * 100).toFixed(x < 0.1 && x > 0 ? 1 : 0)} %`;
}

function stat(label) {
  const b = h('b');
  return { el: h('div', { class: 'stat' }, b, h('span', {}, label)), b };
}

/** A group's card, updated in place. */
function groupCard(name) {
  const title = h('h2', {}, h('a', { href: `/groups/${encodeURIComponent(name)}` }, name));
  const warn = h('div', { class: 'banner bad', role: 'alert', hidden: true });
  const s = {
    jobs: stat('jobs'), scheduled: stat('scheduled'), depth: stat('queue depth'), lag: stat('lag'),
    pending: stat('in flight'), live: stat('live executors'), fail: stat('failure rate (1 h)'),
    p95: stat('p95 duration'), dead: stat('dead letters'),
  };
  const chartBox = h('div');
  const legendBox = h('div');
  const note = h('p', { class: 'muted' });
  const lease = h('p', { class: 'muted' });
  const el = h('section', { class: 'card', 'aria-label': `Group ${name}` }, title, warn,
    h('div', { class: 'stats' }, Object.values(s).map((x) => x.el)), chartBox, legendBox, note, lease);
  let chartKey = '';
  return {
    el,
    update(g) {
      warn.hidden = !g.warning;
      setText(warn, g.warning ? `⚠ ${g.warning}` : '');
      setText(s.jobs.b, g.jobs);
      setText(s.scheduled.b, g.scheduled);
      setText(s.depth.b, g.queue_depth ?? '—');
      setText(s.lag.b, g.lag_ms === null ? (g.queue_depth === 0 ? 'none' : '—') : dur(g.lag_ms));
      setText(s.pending.b, g.pending);
      setText(s.live.b, `${g.live_executors} / ${g.executors}`);
      setText(s.fail.b, pct(g.runs.failure_rate));
      setText(s.p95.b, dur(g.runs.duration_p95_ms));
      setText(s.dead.b, g.dead_letters);
      const key = JSON.stringify(g.runs.minutes);
      if (key !== chartKey) {
        chartKey = key;
        chartBox.replaceChildren(minuteChart(g.runs.minutes, `Runs per minute in ${g.group}`));
        legendBox.replaceChildren(legend(g.runs.minutes));
      }
      const r = g.runs;
      setText(note, r.sampled === 0
        ? 'No runs in the last hour.'
        : `${(r.total ?? r.sampled).toLocaleString('en')} runs in the last hour${r.complete ? '' : ` (chart and figures from the newest ${r.sampled})`}; p50 ${dur(r.duration_p50_ms)}.`);
      setText(lease, g.lease.current ? `Scheduled by ${g.lease.owner} (lease epoch ${g.lease.epoch})` : 'No scheduler holds this group right now.');
    },
  };
}

export function mount(main) {
  document.title = 'Overview · dotjob';
  const cards = h('div', { class: 'cards' });
  const empty = h('div', { class: 'empty-state', hidden: true },
    h('p', {}, 'No groups yet: a group appears with its first job.'),
    h('a', { class: 'button w', href: '/jobs/new' }, 'Create a job'));
  const replicas = new Table({
    label: 'Scheduler replicas',
    key: (r) => r.id,
    columns: [
      { label: 'Replica', value: (r) => r.id },
      { label: 'State', value: (r) => cell(r.alive, () => badge(r.alive ? 'succeeded' : 'failed', r.alive ? 'alive' : 'silent')) },
      { label: 'Last seen', value: (r) => `${fmtTime(r.last_seen)} · ${rel(r.last_seen)}` },
      { label: 'Groups held', value: (r) => r.groups.join(', ') || '—' },
    ],
    empty: () => 'No scheduler replica has reported: is dotjob-scheduler running against this Redis?',
  });
  const generated = h('p', { class: 'muted' });
  main.append(
    h('div', { class: 'pagehead' }, h('h1', {}, 'Overview'), h('div', { class: 'actions' }, h('a', { class: 'button w', href: '/jobs/new' }, 'New job'))),
    empty, cards,
    h('h2', { class: 'section' }, 'Scheduler replicas'), replicas.el, generated,
  );
  const byGroup = new Map();
  return {
    async refresh() {
      const o = await get('/views/overview');
      empty.hidden = o.groups.length > 0;
      const seen = new Set();
      let prev = null;
      for (const g of o.groups) {
        seen.add(g.group);
        let c = byGroup.get(g.group);
        if (!c) { c = groupCard(g.group); byGroup.set(g.group, c); }
        c.update(g);
        const want = prev ? prev.nextSibling : cards.firstChild;
        if (want !== c.el) cards.insertBefore(c.el, want);
        prev = c.el;
      }
      for (const [k, c] of byGroup) if (!seen.has(k)) { c.el.remove(); byGroup.delete(k); }
      replicas.update(o.schedulers);
      setText(generated, `Computed ${fmtTime(o.generated_at)}${o.groups_truncated ? ' · showing the first 100 groups' : ''}`);
      markReady(main);
    },
  };
}
