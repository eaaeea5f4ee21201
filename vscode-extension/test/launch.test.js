// @ts-check
'use strict';
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { joinPaths, mergeLaunchEnv, prepareLaunchParams, pymirrordOptions, unsupportedReason } = require('../src/launch');

const RESULT = {
  sessionId: 's1-abc',
  env: { PYTHONPATH: '/layer:/opt/own', PYMIRRORD_LAYER_SOCKET: '/tmp/s/sock', PYMIRRORD_LAYER_CONFIG: '{}' },
  envToUnset: ['PYMIRRORD_AGENT_TOKEN'],
  target: 'netns/demo',
  mode: 'steal',
  warnings: [],
};

test('pymirrordOptions: true, an object, or not asked for', () => {
  assert.deepEqual(pymirrordOptions({ pymirrord: true }), {});
  assert.deepEqual(pymirrordOptions({ pymirrord: { target: 'netns/a', configFile: 'x.json', other: 1 } }),
    { target: 'netns/a', configFile: 'x.json' });
  assert.deepEqual(pymirrordOptions({ pymirrord: { target: '' } }), {});
  assert.equal(pymirrordOptions({}), null);
  assert.equal(pymirrordOptions({ pymirrord: false }), null);
  assert.equal(pymirrordOptions({ pymirrord: 'yes' }), null);
  assert.equal(pymirrordOptions({ pymirrord: ['netns/a'] }), null);
});

test('unsupportedReason: Python launches only', () => {
  assert.equal(unsupportedReason({ type: 'debugpy', request: 'launch' }), null);
  assert.equal(unsupportedReason({ type: 'python' }), null);
  assert.match(unsupportedReason({ type: 'node', request: 'launch' }) ?? '', /only injects into Python launches.*"node"/);
  assert.match(unsupportedReason({ type: 'debugpy', request: 'attach' }) ?? '', /attach.*pymirrord exec/);
});

test('prepareLaunchParams: the launch as the helper takes it', () => {
  const params = prepareLaunchParams({
    type: 'debugpy', request: 'launch', name: 'app', program: '/w/app.py', args: ['--port', 8080],
    python: ['/venv/bin/python', '-X', 'dev'], env: { A: '1', GONE: null, NUM: 3, UNDEF: undefined },
    justMyCode: false,
  }, { configUri: 'file:///w/.mirrord/mirrord.json', target: 'netns/demo', folder: '/w' });
  assert.deepEqual(params, {
    configUri: 'file:///w/.mirrord/mirrord.json',
    target: 'netns/demo',
    launch: {
      type: 'debugpy', python: '/venv/bin/python', program: '/w/app.py', args: ['--port', '8080'], cwd: '/w',
      env: { A: '1', GONE: null, NUM: '3' },
    },
  });
});

test('prepareLaunchParams: module launches, a string of args, the launch\'s own cwd, nothing optional', () => {
  assert.deepEqual(prepareLaunchParams({ type: 'python', module: 'svc', args: '--x 1', cwd: '/c' }, { folder: '/w' }),
    { launch: { type: 'python', module: 'svc', args: ['--x 1'], cwd: '/c', env: {} } });
  assert.deepEqual(prepareLaunchParams({ type: 'debugpy', program: 'a.py', python: '' }),
    { launch: { type: 'debugpy', program: 'a.py', env: {} } });
});

test('mergeLaunchEnv: variables set, PYTHONPATH joined without repeats, unset names nulled', () => {
  const config = { type: 'debugpy', name: 'app', env: { PYTHONPATH: '/opt/own:/opt/more', KEEP: 'yes', PYMIRRORD_AGENT_TOKEN: 't' } };
  const merged = mergeLaunchEnv(config, RESULT, ':');
  assert.deepEqual(merged.env, {
    PYTHONPATH: '/layer:/opt/own:/opt/more',
    KEEP: 'yes',
    PYMIRRORD_AGENT_TOKEN: null,
    PYMIRRORD_LAYER_SOCKET: '/tmp/s/sock',
    PYMIRRORD_LAYER_CONFIG: '{}',
  });
  assert.equal(merged.pymirrordSessionId, 's1-abc');
  assert.equal(merged.name, 'app');
  assert.deepEqual(config.env, { PYTHONPATH: '/opt/own:/opt/more', KEEP: 'yes', PYMIRRORD_AGENT_TOKEN: 't' }, 'input untouched');
});

test('mergeLaunchEnv: a launch without env, and one whose PYTHONPATH the helper did not see', () => {
  assert.deepEqual(mergeLaunchEnv({ type: 'debugpy' }, { ...RESULT, env: { PYTHONPATH: '/layer' }, envToUnset: [] }, ':').env,
    { PYTHONPATH: '/layer' });
  assert.deepEqual(mergeLaunchEnv({ type: 'debugpy', env: { PYTHONPATH: 'C:\\own' } },
    { ...RESULT, env: { PYTHONPATH: 'C:\\layer' }, envToUnset: [] }, ';').env, { PYTHONPATH: 'C:\\layer;C:\\own' });
});

test('joinPaths drops empty entries and repeats, keeps order', () => {
  assert.equal(joinPaths('/a::/b', '/b:/c:', ':'), '/a:/b:/c');
  assert.equal(joinPaths(undefined, null, ':'), '');
});
