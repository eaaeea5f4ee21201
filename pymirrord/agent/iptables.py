"""iptables rules that redirect a target's ports to the agent.

Layout in the nat table, per agent (``ID`` is the agent's short id)::

    PREROUTING  -m comment --comment "pymirrord agent=ID pid=P start=S" -j PMD-ID-PRE
    OUTPUT      -o lo -m comment --comment "pymirrord agent=ID pid=P start=S" -j PMD-ID-OUT
    PMD-ID-PRE  -p tcp --dport PORT -j REDIRECT --to-ports AGENT_PORT       (one per port)
    PMD-ID-OUT  -m mark --mark BYPASS -j RETURN
    PMD-ID-OUT  -p tcp --dport PORT -j REDIRECT --to-ports AGENT_PORT       (one per port)

PREROUTING catches connections from other hosts; OUTPUT ``-o lo`` catches clients inside the pod itself. The
agent marks its own sockets (SO_MARK) with BYPASS when it connects to the pod's real app, so its connections
pass untouched. The comment names the owning process (pid and start time, which together survive pid reuse),
so rules left behind by a dead agent can be told from those of a live one (``find_stale``).

The module is split the usual way: ``plan_*`` functions and ``parse_nat_listing`` are pure (argv in, argv
out; text in, structures out) and are tested without root; ``RedirectRules``, ``remove_agent_rules`` and
``remove_stale`` are the thin shell that runs the plans through a ``Runner`` (by default a subprocess).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from pymirrord.agent.errors import IptablesError

log = logging.getLogger(__name__)

Family = Literal["ipv4", "ipv6"]

CHAIN_PREFIX = "PMD-"
PREROUTING_SUFFIX = "-PRE"
OUTPUT_SUFFIX = "-OUT"
# xtables keeps chain names in 29-byte buffers including the terminating NUL.
MAX_CHAIN_NAME = 28
MAX_AGENT_ID = MAX_CHAIN_NAME - len(CHAIN_PREFIX) - max(len(PREROUTING_SUFFIX), len(OUTPUT_SUFFIX))
COMMENT_PREFIX = "pymirrord"
# iptables waits this long for the xtables lock held by another iptables process before giving up.
LOCK_WAIT_SECONDS = 10
# A hard ceiling on one iptables process, so a wedged iptables cannot hang the agent or its guard forever.
COMMAND_TIMEOUT_SECONDS = 30.0
PROC_DIR = Path("/proc")

_AGENT_ID_RE = re.compile(r"[A-Za-z0-9]+")
_CHAIN_RE = re.compile(
    rf"{re.escape(CHAIN_PREFIX)}([A-Za-z0-9]+)({re.escape(PREROUTING_SUFFIX)}|{re.escape(OUTPUT_SUFFIX)})"
)
_COMMENT_RE = re.compile(rf"{COMMENT_PREFIX} agent=([A-Za-z0-9]+) pid=([0-9]+) start=([0-9]+)")
# What iptables says when asked to delete a rule or chain that is not there: the goal is already reached.
_ALREADY_GONE = ("does a matching rule exist", "No chain/target/match by that name", "doesn't exist")

_BINARIES: dict[Family, tuple[str, str]] = {
    "ipv4": ("iptables", "iptables-restore"),
    "ipv6": ("ip6tables", "ip6tables-restore"),
}
_PRIVILEGE_HINT = (
    "run the agent as root (or with CAP_NET_ADMIN) on a kernel with the nat table (nf_nat, xt_REDIRECT)"
)


# --- identities -------------------------------------------------------------------------------------------


def new_agent_id() -> str:
    """A fresh random agent id, short enough for chain names."""
    return secrets.token_hex(4)


def validate_agent_id(agent_id: str) -> str:
    """``agent_id`` if it is 1-20 ASCII letters and digits (so chain names fit in 28 characters)."""
    if not _AGENT_ID_RE.fullmatch(agent_id) or len(agent_id) > MAX_AGENT_ID:
        raise ValueError(f"agent id must be 1-{MAX_AGENT_ID} ASCII letters or digits, got {agent_id!r}")
    return agent_id


class Chains(NamedTuple):
    """The names of one agent's two chains."""

    prerouting: str
    output: str


