"""The firewall role's rules, rendered by Ansible's template engine from the role's template
with the playbook's defaults: only SSH, HTTP and HTTPS come in, Docker's rules are left alone,
and (as root, with nft installed) the ruleset parses, loads and reloads in a network namespace
of its own — never in this machine's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from .ansiblerun import ROLES, render

TEMPLATE = ROLES / "opuhub_firewall" / "templates" / "opuhub.nft.j2"


def input_rules(ruleset: str) -> list[str]:
    chain = ruleset.split("chain input {", 1)[1].split("}\n}", 1)[0]
    return [line.strip() for line in chain.splitlines() if line.strip()]


def accepted_tcp_ports(rules: list[str]) -> set[int]:
    ports = set()
    for rule in rules:
        match = re.search(r"tcp dport (\{[^}]*\}|\d+) accept$", rule)
        if match:
            ports |= {int(p) for p in re.findall(r"\d+", match.group(1))}
    return ports


def test_defaults_let_in_only_ssh_http_https():
    ruleset = render(TEMPLATE)
    rules = input_rules(ruleset)
    assert rules[0] == "type filter hook input priority filter; policy drop;"
    assert accepted_tcp_ports(rules) == {22, 80, 443}
    assert 'iif "lo" accept' in rules  # the hub on 127.0.0.1 stays reachable from nginx
    assert "ct state established,related accept" in rules  # replies to the server's own traffic
    # nothing else is accepted: every accept rule is one of these
    allowed = {'iif "lo" accept', "ct state established,related accept", "ip protocol icmp accept",
               "meta l4proto ipv6-icmp accept", "tcp dport 22 accept", "tcp dport { 80, 443 } accept"}
    assert {r for r in rules if r.endswith("accept")} == allowed
    assert not any("udp" in r for r in rules)


def test_only_its_own_table_is_replaced_never_dockers_rules():
    ruleset = render(TEMPLATE)
    statements = [line for line in ruleset.splitlines() if not line.lstrip().startswith("#")]
    assert not any("flush" in line for line in statements)
    tables = re.findall(r"^(?:delete )?table (\S+ \S+)", ruleset, re.M)
    assert set(tables) == {"inet opuhub"}
    assert "chain forward" not in ruleset and "chain output" not in ruleset  # Docker's business


def test_ports_and_ssh_sources_follow_the_variables():
    rules = input_rules(render(
        TEMPLATE, opuhub_http_port=8080, opuhub_https_port=8443, opuhub_firewall_ssh_port=2222,
        opuhub_firewall_extra_tcp_ports=[9100, "9100"],
        opuhub_firewall_ssh_sources=["192.0.2.0/24", "198.51.100.7", "2001:db8::/32"]))
    assert "tcp dport { 8080, 8443, 9100 } accept" in rules
    assert "ip saddr { 192.0.2.0/24, 198.51.100.7 } tcp dport 2222 accept" in rules
    assert "ip6 saddr { 2001:db8::/32 } tcp dport 2222 accept" in rules
    # SSH from anywhere else is not accepted
    assert not any(re.fullmatch(r"tcp dport 2222 accept", r) for r in rules)
    assert accepted_tcp_ports(rules) == {8080, 8443, 9100, 2222}


def _nft_in_own_netns(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--net", "sh", "-c", *args], capture_output=True, text=True,
                          timeout=60)


def test_rules_load_and_reload_with_nft(tmp_path):
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        if os.environ.get("OPUHUB_REQUIRE_DOCKER") == "1":  # CI: .ci/run installs nftables
            pytest.fail("nft, unshare and root are needed here (apt-get install nftables)")
        pytest.skip("needs root, nft and unshare (a network namespace of its own)")
    path = tmp_path / "firewall.nft"
    path.write_text(render(TEMPLATE, opuhub_firewall_ssh_sources=["192.0.2.0/24", "2001:db8::/32"]))
    # load twice (a re-run of the playbook reloads the file), then list what the kernel holds
    result = _nft_in_own_netns(f"nft -f {path} && nft -f {path} && nft list ruleset")
    assert result.returncode == 0, result.stderr
    listed = result.stdout
    assert listed.count("table inet opuhub") == 1
    assert "policy drop" in listed and "tcp dport { 80, 443 } accept" in listed
    broken = tmp_path / "broken.nft"
    broken.write_text(path.read_text().replace("accept\n    }", "acept\n    }"))
    assert _nft_in_own_netns(f"nft -c -f {broken}").returncode != 0  # the check can fail
