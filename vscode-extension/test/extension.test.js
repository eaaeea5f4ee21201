// @ts-check
'use strict';
/**
 * The `vscode` glue, run against a recorded fake of the VS Code API (no VS Code here): activation wires
 * the commands of package.json, the launch provider merges the helper's answer into a launch, errors come
 * with their buttons, session events reach the status bar.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { afterEach, beforeEach, test } = require('node:test');
const { createFake, loadExtension } = require('./support/fake-vscode');

const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
const PREPARED = {
  sessionId: 's1', env: { PYTHONPATH: '/layer', PYMIRRORD_LAYER_SOCKET: '/run/s', PYMIRRORD_LAYER_CONFIG: '{}' },
  envToUnset: [], target: 'netns/demo', mode: 'steal', warnings: [],
};

/** @type {string} */
let folder;
/** @type {ReturnType<typeof createFake>} */
let fake;
/** @type {any} */
let extension;
/** @type {any[]} */
let subscriptions;

beforeEach(async () => {
  folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pymirrord-glue-'));
  const venvHelper = path.join(folder, '.venv', 'bin', 'pymirrord');
  fs.mkdirSync(path.dirname(venvHelper), { recursive: true });
  fs.writeFileSync(venvHelper, '');
  fake = createFake({ folder });
  fake.helper.handle = (method) => (method === 'pymirrord/sessions' ? { sessions: [] } : undefined);
  extension = loadExtension(fake);
  subscriptions = [];
  /** @type {Map<string, any>} */
  const state = new Map();
  await extension.activate({
    subscriptions,
    workspaceState: { get: (/** @type {string} */ key) => state.get(key), update: async (/** @type {string} */ key, /** @type {any} */ value) => state.set(key, value) },
  });
});

afterEach(async () => {
  await extension.deactivate();
  fs.rmSync(folder, { recursive: true, force: true });
});

/** @param {any} config */
function resolveLaunch(config, type = 'debugpy') {
  return fake.debugProviders.get(type).resolveDebugConfigurationWithSubstitutedVariables(fake.folder, config, undefined);
}

test('activation: the commands of package.json, both Python debug types, the helper from the workspace venv', () => {
  assert.deepEqual([...fake.commands.keys()].sort(), manifest.contributes.commands.map((/** @type {any} */ c) => c.command).sort());
  assert.deepEqual([...fake.debugProviders.keys()].sort(), manifest.contributes.debuggers.map((/** @type {any} */ d) => d.type).sort());
  const client = fake.helper.client;
  assert.deepEqual(client.serverOptions, { command: path.join(folder, '.venv', 'bin', 'pymirrord'), args: ['lsp'] });
  assert.ok(client.clientOptions.documentSelector.some((/** @type {any} */ s) => s.pattern === '**/.mirrord/*.{json,toml,yaml,yml}'));
  assert.equal(fake.helper.started, 1);
  const [status] = fake.statusItems;
  assert.equal(status.text, '$(debug-disconnect) pymirrord');
  assert.equal(status.command, 'pymirrord.showSessions');
  assert.ok(status.visible);
});

test('a launch without "pymirrord" is left alone', async () => {
  const config = { type: 'debugpy', request: 'launch', name: 'plain', program: 'a.py' };
  assert.equal(await resolveLaunch(config), config);
  assert.equal(fake.helper.requests.filter((r) => r.method === 'pymirrord/prepareLaunch').length, 0);
});

