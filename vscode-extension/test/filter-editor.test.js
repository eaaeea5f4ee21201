// @ts-check
'use strict';
/**
 * The filter editor without a browser: the page's pure part (form <-> filter, sample rows <-> requests,
 * errors to fields) and the host's answers to the page's messages.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const page = require('../media/filter-editor');
const { FilterEditorHost, webviewHtml } = require('../src/filter-editor');

test('a filter as a form and back, for each kind', () => {
  for (const filter of [
    null,
    { header_filter: '^X-User: alice' },
    { path_filter: '^/api', ports: [8080] },
    { method_filter: 'POST' },
    { all_of: [{ header: '^X-A:' }, { path: '^/b' }] },
    { any_of: [{ method: 'GET' }], ports: [80, 9000] },
  ]) {
    assert.deepEqual(page.filterOf(page.formOf(filter)), { filter });
  }
  assert.deepEqual(page.formOf({ ports: 80 }), { kind: 'none', value: '', items: [], ports: '80' });
  assert.deepEqual(page.filterOf({ kind: 'none', value: '', items: [], ports: '80 8080' }), { filter: { ports: [80, 8080] } });
});

test('ports that are not ports are an error of the form, not of the helper', () => {
  const result = page.filterOf({ kind: 'header', value: 'x', items: [], ports: '80, http' });
  assert.deepEqual(result, { portsError: '"http" is not a port: write numbers from 1 to 65535, such as 80, 8080' });
  assert.ok('portsError' in page.filterOf({ kind: 'header', value: 'x', items: [], ports: '70000' }));
});

test('sample rows become testFilter requests', () => {
  assert.deepEqual(page.requestOf({ method: 'POST', path: 'api?x=1', headers: 'X-User: alice\n\nbroken\nAccept:  */*' }), {
    method: 'POST', path: '/api?x=1', headers: [['X-User', 'alice'], ['Accept', '*/*']],
  });
  assert.equal(page.requestOf({ method: '', path: ' ', headers: '' }).path, '/');
});

test('each error pointer names its field; the verdict words follow the mode', () => {
  assert.equal(page.fieldOf('/header_filter'), 'single');
  assert.equal(page.fieldOf('/any_of/2/path'), 'item:2');
  assert.equal(page.fieldOf('/ports/0'), 'ports');
  assert.equal(page.fieldOf(''), 'filter');
  assert.deepEqual([page.verdictWord(true, 'steal'), page.verdictWord(true, 'mirror'), page.verdictWord(false, 'steal')],
    ['stolen', 'copied', 'passed']);
});

test('the page is filled in without a placeholder left', () => {
  const template = fs.readFileSync(path.join(__dirname, '..', 'media', 'filter-editor.html'), 'utf8');
  const html = webviewHtml(template, { cspSource: 'vscode-resource:', nonce: 'n0nce', scriptUri: 's.js', styleUri: 's.css' });
  assert.doesNotMatch(html, /\{\{/);
  assert.match(html, /script-src 'nonce-n0nce'/);
  assert.match(html, /<script nonce="n0nce" src="s.js">/);
});

/** A host whose helper answers from a table, recording what it was asked and what it posted. */
function host(answers = /** @type {{[method: string]: any}} */ ({})) {
  const asked = /** @type {{method: string, params: any}[]} */ ([]);
  const posted = /** @type {any[]} */ ([]);
  const applied = /** @type {any[][]} */ ([]);
  /** @type {any} */
  let samples;
  const editor = new FilterEditorHost({
    uri: 'file:///w/.mirrord/mirrord.json',
    name: '.mirrord/mirrord.json',
    request: async (method, params) => {
      asked.push({ method, params });
      const answer = answers[method];
      if (answer instanceof Error) throw answer;
      return typeof answer === 'function' ? answer(params) : answer;
    },
    applyEdits: async (edits) => {
      applied.push(edits);
      return true;
    },
    post: (message) => posted.push(message),
    samples: { get: () => samples, set: (value) => { samples = value; } },
  });
  return { editor, asked, posted, applied };
}

test('ready: the config\'s filter and the workspace\'s samples', async () => {
  const document = { uri: 'file:///w/.mirrord/mirrord.json', version: 3, format: 'json', mode: 'steal', filter: null, error: null };
  const { editor, posted } = host({ 'pymirrord/filterDocument': document });
  await editor.handle({ type: 'samples', samples: [{ method: 'GET', path: '/', headers: '' }] });
  await editor.handle({ type: 'ready' });
  assert.deepEqual(posted, [{
    type: 'document', document: { ...document, name: '.mirrord/mirrord.json' },
    samples: [{ method: 'GET', path: '/', headers: '' }],
  }]);
});

test('testFilter answers carry the request id, errors included', async () => {
  const report = { valid: true, errors: [], results: [{ stolen: true, matched: [] }], ports: [80, 8080] };
  const { editor, posted, asked } = host({ 'pymirrord/testFilter': report });
  await editor.handle({ type: 'testFilter', id: 7, filter: { header_filter: 'x' }, requests: [{ method: 'GET', path: '/', headers: [] }] });
  assert.deepEqual(asked[0], { method: 'pymirrord/testFilter', params: { filter: { header_filter: 'x' }, requests: [{ method: 'GET', path: '/', headers: [] }] } });
  assert.deepEqual(posted, [{ type: 'testResult', id: 7, report }]);
  const failing = host({ 'pymirrord/testFilter': new Error('the helper is not running') });
  await failing.editor.handle({ type: 'testFilter', id: 8, filter: {}, requests: [] });
  assert.deepEqual(failing.posted, [{ type: 'testResult', id: 8, error: 'the helper is not running' }]);
});

test('save applies the helper\'s edits once, then shows the file as it is now', async () => {
  const edits = [{ range: { start: { line: 0, character: 1 }, end: { line: 0, character: 1 } }, newText: '"feature": {}' }];
  const { editor, posted, applied, asked } = host({
    'pymirrord/filterEdit': { uri: 'file:///w/.mirrord/mirrord.json', version: 1, edits },
    'pymirrord/filterDocument': { mode: 'mirror', filter: { path_filter: '^/api' }, error: null },
  });
  await editor.handle({ type: 'save', filter: { path_filter: '^/api' } });
  assert.deepEqual(asked[0], { method: 'pymirrord/filterEdit', params: { uri: 'file:///w/.mirrord/mirrord.json', filter: { path_filter: '^/api' } } });
  assert.deepEqual(applied, [edits]);
  assert.deepEqual(posted.map((m) => m.type), ['saved', 'document']);
  assert.equal(posted[0].ok, true);
  assert.deepEqual(posted[1].document.filter, { path_filter: '^/api' });
});

test('a refused save says why and changes nothing', async () => {
  const { editor, posted, applied } = host({
    'pymirrord/filterEdit': new Error('the file does not parse: invalid JSON (line 2, column 1). Fix the syntax error first'),
    'pymirrord/filterDocument': new Error('the helper is not running'),
  });
  await editor.handle({ type: 'save', filter: {} });
  assert.deepEqual(applied, []);
  assert.deepEqual(posted[0], { type: 'saved', ok: false, message: 'the file does not parse: invalid JSON (line 2, column 1). Fix the syntax error first' });
  assert.deepEqual(posted[1].document.error, { message: 'the helper is not running' });
});
