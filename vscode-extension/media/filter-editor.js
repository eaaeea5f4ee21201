// @ts-check
'use strict';
/**
 * The HTTP filter editor, inside a webview: a form for `feature.network.incoming.http_filter`, a table of
 * sample requests marked live with what the filter does to them (`pymirrord/testFilter`), and Save.
 *
 * It talks to its host (the extension, or a test's stand-in) only through messages:
 *   to the host:   {type: 'ready'}, {type: 'testFilter', id, filter, requests}, {type: 'save', filter},
 *                  {type: 'samples', samples}
 *   from the host: {type: 'document', document: {uri, name, format, mode, filter, error}, samples},
 *                  {type: 'testResult', id, report} or {type: 'testResult', id, error},
 *                  {type: 'saved', ok, message}
 * The pure part (form <-> filter, sample rows <-> requests) is exported for node's tests.
 */

/**
 * @typedef {{type: 'header' | 'path' | 'method', value: string}} Condition
 * @typedef {{kind: 'none' | 'header' | 'path' | 'method' | 'all_of' | 'any_of', value: string,
 *   items: Condition[], ports: string}} FilterForm
 * @typedef {{method: string, path: string, headers: string}} Sample
 * @typedef {{pointer: string, message: string, position: number | null}} FilterError
 */

const SINGLE = /** @type {const} */ ({ header: 'header_filter', path: 'path_filter', method: 'method_filter' });
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const DEFAULT_SAMPLES = [
  { method: 'GET', path: '/api/users', headers: 'X-User: alice' },
  { method: 'GET', path: '/api/users', headers: 'X-User: bob' },
  { method: 'POST', path: '/health', headers: '' },
];

/**
 * The form for a filter as written in a config (null: no filter).
 * @param {any} filter
 * @returns {FilterForm}
 */
function formOf(filter) {
  /** @type {FilterForm} */
  const form = { kind: 'none', value: '', items: [], ports: '' };
  if (!filter || typeof filter !== 'object') return form;
  if (Array.isArray(filter.ports)) form.ports = filter.ports.join(', ');
  else if (filter.ports !== undefined && filter.ports !== null) form.ports = String(filter.ports);
  for (const [type, key] of Object.entries(SINGLE)) {
    if (typeof filter[key] === 'string') {
      return { ...form, kind: /** @type {FilterForm['kind']} */ (type), value: filter[key] };
    }
  }
  for (const kind of /** @type {const} */ (['all_of', 'any_of'])) {
    if (Array.isArray(filter[kind])) {
      const items = filter[kind].map((/** @type {any} */ item) => {
        const [type = 'header', value = ''] = Object.entries(item || {})[0] || [];
        return { type: /** @type {Condition['type']} */ (type), value: String(value) };
      });
      return { ...form, kind, items };
    }
  }
  return form;
}

/**
 * The filter a form stands for, as written in a config (null: no filter), or the error in its ports.
 * @param {FilterForm} form
 * @returns {{filter: any} | {portsError: string}}
 */
function filterOf(form) {
  /** @type {any} */
  let filter = null;
  if (form.kind === 'header' || form.kind === 'path' || form.kind === 'method') {
    filter = { [SINGLE[form.kind]]: form.value };
  } else if (form.kind === 'all_of' || form.kind === 'any_of') {
    filter = { [form.kind]: form.items.map((item) => ({ [item.type]: item.value })) };
  }
  const text = form.ports.trim();
  if (!text) return { filter };
  const parts = text.split(/[\s,]+/).filter(Boolean);
  const ports = parts.map(Number);
  const bad = parts.find((part, index) => !/^\d+$/.test(part) || ports[index] < 1 || ports[index] > 65535);
  if (bad !== undefined) return { portsError: `"${bad}" is not a port: write numbers from 1 to 65535, such as 80, 8080` };
  return { filter: { ...(filter || {}), ports } };
}

/**
 * A sample row as a `testFilter` request; header lines without a colon are left out.
 * @param {Sample} sample
 */
function requestOf(sample) {
  const headers = sample.headers.split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.indexOf(':') > 0)
    .map((line) => [line.slice(0, line.indexOf(':')).trim(), line.slice(line.indexOf(':') + 1).trim()]);
  const path = sample.path.trim() || '/';
  return { method: sample.method || 'GET', path: path.startsWith('/') ? path : `/${path}`, headers };
}

/**
 * Which form field an error of `testFilter` is about: 'single', 'item:N', 'ports' or 'filter'.
 * @param {string} pointer
 */