test('a pymirrord launch: the config file found, progress shown, the env merged', async () => {
  const configFile = path.join(folder, '.mirrord', 'mirrord.json');
  fake.files.push(configFile);
  fake.helper.handle = (method, params, client) => {
    if (method !== 'pymirrord/prepareLaunch') return undefined;
    const progress = client.progressHandlers.get(params.workDoneToken);
    progress({ kind: 'begin', title: 'pymirrord: netns/demo', percentage: 0 });
    progress({ kind: 'report', message: 'starting the agent', percentage: 40 });
    progress({ kind: 'end', message: 'ready' });
    return PREPARED;
  };
  const resolved = await resolveLaunch({
    type: 'python', request: 'launch', name: 'app', program: '/w/app.py', pymirrord: true, env: { PYTHONPATH: '/own' },
  }, 'python');
  const [request] = fake.helper.requests.filter((r) => r.method === 'pymirrord/prepareLaunch');
  assert.equal(request.params.configUri, `file://${configFile}`);
  assert.equal(request.params.target, undefined, 'the config file names the target');
  assert.equal(request.params.launch.cwd, folder);
  assert.match(request.params.workDoneToken, /^pymirrord-launch-/);
  assert.deepEqual(fake.shown.progress[0].reports, [{}, { message: 'starting the agent', increment: 40 }, { message: 'ready', increment: 60 }]);
  assert.equal(fake.shown.progress[0].options.cancellable, true);
  assert.equal(resolved.env.PYTHONPATH, `/layer${path.delimiter}/own`);
  assert.equal(resolved.env.PYMIRRORD_LAYER_SOCKET, '/run/s');
  assert.equal(resolved.pymirrordSessionId, 's1');

  fake.terminateListeners[0]({ configuration: resolved, parentSession: undefined });
  assert.deepEqual(fake.helper.requests.at(-1), { method: 'pymirrord/stopSession', params: { sessionId: 's1' } });
});

test('a failed launch stops with the helper\'s message and the button that helps', async () => {
  fake.helper.handle = (method) => {
    if (method === 'pymirrord/prepareLaunch') {
      throw Object.assign(new Error('no target: pymirrord needs a target. Pick a target'), { code: -32002 });
    }
    if (method === 'pymirrord/listTargets') return { targets: [], currentNamespace: null, namespaces: [], notes: [] };
    return undefined;
  };
  fake.answers.error.push('Select Target');
  const resolved = await resolveLaunch({ type: 'debugpy', request: 'launch', name: 'app', program: 'a.py', pymirrord: { target: 'netns/x' } });
  assert.equal(resolved, undefined, 'the launch is stopped');
  assert.deepEqual(fake.shown.error[0], { message: 'pymirrord: no target: pymirrord needs a target. Pick a target', items: ['Select Target'] });
  const [request] = fake.helper.requests.filter((r) => r.method === 'pymirrord/prepareLaunch');
  assert.equal(request.params.target, 'netns/x');
  assert.ok(fake.helper.requests.some((r) => r.method === 'pymirrord/listTargets'), 'the button opened the picker');
  assert.match(fake.shown.warning[0].message, /found no targets/);
});

test('an attach configuration with pymirrord is refused with the reason', async () => {
  assert.equal(await resolveLaunch({ type: 'debugpy', request: 'attach', name: 'x', pymirrord: true }), undefined);
  assert.match(fake.shown.error[0].message, /^pymirrord: pymirrord cannot join a process that is already running/);
});

test('pymirrord.enabled off: the launch runs without pymirrord', async () => {
  fake.settings['pymirrord.enabled'] = false;
  const config = { type: 'debugpy', request: 'launch', name: 'x', program: 'a.py', pymirrord: true };
  assert.equal(await resolveLaunch(config), config);
});

test('the helper\'s "choose a target" action opens the picker and writes the choice through the helper', async () => {
  const configFile = path.join(folder, '.mirrord', 'mirrord.json');
  const listing = {
    targets: [{ path: 'netns/demo', kind: 'netns', namespace: null, available: true, label: 'netns/demo (network namespace)' }],
    currentNamespace: null, namespaces: [], notes: [],
  };
  fake.helper.handle = (method, params) => ({
    'pymirrord/listTargets': listing,
    'pymirrord/verifyConfig': { type: 'Success', config: { path: null, namespace: null } },
    'workspace/executeCommand': { applied: true, target: params?.arguments?.[1] },
  })[method];
  fake.answers.quickPick.push((/** @type {any[]} */ items) => items.find((item) => item.target === 'netns/demo'));
  const middleware = fake.helper.client.clientOptions.middleware;
  const chosen = await middleware.executeCommand('pymirrord.chooseTarget', [`file://${configFile}`], () => assert.fail('not the helper\'s picker'));
  assert.equal(chosen, 'netns/demo');
  assert.deepEqual(fake.helper.requests.find((r) => r.method === 'workspace/executeCommand')?.params,
    { command: 'pymirrord.setTarget', arguments: [`file://${configFile}`, 'netns/demo'] });
  assert.deepEqual(fake.saved, [configFile], 'saved: launches read the file');
  let forwarded = false;
  await middleware.executeCommand('pymirrord.setTarget', [], () => { forwarded = true; });
  assert.ok(forwarded, 'other helper commands go to the helper');
});

