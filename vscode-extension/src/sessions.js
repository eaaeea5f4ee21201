// @ts-check
'use strict';
/**
 * The extension's view of the helper's live sessions: a `pymirrord/sessions` snapshot kept current by
 * `pymirrord/sessionEvent` notifications, and the status bar text and picker items made from it.
 */

const LAST_REQUESTS = 20;

/**
 * @typedef {{at?: number, connectionId?: number, port?: number, mode: string, method: string, path: string,
 *   matched: boolean | null}} RequestSeen
 * @typedef {{sessionId: string, target: string, mode: string, configPath?: string | null, state: string,
 *   startedAt?: number, processes: number[], ports: {port: number, mode: string}[],
 *   connections: {[mode: string]: number}, requests: {[mode: string]: number},
 *   bytes?: {in: number, out: number}, lastRequests: RequestSeen[], remoteEnv?: string[]}} Session
 * @typedef {{sessionId: string, kind: string, [key: string]: any}} SessionEvent
 */

/**
 * @param {string} sessionId
 * @returns {Session}
 */
function emptySession(sessionId) {
  return {
    sessionId, target: '', mode: '', state: 'starting', processes: [], ports: [],
    connections: { mirror: 0, steal: 0 }, requests: { mirror: 0, steal: 0 }, lastRequests: [], remoteEnv: [],
  };
}

/**
 * The names of the variables that came from the target, sorted and unique. The helper sends names only;
 * anything after a `=` is cut and a name-to-value map keeps its keys, so a value never reaches the editor.
 * @param {unknown} names
 * @returns {string[]}
 */
function envNames(names) {
  const list = Array.isArray(names) ? names : names && typeof names === 'object' ? Object.keys(names) : [];
  const cut = list.filter((name) => typeof name === 'string').map((name) => name.split('=', 1)[0]).filter(Boolean);
  return [...new Set(cut)].sort();
}

/** @param {{[mode: string]: number}} counts */
function total(counts) {
  return Object.values(counts || {}).reduce((sum, n) => sum + n, 0);
}

class SessionsModel {
  constructor() {
    /** @type {Map<string, Session>} */
    this.sessions = new Map();
    /** @type {{target: string, reason: string} | null} */
    this.lastEnded = null;
  }

  /**
   * Replace everything with a `pymirrord/sessions` result.
   * @param {{sessions: Session[]}} result
   */
  reset(result) {
    // A copy: events update the model in place, never the caller's result.
    this.sessions = new Map((result.sessions || []).map((s) => [
      s.sessionId, { ...emptySession(s.sessionId), ...structuredClone(s), remoteEnv: envNames(s.remoteEnv) },
    ]));
  }

  /**
   * Apply one `pymirrord/sessionEvent`.
   * @param {SessionEvent} event
   * @returns {'changed' | 'unknown'} `unknown` when the event is about a session this model has not seen
   *   (the caller should reload `pymirrord/sessions`); it is recorded as far as the event tells.
   */
  apply(event) {
    const known = this.sessions.has(event.sessionId);
    if (event.kind === 'ended') {
      const session = this.sessions.get(event.sessionId);
      this.sessions.delete(event.sessionId);
      this.lastEnded = { target: session?.target || event.sessionId, reason: String(event.reason ?? '') };
      return 'changed';
    }
    const session = this.sessions.get(event.sessionId) ?? emptySession(event.sessionId);
    this.sessions.set(event.sessionId, session);
    switch (event.kind) {
      case 'ready':
        session.state = 'ready';
        session.target = event.target ?? session.target;
        session.mode = event.mode ?? session.mode;
        break;
      case 'process':
        session.processes = session.processes.filter((pid) => pid !== event.pid);
        if (event.connected) session.processes.push(event.pid);
        break;
      case 'port':
        session.ports = [...session.ports.filter((p) => p.port !== event.port), { port: event.port, mode: event.mode }]
          .sort((a, b) => a.port - b.port);
        break;
      case 'connection':
        session.connections[event.mode] = (session.connections[event.mode] || 0) + 1;
        break;
      case 'request': {
        session.requests[event.mode] = (session.requests[event.mode] || 0) + 1;
        const { sessionId, kind, ...request } = event;
        session.lastRequests = [...session.lastRequests, /** @type {RequestSeen} */ (request)].slice(-LAST_REQUESTS);
        break;
      }
      case 'requests': // the requests of a busy spell, at most one such event a tenth of a second
        for (const [mode, count] of Object.entries(event.counts || {})) {
          session.requests[mode] = (session.requests[mode] || 0) + Number(count);
        }
        session.lastRequests = [...session.lastRequests, ...(event.entries || [])].slice(-LAST_REQUESTS);
        break;
      case 'environment':
        session.remoteEnv = envNames(event.remoteEnv);
        break;
      default: // `log` and kinds added later change nothing shown here
        break;
    }
    return known ? 'changed' : 'unknown';
  }

