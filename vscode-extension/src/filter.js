// @ts-check
'use strict';
/**
 * The "Test HTTP Filter" command, the pure part: a request typed in one line, the `pymirrord/testFilter`
 * params, and the report in words.
 *
 * A request line is `METHOD PATH`, then headers separated by `|`:
 *   GET /api/users?page=2 | X-User: alice | Accept: text/html
 */

const METHOD = /^[A-Za-z]+$/;

/**
 * @typedef {{method: string, path: string, headers: [string, string][]}} TestRequest
 * @typedef {{part: string, text: string}} MatchedPart
 * @typedef {{valid: boolean, errors: {pointer: string, message: string, position: number | null}[],
 *   ports?: number[], results: {stolen: boolean, matched: MatchedPart[]}[]}} FilterReport
 */

/**
 * @param {string} line
 * @returns {{request: TestRequest} | {error: string}}
 */
function parseRequestLine(line) {
  const [head = '', ...headerTexts] = line.split('|').map((part) => part.trim());
  const [method = '', target = '', ...extra] = head.split(/\s+/).filter(Boolean);
  if (!METHOD.test(method)) return { error: 'start with the method and the path, e.g. GET /api/users' };
  if (!target.startsWith('/')) return { error: `the path must start with "/" (got ${JSON.stringify(target || '')})` };
  if (extra.length) return { error: `separate headers with "|": GET /path | Name: value (found ${JSON.stringify(extra.join(' '))})` };
  /** @type {[string, string][]} */
  const headers = [];
  for (const text of headerTexts.filter(Boolean)) {
    const colon = text.indexOf(':');
    if (colon <= 0) return { error: `a header is "Name: value" (got ${JSON.stringify(text)})` };
    headers.push([text.slice(0, colon).trim(), text.slice(colon + 1).trim()]);
  }
  return { request: { method: method.toUpperCase(), path: target, headers } };
}

/**
 * A shorthand filter typed by the user: a JSON object as written in a config, or a header regex.
 * @param {string} text
 * @returns {{filter: object} | {error: string}}
 */
function parseFilterInput(text) {
  const trimmed = text.trim();
  if (!trimmed) return { error: 'type a header regex (X-User: alice) or an http_filter object' };
  if (!trimmed.startsWith('{')) return { filter: { header_filter: trimmed } };
  try {
    const filter = JSON.parse(trimmed);
    if (filter && typeof filter === 'object' && !Array.isArray(filter)) return { filter };
    return { error: 'the filter must be a JSON object' };
  } catch (error) {
    return { error: `the filter is not valid JSON: ${/** @type {Error} */ (error).message}` };
  }
}

/**
 * The report as lines, one per request (or one per filter error).
 * @param {FilterReport} report
 * @param {TestRequest[]} requests
 * @returns {string[]}
 */
function reportLines(report, requests) {
  if (!report.valid) {
    return report.errors.map((e) => `invalid filter at ${e.pointer || '/'}` +
      (e.position === null || e.position === undefined ? '' : `, character ${e.position + 1}`) + `: ${e.message}`);
  }
  return report.results.map((result, index) => {
    const request = requests[index];
    const name = request ? `${request.method} ${request.path}` : `request ${index + 1}`;
    if (!result.stolen) return `${name}: not stolen, the pod serves it`;
    const why = result.matched.map((m) => `${m.part} matched ${JSON.stringify(m.text)}`).join(', ');
    return `${name}: stolen (${why || 'the filter matched'})`;
  });
}

module.exports = { parseRequestLine, parseFilterInput, reportLines };
