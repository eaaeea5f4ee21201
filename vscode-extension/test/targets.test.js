// @ts-check
'use strict';
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { SEPARATOR, emptyMessage, groupOf, targetItems } = require('../src/targets');

const LISTING = {
  targets: [
    { path: 'deployment/api', kind: 'deployment', namespace: 'shop', available: true, label: 'deployment/api' },
    { path: 'netns/demo', kind: 'netns', namespace: null, available: true, label: 'netns/demo (network namespace)' },
    { path: 'pid/4242', kind: 'pid', namespace: null, available: true, label: 'pid/4242 — python3 service.py (container 3f2a1b0c9d8e)' },
    { path: 'netns/old', kind: 'netns', namespace: null, available: false, label: 'netns/old (network namespace)' },
  ],
  currentNamespace: 'shop',
  namespaces: ['shop'],
  notes: [],
};

test('targetItems: grouped, local first, described, unavailable marked', () => {
  assert.deepEqual(targetItems(LISTING), [
    { label: 'Network namespaces', kind: SEPARATOR },
    { label: 'netns/demo', description: 'network namespace', target: 'netns/demo' },
    { label: 'netns/old', description: 'network namespace', target: 'netns/old', detail: '$(warning) not available now' },
    { label: 'Local processes and containers', kind: SEPARATOR },
    { label: 'pid/4242', description: 'python3 service.py (container 3f2a1b0c9d8e)', target: 'pid/4242' },
    { label: 'Kubernetes', kind: SEPARATOR },
    { label: 'deployment/api', description: 'namespace shop', target: 'deployment/api' },
  ]);
});

test('targetItems: the current target first in its group and marked', () => {
  const items = targetItems(LISTING, 'netns/old');
  assert.equal(items[1].target, 'netns/old');
  assert.equal(items[1].detail, 'current target · $(warning) not available now');
});

test('targetItems: a label without the path is kept whole; a missing label is fine', () => {
  const [, item] = targetItems({ ...LISTING, targets: [{ path: 'pod/x', kind: 'pod', namespace: null, available: true, label: 'some pod' }] });
  assert.equal(item.description, 'some pod');
  const [, bare] = targetItems({ ...LISTING, targets: [{ path: 'pod/y', kind: 'pod', namespace: null, available: true }] });
  assert.equal(bare.description, '');
});

test('groupOf: unknown kinds are Kubernetes workloads', () => {
  assert.equal(groupOf('netns'), 'Network namespaces');
  assert.equal(groupOf('rollout'), 'Kubernetes');
});

test('emptyMessage: what to do when there is nothing, with the helper\'s notes', () => {
  assert.equal(emptyMessage(LISTING), null);
  const message = emptyMessage({ targets: [], currentNamespace: null, namespaces: [], notes: ['Kubernetes: no kubeconfig'] });
  assert.match(message ?? '', /no targets: create a network namespace \(ip netns add NAME\).* Kubernetes: no kubeconfig$/);
});
