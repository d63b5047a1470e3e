"""Alert rules (consecutive windows, cool-down), alert records, and the loopback webhook."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from mlkit.errors import DataError, ParameterError
from mlkit.monitoring import alerts
from mlkit.monitoring.alerts import Alert, Rule, alerts_frame, evaluate, send_webhook


def fired(rule: Rule, values) -> list:
    return [alert.window for alert in evaluate(rule, pd.DataFrame({"value": values}))]


def test_public_names():
    assert set(alerts.__all__) == {"DIRECTIONS", "Rule", "Alert", "Delivery", "evaluate", "alerts_frame",
                                   "send_webhook"}


@pytest.mark.parametrize(
    ("consecutive", "cooldown", "values", "expected"),
    [
        (1, 0, [0, 1, 1, 0, 1], [1, 2, 4]),  # every breaching window
        (2, 0, [0, 1, 1, 1, 0, 1], [2, 3]),  # from the second breach in a row on
        (2, 0, [1, 0, 1, 0, 1], []),  # never two in a row
        (3, 0, [1, 1, np.nan, 1, 1, 1], [5]),  # a missing value breaks the run
        (1, 2, [1, 1, 1, 1, 1, 1, 1], [0, 3, 6]),  # quiet for two windows after each alert
        (2, 1, [1, 1, 1, 1, 1, 0, 1, 1], [1, 3, 7]),  # run resets at 5; 7 is the second breach of a new run
        (2, 3, [1, 1, 0, 1, 1, 1, 1], [1, 5]),  # 4 breaches twice in a row, but only 3 windows since 1
        (1, 0, [0.5, 0.5], []),  # equal to the threshold is no breach
    ],
)
def test_consecutive_and_cooldown(consecutive, cooldown, values, expected):
    rule = Rule("r", "value", 0.5, consecutive=consecutive, cooldown=cooldown)
    assert fired(rule, values) == expected


def test_below_and_exact_records():
    table = pd.DataFrame({
        "window": [10, 11, 12, 13],
        "end": pd.date_range("2024-01-01 01:00", periods=4, freq="1h", tz="UTC"),
        "realised": [0.9, 0.7, 0.6, np.nan],
        "drift_share": [0.0, 0.25, 0.75, 1.0],
    })
    rules = [Rule("accuracy-low", "realised", 0.8, direction="below", consecutive=2),
             Rule("drift", "drift_share", 0.5)]
    assert evaluate(rules, table) == [
        Alert("accuracy-low", 12, 0.6, 0.8, "accuracy-low: realised = 0.6 below 0.8 for 2 windows in a row (window 12)",
              pd.Timestamp("2024-01-01 03:00", tz="UTC")),
        Alert("drift", 12, 0.75, 0.5, "drift: drift_share = 0.75 above 0.5 for window (window 12)",
              pd.Timestamp("2024-01-01 03:00", tz="UTC")),
        Alert("drift", 13, 1.0, 0.5, "drift: drift_share = 1 above 0.5 for 2 windows in a row (window 13)",
              pd.Timestamp("2024-01-01 04:00", tz="UTC")),
    ]
    assert evaluate(rules, table) == evaluate(rules, table.copy())  # pure: same input, same output
    frame = alerts_frame(evaluate(rules, table))
    assert frame.columns.tolist() == ["rule", "window", "value", "threshold", "message", "time"]
    assert frame["rule"].tolist() == ["accuracy-low", "drift", "drift"]


def test_window_ids_come_from_the_index_without_a_window_column():
    table = pd.DataFrame({"value": [1.0, 0.0, 1.0]}, index=["mon", "tue", "wed"])
    assert [a.window for a in evaluate(Rule("r", "value", 0.5), table)] == ["mon", "wed"]
    assert evaluate(Rule("r", "value", 0.5), table)[0].time is None


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"direction": "over"}, "direction must be 'above' or 'below'"),
        ({"consecutive": 0}, "consecutive must be a whole number of at least 1"),
        ({"cooldown": -1}, "cooldown must be a whole number of at least 0"),
        ({"threshold": float("nan")}, "threshold must be a finite number"),
        ({"metric": ""}, "metric must be a non-empty string"),
    ],
)
def test_bad_rules_say_what_to_fix(kwargs, words):
    arguments = {"name": "r", "metric": "value", "threshold": 0.5} | kwargs
    with pytest.raises(ParameterError, match=words):
        Rule(**arguments)


def test_bad_tables_and_rule_lists():
    table = pd.DataFrame({"value": [1.0]})
    with pytest.raises(DataError, match=r"no column\(s\) \['realised'\].*columns are \['value'\]"):
        evaluate(Rule("r", "realised", 0.5), table)
    with pytest.raises(DataError, match="must hold numbers"):
        evaluate(Rule("r", "value", 0.5), pd.DataFrame({"value": ["high"]}))
    with pytest.raises(ParameterError, match="distinct"):
        evaluate([Rule("r", "value", 0.5), Rule("r", "value", 0.9)], table)
    with pytest.raises(ParameterError, match="Rule objects"):
        evaluate([{"name": "r"}], table)


# --------------------------------------------------------------------------- webhook


class _Recorder(BaseHTTPRequestHandler):
    """Records every POSTed JSON body; answers 500 for the path /broken."""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(500 if self.path == "/broken" else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


SAMPLE = [Alert("drift", 3, 0.75, 0.5, "drift: ...", pd.Timestamp("2024-01-01 03:00", tz="UTC")),
          Alert("accuracy-low", 4, 0.6, 0.8, "accuracy-low: ...")]


def test_webhook_posts_each_alert_as_json(receiver):
    url = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
    deliveries = send_webhook(url, SAMPLE)
    assert [(d.ok, d.status, d.error) for d in deliveries] == [(True, 204, None), (True, 204, None)]
    assert [d.alert for d in deliveries] == SAMPLE
    assert receiver.received == [
        ("/alerts", {"rule": "drift", "window": 3, "value": 0.75, "threshold": 0.5, "message": "drift: ...",
                     "time": "2024-01-01T03:00:00+00:00"}),
        ("/alerts", {"rule": "accuracy-low", "window": 4, "value": 0.6, "threshold": 0.8,
                     "message": "accuracy-low: ...", "time": None}),
    ]


def test_webhook_reports_a_failing_receiver_without_raising(receiver):
    port = receiver.server_address[1]
    deliveries = send_webhook(f"http://localhost:{port}/broken", SAMPLE[:1])
    assert (deliveries[0].ok, deliveries[0].status) == (False, 500)
    assert "500" in deliveries[0].error
    receiver.shutdown()
    receiver.server_close()  # nobody listens on the port any more
    down = send_webhook(f"http://127.0.0.1:{port}/alerts", SAMPLE, timeout=1.0)
    assert [(d.ok, d.status) for d in down] == [(False, None), (False, None)]
    assert all(d.error for d in down)


@pytest.mark.parametrize("url", ["http://example.com/hook", "http://10.0.0.5:8000/hook", "ftp://127.0.0.1/x",
                                 "https://hooks.slack.com/services/T0"])
def test_webhook_refuses_other_hosts(url):
    with pytest.raises(ParameterError, match="loopback host .* mlkit runs offline"):
        send_webhook(url, SAMPLE)


def test_webhook_refuses_a_bad_timeout():
    with pytest.raises(ParameterError, match="timeout must be a positive number"):
        send_webhook("http://127.0.0.1:9/x", SAMPLE, timeout=0)