  /** @returns {Session[]} */
  list() {
    return [...this.sessions.values()];
  }

  /** The status bar text (with codicons). */
  statusText() {
    const sessions = this.list();
    if (sessions.length === 0) return '$(debug-disconnect) pymirrord';
    if (sessions.length > 1) {
      const requests = sessions.reduce((sum, s) => sum + total(s.requests), 0);
      return `$(radio-tower) pymirrord: ${sessions.length} sessions · ${plural(requests, 'request')}`;
    }
    const [session] = sessions;
    if (session.state !== 'ready') return `$(sync~spin) pymirrord: ${session.target || 'starting'}`;
    return `$(radio-tower) pymirrord: ${session.target} · ${session.mode} · ${plural(total(session.requests), 'request')}`;
  }

  /** The status bar tooltip: each session in a line or two. */
  tooltip() {
    const sessions = this.list();
    if (sessions.length === 0) {
      const last = this.lastEnded ? `\nLast session (${this.lastEnded.target}) ended: ${this.lastEnded.reason}` : '';
      return `pymirrord: no live session${last}`;
    }
    return sessions.map(sessionSummary).join('\n');
  }
}

/**
 * @param {number} count
 * @param {string} noun
 * @param {string} [nouns] the plural, when not noun + "s"
 */
function plural(count, noun, nouns = `${noun}s`) {
  return `${count} ${count === 1 ? noun : nouns}`;
}

/**
 * One line about a session: target, mode, ports, traffic.
 * @param {Session} session
 */
function sessionSummary(session) {
  const ports = session.ports.length ? session.ports.map((p) => `${p.port}/${p.mode}`).join(', ') : 'no port yet';
  return `${session.target || session.sessionId} (${session.mode || session.state}): ports ${ports}; ` +
    `${plural(total(session.connections), 'connection')}, ${plural(total(session.requests), 'request')}; ` +
    plural(session.processes.length, 'process', 'processes');
}

/**
 * One line about a request the session saw.
 * @param {RequestSeen} request
 */
function requestLine(request) {
  const verdict = request.matched === true ? 'matched the filter' : request.matched === false ? 'did not match' : '';
  return [`${request.method} ${request.path}`, `${request.mode} on :${request.port}`, verdict].filter(Boolean).join(' · ');
}

/**
 * QuickPick items, one per session.
 * @param {Session[]} sessions
 * @returns {{label: string, description: string, detail: string, sessionId: string}[]}
 */
function sessionItems(sessions) {
  return sessions.map((session) => {
    const last = session.lastRequests[session.lastRequests.length - 1];
    return {
      label: session.target || session.sessionId,
      description: `${session.mode} · ${session.state} · ${session.sessionId}`,
      detail: sessionSummary(session) + (last ? ` · last: ${requestLine(last)}` : ''),
      sessionId: session.sessionId,
    };
  });
}

module.exports = { SessionsModel, sessionItems, sessionSummary, requestLine, LAST_REQUESTS };
