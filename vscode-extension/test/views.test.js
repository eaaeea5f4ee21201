// @ts-check
'use strict';
/**
 * The Sessions view and the filter editor's panel through the extension's `vscode` glue (the recorded fake):
 * the tree follows session events, including sessions that end on their own; Stop works from a tree node;
 * the Edit HTTP Filter command opens one panel per config, and Save applies the edits as one WorkspaceEdit.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { afterEach, beforeEach, test } = require('node:test');
const { createFake, loadExtension, Uri } = require('./support/fake-vscode');

/** @type {string} */
let folder;
/** @type {ReturnType<typeof createFake>} */
let fake;
/** @type {any} */
let extension;

beforeEach(async () => {
  folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pymirrord-views-'));
  fs.mkdirSync(path.join(folder, '.venv', 'bin'), { recursive: true });
  fs.writeFileSync(path.join(folder, '.venv', 'bin', 'pymirrord'), '');
  fake = createFake({ folder });
  fake.helper.handle = (method) => (method === 'pymirrord/sessions' ? { sessions: [] } : undefined);
  extension = loadExtension(fake);
  const state = new Map();
  await extension.activate({
    subscriptions: [],
    extensionUri: Uri.file(path.join(__dirname, '..')),
    workspaceState: { get: (/** @type {string} */ key) => state.get(key), update: async (/** @type {string} */ key, /** @type {any} */ value) => state.set(key, value) },
  });
});

afterEach(async () => {
  await extension.deactivate();
  fs.rmSync(folder, { recursive: true, force: true });
});

function tree() {
  return fake.treeViews.get('pymirrord.sessions').options.treeDataProvider;
}

/** @param {any} event */
function sessionEvent(event) {
  fake.helper.client.notificationHandlers.get('pymirrord/sessionEvent')(event);
}

/** The tree as plain text: one line per node, children indented. */
function shown(node = undefined, depth = 0) {
  /** @type {string[]} */
  const lines = [];
  for (const child of tree().getChildren(node)) {
    const item = tree().getTreeItem(child);
    lines.push(`${'  '.repeat(depth)}${item.label}${item.description ? ` — ${item.description}` : ''}`);
    lines.push(...shown(child, depth + 1));
  }
  return lines;
}

test('the Sessions view shows each session with its ports, counters and last requests', () => {
  /** @type {number} */
  let changes = 0;
  tree().onDidChangeTreeData(() => { changes += 1; });
  assert.deepEqual(shown(), []);
  sessionEvent({ sessionId: 's1', kind: 'ready', target: 'netns/shop', mode: 'steal' });
  sessionEvent({ sessionId: 's1', kind: 'process', pid: 42, connected: true });
  sessionEvent({ sessionId: 's1', kind: 'port', port: 80, mode: 'steal' });
  sessionEvent({ sessionId: 's1', kind: 'connection', connectionId: 1, port: 80, mode: 'steal', client: '10.0.0.2:5000' });
  sessionEvent({ sessionId: 's1', kind: 'request', port: 80, mode: 'steal', method: 'GET', path: '/api/users', matched: true });
  sessionEvent({ sessionId: 's1', kind: 'request', port: 80, mode: 'steal', method: 'POST', path: '/login', matched: false });
  assert.ok(changes >= 6, 'every event refreshes the view');
  assert.deepEqual(shown(), [
    'netns/shop — steal',
    '  Ports — 80 (steal)',
    '  Connections — 1 steal',
    '  Requests — 2 steal',
    '  Processes — pid 42',
    '  Last requests — 2',
    '    POST /login — steal on :80 · did not match',
    '    GET /api/users — steal on :80 · matched the filter',
  ]);
  const [session] = tree().getChildren();
  const item = tree().getTreeItem(session);
  assert.equal(item.contextValue, 'pymirrordSession');
  assert.equal(item.id, 's1');
});

/** Every TreeItem of the tree, collapsed nodes' children included. */
function items(node = undefined) {
  /** @type {any[]} */
  const all = [];
  for (const child of tree().getChildren(node)) all.push(tree().getTreeItem(child), ...items(child));
  return all;
}

test('the names of the variables from the target show under a collapsed node, updated by the environment event', () => {
  sessionEvent({ sessionId: 's1', kind: 'ready', target: 'netns/shop', mode: 'mirror' });
  assert.ok(!shown().some((line) => line.includes('Environment')), 'no node before the launch has an environment');
  sessionEvent({ sessionId: 's1', kind: 'environment', remoteEnv: ['SHOP_MODE', 'DATABASE_URL', 'API_URL'] });
  const lines = shown();
  const at = lines.indexOf('  Environment from the target — 3');
  assert.ok(at > 0, lines.join('\n'));
  assert.deepEqual(lines.slice(at + 1, at + 4), ['    API_URL', '    DATABASE_URL', '    SHOP_MODE']);
  const [session] = tree().getChildren();
  const node = tree().getChildren(session).find((/** @type {any} */ n) => n.label === 'Environment from the target');
  const item = tree().getTreeItem(node);
  assert.equal(item.collapsibleState, 1, 'collapsed');
  assert.equal(item.id, 's1/env');
  assert.deepEqual(tree().getChildren(node).map((/** @type {any} */ n) => tree().getTreeItem(n).collapsibleState), [0, 0, 0]);

  sessionEvent({ sessionId: 's1', kind: 'environment', remoteEnv: [] });
  assert.ok(!shown().some((line) => line.includes('Environment')), 'an empty list shows no node');
});

