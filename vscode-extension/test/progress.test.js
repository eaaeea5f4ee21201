// @ts-check
'use strict';
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { ProgressSteps } = require('../src/progress');

test('absolute percentages become increments that add up to 100', () => {
  const steps = new ProgressSteps();
  assert.deepEqual(steps.next({ kind: 'begin', title: 'pymirrord: netns/demo', percentage: 0 }), {});
  assert.deepEqual(steps.next({ kind: 'report', message: 'starting the agent', percentage: 30 }), { message: 'starting the agent', increment: 30 });
  assert.deepEqual(steps.next({ kind: 'report', message: 'again', percentage: 20 }), { message: 'again' }, 'never backwards');
  assert.deepEqual(steps.next({ kind: 'report', percentage: 250 }), { increment: 70 }, 'never past 100');
  assert.deepEqual(steps.next({ kind: 'end', message: 'ready' }), { message: 'ready' });
});

test('an end without reports completes the bar', () => {
  const steps = new ProgressSteps();
  assert.deepEqual(steps.next({ kind: 'end', message: 'ready' }), { message: 'ready', increment: 100 });
});