def chains_for(agent_id: str) -> Chains:
    """The chain names of agent ``agent_id``."""
    validate_agent_id(agent_id)
    base = CHAIN_PREFIX + agent_id
    return Chains(base + PREROUTING_SUFFIX, base + OUTPUT_SUFFIX)


@dataclass(frozen=True)
class Owner:
    """The process that owns an agent's rules: pid plus start time, so a reused pid is not mistaken for it.

    ``start_time`` is field 22 of ``/proc/PID/stat``: clock ticks since boot when the process started.
    """

    pid: int
    start_time: int

    @classmethod
    def of_process(cls, pid: int | None = None, *, proc_dir: Path = PROC_DIR) -> Owner:
        """The owner identity of ``pid`` (default: this process)."""
        pid = os.getpid() if pid is None else pid
        stat = read_stat(pid, proc_dir=proc_dir)
        if stat is None:
            raise ValueError(f"no process with pid {pid}")
        return cls(pid, stat.start_time)

    def comment(self, agent_id: str) -> str:
        """The text of the ``-m comment`` on this owner's jump rules."""
        return f"{COMMENT_PREFIX} agent={agent_id} pid={self.pid} start={self.start_time}"


def parse_owner_comment(comment: str) -> tuple[str, Owner] | None:
    """(agent id, owner) from a jump rule's comment, or None when it is not one of ours."""
    match = _COMMENT_RE.fullmatch(comment)
    if match is None:
        return None
    return match.group(1), Owner(int(match.group(2)), int(match.group(3)))


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` that ownership checks need."""

    state: str
    start_time: int


def parse_proc_stat(text: str) -> ProcStat:
    """Parse the contents of ``/proc/PID/stat``."""
    # Field 2, the command name, is in parentheses and may contain spaces and ')': split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
    return ProcStat(state=fields[0], start_time=int(fields[19]))


def read_stat(pid: int, *, proc_dir: Path = PROC_DIR) -> ProcStat | None:
    """``/proc/PID/stat`` of a process, or None when there is no such process."""
    try:
        return parse_proc_stat((proc_dir / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def owner_alive(owner: Owner, *, proc_dir: Path = PROC_DIR) -> bool:
    """Whether the owning process still runs (same pid, same start time, not a zombie)."""
    stat = read_stat(owner.pid, proc_dir=proc_dir)
    return stat is not None and stat.start_time == owner.start_time and stat.state not in {"Z", "X"}


# --- commands and plans (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One process to run: its argv and, for iptables-restore, the text on its stdin."""

    argv: tuple[str, ...]
    stdin: str | None = None

    def __str__(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class NatRule:
    """One ``-A CHAIN SPEC...`` line of ``iptables -t nat -S``: the chain and the tokens after it."""

    chain: str
    spec: tuple[str, ...]

    def option(self, name: str) -> str | None:
        """The value following option ``name`` (e.g. ``-j``, ``--comment``, ``--dport``) in the spec."""
        for i, token in enumerate(self.spec[:-1]):
            if token == name:
                return self.spec[i + 1]
        return None

    @property
    def jump(self) -> str | None:
        return self.option("-j")

    @property
    def comment(self) -> str | None:
        return self.option("--comment")


@dataclass(frozen=True)
class NatTable:
    """The parts of ``iptables -t nat -S`` that matter here: user chains and rules."""

    chains: tuple[str, ...]
    rules: tuple[NatRule, ...]


def parse_nat_listing(text: str) -> NatTable:
    """Parse ``iptables -t nat -S`` output. Lines that are neither ``-N`` nor ``-A`` are skipped."""
    chains: list[str] = []
    rules: list[NatRule] = []
    for line in text.splitlines():
        try:
            # -S quotes like a shell (the comment is in double quotes), so shlex splits it back.
            tokens = shlex.split(line)
        except ValueError:
            continue
        if len(tokens) == 2 and tokens[0] == "-N":
            chains.append(tokens[1])
        elif len(tokens) >= 2 and tokens[0] == "-A":
            rules.append(NatRule(tokens[1], tuple(tokens[2:])))
    return NatTable(tuple(chains), tuple(rules))


@dataclass(frozen=True)
class AgentRules:
    """What one agent has in one family's nat table."""

    family: Family
    agent_id: str
    owner: Owner | None  # None: chains without an owned jump (an interrupted removal left them)
    chains: tuple[str, ...]
    jumps: tuple[NatRule, ...]  # the rules in built-in chains that jump to ``chains``
    ports: tuple[int, ...]  # ports redirected by the PREROUTING chain

    def describe(self) -> str:
        """E.g. ``agent 1a2b3c4d (pid 42, ports 80, 8080)``, for log lines."""
        who = f"pid {self.owner.pid}" if self.owner else "no owner"
        ports = ", ".join(map(str, self.ports)) or "none"
        return f"agent {self.agent_id} ({who}, ports {ports}, {_BINARIES[self.family][0]})"


def find_agent_rules(table: NatTable, family: Family = "ipv4") -> list[AgentRules]:
    """Every pymirrord agent present in ``table``, sorted by agent id."""
    chains_by_agent: dict[str, list[str]] = {}
    for chain in table.chains:
        match = _CHAIN_RE.fullmatch(chain)
        if match:
            chains_by_agent.setdefault(match.group(1), []).append(chain)
    found = []
    for agent_id, chains in sorted(chains_by_agent.items()):
        own = set(chains)
        jumps = tuple(r for r in table.rules if r.jump in own and r.chain not in own)
        owner = None
        for jump in jumps:
            parsed = parse_owner_comment(jump.comment or "")
            if parsed is not None and parsed[0] == agent_id:
                owner = parsed[1]
                break
        pre = CHAIN_PREFIX + agent_id + PREROUTING_SUFFIX
        ports = sorted(
            {int(p) for r in table.rules if r.chain == pre and (p := r.option("--dport")) and p.isdecimal()}
        )
        found.append(AgentRules(family, agent_id, owner, tuple(sorted(chains)), jumps, tuple(ports)))
    return found


@dataclass(frozen=True)
class StaleScan:
    """Result of looking for other agents' rules: ``stale`` ones have a dead owner, ``live`` ones do not."""

    stale: tuple[AgentRules, ...] = ()
    live: tuple[AgentRules, ...] = ()


def find_stale(
    table: NatTable,
    family: Family = "ipv4",
    *,
    is_alive: Callable[[Owner], bool] = owner_alive,
    exclude_agent: str | None = None,
) -> StaleScan:
    """Split the agents in ``table`` into stale (owner dead, or no owner at all) and live ones."""
    stale, live = [], []
    for agent in find_agent_rules(table, family):
        if agent.agent_id == exclude_agent:
            continue
        if agent.owner is not None and is_alive(agent.owner):
            live.append(agent)
        else:
            stale.append(agent)
    return StaleScan(tuple(stale), tuple(live))


def plan_list(family: Family) -> Command:
    """The command that prints the nat table."""
    return Command((_BINARIES[family][0], "-w", str(LOCK_WAIT_SECONDS), "-t", "nat", "-S"))


def jump_rules(agent_id: str, owner: Owner) -> tuple[NatRule, NatRule]:
    """The agent's two jump rules, as they appear in a listing."""
    chains = chains_for(agent_id)
    comment = ("-m", "comment", "--comment", owner.comment(agent_id))
    return (
        NatRule("PREROUTING", (*comment, "-j", chains.prerouting)),
        # Only loopback: that is where connections from inside the pod to the pod's own addresses go.
        NatRule("OUTPUT", ("-o", "lo", *comment, "-j", chains.output)),
    )


def _redirect_spec(port: int, redirect_to_port: int) -> tuple[str, ...]:
    return ("-p", "tcp", "--dport", str(port), "-j", "REDIRECT", "--to-ports", str(redirect_to_port))


def _bypass_spec(bypass_mark: int) -> tuple[str, ...]:
    return ("-m", "mark", "--mark", hex(bypass_mark), "-j", "RETURN")


def plan_install(
    family: Family, agent_id: str, owner: Owner, redirect_to_port: int, bypass_mark: int
) -> Command:
    """One iptables-restore run that creates the agent's chains and jumps, all or nothing.

    A single transaction means no other agent ever sees our chains without their owner comment (which it
    would take for leftovers of a dead agent), and a failure leaves nothing behind.
    """
    chains = chains_for(agent_id)
    _check_port(redirect_to_port, "redirect_to_port")
    if not 0 < bypass_mark <= 0xFFFFFFFF:
        # Mark 0 would match every unmarked packet and switch redirection off for all local clients.
        raise ValueError(f"bypass_mark must be in 1..0xffffffff, got {bypass_mark}")
    pre_jump, out_jump = jump_rules(agent_id, owner)
    lines = [
        "*nat",
        f":{chains.prerouting} - [0:0]",
        f":{chains.output} - [0:0]",
        _restore_line("-A", chains.output, _bypass_spec(bypass_mark)),
        # Insert at the top so that the redirect wins over whatever the pod's own rules do with the port.
        _restore_line("-I", pre_jump.chain, ("1", *pre_jump.spec)),
        _restore_line("-I", out_jump.chain, ("1", *out_jump.spec)),
        "COMMIT",
    ]
    return Command(_restore_argv(family), "\n".join(lines) + "\n")


def plan_add_port(family: Family, agent_id: str, port: int, redirect_to_port: int) -> Command:
    """One iptables-restore run that redirects ``port`` in both of the agent's chains at once."""
    chains = chains_for(agent_id)
    _check_port(port, "port")
    spec = _redirect_spec(port, redirect_to_port)
    lines = ["*nat", *(_restore_line("-A", chain, spec) for chain in chains), "COMMIT"]
    return Command(_restore_argv(family), "\n".join(lines) + "\n")


def plan_remove_port(family: Family, agent_id: str, port: int, redirect_to_port: int) -> list[Command]:
    """Commands that delete ``port``'s redirects; each may fail harmlessly when the rule is already gone."""
    spec = _redirect_spec(port, redirect_to_port)
    return [_iptables(family, "-D", chain, *spec) for chain in chains_for(agent_id)]


def plan_remove(agent: AgentRules) -> list[Command]:
    """Commands that delete an agent's jumps, then empty and delete its chains.

    Jumps go first so that traffic never meets a half-emptied chain; a chain can only be deleted once nothing
    jumps to it and it is empty.
    """
    commands = [_iptables(agent.family, "-D", jump.chain, *jump.spec) for jump in agent.jumps]
    commands += [_iptables(agent.family, "-F", chain) for chain in agent.chains]
    commands += [_iptables(agent.family, "-X", chain) for chain in agent.chains]
    return commands


def _iptables(family: Family, *args: str) -> Command:
    return Command((_BINARIES[family][0], "-w", str(LOCK_WAIT_SECONDS), "-t", "nat", *args))


def _restore_argv(family: Family) -> tuple[str, ...]:
    # --noflush: add to the nat table instead of replacing it.
    return (_BINARIES[family][1], "-w", str(LOCK_WAIT_SECONDS), "--noflush")


def _restore_line(op: str, chain: str, spec: Sequence[str]) -> str:
    return " ".join([op, chain, *map(_restore_quote, spec)])


def _restore_quote(token: str) -> str:
    # iptables-restore understands double quotes only; every token here is built from validated ids and
    # numbers, so a quote or backslash means a bug rather than input to escape.
    if re.fullmatch(r"[A-Za-z0-9_.:=/+-]+", token):
        return token
    if any(c in token for c in '"\\\n'):
        raise ValueError(f"cannot quote {token!r} for iptables-restore")
    return f'"{token}"'


def _check_port(port: int, what: str) -> None:
    if not 0 < port < 65536:
        raise ValueError(f"{what} must be in 1..65535, got {port}")


# --- running ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What a command did."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


Runner = Callable[[Command], Result]


def run_command(command: Command) -> Result:
    """Run ``command`` in a subprocess (the default ``Runner``); ``IptablesError`` if it cannot start."""
    try:
        completed = subprocess.run(
            command.argv,
            input=command.stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            # Untranslated messages: _ALREADY_GONE matches English text.
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
    except FileNotFoundError as exc:
        raise IptablesError(
            f"{command.argv[0]} is not installed", "install the iptables package (iptables 1.8 or later)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise IptablesError(
            f"`{command}` did not finish within {COMMAND_TIMEOUT_SECONDS:g} s",
            "another process may hold the xtables lock; check `ps` for stuck iptables processes",
        ) from exc
    return Result(completed.returncode, completed.stdout, completed.stderr)


def _run_checked(runner: Runner, command: Command, doing: str) -> Result:
    result = runner(command)
    if not result.ok:
        detail = result.stderr.strip() or f"exit status {result.returncode}"
        raise IptablesError(f"could not {doing}: `{command}` failed: {detail}", _PRIVILEGE_HINT)
    return result


def _run_tolerant(runner: Runner, command: Command) -> bool:
    """Run a removal step; True when the thing is gone afterwards (removed now or already missing)."""
    try:
        result = runner(command)
    except IptablesError as exc:
        log.warning("%s", exc.render())
        return False
    if result.ok:
        return True
    if any(marker in result.stderr for marker in _ALREADY_GONE):
        log.debug("already gone: `%s`", command)
        return True
    log.warning("`%s` failed: %s", command, result.stderr.strip() or f"exit status {result.returncode}")
    return False


def list_nat(family: Family = "ipv4", *, runner: Runner = run_command) -> NatTable:
    """The nat table of the current network namespace."""
    result = _run_checked(runner, plan_list(family), "list the nat table")
    return parse_nat_listing(result.stdout)


def families(ipv6: bool) -> tuple[Family, ...]:
    """The families to manage: IPv4 always, IPv6 when asked for."""
    return ("ipv4", "ipv6") if ipv6 else ("ipv4",)


def _remove(runner: Runner, agents: Iterable[AgentRules]) -> bool:
    ok = True
    for agent in agents:
        for command in plan_remove(agent):
            ok = _run_tolerant(runner, command) and ok
    return ok


@dataclass(frozen=True)
class Removal:
    """What ``remove_agent_rules`` found and whether all of it is gone now."""

    found: tuple[AgentRules, ...]
    ok: bool


def remove_agent_rules(agent_id: str, *, ipv6: bool = False, runner: Runner = run_command) -> Removal:
    """Remove every chain and jump of agent ``agent_id``, whoever owns them. Never raises.

    ``ok`` is True when nothing of the agent is left (including when there was nothing to begin with).
    """
    found: list[AgentRules] = []
    ok = True
    for family in families(ipv6):
        try:
            table = list_nat(family, runner=runner)
        except IptablesError as exc:
            log.warning("cannot remove the rules of agent %s: %s", agent_id, exc.render())
            ok = False
            continue
        mine = [a for a in find_agent_rules(table, family) if a.agent_id == agent_id]
        found += mine
        ok = _remove(runner, mine) and ok
    return Removal(tuple(found), ok)


def remove_stale(
    *,
    ipv6: bool = False,
    runner: Runner = run_command,
    is_alive: Callable[[Owner], bool] = owner_alive,
    exclude_agent: str | None = None,
) -> StaleScan:
    """Remove the rules of agents whose owner process is gone; report, and keep, those of live agents.

    Raises ``IptablesError`` only when the nat table cannot be listed (the agent could not work anyway).
    A stale agent whose removal partly failed is still reported as stale, with a warning logged.
    """
    stale: list[AgentRules] = []
    live: list[AgentRules] = []
    for family in families(ipv6):
        scan = find_stale(
            list_nat(family, runner=runner), family, is_alive=is_alive, exclude_agent=exclude_agent
        )
        for agent in scan.stale:
            if not _remove(runner, [agent]):
                log.warning("could not fully remove the stale rules of %s", agent.describe())
        stale += scan.stale
        live += scan.live
    return StaleScan(tuple(stale), tuple(live))


@dataclass
class RedirectRules:
    """One agent's redirect rules in the current network namespace.

    ``install()`` creates the chains and jumps, ``add_port``/``remove_port`` manage redirected ports, and
    ``remove_all()`` takes everything away (also usable as a context manager). Construct it after entering the
    target's namespace: iptables works on the namespace of the calling process.
    """

    agent_id: str
    redirect_to_port: int
    bypass_mark: int
    owner: Owner = field(default_factory=Owner.of_process)
    ipv6: bool = False
    runner: Runner = run_command
    _ports: set[int] = field(default_factory=set, init=False, repr=False)
    _installed: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        validate_agent_id(self.agent_id)
        _check_port(self.redirect_to_port, "redirect_to_port")
        if not 0 < self.bypass_mark <= 0xFFFFFFFF:
            raise ValueError(f"bypass_mark must be in 1..0xffffffff, got {self.bypass_mark}")

    @property
    def chains(self) -> Chains:
        return chains_for(self.agent_id)

    @property
    def ports(self) -> frozenset[int]:
        """The ports currently redirected."""
        return frozenset(self._ports)

    @property
    def installed(self) -> bool:
        return self._installed

    def __enter__(self) -> RedirectRules:
        self.install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove_all()

    def install(self) -> None:
        """Create the chains and jumps in every family. All or nothing; raises ``IptablesError``."""
        if self._installed:
            return
        done: list[Family] = []
        try:
            for family in families(self.ipv6):
                existing = find_agent_rules(list_nat(family, runner=self.runner), family)
                if any(a.agent_id == self.agent_id for a in existing):
                    raise IptablesError(
                        f"chains of agent {self.agent_id} already exist in the nat table",
                        "another agent uses the same id; start the agent with a fresh id",
                    )
                _run_checked(
                    self.runner,
                    plan_install(family, self.agent_id, self.owner, self.redirect_to_port, self.bypass_mark),
                    f"install the redirect chains of agent {self.agent_id}",
                )
                done.append(family)
        except BaseException:
            # The other family's rules must not outlive a failed install.
            if done:
                self._remove_families(done)
            raise
        self._installed = True

    def add_port(self, port: int) -> None:
        """Redirect TCP ``port`` to the agent (from other hosts and from inside the pod). Raises
        ``IptablesError``; a port added twice is redirected once."""
        if not self._installed:
            raise RuntimeError("RedirectRules.install() must run before add_port()")
        if port in self._ports:
            return
        done: list[Family] = []
        try:
            for family in families(self.ipv6):
                _run_checked(
                    self.runner,
                    plan_add_port(family, self.agent_id, port, self.redirect_to_port),
                    f"redirect port {port}",
                )
                done.append(family)
        except BaseException:
            for family in done:
                for command in plan_remove_port(family, self.agent_id, port, self.redirect_to_port):
                    _run_tolerant(self.runner, command)
            raise
        self._ports.add(port)

    def remove_port(self, port: int) -> bool:
        """Stop redirecting ``port``. Never raises: failures are logged, and True means it is gone."""
        if port not in self._ports:
            log.debug("port %d is not redirected by agent %s", port, self.agent_id)
            return True
        ok = True
        for family in families(self.ipv6):
            for command in plan_remove_port(family, self.agent_id, port, self.redirect_to_port):
                ok = _run_tolerant(self.runner, command) and ok
        self._ports.discard(port)
        return ok

    def remove_all(self) -> bool:
        """Remove the agent's ports, jumps and chains. Idempotent, never raises; True when all are gone."""
        ok = self._remove_families(families(self.ipv6))
        self._ports.clear()
        self._installed = False
        return ok

    def _remove_families(self, fams: Iterable[Family]) -> bool:
        ok = True
        for family in fams:
            try:
                table = list_nat(family, runner=self.runner)
                agents = [a for a in find_agent_rules(table, family) if a.agent_id == self.agent_id]
            except IptablesError as exc:
                # Without a listing, delete what this object knows it made.
                log.warning("listing the nat table failed, removing known rules only: %s", exc.render())
                agents = [self._expected(family)]
            ok = _remove(self.runner, agents) and ok
        return ok

    def _expected(self, family: Family) -> AgentRules:
        return AgentRules(
            family,
            self.agent_id,
            self.owner,
            tuple(self.chains),
            jump_rules(self.agent_id, self.owner),
            tuple(sorted(self._ports)),
        )
