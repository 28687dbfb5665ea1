// Times and durations for people: absolute times in the viewer's zone or UTC (a toggle kept
// in localStorage), in a job's own zone, relative times ("3 min ago") and durations with
// units.

const KEY = 'dotjob.tz';
let mode = localStorage.getItem(KEY) === 'utc' ? 'utc' : 'local';

export const timeMode = () => mode;

export function setTimeMode(m) {
  mode = m === 'utc' ? 'utc' : 'local';
  localStorage.setItem(KEY, mode);
  window.dispatchEvent(new CustomEvent('dotjob:tz'));
}

const formats = new Map();
function formatter(tz, zoneName) {
  const k = `${tz || ''}|${zoneName}`;
  if (!formats.has(k)) {
    formats.set(k, new Intl.DateTimeFormat('en-CA', {
      timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
      timeZoneName: zoneName ? 'short' : undefined,
    }));
  }
  return formats.get(k);
}

function parts(date, tz, zoneName) {
  const p = {};
  for (const x of formatter(tz, zoneName).formatToParts(date)) p[x.type] = x.value;
  const s = `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  return zoneName ? `${s} ${p.timeZoneName}` : s;
}

/** An instant in the viewer's mode: `2026-11-21 14:03:05` (with `UTC` in UTC mode). */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return mode === 'utc' ? `${parts(d, 'UTC', false)} UTC` : parts(d, undefined, false);
}

/** An instant in an IANA zone, with the zone's abbreviation. */
export function fmtIn(iso, tz) {
  if (!iso) return '—';
  try {
    return parts(new Date(iso), tz, true);
  } catch {
    return fmtTime(iso);
  }
}

/** "in 5 s", "3 min ago". */
export function rel(iso, now = Date.now()) {
  if (!iso) return '';
  const ms = new Date(iso).getTime() - now;
  const a = Math.abs(ms);
  let t;
  if (a < 1500) return 'now';
  if (a < 60e3) t = `${Math.round(a / 1e3)} s`;
  else if (a < 3600e3) t = `${Math.round(a / 60e3)} min`;
  else if (a < 86400e3) t = `${Math.round(a / 3600e3)} h`;
  else t = `${Math.round(a / 86400e3)} d`;
  return ms > 0 ? `in ${t}` : `${t} ago`;
}

/** A duration in ms with its unit: `850 ms`, `1.25 s`, `2 min 5 s`, `1 h 3 min`. */
export function dur(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60e3) return `${(ms / 1e3).toFixed(ms < 10e3 ? 2 : 1)} s`;
  if (ms < 3600e3) return `${Math.floor(ms / 60e3)} min ${Math.round((ms % 60e3) / 1e3)} s`;
  if (ms < 86400e3) return `${Math.floor(ms / 3600e3)} h ${Math.round((ms % 3600e3) / 60e3)} min`;
  return `${Math.floor(ms / 86400e3)} d ${Math.round((ms % 86400e3) / 3600e3)} h`;
}

/** An instant with its relative form: `2026-11-21 14:03:05 · 3 min ago`. */
export function when(iso) {
  return iso ? `${fmtTime(iso)} · ${rel(iso)}` : '—';
}

/** The viewer's zone name. */
export function viewerZone() {
  return mode === 'utc' ? 'UTC' : Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** `datetime-local` input value (viewer's mode) → RFC 3339, or '' when empty. */
export function fromInput(v) {
  if (!v) return '';
  const d = mode === 'utc' ? new Date(`${v}Z`) : new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/** RFC 3339 → `datetime-local` input value in the viewer's mode. */
export function toInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const s = mode === 'utc' ? parts(d, 'UTC', false) : parts(d, undefined, false);
  return s.replace(' ', 'T');
}