test('without a config file the picked target is remembered and used by launches', async () => {
  fake.helper.handle = (method) => ({
    'pymirrord/listTargets': { targets: [{ path: 'pid/7', kind: 'pid', namespace: null, available: true, label: 'pid/7' }], currentNamespace: null, namespaces: [], notes: [] },
    'pymirrord/prepareLaunch': PREPARED,
  })[method];
  fake.answers.quickPick.push((/** @type {any[]} */ items) => items.find((item) => item.target));
  assert.equal(await fake.commands.get('pymirrord.selectTarget')?.(), 'pid/7');
  assert.match(fake.shown.info[0].message, /launches in this workspace use pid\/7/);
  await resolveLaunch({ type: 'debugpy', request: 'launch', name: 'x', program: 'a.py', pymirrord: true });
  assert.equal(fake.helper.requests.find((r) => r.method === 'pymirrord/prepareLaunch')?.params.target, 'pid/7');
});

test('session events reach the status bar; stop a session from the command', async () => {
  const onEvent = fake.helper.client.notificationHandlers.get('pymirrord/sessionEvent');
  onEvent({ sessionId: 's1', kind: 'ready', target: 'netns/demo', mode: 'steal' });
  onEvent({ sessionId: 's1', kind: 'request', port: 80, mode: 'steal', method: 'GET', path: '/', matched: null });
  const [status] = fake.statusItems;
  assert.equal(status.text, '$(radio-tower) pymirrord: netns/demo · steal · 1 request');

  const live = { sessionId: 's1', target: 'netns/demo', mode: 'steal', state: 'ready', processes: [], ports: [], connections: {}, requests: { steal: 1 }, lastRequests: [] };
  fake.helper.handle = (method) => ({
    'pymirrord/sessions': { sessions: fake.helper.requests.some((r) => r.method === 'pymirrord/stopSession') ? [] : [live] },
    'pymirrord/stopSession': { stopped: true, session: { ...live, state: 'ended' } },
  })[method];
  await fake.commands.get('pymirrord.stopSession')?.();
  assert.deepEqual(fake.helper.requests.find((r) => r.method === 'pymirrord/stopSession')?.params, { sessionId: 's1' });
  assert.match(fake.shown.info.at(-1).message, /stopped the session for netns\/demo/);
  assert.equal(status.text, '$(debug-disconnect) pymirrord');
});

test('test a filter typed by the user', async () => {
  fake.helper.handle = (method) => (method === 'pymirrord/testFilter'
    ? { valid: true, errors: [], ports: [80], results: [{ stolen: true, matched: [{ part: 'header_filter', text: 'X-User: alice' }] }] }
    : undefined);
  fake.answers.inputBox.push('x-user: alice', 'GET /api | X-User: alice');
  await fake.commands.get('pymirrord.testFilter')?.();
  assert.deepEqual(fake.helper.requests.find((r) => r.method === 'pymirrord/testFilter')?.params, {
    filter: { header_filter: 'x-user: alice' },
    requests: [{ method: 'GET', path: '/api', headers: [['X-User', 'alice']] }],
  });
  assert.equal(fake.shown.info[0].message, 'pymirrord: GET /api: stolen (header_filter matched "X-User: alice")');
  assert.equal(fake.shown.inputBox[1].validateInput('GET api'), 'the path must start with "/" (got "api")');
});

test('a pymirrord.path that points nowhere: the helper is not started and requests say why', async () => {
  await extension.deactivate();
  fake = createFake({ folder });
  fake.settings['pymirrord.path'] = '/nowhere/pymirrord';
  extension = loadExtension(fake);
  await extension.activate({ subscriptions: [], workspaceState: { get: () => undefined, update: async () => undefined } });
  assert.equal(fake.helper.client, undefined);
  assert.match(fake.shown.error[0].message, /pymirrord\.path is \/nowhere\/pymirrord, which does not exist/);
  assert.deepEqual(fake.shown.error[0].items, ['Open Settings']);
  await resolveLaunch({ type: 'debugpy', request: 'launch', name: 'x', program: 'a.py', pymirrord: true });
  assert.match(fake.shown.error[1].message, /pymirrord\.path is \/nowhere\/pymirrord/);
  assert.deepEqual(fake.shown.error[1].items, ['Show Output', 'Open Settings']);
});
