// @ts-check
'use strict';
/**
 * The Sessions view: each live session of the SessionsModel as a tree (target, mode and state; its ports,
 * counters, processes, the names of the variables that came from the target and last requests), refreshed
 * whenever the model changes. `sessionNodes` is the
 * pure part; the provider turns nodes into TreeItems.
 */

const vscode = require('vscode');
const { requestLine } = require('./sessions');

/**
 * @typedef {import('./sessions').Session} Session
 * @typedef {{id: string, label: string, description?: string, tooltip?: string, icon?: string,
 *   contextValue?: string, sessionId: string, children?: Node[], expanded?: boolean}} Node
 */

/** @param {{[mode: string]: number}} counts */
function counts(counts) {
  const parts = Object.entries(counts || {}).filter(([, n]) => n > 0).map(([mode, n]) => `${n} ${mode}`);
  const sum = Object.values(counts || {}).reduce((total, n) => total + n, 0);
  return parts.length > 1 ? `${sum} (${parts.join(', ')})` : parts.length === 1 ? parts[0] : '0';
}

/**
 * The tree of the live sessions.
 * @param {Session[]} sessions
 * @returns {Node[]}
 */
function sessionNodes(sessions) {
  return sessions.map((session) => {
    const id = session.sessionId;
    const ports = session.ports.length ? session.ports.map((p) => `${p.port} (${p.mode})`).join(', ') : 'none yet';
    const recent = [...session.lastRequests].reverse();
    /** @type {Node[]} */
    const children = [
      { id: `${id}/ports`, sessionId: id, label: 'Ports', description: ports, icon: 'plug' },
      { id: `${id}/connections`, sessionId: id, label: 'Connections', description: counts(session.connections), icon: 'arrow-swap' },
      { id: `${id}/requests`, sessionId: id, label: 'Requests', description: counts(session.requests), icon: 'globe' },
      {
        id: `${id}/processes`, sessionId: id, label: 'Processes',
        description: session.processes.length ? session.processes.map((pid) => `pid ${pid}`).join(', ') : 'none connected',
        icon: 'server-process',
      },
      ...environmentNodes(session),
      {
        id: `${id}/last`, sessionId: id, label: 'Last requests',
        description: recent.length ? `${recent.length}` : 'none yet', icon: 'history', expanded: recent.length > 0,
        children: recent.map((request, index) => ({
          id: `${id}/last/${session.lastRequests.length - index}`, sessionId: id,
          label: `${request.method} ${request.path}`,
          description: requestLine(request).split(' · ').slice(1).join(' · '),
          tooltip: request.at ? `${requestLine(request)} (${new Date(request.at * 1000).toLocaleTimeString()})` : requestLine(request),
          icon: request.matched === false ? 'circle-outline' : 'circle-filled',
        })),
      },
    ];
    return {
      id, sessionId: id, label: session.target || id,
      description: [session.mode, session.state === 'ready' ? '' : session.state].filter(Boolean).join(' · '),
      tooltip: `session ${id}${session.configPath ? ` from ${session.configPath}` : ''}`,
      icon: session.state === 'ready' ? 'radio-tower' : 'loading~spin',
      contextValue: 'pymirrordSession', children, expanded: true,
    };
  });
}

/**
 * The names of the launch's variables that came from the target, as a collapsed node; none when there are
 * none. Only names are shown: the model never holds a value.
 * @param {Session} session
 * @returns {Node[]}
 */
function environmentNodes(session) {
  const id = session.sessionId;
  const names = session.remoteEnv || [];
  if (names.length === 0) return [];
  return [{
    id: `${id}/env`, sessionId: id, label: 'Environment from the target', description: `${names.length}`,
    tooltip: 'Variables the launch took from the target (values not shown)', icon: 'symbol-variable',
    children: names.map((name) => ({ id: `${id}/env/${name}`, sessionId: id, label: name, icon: 'symbol-constant' })),
  }];
}

/** @implements {vscode.TreeDataProvider<Node>} */
class SessionsTree {
  /** @param {import('./sessions').SessionsModel} model */
  constructor(model) {
    this.model = model;
    /** @type {vscode.EventEmitter<Node | undefined>} */
    this.changes = new vscode.EventEmitter();
    this.onDidChangeTreeData = this.changes.event;
  }

  /** The model changed: show it. */
  refresh() {
    this.changes.fire(undefined);
  }

  /** @param {Node} [node] */
  getChildren(node) {
    return node ? node.children ?? [] : sessionNodes(this.model.list());
  }

  /** @param {Node} node */
  getTreeItem(node) {
    const State = vscode.TreeItemCollapsibleState;
    const collapsible = !node.children ? State.None : node.expanded ? State.Expanded : State.Collapsed;
    const item = new vscode.TreeItem(node.label, collapsible);
    item.id = node.id;
    item.description = node.description;
    item.tooltip = node.tooltip;
    item.contextValue = node.contextValue;
    if (node.icon) item.iconPath = new vscode.ThemeIcon(node.icon);
    return item;
  }

  dispose() {
    this.changes.dispose();
  }
}

module.exports = { SessionsTree, sessionNodes };
