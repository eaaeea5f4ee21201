// @ts-check
'use strict';
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { parseFilterInput, parseRequestLine, reportLines } = require('../src/filter');

test('parseRequestLine: method, path, headers', () => {
  assert.deepEqual(parseRequestLine('get /api/users?page=2 | X-User: alice | Accept: text/html; q=1'), {
    request: { method: 'GET', path: '/api/users?page=2', headers: [['X-User', 'alice'], ['Accept', 'text/html; q=1']] },
  });
  assert.deepEqual(parseRequestLine('  POST /  '), { request: { method: 'POST', path: '/', headers: [] } });
  assert.deepEqual(parseRequestLine('GET / | Empty:'), { request: { method: 'GET', path: '/', headers: [['Empty', '']] } });
});

test('parseRequestLine: what is wrong and how to write it', () => {
  assert.match(/** @type {any} */ (parseRequestLine('')).error, /start with the method/);
  assert.match(/** @type {any} */ (parseRequestLine('/api')).error, /start with the method/);
  assert.match(/** @type {any} */ (parseRequestLine('GET api')).error, /must start with "\/"/);
  assert.match(/** @type {any} */ (parseRequestLine('GET /a X-User: b')).error, /separate headers with "\|"/);
  assert.match(/** @type {any} */ (parseRequestLine('GET /a | nocolon')).error, /"Name: value"/);
});

test('parseFilterInput: a header regex, or a filter object', () => {
  assert.deepEqual(parseFilterInput(' x-user: alice '), { filter: { header_filter: 'x-user: alice' } });
  assert.deepEqual(parseFilterInput('{"path_filter": "^/api"}'), { filter: { path_filter: '^/api' } });
  assert.match(/** @type {any} */ (parseFilterInput('{"path_filter": ')).error, /not valid JSON/);
  assert.match(/** @type {any} */ (parseFilterInput('')).error, /type a header regex/);
});

test('reportLines: stolen or not, and why; errors located', () => {
  const requests = [{ method: 'GET', path: '/a', headers: [] }];
  assert.deepEqual(reportLines({ valid: true, errors: [], results: [{ stolen: true, matched: [{ part: 'path_filter', text: '/a' }] }] }, requests),
    ['GET /a: stolen (path_filter matched "/a")']);
  assert.deepEqual(reportLines({ valid: true, errors: [], results: [{ stolen: false, matched: [] }, { stolen: true, matched: [] }] }, requests),
    ['GET /a: not stolen, the pod serves it', 'request 2: stolen (the filter matched)']);
  assert.deepEqual(reportLines({
    valid: false, results: [],
    errors: [{ pointer: '/header_filter', message: 'missing )', position: 2 }, { pointer: '', message: 'empty', position: null }],
  }, requests), ['invalid filter at /header_filter, character 3: missing )', 'invalid filter at /: empty']);
});
