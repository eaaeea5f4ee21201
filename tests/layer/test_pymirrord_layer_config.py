from __future__ import annotations

import json
import sys

import pytest

from pymirrord.layer.pymirrord_layer_config import (
    IncomingConfig,
    LayerConfig,
    LayerConfigError,
    parse_config,
    process_names,
)


def test_absent_or_empty_config_means_defaults() -> None:
    assert parse_config(None) == LayerConfig()
    assert parse_config("  ") == LayerConfig()
    assert parse_config("{}").incoming == IncomingConfig(mode="mirror")


def test_full_config_and_unknown_keys_ignored() -> None:
    config = parse_config(
        json.dumps(
            {
                "incoming": {
                    "mode": "steal",
                    "ports": [80, 8080],
                    "ignore_ports": [9000],
                    "port_mapping": [[8080, 80]],
                    "listen_ports": [[80, 5000]],
                    "ignore_localhost": True,
                    "http_filter": {"header_filter": "x"},
                },
                "skip_processes": ["gunicorn"],
                "outgoing": {"tcp": True},
            }
        )
    )
    incoming = config.incoming
    assert incoming.mode == "steal"
    assert incoming.ports == frozenset({80, 8080})
    assert incoming.ignore_ports == frozenset({9000})
    assert dict(incoming.port_mapping) == {8080: 80}
    assert dict(incoming.listen_ports) == {80: 5000}
    assert incoming.ignore_localhost is True
    assert config.skip_processes == ("gunicorn",)


def test_nulls_mean_defaults() -> None:
    incoming = parse_config(
        '{"incoming": {"mode": null, "ports": null, "ignore_ports": null, "ignore_localhost": null}}'
    ).incoming
    assert incoming == IncomingConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "PYMIRRORD_LAYER_CONFIG is not valid JSON"),
        ("[]", "PYMIRRORD_LAYER_CONFIG must be a JSON object"),
        ('{"incoming": 3}', "incoming must be a JSON object"),
        ('{"incoming": {"mode": "copy"}}', 'incoming.mode must be one of mirror, steal, off, found "copy"'),
        ('{"incoming": {"ports": [80, "x"]}}', "incoming.ports[1] must be a port number"),
        ('{"incoming": {"ports": [true]}}', "incoming.ports[0] must be a port number"),
        ('{"incoming": {"ignore_ports": [70000]}}', "incoming.ignore_ports[0] must be a port number"),
        ('{"incoming": {"port_mapping": [[1, 2, 3]]}}', "incoming.port_mapping[0] must be a pair"),
        ('{"incoming": {"listen_ports": [[80, -1]]}}', "incoming.listen_ports[0][1] must be a port number"),
        ('{"incoming": {"ignore_localhost": "yes"}}', "incoming.ignore_localhost must be true or false"),
        ('{"skip_processes": "python"}', "skip_processes must be a list"),
        ('{"skip_processes": [1]}', "skip_processes[0] must be a string"),
    ],
)
def test_bad_config_names_the_key(text: str, message: str) -> None:
    with pytest.raises(LayerConfigError) as caught:
        parse_config(text)
    assert message in str(caught.value)


def test_pod_port_rules() -> None:
    plain = IncomingConfig()
    assert plain.pod_port(80) == 80
    assert plain.pod_port(0) is None
    assert IncomingConfig(mode="off").pod_port(80) is None
    assert IncomingConfig(ignore_ports=frozenset({80})).pod_port(80) is None
    only = IncomingConfig(ports=frozenset({80, 8080}))
    assert only.pod_port(8080) == 8080
    assert only.pod_port(9090) is None
    mapped = IncomingConfig(port_mapping={8080: 80})
    assert mapped.pod_port(8080) == 80
    assert mapped.pod_port(80) == 80


def test_real_port_is_free_unless_listen_ports_says_otherwise() -> None:
    config = IncomingConfig(listen_ports={80: 5000})
    assert config.real_port(80) == 5000
    assert config.real_port(8080) == 0


def test_skip_processes_matches_any_name_of_this_process() -> None:
    names = process_names()
    assert sys.executable.rsplit("/", 1)[-1] in names
    assert LayerConfig(skip_processes=(next(iter(names)),)).skips(names)
    assert not LayerConfig(skip_processes=("no-such-process",)).skips(names)
