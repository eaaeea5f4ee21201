// @ts-check
'use strict';
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { LAST_REQUESTS, SessionsModel, requestLine, sessionItems, sessionSummary } = require('../src/sessions');

const SNAPSHOT = {
  sessions: [{
    sessionId: 's1', target: 'netns/demo', mode: 'steal', configPath: null, state: 'ready', startedAt: 1,
    processes: [10], ports: [{ port: 80, mode: 'steal' }], connections: { mirror: 0, steal: 2 },
    requests: { mirror: 0, steal: 3 }, bytes: { in: 1, out: 2 },
    lastRequests: [{ at: 1, connectionId: 1, port: 80, mode: 'steal', method: 'GET', path: '/users', matched: true }],
  }],
};

test('a snapshot, then events, in the status bar', () => {
  const model = new SessionsModel();
  assert.equal(model.statusText(), '$(debug-disconnect) pymirrord');
  assert.equal(model.tooltip(), 'pymirrord: no live session');
  model.reset(SNAPSHOT);
  assert.equal(model.statusText(), '$(radio-tower) pymirrord: netns/demo · steal · 3 requests');
  assert.equal(model.apply({ sessionId: 's1', kind: 'request', port: 80, mode: 'steal', method: 'POST', path: '/x', matched: false }), 'changed');
  assert.equal(model.statusText(), '$(radio-tower) pymirrord: netns/demo · steal · 4 requests');
  assert.deepEqual(model.sessions.get('s1')?.lastRequests.at(-1), { port: 80, mode: 'steal', method: 'POST', path: '/x', matched: false });
  assert.equal(model.tooltip(), 'netns/demo (steal): ports 80/steal; 2 connections, 4 requests; 1 process');
  assert.equal(SNAPSHOT.sessions[0].requests.steal, 3, 'the snapshot itself is not changed');
});

test('events build a session the model had not seen, and ask for a reload', () => {
  const model = new SessionsModel();
  assert.equal(model.apply({ sessionId: 's2', kind: 'ready', target: 'pid/7', mode: 'mirror' }), 'unknown');
  assert.equal(model.statusText(), '$(radio-tower) pymirrord: pid/7 · mirror · 0 requests');
  assert.equal(model.apply({ sessionId: 's2', kind: 'process', pid: 5, connected: true }), 'changed');
  model.apply({ sessionId: 's2', kind: 'port', port: 8080, mode: 'mirror' });
  model.apply({ sessionId: 's2', kind: 'port', port: 80, mode: 'mirror' });
  model.apply({ sessionId: 's2', kind: 'port', port: 8080, mode: 'mirror' });
  model.apply({ sessionId: 's2', kind: 'connection', connectionId: 1, port: 80, mode: 'mirror', client: '10.0.0.2:5' });
  model.apply({ sessionId: 's2', kind: 'log', message: 'hello' });
  model.apply({ sessionId: 's2', kind: 'something-new' });
  const session = model.sessions.get('s2');
  assert.deepEqual(session?.ports, [{ port: 80, mode: 'mirror' }, { port: 8080, mode: 'mirror' }]);
  assert.deepEqual(session?.processes, [5]);
  assert.equal(session?.connections.mirror, 1);
  model.apply({ sessionId: 's2', kind: 'process', pid: 5, connected: false });
  assert.deepEqual(model.sessions.get('s2')?.processes, []);
});

test('a starting session spins; several are summed; an ended one is remembered in the tooltip', () => {
  const model = new SessionsModel();
  model.apply({ sessionId: 'a', kind: 'port', port: 80, mode: 'steal' });
  assert.equal(model.statusText(), '$(sync~spin) pymirrord: starting');
  model.reset(SNAPSHOT);
  model.apply({ sessionId: 'b', kind: 'ready', target: 'netns/b', mode: 'mirror' });
  model.apply({ sessionId: 'b', kind: 'request', port: 80, mode: 'mirror', method: 'GET', path: '/', matched: null });
  assert.equal(model.statusText(), '$(radio-tower) pymirrord: 2 sessions · 4 requests');
  assert.equal(model.tooltip().split('\n').length, 2);
  model.apply({ sessionId: 'b', kind: 'ended', reason: 'the debugged process exited' });
  model.apply({ sessionId: 's1', kind: 'ended', reason: 'stopped' });
  assert.equal(model.list().length, 0);
  assert.equal(model.tooltip(), 'pymirrord: no live session\nLast session (netns/demo) ended: stopped');
});

test('the last requests are capped', () => {
  const model = new SessionsModel();
  model.reset(SNAPSHOT);
  for (let i = 0; i < LAST_REQUESTS + 5; i++) {
    model.apply({ sessionId: 's1', kind: 'request', port: 80, mode: 'steal', method: 'GET', path: `/${i}`, matched: null });
  }
  const requests = model.sessions.get('s1')?.lastRequests ?? [];
  assert.equal(requests.length, LAST_REQUESTS);
  assert.equal(requests.at(-1)?.path, `/${LAST_REQUESTS + 4}`);
});

test('picker items and lines', () => {
  const [item] = sessionItems(SNAPSHOT.sessions);
  assert.deepEqual(item, {
    label: 'netns/demo',
    description: 'steal · ready · s1',
    detail: 'netns/demo (steal): ports 80/steal; 2 connections, 3 requests; 1 process · last: GET /users · steal on :80 · matched the filter',
    sessionId: 's1',
  });
  assert.equal(requestLine({ mode: 'mirror', port: 8080, method: 'GET', path: '/', matched: false }), 'GET / · mirror on :8080 · did not match');
  assert.equal(requestLine({ mode: 'mirror', port: 8080, method: 'GET', path: '/', matched: null }), 'GET / · mirror on :8080');
  assert.match(sessionSummary({ ...SNAPSHOT.sessions[0], ports: [], processes: [1, 2] }), /no port yet; .* 2 processes$/);
});

test('a batch of requests adds its counts and its entries', () => {
  const model = new SessionsModel();
  model.reset(SNAPSHOT);
  const before = model.sessions.get('s1')?.requests.steal ?? 0;
  const entries = Array.from({ length: LAST_REQUESTS }, (_, i) => ({ port: 80, mode: 'steal', method: 'GET', path: `/b${i}`, matched: true }));
  assert.equal(model.apply({ sessionId: 's1', kind: 'requests', counts: { steal: 250, mirror: 3 }, entries }), 'changed');
  const session = model.sessions.get('s1');
  assert.equal(session?.requests.steal, before + 250);
  assert.equal(session?.requests.mirror, 3);
  assert.equal(session?.lastRequests.length, LAST_REQUESTS);
  assert.equal(session?.lastRequests.at(-1)?.path, `/b${LAST_REQUESTS - 1}`);
});
