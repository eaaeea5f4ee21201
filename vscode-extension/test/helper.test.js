// @ts-check
'use strict';
/**
 * The protocol end against the real helper (`pymirrord lsp`, or $PYMIRRORD_BIN): the answers the
 * extension's pure modules consume have the shapes those modules expect, so the extension and the helper
 * cannot drift apart silently.
 */

const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { after, before, describe, test } = require('node:test');

const { LspClient, RpcError } = require('./support/lsp-client');
const { ACTIONS, CODES, describeError } = require('../src/errors');
const { reportLines } = require('../src/filter');
const { mergeLaunchEnv, prepareLaunchParams } = require('../src/launch');
const { SessionsModel, sessionItems } = require('../src/sessions');
const { targetItems, emptyMessage } = require('../src/targets');
const { ProgressSteps } = require('../src/progress');
const { CHOOSE_TARGET_COMMAND, METHODS, SESSION_EVENT, SET_TARGET_COMMAND } = require('../src/protocol');

const HELPER = process.env.PYMIRRORD_BIN || path.resolve(__dirname, '..', '..', '.venv', 'bin', 'pymirrord');
const missingHelper = fs.existsSync(HELPER) ? false
  : `the helper ${HELPER} does not exist: run scripts/setup.sh --dev, or set PYMIRRORD_BIN`;

/** Whether this machine can make network namespaces and run sessions in them (root, ip, iptables). */
function namespaceSupport() {
  if (process.getuid?.() !== 0) return 'local targets need root';
  for (const tool of ['ip', 'iptables']) {
    if (spawnSync(tool, ['--version']).error) return `\`${tool}\` is not installed`;
  }
  return false;
}

/**
 * @param {any} value
 * @param {string[]} keys
 * @param {string} what
 */
function assertKeys(value, keys, what) {
  assert.equal(typeof value, 'object', `${what} is an object`);
  for (const key of keys) assert.ok(key in value, `${what} has ${key}: ${JSON.stringify(value)}`);
}

/**
 * The error a request fails with.
 * @param {Promise<unknown>} promise
 * @returns {Promise<RpcError>}
 */
async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RpcError, `a JSON-RPC error, not ${error}`);
    return error;
  }
  assert.fail('the request succeeded');
}

