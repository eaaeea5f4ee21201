// @ts-check
'use strict';
/**
 * The helper's `$/progress` values as steps of a `window.withProgress` report, which takes increments
 * where the helper sends absolute percentages.
 */

/**
 * @typedef {{kind: 'begin' | 'report' | 'end', title?: string, message?: string, percentage?: number,
 *   cancellable?: boolean}} WorkDoneValue
 * @typedef {{message?: string, increment?: number}} ProgressStep
 */

class ProgressSteps {
  constructor() {
    this.percentage = 0;
  }

  /**
   * @param {WorkDoneValue} value
   * @returns {ProgressStep}
   */
  next(value) {
    /** @type {ProgressStep} */
    const step = {};
    if (value.message) step.message = value.message;
    const target = value.kind === 'end' ? 100 : value.percentage;
    if (typeof target === 'number' && target > this.percentage) {
      step.increment = Math.min(target, 100) - this.percentage;
      this.percentage = Math.min(target, 100);
    }
    return step;
  }
}

module.exports = { ProgressSteps };