test('a refresh shows the snapshot\'s remoteEnv; a value never reaches the view', async () => {
  const secret = 'postgres://admin:hunter2@db:5432/users';
  fake.helper.handle = (method) => (method === 'pymirrord/sessions' ? {
    sessions: [{
      sessionId: 's1', target: 'netns/shop', mode: 'steal', configPath: null, state: 'ready', startedAt: 1,
      processes: [], ports: [], connections: { mirror: 0, steal: 0 }, requests: { mirror: 0, steal: 0 },
      bytes: { in: 0, out: 0 }, lastRequests: [], remoteEnv: ['SHOP_MODE', 'DATABASE_URL'],
    }],
  } : undefined);
  await fake.commands.get('pymirrord.showSessions')?.();
  assert.deepEqual(shown(), [
    'netns/shop — steal',
    '  Ports — none yet',
    '  Connections — 0',
    '  Requests — 0',
    '  Processes — none connected',
    '  Environment from the target — 2',
    '    DATABASE_URL',
    '    SHOP_MODE',
    '  Last requests — none yet',
  ]);

  // Names only, whatever a helper sends: a `NAME=value` entry or a name-to-value map keeps just the names.
  sessionEvent({ sessionId: 's1', kind: 'environment', remoteEnv: [`DATABASE_URL=${secret}`, 'SHOP_MODE'] });
  assert.deepEqual(shown().slice(5, 8), ['  Environment from the target — 2', '    DATABASE_URL', '    SHOP_MODE']);
  sessionEvent({ sessionId: 's1', kind: 'environment', remoteEnv: { DATABASE_URL: secret } });
  assert.deepEqual(shown().slice(5, 7), ['  Environment from the target — 1', '    DATABASE_URL']);
  assert.ok(!JSON.stringify(items()).includes('hunter2'));
  assert.ok(!JSON.stringify(fake.statusItems).includes('hunter2'));
});

test('a session that ends on its own leaves the view; Stop works from the view\'s node', async () => {
  sessionEvent({ sessionId: 's1', kind: 'ready', target: 'netns/a', mode: 'mirror' });
  sessionEvent({ sessionId: 's2', kind: 'ready', target: 'netns/b', mode: 'steal' });
  assert.deepEqual(shown().filter((line) => !line.startsWith(' ')), ['netns/a — mirror', 'netns/b — steal']);
  sessionEvent({ sessionId: 's1', kind: 'ended', reason: 'the debugged process exited' });
  assert.deepEqual(shown().filter((line) => !line.startsWith(' ')), ['netns/b — steal']);

  fake.helper.handle = (method) => {
    if (method === 'pymirrord/stopSession') return { stopped: true, session: { target: 'netns/b' } };
    return method === 'pymirrord/sessions' ? { sessions: [] } : undefined;
  };
  const [node] = tree().getChildren();
  await fake.commands.get('pymirrord.stopSession')?.(node);
  assert.ok(fake.helper.requests.some((r) => r.method === 'pymirrord/stopSession' && r.params.sessionId === 's2'));
  assert.deepEqual(shown(), []);
  assert.equal(fake.shown.quickPick.length, 0, 'no picker: the node named the session');
});

test('Edit HTTP Filter opens one panel per config; Save applies the edits as one WorkspaceEdit and saves', async () => {
  const config = path.join(folder, '.mirrord', 'mirrord.json');
  const uri = `file://${config}`;
  const edits = [
    { range: { start: { line: 0, character: 1 }, end: { line: 0, character: 1 } }, newText: '"feature": {}' },
  ];
  fake.helper.handle = (method) => {
    if (method === 'pymirrord/filterDocument') return { uri, version: 1, format: 'json', mode: 'steal', filter: null, error: null };
    if (method === 'pymirrord/filterEdit') return { uri, version: 1, edits };
    return method === 'pymirrord/sessions' ? { sessions: [] } : undefined;
  };
  await fake.commands.get('pymirrord.editFilter')?.(uri);
  await fake.commands.get('pymirrord.editFilter')?.(uri);
  assert.equal(fake.panels.length, 1);
  const [panel] = fake.panels;
  assert.equal(panel.revealed, 1);
  assert.equal(panel.options.enableScripts, true);
  assert.match(panel.webview.html, /<script nonce="[^"]+" src="vscode-webview:\/\/fake[^"]*media\/filter-editor\.js">/);

  await panel.receive({ type: 'ready' });
  assert.equal(panel.posted[0].type, 'document');
  assert.equal(panel.posted[0].document.mode, 'steal');
  assert.equal(panel.posted[0].document.name, path.join('.mirrord', 'mirrord.json'));

  await panel.receive({ type: 'save', filter: { header_filter: '^X-User: alice' } });
  assert.equal(fake.appliedEdits.length, 1);
  assert.deepEqual(fake.appliedEdits[0].replacements.map((/** @type {any} */ r) => r.newText), ['"feature": {}']);
  assert.deepEqual(fake.saved, [config]);
  assert.deepEqual(panel.posted.slice(1).map((/** @type {any} */ m) => m.type), ['saved', 'document']);

  await panel.receive({ type: 'samples', samples: [{ method: 'GET', path: '/x', headers: '' }] });
  panel.dispose();
  await fake.commands.get('pymirrord.editFilter')?.(uri);
  await fake.panels[1].receive({ type: 'ready' });
  assert.deepEqual(fake.panels[1].posted[0].samples, [{ method: 'GET', path: '/x', headers: '' }], 'samples are kept per workspace');
});

test('Edit HTTP Filter without a config file says what to add', async () => {
  await fake.commands.get('pymirrord.editFilter')?.();
  assert.equal(fake.panels.length, 0);
  assert.match(fake.shown.info[0].message, /add \.mirrord\/mirrord\.json/);
});
