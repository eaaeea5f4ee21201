// @ts-check
'use strict';
/**
 * A minimal JSON-RPC client over stdio with LSP framing (Content-Length headers), independent of VS Code
 * and vscode-languageclient: the tests talk to the real helper with it.
 */

const { spawn } = require('node:child_process');

const DEFAULT_TIMEOUT_MS = 15000;

class RpcError extends Error {
  /**
   * @param {number} code
   * @param {string} message
   * @param {any} [data]
   */
  constructor(code, message, data) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data;
  }
}

/**
 * Split a byte stream into framed JSON messages.
 */
class FrameReader {
  constructor() {
    this.buffer = Buffer.alloc(0);
  }

  /**
   * @param {Buffer} chunk
   * @returns {any[]} the complete messages now available
   */
  push(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const messages = [];
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end === -1) break;
      const header = this.buffer.subarray(0, end).toString('ascii');
      const match = /^content-length:\s*(\d+)\s*$/im.exec(header);
      if (!match) throw new Error(`a message header without Content-Length: ${JSON.stringify(header)}`);
      const length = Number(match[1]);
      if (this.buffer.length < end + 4 + length) break;
      const body = this.buffer.subarray(end + 4, end + 4 + length).toString('utf8');
      this.buffer = this.buffer.subarray(end + 4 + length);
      messages.push(JSON.parse(body));
    }
    return messages;
  }
}

/** @param {any} message */
function frame(message) {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

/**
 * @param {number} ms
 * @param {string} what
 * @returns {{promise: Promise<never>, clear: () => void}}
 */
function deadline(ms, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return { promise: /** @type {Promise<never>} */ (promise), clear: () => clearTimeout(timer) };
}

class LspClient {
  /**
   * @param {string} command
   * @param {string[]} args
   * @param {{cwd?: string, env?: NodeJS.ProcessEnv}} [options]
   */
  constructor(command, args, options = {}) {
    this.process = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.nextId = 1;
    /** @type {Map<number, {resolve: (value: any) => void, reject: (error: Error) => void}>} */
    this.pending = new Map();
    /** @type {{method: string, params: any}[]} */
    this.notifications = [];
    /** @type {{method: string, params: any, predicate: (params: any) => boolean, resolve: (params: any) => void}[]} */
    this.waiters = [];
    /** @type {{method: string, params: any}[]} requests the helper sent to its client */
    this.serverRequests = [];
    this.stderr = '';
    const reader = new FrameReader();
    this.process.stdout.on('data', (chunk) => reader.push(chunk).forEach((message) => this.dispatch(message)));
    this.process.stderr.on('data', (chunk) => { this.stderr += chunk.toString(); });
    /** @type {Promise<number | null>} */
    this.exited = new Promise((resolve) => this.process.on('exit', (code) => {
      for (const { reject } of this.pending.values()) reject(new Error(`the helper exited (${code}): ${this.stderr}`));
      this.pending.clear();
      resolve(code);
    }));
    this.spawned = new Promise((resolve, reject) => {
      this.process.once('spawn', resolve);
      this.process.once('error', reject);
    });
  }

  /** @param {any} message */
  dispatch(message) {
    if (message.id !== undefined && message.method === undefined) {
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (!waiting) return;
      if (message.error) waiting.reject(new RpcError(message.error.code, message.error.message, message.error.data));
      else waiting.resolve(message.result);
    } else if (message.id !== undefined) {
      this.serverRequests.push({ method: message.method, params: message.params });
      this.write({ jsonrpc: '2.0', id: message.id, result: this.answer(message.method) });
    } else {
      this.notifications.push({ method: message.method, params: message.params });
      this.waiters = this.waiters.filter((waiter) => {
        if (waiter.method !== message.method || !waiter.predicate(message.params)) return true;
        waiter.resolve(message.params);
        return false;
      });
    }
  }

  /**
   * How a simple editor answers the helper's requests: edits applied, no message button chosen.
   * @param {string} method
   */
  answer(method) {
    if (method === 'workspace/applyEdit') return { applied: true };
    if (method === 'workspace/configuration') return [];
    return null;
  }

  /** @param {any} message */
  write(message) {
    this.process.stdin.write(frame(message));
  }

  /**
   * Send a request; its id is in `sent.id`, its answer in `sent.response`.
   * @param {string} method
   * @param {unknown} [params]
   */
  send(method, params) {
    const id = this.nextId++;
    const response = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.write({ jsonrpc: '2.0', id, method, params });
    return { id, response };
  }

  /**
   * @param {string} method
   * @param {unknown} [params]
   * @param {number} [timeoutMs]
   * @returns {Promise<any>}
   */
  async request(method, params, timeoutMs = DEFAULT_TIMEOUT_MS) {
    const sent = this.send(method, params);
    const limit = deadline(timeoutMs, `answer to ${method}`);
    try {
      return await Promise.race([sent.response, limit.promise]);
    } finally {
      limit.clear();
    }
  }

  /**
   * @param {string} method
   * @param {unknown} [params]
   */
  notify(method, params) {
    this.write({ jsonrpc: '2.0', method, params });
  }

  /** @param {number} id */
  cancel(id) {
    this.notify('$/cancelRequest', { id });
  }

  /**
   * The first notification (already received or still to come) that matches.
   * @param {string} method
   * @param {(params: any) => boolean} [predicate]
   * @param {number} [timeoutMs]
   * @returns {Promise<any>}
   */
  async waitNotification(method, predicate = () => true, timeoutMs = DEFAULT_TIMEOUT_MS) {
    const seen = this.notifications.find((n) => n.method === method && predicate(n.params));
    if (seen) return seen.params;
    const limit = deadline(timeoutMs, `${method} notification`);
    try {
      return await Promise.race([
        new Promise((resolve) => this.waiters.push({ method, params: undefined, predicate, resolve })),
        limit.promise,
      ]);
    } finally {
      limit.clear();
    }
  }

  /**
   * initialize + initialized, as an editor with progress support does.
   * @param {string} rootUri
   */
  async initialize(rootUri) {
    await this.spawned;
    const result = await this.request('initialize', {
      processId: process.pid,
      rootUri,
      workspaceFolders: [{ uri: rootUri, name: 'test' }],
      capabilities: {
        window: { workDoneProgress: true },
        workspace: { applyEdit: true, executeCommand: {} },
        textDocument: { publishDiagnostics: {} },
      },
    });
    this.notify('initialized', {});
    return result;
  }

  /**
   * shutdown + exit; the exit status (the process is killed if it does not leave in time).
   * @param {number} [timeoutMs]
   */
  async close(timeoutMs = DEFAULT_TIMEOUT_MS) {
    if (this.process.exitCode !== null) return this.process.exitCode;
    try {
      await this.request('shutdown', null, timeoutMs);
      this.notify('exit');
      this.process.stdin.end();
    } catch {
      this.process.kill('SIGTERM');
    }
    const limit = deadline(timeoutMs, 'helper exit');
    try {
      return await Promise.race([this.exited, limit.promise]);
    } catch (error) {
      this.process.kill('SIGKILL');
      throw error;
    } finally {
      limit.clear();
    }
  }
}

module.exports = { LspClient, RpcError, FrameReader, frame };