function fieldOf(pointer) {
  if (/^\/(header_filter|path_filter|method_filter)$/.test(pointer)) return 'single';
  const item = /^\/(?:all_of|any_of)\/(\d+)/.exec(pointer);
  if (item) return `item:${item[1]}`;
  if (pointer.startsWith('/ports')) return 'ports';
  return 'filter';
}

/**
 * The words for a verdict: in steal mode a match is stolen; in mirror mode it is copied.
 * @param {boolean} taken
 * @param {string} mode
 */
function verdictWord(taken, mode) {
  if (!taken) return 'passed';
  return mode === 'mirror' ? 'copied' : 'stolen';
}

// The page ---------------------------------------------------------------------------------------------

function start() {
  // @ts-ignore: provided by VS Code (or a test's stand-in) in the webview's global scope
  const host = acquireVsCodeApi();
  /** @param {string} id */
  const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const kind = /** @type {HTMLSelectElement} */ ($('kind'));
  const single = /** @type {HTMLInputElement} */ ($('single'));
  const ports = /** @type {HTMLInputElement} */ ($('ports'));
  const save = /** @type {HTMLButtonElement} */ ($('save'));
  const tbody = /** @type {HTMLElement} */ ($('samples').querySelector('tbody'));

  const state = {
    /** @type {any} */ document: null,
    /** @type {FilterForm} */ form: formOf(null),
    /** @type {Sample[]} */ samples: DEFAULT_SAMPLES.map((s) => ({ ...s })),
    /** @type {any} */ report: null,
    testId: 0,
    valid: false,
    /** @type {ReturnType<typeof setTimeout> | undefined} */ timer: undefined,
  };

  /** @param {string} text */
  function status(text) {
    $('status').textContent = text;
  }

  function renderForm() {
    const form = state.form;
    kind.value = form.kind;
    const isSingle = form.kind === 'header' || form.kind === 'path' || form.kind === 'method';
    $('single-row').hidden = !isSingle;
    $('list-row').hidden = !(form.kind === 'all_of' || form.kind === 'any_of');
    if (isSingle) {
      $('single-label').textContent = form.kind === 'method' ? 'Method' : form.kind === 'header' ? 'Header regex' : 'Path regex';
      single.placeholder = form.kind === 'method' ? 'POST' : form.kind === 'header' ? '^X-User: alice$' : '^/api/';
      if (single.value !== form.value) single.value = form.value;
    }
    if (ports.value !== form.ports) ports.value = form.ports;
    renderItems();
  }

  /**
   * A row's ✕ button.
   * @param {string} title
   * @param {() => void} onClick
   */
  function removeButton(title, onClick) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'icon';
    button.title = title;
    button.textContent = '✕';
    button.addEventListener('click', onClick);
    return button;
  }

  function renderItems() {
    const container = $('items');
    container.replaceChildren(...state.form.items.map((item, index) => {
      const row = document.createElement('div');
      row.className = 'item';
      const type = document.createElement('select');
      type.setAttribute('aria-label', `condition ${index + 1} kind`);
      for (const option of ['header', 'path', 'method']) type.add(new Option(option, option));
      type.value = item.type;
      type.addEventListener('change', () => {
        item.type = /** @type {Condition['type']} */ (type.value);
        changed();
      });
      const field = document.createElement('div');
      field.className = 'field';
      const input = document.createElement('input');
      input.type = 'text';
      input.spellcheck = false;
      input.value = item.value;
      input.id = `item-${index}`;
      input.setAttribute('aria-label', `condition ${index + 1}`);
      input.addEventListener('input', () => {
        item.value = input.value;
        changed();
      });
      const error = document.createElement('div');
      error.className = 'field-error';
      error.id = `item-${index}-error`;
      error.hidden = true;
      field.append(input, error);
      const remove = removeButton('Remove this condition', () => {
        state.form.items.splice(index, 1);
        renderItems();
        changed();
      });
      row.append(type, field, remove);
      return row;
    }));
  }

  function renderSamples() {
    tbody.replaceChildren(...state.samples.map((sample, index) => {
      const row = document.createElement('tr');
      row.dataset.index = String(index);
      const method = document.createElement('select');
      method.setAttribute('aria-label', `request ${index + 1} method`);
      for (const name of new Set([...METHODS, sample.method])) method.add(new Option(name, name));
      method.value = sample.method;
      method.addEventListener('change', () => {
        sample.method = method.value;
        samplesChanged();
      });
      const path = document.createElement('input');
      path.type = 'text';
      path.spellcheck = false;
      path.value = sample.path;
      path.setAttribute('aria-label', `request ${index + 1} path`);
      path.addEventListener('input', () => {
        sample.path = path.value;
        samplesChanged();
      });
      const headers = document.createElement('textarea');
      headers.spellcheck = false;
      headers.rows = Math.max(1, sample.headers.split('\n').length);
      headers.value = sample.headers;
      headers.setAttribute('aria-label', `request ${index + 1} headers`);
      headers.addEventListener('input', () => {
        sample.headers = headers.value;
        headers.rows = Math.max(1, headers.value.split('\n').length);
        samplesChanged();
      });
      const verdict = document.createElement('td');
      verdict.className = 'verdict';
      const remove = removeButton('Remove this request', () => {
        state.samples.splice(index, 1);
        renderSamples();
        samplesChanged();
      });
      const cells = [['method', method], ['path', path], ['headers', headers]].map(([name, element]) => {
        const cell = document.createElement('td');
        cell.className = /** @type {string} */ (name);
        cell.append(/** @type {HTMLElement} */ (element));
        return cell;
      });
      const last = document.createElement('td');
      last.append(remove);
      row.append(...cells, verdict, last);
      return row;
    }));
    renderVerdicts();
  }

  function renderVerdicts() {
    const mode = state.document?.mode || 'mirror';
    $('verdict-head').textContent = mode === 'mirror' ? 'Copied?' : 'Stolen?';
    const results = state.valid && state.report ? state.report.results : null;
    tbody.querySelectorAll('tr').forEach((row, index) => {
      const cell = /** @type {HTMLElement} */ (row.querySelector('td.verdict'));
      const result = results ? results[index] : undefined;
      const mark = document.createElement('span');
      if (!result) {
        mark.className = 'mark unknown';
        mark.textContent = '—';
        row.dataset.verdict = 'unknown';
        cell.replaceChildren(mark);
        return;
      }
      const word = verdictWord(result.stolen, mode);
      mark.className = `mark ${result.stolen ? 'stolen' : 'passed'}`;
      mark.textContent = word;
      row.dataset.verdict = word;
      const why = document.createElement('span');
      why.className = 'why muted';
      why.textContent = result.stolen
        ? result.matched.map((/** @type {any} */ m) => `${m.part}: ${m.text}`).join('; ')
        : 'the pod serves it';
      cell.replaceChildren(mark, why);
    });
  }

  /**
   * Show an error under its field, with the offending character marked.
   * @param {HTMLElement} element
   * @param {FilterError | {message: string, position?: null}} error
   * @param {string} [text] the field's text
   */
  function showError(element, error, text) {
    element.hidden = false;
    const parts = [];
    if (text !== undefined && typeof error.position === 'number') {
      const at = Math.min(error.position, text.length);
      const pre = document.createElement('pre');
      const mark = document.createElement('mark');
      mark.textContent = text.slice(at, at + 1) || ' ';
      pre.append(text.slice(0, at), mark, text.slice(at + 1));
      const caret = document.createElement('pre');
      caret.className = 'caret';
      caret.textContent = `${' '.repeat(at)}^`;
      parts.push(pre, caret);
      element.dataset.position = String(at);
    } else {
      delete element.dataset.position;
    }
    const message = document.createElement('div');
    message.className = 'message';
    message.textContent = error.message;
    parts.push(message);
    element.replaceChildren(...parts);
  }

  function clearErrors() {
    document.querySelectorAll('.field-error').forEach((element) => {
      const error = /** @type {HTMLElement} */ (element);
      error.hidden = true;
      error.replaceChildren();
    });
    document.querySelectorAll('.invalid').forEach((element) => element.classList.remove('invalid'));
  }

  /** @param {FilterError[]} errors */
  function renderErrors(errors) {
    for (const error of errors) {
      const field = fieldOf(error.pointer);
      if (field === 'single') {
        single.classList.add('invalid');
        showError($('single-error'), error, single.value);
      } else if (field.startsWith('item:')) {
        const index = Number(field.slice(5));
        const input = /** @type {HTMLInputElement | null} */ (document.getElementById(`item-${index}`));
        const element = document.getElementById(`item-${index}-error`);
        if (input && element) {
          input.classList.add('invalid');
          showError(element, error, input.value);
        } else {
          showError($('filter-error'), error);
        }
      } else if (field === 'ports') {
        ports.classList.add('invalid');
        showError($('ports-error'), error);
      } else {
        showError($('filter-error'), { message: `${error.pointer || 'filter'}: ${error.message}` });
      }
    }
  }

  function updateSave() {
    save.disabled = !state.document || Boolean(state.document.error) || !state.valid;
  }

  function renderSummary() {
    const doc = state.document;
    $('file').textContent = doc ? `· ${doc.name}` : '';
    if (!doc) return;
    const mode = doc.mode || 'mirror';
    $('summary').textContent = mode === 'mirror'
      ? 'Mirror mode: requests that match are copied to your app; the pod serves every request.'
      : mode === 'steal'
        ? 'Steal mode: requests that match are served by your app; the others reach the pod unchanged.'
        : `Incoming traffic is ${mode}: the filter applies once the mode is steal or mirror.`;
    const banner = $('parse-error');
    banner.hidden = !doc.error;
    if (doc.error) {
      const where = doc.error.line ? `${doc.name}:${doc.error.line}:${doc.error.column}: ` : '';
      banner.textContent = `${where}${doc.error.message}${doc.error.hint ? `. ${doc.error.hint}` : ''}. ` +
        'Fix the file to edit its filter; Save is off until then.';
    }
  }

  function changed() {
    state.valid = false;
    updateSave();
    clearTimeout(state.timer);
    state.timer = setTimeout(test, 120);
  }

  function samplesChanged() {
    host.postMessage({ type: 'samples', samples: state.samples });
    clearTimeout(state.timer);
    state.timer = setTimeout(test, 120);
  }

  function test() {
    clearErrors();
    const built = filterOf(state.form);
    if ('portsError' in built) {
      state.valid = false;
      ports.classList.add('invalid');
      showError($('ports-error'), { message: built.portsError });
      renderVerdicts();
      updateSave();
      return;
    }
    state.testId += 1;
    host.postMessage({
      type: 'testFilter', id: state.testId, filter: built.filter || {}, requests: state.samples.map(requestOf),
    });
  }

  /** @param {any} message */
  function onTestResult(message) {
    if (message.id !== state.testId) return; // an answer to an older text
    clearErrors();
    if (message.error) {
      state.valid = false;
      showError($('filter-error'), { message: message.error });
    } else {
      state.report = message.report;
      state.valid = message.report.valid;
      renderErrors(message.report.errors || []);
    }
    renderVerdicts();
    updateSave();
  }

  /** @param {any} message */
  function onDocument(message) {
    state.document = message.document;
    if (Array.isArray(message.samples)) state.samples = message.samples;
    state.form = formOf(message.document.filter);
    renderSummary();
    renderForm();
    renderSamples();
    if (message.document.error) {
      state.valid = false;
      updateSave();
    } else {
      test();
    }
  }

  kind.addEventListener('change', () => {
    const next = /** @type {FilterForm['kind']} */ (kind.value);
    if ((next === 'all_of' || next === 'any_of') && state.form.items.length === 0) {
      const type = state.form.kind === 'path' || state.form.kind === 'method' ? state.form.kind : 'header';
      state.form.items = [{ type, value: state.form.value }];
    }
    state.form.kind = next;
    renderForm();
    changed();
  });
  single.addEventListener('input', () => {
    state.form.value = single.value;
    changed();
  });
  ports.addEventListener('input', () => {
    state.form.ports = ports.value;
    changed();
  });
  $('add-item').addEventListener('click', () => {
    state.form.items.push({ type: 'header', value: '' });
    renderItems();
    changed();
  });
  $('add-sample').addEventListener('click', () => {
    state.samples.push({ method: 'GET', path: '/', headers: '' });
    renderSamples();
    samplesChanged();
  });
  save.addEventListener('click', () => {
    const built = filterOf(state.form);
    if (!('filter' in built)) return;
    save.disabled = true;
    status('Saving…');
    host.postMessage({ type: 'save', filter: built.filter });
  });

  window.addEventListener('message', (event) => {
    const message = event.data;
    if (!message || typeof message !== 'object') return;
    if (message.type === 'document') onDocument(message);
    else if (message.type === 'testResult') onTestResult(message);
    else if (message.type === 'saved') {
      status(message.ok ? `Saved to ${state.document?.name ?? 'the config'}.` : `Not saved: ${message.message}`);
      updateSave();
    }
  });

  renderSamples();
  host.postMessage({ type: 'ready' });
}

if (typeof module === 'object' && module.exports) {
  module.exports = { formOf, filterOf, requestOf, fieldOf, verdictWord, DEFAULT_SAMPLES };
} else {
  start();
}
