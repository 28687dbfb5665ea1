// A small inline SVG chart: runs per minute, stacked by status, over the last hour.

import { h } from './ui.js';
import { fmtTime } from './time.js';

/** Stacking order, bottom up. */
export const STATUSES = ['succeeded', 'running', 'queued', 'skipped', 'cancelled', 'failed', 'timed_out', 'dead', 'lost'];

const W = 600;
const H = 90;
const PAD = 12;

/** A stacked bar chart of `minutes` (`[{at, by_status}]`, oldest first). */
export function minuteChart(minutes, label) {
  const totals = minutes.map((m) => Object.values(m.by_status).reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const bw = W / Math.max(1, minutes.length);
  const all = totals.reduce((a, b) => a + b, 0);
  const svg = h('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `${label}: ${all} runs in ${minutes.length} minutes, at most ${max} in one minute`,
  });
  minutes.forEach((m, i) => {
    let y = H - PAD;
    const g = h('g');
    const desc = [];
    for (const st of STATUSES) {
      const n = m.by_status[st] || 0;
      if (!n) continue;
      desc.push(`${n} ${st.replace('_', ' ')}`);
      const bh = Math.max(1, (n / max) * (H - 2 * PAD));
      y -= bh;
      g.append(h('rect', { class: `fill-${st}`, x: (i * bw + 0.5).toFixed(1), y: y.toFixed(1), width: Math.max(1, bw - 1).toFixed(1), height: bh.toFixed(1) }));
    }
    if (desc.length) {
      g.append(h('title', {}, `${fmtTime(m.at)}: ${desc.join(', ')}`));
      svg.append(g);
    }
  });
  svg.append(h('text', { class: 'axis', x: 2, y: H - 2 }, '−60 min'));
  svg.append(h('text', { class: 'axis', x: W - 22, y: H - 2 }, 'now'));
  svg.append(h('text', { class: 'axis', x: 2, y: 9 }, `${max}/min`));
  return svg;
}

/** The colour key of the statuses present in `minutes`. */
export function legend(minutes) {
  const present = STATUSES.filter((s) => minutes.some((m) => m.by_status[s]));
  return h('div', { class: 'legend' }, present.map((s) => h('span', {}, h('i', { class: `bg-${s}` }), s.replace('_', ' '))));
}