describe('the helper, as the extension uses it', { skip: missingHelper }, () => {
  /** @type {LspClient} */
  let helper;
  /** @type {string} */
  let folder;
  /** @type {any} */
  let initialized;

  before(async () => {
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pymirrord-vscode-'));
    helper = new LspClient(HELPER, ['lsp'], { cwd: folder });
    initialized = await helper.initialize(pathToFileURL(folder).href);
  });

  after(async () => {
    if (helper) assert.equal(await helper.close(), 0, `the helper exits cleanly; stderr: ${helper.stderr}`);
    fs.rmSync(folder, { recursive: true, force: true });
  });

  test('initialize offers the commands the extension calls and intercepts', () => {
    assert.equal(initialized.serverInfo.name, 'pymirrord');
    const commands = initialized.capabilities.executeCommandProvider.commands;
    assert.ok(commands.includes(SET_TARGET_COMMAND), `${SET_TARGET_COMMAND} in ${commands}`);
    assert.ok(commands.includes(CHOOSE_TARGET_COMMAND), `${CHOOSE_TARGET_COMMAND} in ${commands}`);
  });

  test('testFilter: stolen requests and the parts that matched', async () => {
    const filter = { all_of: [{ header: '^x-user: alice$' }, { path: '^/api' }] };
    /** @type {import('../src/filter').TestRequest[]} */
    const requests = [
      { method: 'GET', path: '/api/users?page=2', headers: [['X-User', 'alice']] },
      { method: 'GET', path: '/api/users', headers: [['X-User', 'bob']] },
    ];
    const report = await helper.request(METHODS.testFilter, { filter, requests });
    assertKeys(report, ['valid', 'errors', 'results', 'ports'], 'the report');
    assert.equal(report.valid, true);
    assert.equal(report.results.length, 2);
    for (const result of report.results) assertKeys(result, ['stolen', 'matched'], 'a result');
    for (const part of report.results[0].matched) assertKeys(part, ['part', 'text'], 'a matched part');
    assert.deepEqual(reportLines(report, requests), [
      'GET /api/users?page=2: stolen (all_of[0].header matched "X-User: alice", all_of[1].path matched "/api/users")',
      'GET /api/users: not stolen, the pod serves it',
    ]);
  });

  test('testFilter: an invalid regex is located', async () => {
    const report = await helper.request(METHODS.testFilter, {
      filter: { any_of: [{ path: '^/ok' }, { header: 'x-(user' }] },
      requests: [{ method: 'GET', path: '/', headers: [] }],
    });
    assert.equal(report.valid, false);
    assert.deepEqual(report.results, []);
    const [error] = report.errors;
    assertKeys(error, ['pointer', 'message', 'position'], 'a filter error');
    assert.equal(error.pointer, '/any_of/1/header');
    const [line] = reportLines(report, []);
    assert.match(line, /^invalid filter at \/any_of\/1\/header, character \d+: ./);
  });

  test('listTargets: the listing the picker shows', async () => {
    const listing = await helper.request(METHODS.listTargets, {});
    assertKeys(listing, ['targets', 'currentNamespace', 'namespaces', 'notes'], 'the listing');
    assert.ok(Array.isArray(listing.targets) && Array.isArray(listing.notes) && Array.isArray(listing.namespaces));
    for (const target of listing.targets) {
      assertKeys(target, ['path', 'kind', 'namespace', 'available', 'label'], 'a target');
    }
    const items = targetItems(listing);
    assert.equal(items.filter((item) => item.target).length, listing.targets.length);
    assert.equal(emptyMessage(listing) === null, listing.targets.length > 0);
  });

  test('sessions: none at first, and the status bar says so', async () => {
    const result = await helper.request(METHODS.sessions, {});
    assert.deepEqual(result, { sessions: [] });
    const model = new SessionsModel();
    model.reset(result);
    assert.equal(model.statusText(), '$(debug-disconnect) pymirrord');
  });

  test('prepareLaunch without a target: an error with a Select Target button', async () => {
    const program = path.join(folder, 'app.py');
    fs.writeFileSync(program, 'print("hello")\n');
    const params = prepareLaunchParams({ type: 'debugpy', request: 'launch', program, env: {} }, { folder });
    const error = await rejection(helper.request(METHODS.prepareLaunch, params));
    assert.equal(error.code, CODES.NO_TARGET);
    const described = describeError(error);
    assert.ok(described);
    assert.deepEqual(described.actions, [ACTIONS.SELECT_TARGET]);
    assert.match(described.message, /^pymirrord: no target.*listTargets|target/);
  });

  test('prepareLaunch for a missing program: the helper names the field', async () => {
    const params = prepareLaunchParams({ type: 'debugpy', program: 'missing.py', cwd: folder }, { target: 'netns/none' });
    const error = await rejection(helper.request(METHODS.prepareLaunch, params));
    assert.equal(error.code, CODES.LAUNCH_INVALID);
    assert.match(error.message, /launch\.program/);
  });

  test('prepareLaunch with a broken config: the errors come along for the output', async () => {
    const config = path.join(folder, '.mirrord', 'mirrord.json');
    fs.mkdirSync(path.dirname(config), { recursive: true });
    fs.writeFileSync(config, '{"feature": {"network": {"incoming": {"mode": "borrow"}}}}\n');
    const params = prepareLaunchParams({ type: 'debugpy', module: 'app', cwd: folder },
      { configUri: pathToFileURL(config).href, target: 'netns/none' });
    const error = await rejection(helper.request(METHODS.prepareLaunch, params));
    assert.equal(error.code, CODES.CONFIG_INVALID);
    const described = describeError(error);
    assert.ok(described?.detail, 'the config errors are detailed');
    assert.match(described.detail, /mirrord\.json:\d+:\d+: error: /);
    assert.deepEqual(described.actions, [ACTIONS.OPEN_CONFIG]);
    fs.rmSync(path.dirname(config), { recursive: true });
  });

  test('stopSession for an unknown session: a clear error', async () => {
    const error = await rejection(helper.request(METHODS.stopSession, { sessionId: 'nope' }));
    assert.equal(error.code, CODES.UNKNOWN_SESSION);
    assert.match(describeError(error)?.message ?? '', /^pymirrord: .*nope/);
  });

  test('setTarget writes the picked target through workspace/applyEdit', async () => {
    const config = path.join(folder, '.mirrord', 'mirrord.json');
    fs.mkdirSync(path.dirname(config), { recursive: true });
    const uri = pathToFileURL(config).href;
    fs.writeFileSync(config, '{}\n');
    helper.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'json', version: 1, text: '{}\n' } });
    const result = await helper.request(METHODS.executeCommand,
      { command: SET_TARGET_COMMAND, arguments: [uri, 'netns/picked'] });
    assert.deepEqual(result, { applied: true, target: 'netns/picked' });
    const edit = helper.serverRequests.find((r) => r.method === 'workspace/applyEdit');
    assert.ok(edit, 'the helper asked the editor to apply an edit');
    assert.match(JSON.stringify(edit.params.edit), /netns\/picked/);
    helper.notify('textDocument/didClose', { textDocument: { uri } });
    fs.rmSync(path.dirname(config), { recursive: true });
  });

  describe('a session on a network namespace', { skip: namespaceSupport() }, () => {
    const netns = `pmvsc-${crypto.randomBytes(4).toString('hex')}`;

    before(() => {
      execFileSync('ip', ['netns', 'add', netns]);
      execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    });

    after(() => {
      spawnSync('ip', ['netns', 'delete', netns]);
    });

    test('listTargets lists it, and the picker offers it', async () => {
      const listing = await helper.request(METHODS.listTargets, {});
      const item = targetItems(listing).find((i) => i.target === `netns/${netns}`);
      assert.ok(item, `netns/${netns} in the picker`);
      assert.equal(item.description, 'network namespace');
    });

    test('prepareLaunch: progress, env merged into the launch, events, stop', async () => {
      const program = path.join(folder, 'app.py');
      fs.writeFileSync(program, 'print("hello")\n');
      const launch = {
        type: 'debugpy', request: 'launch', name: 'app', program, cwd: folder, pymirrord: true,
        env: { PYTHONPATH: '/opt/own', KEEP: '1' },
      };
      const token = 'vscode-test-launch';
      const result = await helper.request(METHODS.prepareLaunch,
        { ...prepareLaunchParams(launch, { target: `netns/${netns}` }), workDoneToken: token }, 60000);
      assertKeys(result, ['sessionId', 'env', 'envToUnset', 'target', 'mode', 'warnings'], 'the prepared launch');
      assert.equal(result.target, `netns/${netns}`);

      const steps = new ProgressSteps();
      const progress = helper.notifications.filter((n) => n.method === '$/progress' && n.params.token === token);
      assert.equal(progress[0].params.value.kind, 'begin');
      assert.equal(progress[progress.length - 1].params.value.kind, 'end');
      const increments = progress.map((n) => steps.next(n.params.value).increment ?? 0);
      assert.equal(increments.reduce((a, b) => a + b, 0), 100);

      const merged = mergeLaunchEnv(launch, result);
      const entries = String(merged.env?.PYTHONPATH).split(path.delimiter);
      assert.equal(entries[0], result.env.PYTHONPATH.split(path.delimiter)[0], 'the layer comes first');
      assert.ok(entries.includes('/opt/own'), 'the launch\'s own PYTHONPATH is kept');
      assert.equal(new Set(entries).size, entries.length, 'no entry twice');
      assert.equal(merged.env?.KEEP, '1');
      assert.ok(merged.env?.PYMIRRORD_LAYER_SOCKET, 'the session address is set');
      assert.equal(merged.pymirrordSessionId, result.sessionId);

      const model = new SessionsModel();
      model.reset(await helper.request(METHODS.sessions, {}));
      const [item] = sessionItems(model.list());
      assert.equal(item.sessionId, result.sessionId);
      assert.equal(item.label, `netns/${netns}`);
      const ready = await helper.waitNotification(SESSION_EVENT,
        (p) => p.sessionId === result.sessionId && p.kind === 'ready');
      model.apply(ready);
      assert.match(model.statusText(), new RegExp(`pymirrord: netns/${netns} · ${result.mode} · 0 requests`));

      const stopped = await helper.request(METHODS.stopSession, { sessionId: result.sessionId });
      assert.equal(stopped.stopped, true);
      const ended = await helper.waitNotification(SESSION_EVENT,
        (p) => p.sessionId === result.sessionId && p.kind === 'ended');
      assert.equal(model.apply(ended), 'changed');
      assert.equal(model.list().length, 0);
      assert.deepEqual(await helper.request(METHODS.sessions, {}), { sessions: [] });
    });

    test('prepareLaunch cancelled mid-way: a silent error and no session left', async () => {
      const token = 'vscode-test-cancel';
      const sent = helper.send(METHODS.prepareLaunch, {
        ...prepareLaunchParams({ type: 'debugpy', module: 'app', cwd: folder }, { target: `netns/${netns}` }),
        workDoneToken: token,
      });
      await helper.waitNotification('$/progress', (p) => p.token === token && p.value.kind === 'begin');
      helper.cancel(sent.id);
      try {
        const result = await sent.response;
        // The cancel came after the session was up: it stays until stopped, as a finished request would.
        await helper.request(METHODS.stopSession, { sessionId: result.sessionId });
      } catch (error) {
        assert.ok(error instanceof RpcError);
        assert.equal(error.code, CODES.CANCELLED);
        assert.equal(describeError(error), null, 'a cancellation needs no message');
      }
      assert.deepEqual(await helper.request(METHODS.sessions, {}), { sessions: [] });
    });
  });
});
