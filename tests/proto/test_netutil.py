"""parse_proc_net_route: default gateways from the text of /proc/net/route (no I/O)."""

from __future__ import annotations

import pytest

from aioigd.netutil import parse_proc_net_route

HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"


def _table(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def _row(iface: str, dest: str, gw: str, flags: str, metric: str, mask: str) -> str:
    # The kernel pads every row with trailing spaces to 127 characters.
    return f"{iface}\t{dest}\t{gw}\t{flags}\t0\t0\t{metric}\t{mask}\t0\t0\t0".ljust(127)


# A laptop: wired and wireless default routes, LAN and docker routes, a VPN host route.
REALISTIC = _table(
    _row("eth0", "00000000", "0101A8C0", "0003", "100", "00000000"),  # default via 192.168.1.1
    _row("wlan0", "00000000", "FE00A8C0", "0003", "600", "00000000"),  # default via 192.168.0.254
    _row("eth0", "0001A8C0", "00000000", "0001", "100", "00FFFFFF"),  # 192.168.1.0/24 on-link
    _row("wlan0", "0000A8C0", "00000000", "0001", "600", "00FFFFFF"),
    _row("docker0", "000011AC", "00000000", "0001", "0", "0000FFFF"),  # 172.17.0.0/16
    _row("eth0", "0A0A0A0A", "0101A8C0", "0007", "0", "FFFFFFFF"),  # host route via the gateway
    _row("tun0", "0000000A", "0100080A", "0003", "50", "000000FF"),  # 10/8 via 10.8.0.1
)


def test_realistic_table() -> None:
    assert parse_proc_net_route(REALISTIC) == ["192.168.1.1", "192.168.0.254"]


@pytest.mark.parametrize(
    ("text", "gateways"),
    [
        pytest.param("", [], id="empty"),
        pytest.param(HEADER + "\n", [], id="header-only"),
        pytest.param(
            _table(_row("eth0", "00000000", "0101A8C0", "0003", "0", "00000000")),
            ["192.168.1.1"],
            id="one-default",
        ),
        pytest.param(
            _table(
                _row("eth0", "00000000", "0101A8C0", "0003", "100", "00000000"),
                _row("eth1", "00000000", "0101A8C0", "0003", "200", "00000000"),
            ),
            ["192.168.1.1"],
            id="duplicate-gateway",
        ),
        pytest.param(
            _table(_row("ppp0", "00000000", "00000000", "0001", "0", "00000000")),
            [],
            id="point-to-point-default-no-gateway",
        ),
        pytest.param(
            _table(_row("eth0", "00000000", "0101A8C0", "0001", "0", "00000000")),
            [],
            id="no-RTF_GATEWAY-flag",
        ),
        pytest.param(
            _table(_row("eth0", "00000000", "0101A8C0", "0003", "0", "000000FF")),
            [],
            id="mask-not-zero",
        ),
        pytest.param(
            _table(_row("eth0", "0000000A", "0101A8C0", "0003", "0", "00000000")),
            [],
            id="destination-not-zero",
        ),
        pytest.param(
            _table(_row("eth0", "00000000", "0100640A", "0003", "0", "00000000")),
            ["10.100.0.1"],
            id="little-endian",
        ),
        pytest.param(
            _table(_row("eth0", "00000000", "0101a8c0", "0003", "0", "00000000")),
            ["192.168.1.1"],
            id="lowercase-hex",
        ),
        pytest.param(
            "\n".join(
                [HEADER, _row("eth0", "00000000", "0101A8C0", "0003", "0", "00000000")]
            ).replace("\n", "\r\n"),
            ["192.168.1.1"],
            id="crlf",
        ),
        pytest.param(
            _row("eth0", "00000000", "0101A8C0", "0003", "0", "00000000"),
            [],
            id="first-line-is-always-the-header",
        ),
    ],
)
def test_parse_proc_net_route(text: str, gateways: list[str]) -> None:
    assert parse_proc_net_route(text) == gateways


GOOD = _row("eth0", "00000000", "0101A8C0", "0003", "0", "00000000")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("eth0\t00000000\t0101A8C0", id="too-few-fields"),
        pytest.param("garbage", id="one-word"),
        pytest.param("", id="blank"),
        pytest.param(
            _row("eth0", "zzzzzzzz", "0101A8C0", "0003", "0", "00000000"), id="dest-not-hex"
        ),
        pytest.param(
            _row("eth0", "00000000", "GATEWAY!", "0003", "0", "00000000"), id="gw-not-hex"
        ),
        pytest.param(
            _row("eth0", "00000000", "0101A8C0", "0x0g", "0", "00000000"), id="flags-not-hex"
        ),
        pytest.param(
            _row("eth0", "00000000", "0101A8C0", "0003", "0", "--------"), id="mask-not-hex"
        ),
        pytest.param(
            _row("eth0", "00000000", "1FFFFFFFF", "0003", "0", "00000000"), id="gw-over-32-bits"
        ),
        pytest.param(_row("eth0", "00000000", "-1", "0003", "0", "00000000"), id="gw-negative"),
        pytest.param(_row("eth0", "00000000", "-0101A8C0", "0003", "0", "00000000"), id="gw-minus"),
        pytest.param("\x00\x01\x02 \t\t\t\t\t\t\t\t", id="binary"),
    ],
)
def test_malformed_rows_are_skipped(bad: str) -> None:
    text = _table(bad, GOOD, bad)
    assert parse_proc_net_route(text) == ["192.168.1.1"]


def test_best_metric_first_and_down_routes_skipped() -> None:
    table = _table(
        _row("wlan0", "00000000", "FE00A8C0", "0003", "600", "00000000"),  # 192.168.0.254
        _row("eth0", "00000000", "0101A8C0", "0003", "100", "00000000"),  # 192.168.1.1
        _row("eth1", "00000000", "0102A8C0", "0002", "10", "00000000"),  # not RTF_UP
    )
    assert parse_proc_net_route(table) == ["192.168.1.1", "192.168.0.254"]
