// The job definition form: every field of a job, a live preview of the next fires under
// the schedule (debounced `POST /schedule/preview`), and each API error shown at the field
// it names. Used to create, clone and edit jobs; read-only for a read token.

import { api, isReadOnly } from './api.js';
import { h, field, fieldError, debounce, setText, json, notifyError } from './ui.js';
import { fmtTime, fmtIn } from './time.js';

const NUMS = ['timeout_ms', 'max_attempts', 'misfire_threshold_ms', 'catch_up_limit'];

/** Input id of an API field path (`backoff.base_ms` → `f-backoff-base_ms`). */
const fid = (path) => `f-${path.replace(/\./g, '-')}`;

/** Where an API error's field is shown: the most specific input that exists. */
function inputFor(fieldPath) {
  const alias = { routing: 'routing.mode', backoff: 'backoff.base_ms', 'routing.mode': 'routing.mode' };
  let p = alias[fieldPath] || fieldPath;
  for (;;) {
    if (document.getElementById(fid(p))) return fid(p);
    const i = p.lastIndexOf('.');
    if (i < 0) return null;
    p = alias[p.slice(0, i)] || p.slice(0, i);
  }
}

function zones() {
  try { return Intl.supportedValuesOf('timeZone'); } catch { return ['UTC']; }
}

