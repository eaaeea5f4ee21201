"""Rule planning, listing parsing and stale detection, without root (commands go to a fake runner)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from pymirrord.agent.errors import IptablesError
from pymirrord.agent.iptables import (
    MAX_AGENT_ID,
    MAX_CHAIN_NAME,
    Command,
    NatRule,
    Owner,
    RedirectRules,
    Result,
    chains_for,
    find_agent_rules,
    find_stale,
    new_agent_id,
    owner_alive,
    parse_nat_listing,
    parse_owner_comment,
    parse_proc_stat,
    plan_add_port,
    plan_install,
    plan_list,
    plan_remove,
    plan_remove_port,
    remove_agent_rules,
    remove_stale,
)

OWNER = Owner(pid=4242, start_time=98765)
COMMENT = "pymirrord agent=ab12 pid=4242 start=98765"

LISTING = f"""\
-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N KUBE-SERVICES
-N PMD-ab12-OUT
-N PMD-ab12-PRE
-N PMD-cd34-OUT
-N PMD-cd34-PRE
-N PMD-ef56-PRE
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -m comment --comment "{COMMENT}" -j PMD-ab12-PRE
-A PREROUTING -m comment --comment "pymirrord agent=cd34 pid=77 start=1" -j PMD-cd34-PRE
-A OUTPUT -o lo -m comment --comment "{COMMENT}" -j PMD-ab12-OUT
-A OUTPUT -o lo -m comment --comment "pymirrord agent=cd34 pid=77 start=1" -j PMD-cd34-OUT
-A PMD-ab12-OUT -m mark --mark 0x5eed -j RETURN
-A PMD-ab12-OUT -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 4000
-A PMD-ab12-PRE -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 4000
-A PMD-ab12-PRE -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 4000
"""


# --- names and identities ---


def test_chain_names_fit_iptables_limit_for_the_longest_id() -> None:
    chains = chains_for("a" * MAX_AGENT_ID)
    assert max(len(chains.prerouting), len(chains.output)) == MAX_CHAIN_NAME
    assert chains_for("ab12") == ("PMD-ab12-PRE", "PMD-ab12-OUT")


def test_new_agent_ids_are_valid_and_distinct() -> None:
    ids = {new_agent_id() for _ in range(50)}
    assert len(ids) == 50
    for agent_id in ids:
        chains_for(agent_id)


@pytest.mark.parametrize("bad", ["", "a" * (MAX_AGENT_ID + 1), "ab-12", "ab 12", "äb", "ab\n"])
def test_bad_agent_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="agent id"):
        chains_for(bad)


def test_owner_comment_round_trips() -> None:
    assert OWNER.comment("ab12") == COMMENT
    assert parse_owner_comment(COMMENT) == ("ab12", OWNER)
    assert parse_owner_comment("kubernetes service portals") is None
    assert parse_owner_comment(COMMENT + " extra") is None


def test_proc_stat_parsing_survives_odd_command_names() -> None:
    fields = " ".join(str(n) for n in range(4, 30))
    stat = parse_proc_stat(f"123 (we ird) )name) S {fields}\n")
    assert stat.state == "S"
    assert stat.start_time == 22  # field 22


def test_owner_of_this_process_is_alive_and_a_changed_start_time_is_not() -> None:
    me = Owner.of_process()
    assert me.pid == os.getpid()
    assert owner_alive(me)
    assert not owner_alive(Owner(me.pid, me.start_time + 1))


def test_owner_of_missing_process(tmp_path: Path) -> None:
    assert not owner_alive(Owner(99, 1), proc_dir=tmp_path)
    with pytest.raises(ValueError, match="no process"):
        Owner.of_process(99, proc_dir=tmp_path)


def test_zombie_owner_is_dead(tmp_path: Path) -> None:
    fields = ["0"] * 26
    fields[19] = "555"
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "stat").write_text("7 (agent) Z " + " ".join(fields[1:]) + "\n")
    assert parse_proc_stat((tmp_path / "7" / "stat").read_text()).start_time == 555
    assert not owner_alive(Owner(7, 555), proc_dir=tmp_path)


# --- plans ---


def test_plan_install_is_one_restore_transaction() -> None:
    command = plan_install("ipv4", "ab12", OWNER, 4000, 0x5EED)
    assert command.argv == ("iptables-restore", "-w", "10", "--noflush")
    assert command.stdin == (
        "*nat\n"
        ":PMD-ab12-PRE - [0:0]\n"
        ":PMD-ab12-OUT - [0:0]\n"
        "-A PMD-ab12-OUT -m mark --mark 0x5eed -j RETURN\n"
        f'-I PREROUTING 1 -m comment --comment "{COMMENT}" -j PMD-ab12-PRE\n'
        f'-I OUTPUT 1 -o lo -m comment --comment "{COMMENT}" -j PMD-ab12-OUT\n'
        "COMMIT\n"
    )


def test_plan_install_ipv6_uses_ip6tables() -> None:
    assert plan_install("ipv6", "ab12", OWNER, 4000, 1).argv[0] == "ip6tables-restore"
    assert plan_list("ipv6").argv == ("ip6tables", "-w", "10", "-t", "nat", "-S")


@pytest.mark.parametrize(("port", "mark"), [(0, 1), (65536, 1), (4000, 0), (4000, 1 << 32)])
def test_plan_install_refuses_bad_numbers(port: int, mark: int) -> None:
    with pytest.raises(ValueError):
        plan_install("ipv4", "ab12", OWNER, port, mark)


def test_plan_add_and_remove_port() -> None:
    add = plan_add_port("ipv4", "ab12", 80, 4000)
    assert add.stdin == (
        "*nat\n"
        "-A PMD-ab12-PRE -p tcp --dport 80 -j REDIRECT --to-ports 4000\n"
        "-A PMD-ab12-OUT -p tcp --dport 80 -j REDIRECT --to-ports 4000\n"
        "COMMIT\n"
    )
    spec = ["-p", "tcp", "--dport", "80", "-j", "REDIRECT", "--to-ports", "4000"]
    assert [list(c.argv) for c in plan_remove_port("ipv4", "ab12", 80, 4000)] == [
        ["iptables", "-w", "10", "-t", "nat", "-D", "PMD-ab12-PRE", *spec],
        ["iptables", "-w", "10", "-t", "nat", "-D", "PMD-ab12-OUT", *spec],
    ]
    with pytest.raises(ValueError):
        plan_add_port("ipv4", "ab12", 0, 4000)


def test_plan_remove_deletes_jumps_then_flushes_then_deletes_chains() -> None:
    (agent,) = [a for a in find_agent_rules(parse_nat_listing(LISTING)) if a.agent_id == "ab12"]
    steps = [c.argv[5:] for c in plan_remove(agent)]
    assert steps == [
        ("-D", "PREROUTING", "-m", "comment", "--comment", COMMENT, "-j", "PMD-ab12-PRE"),
        ("-D", "OUTPUT", "-o", "lo", "-m", "comment", "--comment", COMMENT, "-j", "PMD-ab12-OUT"),
        ("-F", "PMD-ab12-OUT"),
        ("-F", "PMD-ab12-PRE"),
        ("-X", "PMD-ab12-OUT"),
        ("-X", "PMD-ab12-PRE"),
    ]


# --- listing and stale detection ---


def test_parse_nat_listing() -> None:
    table = parse_nat_listing(LISTING + 'garbage "unterminated\n')
    assert "KUBE-SERVICES" in table.chains
    assert table.rules[1] == NatRule(
        "PREROUTING", ("-m", "comment", "--comment", COMMENT, "-j", "PMD-ab12-PRE")
    )
    assert table.rules[1].comment == COMMENT
    assert table.rules[1].jump == "PMD-ab12-PRE"
    assert table.rules[-1].option("--dport") == "8080"


def test_find_agent_rules_groups_by_agent() -> None:
    agents = {a.agent_id: a for a in find_agent_rules(parse_nat_listing(LISTING))}
    assert sorted(agents) == ["ab12", "cd34", "ef56"]
    assert agents["ab12"].owner == OWNER
    assert agents["ab12"].ports == (80, 8080)
    assert len(agents["ab12"].jumps) == 2
    assert agents["cd34"].owner == Owner(77, 1)
    assert agents["cd34"].ports == ()
    # A chain nobody jumps to (an interrupted removal) has no owner.
    assert agents["ef56"].owner is None
    assert agents["ef56"].jumps == ()
    assert "ab12 (pid 4242, ports 80, 8080, iptables)" in agents["ab12"].describe()


def test_find_stale_splits_by_liveness() -> None:
    table = parse_nat_listing(LISTING)
    scan = find_stale(table, is_alive=lambda owner: owner.pid == OWNER.pid)
    assert [a.agent_id for a in scan.stale] == ["cd34", "ef56"]
    assert [a.agent_id for a in scan.live] == ["ab12"]
    scan = find_stale(table, is_alive=lambda owner: False, exclude_agent="ab12")
    assert [a.agent_id for a in scan.stale] == ["cd34", "ef56"]
    assert scan.live == ()


# --- the runner shell, against a fake iptables ---


class FakeIptables:
    """Records commands; answers listings with ``listing``; fails commands matching ``fail``."""

    def __init__(self, listing: str = "", fail: Callable[[Command], str | None] = lambda c: None) -> None:
        self.listing = listing
        self.fail = fail
        self.commands: list[Command] = []

    def __call__(self, command: Command) -> Result:
        self.commands.append(command)
        error = self.fail(command)
        if error is not None:
            return Result(1, "", error)
        if command.argv[-1] == "-S":
            return Result(0, self.listing, "")
        return Result(0, "", "")

    def ran(self) -> list[str]:
        return [shlex.join(c.argv[:1] + c.argv[5:]) if "-t" in c.argv else c.argv[0] for c in self.commands]


def test_redirect_rules_install_add_remove() -> None:
    fake = FakeIptables()
    rules = RedirectRules("ab12", 4000, 0x5EED, OWNER, runner=fake)
    rules.install()
    rules.install()  # no-op when installed
    rules.add_port(80)
    rules.add_port(80)  # no-op when present
    assert rules.ports == {80}
    assert rules.remove_port(80)
    assert rules.remove_port(80)  # nothing to do
    assert fake.ran() == [
        "iptables -S",
        "iptables-restore",
        "iptables-restore",
        "iptables -D PMD-ab12-PRE -p tcp --dport 80 -j REDIRECT --to-ports 4000",
        "iptables -D PMD-ab12-OUT -p tcp --dport 80 -j REDIRECT --to-ports 4000",
    ]


def test_add_port_before_install_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        RedirectRules("ab12", 4000, 1, OWNER, runner=FakeIptables()).add_port(80)


def test_install_refuses_existing_chains_of_same_id() -> None:
    rules = RedirectRules("ab12", 4000, 1, OWNER, runner=FakeIptables(LISTING))
    with pytest.raises(IptablesError, match="already exist"):
        rules.install()


def test_failed_install_raises_with_stderr_and_hint() -> None:
    fake = FakeIptables(fail=lambda c: "iptables-restore: Permission denied (you must be root)")
    with pytest.raises(IptablesError) as info:
        RedirectRules("ab12", 4000, 1, OWNER, runner=fake).install()
    assert "Permission denied" in info.value.message
    assert "CAP_NET_ADMIN" in info.value.hint


def test_failed_ipv6_install_rolls_back_ipv4() -> None:
    listing = {"now": ""}
    ipv4_listing = LISTING.replace("cd34", "zz99")

    def fail(command: Command) -> str | None:
        if command.argv[0] == "iptables-restore":
            listing["now"] = ipv4_listing  # from now on IPv4 shows the installed chains
        return "ip6tables-restore: nat table missing" if command.argv[0] == "ip6tables-restore" else None

    class Fake(FakeIptables):
        def __call__(self, command: Command) -> Result:
            self.listing = listing["now"] if command.argv[0] == "iptables" else ""
            return super().__call__(command)

    fake = Fake(fail=fail)
    rules = RedirectRules("ab12", 4000, 1, OWNER, ipv6=True, runner=fake)
    with pytest.raises(IptablesError, match="nat table missing"):
        rules.install()
    assert not rules.installed
    ran = fake.ran()
    assert ran[:4] == ["iptables -S", "iptables-restore", "ip6tables -S", "ip6tables-restore"]
    # Rollback removed the IPv4 chains of this agent only.
    assert ran[4] == "iptables -S"
    assert all("ab12" in step for step in ran[5:]) and len(ran[5:]) == 6


def test_failed_add_port_in_second_family_removes_it_from_the_first() -> None:
    fake = FakeIptables(
        fail=lambda c: "boom" if c.argv[0] == "ip6tables-restore" and "dport" in (c.stdin or "") else None
    )
    rules = RedirectRules("ab12", 4000, 1, OWNER, ipv6=True, runner=fake)
    rules.install()
    with pytest.raises(IptablesError, match="boom"):
        rules.add_port(80)
    assert rules.ports == frozenset()
    assert fake.ran()[-2:] == [
        "iptables -D PMD-ab12-PRE -p tcp --dport 80 -j REDIRECT --to-ports 4000",
        "iptables -D PMD-ab12-OUT -p tcp --dport 80 -j REDIRECT --to-ports 4000",
    ]


def test_remove_all_is_idempotent_and_tolerates_already_gone_rules() -> None:
    fake = FakeIptables(
        LISTING,
        fail=lambda c: (
            "iptables: Bad rule (does a matching rule exist in that chain?)." if "-D" in c.argv else None
        ),
    )
    rules = RedirectRules("ab12", 4000, 1, OWNER, runner=fake)
    assert rules.remove_all()  # "already gone" counts as gone
    fake.listing = ""
    assert rules.remove_all()


def test_remove_all_never_raises_and_falls_back_to_known_rules() -> None:
    def fail(command: Command) -> str | None:
        return "listing broken" if command.argv[-1] == "-S" else None

    fake = FakeIptables(fail=fail)
    rules = RedirectRules("ab12", 4000, 1, OWNER, runner=fake)
    assert rules.remove_all()
    assert fake.ran()[1:3] == [
        f"iptables -D PREROUTING -m comment --comment {shlex.quote(COMMENT)} -j PMD-ab12-PRE",
        f"iptables -D OUTPUT -o lo -m comment --comment {shlex.quote(COMMENT)} -j PMD-ab12-OUT",
    ]

    def missing(command: Command) -> Result:
        raise IptablesError("iptables is not installed", "install it")

    assert not RedirectRules("ab12", 4000, 1, OWNER, runner=missing).remove_all()


def test_remove_all_reports_real_failures() -> None:
    fake = FakeIptables(LISTING, fail=lambda c: "Permission denied" if "-X" in c.argv else None)
    assert not RedirectRules("ab12", 4000, 1, OWNER, runner=fake).remove_all()


def test_remove_agent_rules_touches_only_that_agent() -> None:
    fake = FakeIptables(LISTING)
    removal = remove_agent_rules("cd34", runner=fake)
    assert removal.ok
    assert [a.agent_id for a in removal.found] == ["cd34"]
    assert all("cd34" in step for step in fake.ran()[1:])
    assert remove_agent_rules("nothere", runner=FakeIptables(LISTING)).found == ()


def test_remove_stale_removes_dead_and_reports_live() -> None:
    fake = FakeIptables(LISTING)
    scan = remove_stale(runner=fake, is_alive=lambda owner: owner == OWNER)
    assert [a.agent_id for a in scan.stale] == ["cd34", "ef56"]
    assert [a.agent_id for a in scan.live] == ["ab12"]
    removed = fake.ran()[1:]
    assert removed and not any("ab12" in step for step in removed)
    assert "iptables -X PMD-ef56-PRE" in removed


def test_remove_stale_raises_when_the_table_cannot_be_listed() -> None:
    with pytest.raises(IptablesError):
        remove_stale(runner=FakeIptables(fail=lambda c: "can't initialize iptables table `nat'"))
