// @ts-check
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');
const { test } = require('node:test');
const { helperCommand } = require('../src/helper-path');

const venv = process.platform === 'win32' ? '.venv/Scripts/pymirrord.exe' : '.venv/bin/pymirrord';

test('the setting wins, with ~ and ${workspaceFolder} expanded', () => {
  const exists = () => true;
  assert.deepEqual(helperCommand('~/bin/pymirrord', { folders: [], exists, home: '/home/u' }),
    { command: '/home/u/bin/pymirrord', args: ['lsp'], source: 'the pymirrord.path setting' });
  assert.equal(/** @type {any} */ (helperCommand('${workspaceFolder}/env/bin/pymirrord', { folders: ['/w', '/x'], exists })).command,
    '/w/env/bin/pymirrord');
  assert.equal(/** @type {any} */ (helperCommand('pymirrord-dev', { folders: [], exists: () => false })).command, 'pymirrord-dev',
    'a bare name is looked up on PATH when started');
});

test('a setting that points nowhere says so', () => {
  assert.match(/** @type {any} */ (helperCommand('/nope/pymirrord', { folders: [], exists: () => false })).error,
    /pymirrord\.path is \/nope\/pymirrord, which does not exist\. Set it/);
  assert.match(/** @type {any} */ (helperCommand('${workspaceFolder}/x', { folders: [], exists: () => true })).error,
    /no folder is open/);
});

test('without a setting: a workspace virtualenv, else PATH', () => {
  const inVenv = path.join('/w2', venv);
  assert.deepEqual(helperCommand('  ', { folders: ['/w1', '/w2'], exists: (file) => file === inVenv }),
    { command: inVenv, args: ['lsp'], source: `the workspace's ${venv}` });
  assert.deepEqual(helperCommand('', { folders: ['/w1'], exists: () => false }), { command: 'pymirrord', args: ['lsp'], source: 'PATH' });
});