/** The form. `job`: the job to edit or copy (null: a new one); `create`: POST or PATCH. */
export function jobForm({ job, create, onSubmit }) {
  const ro = isReadOnly();
  const j = job || {};
  const inp = (path, props) => h('input', { name: path, ...props });
  const c = {
    name: inp('name', { type: 'text', required: true, maxlength: 200, autocomplete: 'off' }),
    group: inp('group', { type: 'text', placeholder: 'default', disabled: !create, autocomplete: 'off' }),
    handler: inp('handler', { type: 'text', required: true, placeholder: 'http, shell, or a handler of your workers', autocomplete: 'off' }),
    schedule: inp('schedule', { type: 'text', placeholder: '*/10 * * * * *   ·   30 9 * * MON-FRI   ·   @every 30s   ·   empty: by hand', autocomplete: 'off', spellcheck: 'false' }),
    timezone: inp('timezone', { type: 'text', list: 'tz-list', placeholder: 'UTC', autocomplete: 'off' }),
    enabled: inp('enabled', { type: 'checkbox' }),
    params: h('textarea', { name: 'params', rows: 4, spellcheck: 'false' }),
    timeout_ms: inp('timeout_ms', { type: 'number', min: 1, placeholder: '300000' }),
    max_attempts: inp('max_attempts', { type: 'number', min: 1, max: 100, placeholder: '1' }),
    'backoff.base_ms': inp('backoff.base_ms', { type: 'number', min: 1, placeholder: '1000' }),
    'backoff.max_ms': inp('backoff.max_ms', { type: 'number', min: 1, placeholder: '300000' }),
    misfire_policy: h('select', { name: 'misfire_policy' }, ['fire_once', 'skip', 'catch_up'].map((v) => h('option', { value: v }, v))),
    misfire_threshold_ms: inp('misfire_threshold_ms', { type: 'number', min: 0, placeholder: '30000' }),
    catch_up_limit: inp('catch_up_limit', { type: 'number', min: 1, placeholder: '100' }),
    concurrency: h('select', { name: 'concurrency' }, ['allow', 'forbid', 'replace'].map((v) => h('option', { value: v }, v))),
    'routing.mode': h('select', { name: 'routing.mode' }, ['any', 'broadcast', 'sharded'].map((v) => h('option', { value: v }, v))),
    'routing.shards': inp('routing.shards', { type: 'number', min: 1, max: 1024, placeholder: '2' }),
    'routing.shard_params': h('textarea', { name: 'routing.shard_params', rows: 2, spellcheck: 'false', placeholder: '[] (one JSON value per shard)' }),
    children: inp('children', { type: 'text', placeholder: 'job ids, comma-separated', autocomplete: 'off' }),
    description: h('textarea', { name: 'description', rows: 2 }),
    labels: h('textarea', { name: 'labels', rows: 2, spellcheck: 'false', placeholder: 'team=ops (one per line)' }),
  };
  const preview = h('ol', { class: 'preview', 'aria-label': 'Next fires' });
  const previewNote = h('div', { class: 'hint', 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', w: true }, create ? 'Create job' : 'Save changes');
  const status = h('span', { class: 'muted', role: 'status' });
  const shardBox = h('div', { class: 'field wide' });
  const form = h('form', { class: 'def', novalidate: true, 'aria-label': 'Job definition' },
    field(fid('name'), 'Name', c.name),
    field(fid('group'), 'Group', c.group, create ? 'Executor group whose workers run it; fixed after creation.' : 'Fixed after creation.'),
    field(fid('handler'), 'Handler', c.handler),
    field(fid('timezone'), 'Time zone', c.timezone, 'IANA name, e.g. Europe/Berlin'),
    h('div', { class: 'field wide' }, field(fid('schedule'), 'Schedule', c.schedule, 'Cron with seconds or 5 fields, @hourly, @every 30s, @once <instant>, or empty to run only by hand.'), previewNote, preview),
    h('div', { class: 'field checkrow wide' }, c.enabled, h('label', { for: fid('enabled') }, 'Enabled (scheduled ticks fire)')),
    field(fid('params'), 'Params (JSON)', c.params, 'Given to the handler; any JSON.', 'wide'),
    field(fid('timeout_ms'), 'Timeout (ms)', c.timeout_ms),
    field(fid('max_attempts'), 'Max attempts', c.max_attempts),
    field(fid('backoff.base_ms'), 'Retry backoff base (ms)', c['backoff.base_ms']),
    field(fid('backoff.max_ms'), 'Retry backoff cap (ms)', c['backoff.max_ms']),
    field(fid('misfire_policy'), 'Misfire policy', c.misfire_policy),
    field(fid('misfire_threshold_ms'), 'Misfire threshold (ms)', c.misfire_threshold_ms),
    field(fid('catch_up_limit'), 'Catch-up limit', c.catch_up_limit),
    field(fid('concurrency'), 'Concurrency', c.concurrency, 'allow: overlap · forbid: skip while one runs · replace: cancel the old run'),
    field(fid('routing.mode'), 'Routing', c['routing.mode']),
    shardBox,
    field(fid('children'), 'Child jobs', c.children, 'Triggered when a run succeeds.'),
    field(fid('description'), 'Description', c.description, null, 'wide'),
    field(fid('labels'), 'Labels', c.labels, 'key=value, one per line', 'wide'),
    h('datalist', { id: 'tz-list' }, zones().map((z) => h('option', { value: z }))),
    h('div', { class: 'formbar wide' }, save, status),
  );
  c.enabled.id = fid('enabled');
  shardBox.append(field(fid('routing.shards'), 'Shards', c['routing.shards']), field(fid('routing.shard_params'), 'Shard params (JSON array)', c['routing.shard_params']));
  const showShards = () => { shardBox.hidden = c['routing.mode'].value !== 'sharded'; };
  c['routing.mode'].addEventListener('change', showShards);
  if (ro) for (const el of Object.values(c)) el.disabled = true;

  let base = null;
  /** Puts a job's values in the inputs (a new job: defaults). */
  function fill(src) {
    const v = (x, d = '') => (x === undefined || x === null ? d : x);
    c.name.value = v(src.name);
    c.group.value = v(src.group);
    c.handler.value = v(src.handler);
    c.schedule.value = v(src.schedule);
    c.timezone.value = v(src.timezone, 'UTC');
    c.enabled.checked = src.enabled !== false;
    c.params.value = src.params === undefined || src.params === null ? '' : json(src.params);
    for (const k of NUMS) c[k].value = v(src[k]);
    c['backoff.base_ms'].value = v(src.backoff && src.backoff.base_ms);
    c['backoff.max_ms'].value = v(src.backoff && src.backoff.max_ms);
    c.misfire_policy.value = v(src.misfire_policy, 'fire_once');
    c.concurrency.value = v(src.concurrency, 'allow');
    const r = src.routing || { mode: 'any' };
    c['routing.mode'].value = ['sharded', 'broadcast'].includes(r.mode) ? r.mode : 'any';
    c['routing.shards'].value = v(r.shards);
    c['routing.shard_params'].value = r.shard_params && r.shard_params.length ? JSON.stringify(r.shard_params) : '';
    c.children.value = (src.children || []).join(', ');
    c.description.value = v(src.description);
    c.labels.value = Object.entries(src.labels || {}).map(([k, x]) => `${k}=${x}`).join('\n');
    showShards();
    base = create ? null : values(true);
    dirty = false;
    updatePreview();
  }

  /** The inputs as a job body; `quiet`: never marks errors (used for the baseline). */
  function values(quiet) {
    const out = {};
    const bad = [];
    const num = (k, path) => {
      const t = c[k].value.trim();
      if (t === '') return undefined;
      const n = Number(t);
      if (!Number.isInteger(n) || n < 0) { bad.push([path || k, 'a whole number is needed']); return undefined; }
      return n;
    };
    const parse = (k, what) => {
      const t = c[k].value.trim();
      if (t === '') return undefined;
      try { return JSON.parse(t); } catch (e) { bad.push([k, `not valid JSON (${what}): ${e.message}`]); return undefined; }
    };
    out.name = c.name.value.trim();
    if (create) out.group = c.group.value.trim() || undefined;
    out.handler = c.handler.value.trim();
    out.schedule = c.schedule.value.trim() || null;
    out.timezone = c.timezone.value.trim() || 'UTC';
    out.enabled = c.enabled.checked;
    out.params = parse('params', 'params');
    if (out.params === undefined && !create) out.params = null;
    for (const k of NUMS) out[k] = num(k);
    const b = num('backoff.base_ms');
    const m = num('backoff.max_ms');
    if (b !== undefined || m !== undefined) out.backoff = { base_ms: b ?? (base && base.backoff ? base.backoff.base_ms : 1000), max_ms: m ?? (base && base.backoff ? base.backoff.max_ms : 300000) };
    out.misfire_policy = c.misfire_policy.value;
    out.concurrency = c.concurrency.value;
    if (c['routing.mode'].value === 'sharded') {
      const sp = parse('routing.shard_params', 'shard params');
      out.routing = { mode: 'sharded', shards: num('routing.shards'), shard_params: sp === undefined ? [] : sp };
    } else if (c['routing.mode'].value === 'broadcast') {
      out.routing = { mode: 'broadcast' };
    } else {
      out.routing = { mode: 'any' };
    }
    out.children = c.children.value.split(/[\s,]+/).filter(Boolean);
    out.description = c.description.value;
    const labels = {};
    for (const line of c.labels.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const i = line.indexOf('=');
      if (i <= 0) { bad.push(['labels', `"${line}" is not key=value`]); continue; }
      labels[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    out.labels = labels;
    for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
    if (!quiet) for (const [k, msg] of bad) fieldError(fid(k), msg);
    return { body: out, bad };
  }

  function clearErrors() {
    for (const el of form.querySelectorAll('[aria-invalid="true"]')) fieldError(el.id, '');
  }

  /** Shows an API error at its field; returns false when no input matches it. */
  function showError(e) {
    const id = e.field ? inputFor(e.field) : null;
    if (!id) return false;
    fieldError(id, e.message);
    document.getElementById(id).focus();
    return true;
  }

  const updatePreview = debounce(async () => {
    const schedule = c.schedule.value.trim();
    const timezone = c.timezone.value.trim() || 'UTC';
    if (!schedule) {
      preview.replaceChildren();
      setText(previewNote, 'Runs only when triggered by hand.');
      fieldError(fid('schedule'), '');
      return;
    }
    try {
      const p = await api('POST', '/schedule/preview', { schedule, timezone, count: 5 });
      if (c.schedule.value.trim() !== schedule) return;
      fieldError(fid('schedule'), '');
      fieldError(fid('timezone'), '');
      setText(previewNote, p.fires.length ? `Next ${p.fires.length} fires:` : 'This schedule fires no more.');
      preview.replaceChildren(...p.fires.map((f) => h('li', {}, fmtTime(f), timezone !== 'UTC' ? h('span', { class: 'muted' }, ` · ${fmtIn(f, timezone)}`) : null)));
    } catch (e) {
      if (c.schedule.value.trim() !== schedule) return;
      preview.replaceChildren();
      setText(previewNote, '');
      if (!showError(e)) setText(previewNote, e.message);
    }
  }, 300);
  c.schedule.addEventListener('input', updatePreview);
  c.timezone.addEventListener('change', updatePreview);

  let dirty = false;
  form.addEventListener('input', () => { dirty = true; });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors();
    const { body, bad } = values(false);
    if (bad.length) { document.getElementById(fid(bad[0][0])).focus(); return; }
    let send = body;
    if (!create && base) {
      send = {};
      for (const [k, v] of Object.entries(body)) if (JSON.stringify(v) !== JSON.stringify(base.body[k])) send[k] = v;
      if (!Object.keys(send).length) { setText(status, 'Nothing changed.'); return; }
    }
    save.disabled = true;
    setText(status, 'Saving…');
    try {
      const saved = await onSubmit(send);
      setText(status, create ? '' : `Saved: version ${saved.version}.`);
      if (!create) fill(saved);
    } catch (e) {
      setText(status, '');
      if (!showError(e)) notifyError(e, create ? 'Create' : 'Save');
    } finally {
      save.disabled = false;
    }
  });

  fill(j);
  return {
    el: form,
    isDirty: () => dirty,
    fill,
    status: (t) => setText(status, t),
  };
}
