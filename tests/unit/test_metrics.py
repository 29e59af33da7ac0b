"""realtime.metrics without prometheus-client: no metric exists and every
instrumentation point does nothing and returns None (tests/e2e/test_metrics.py: the
metrics through real connections)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.processes import ROOT


def test_no_op_without_prometheus_client():
    # Without prometheus-client no metric exists and an instrumentation point does
    # no work at all: the label helpers, which every recording goes through, are
    # replaced by ones that fail, and each point is called.
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "import django; django.setup()\n"
        "from types import SimpleNamespace\n"
        "from realtime import metrics\n"
        "assert not metrics.enabled and metrics.prom is None\n"
        "names = ('CONNECTIONS_OPEN', 'FRAMES_IN', 'FRAMES_OUT', 'NOTIFY')\n"
        "assert not [n for n in names if hasattr(metrics, n)]\n"
        "def worked(*args):\n"
        "    raise AssertionError('a disabled metric computed a label')\n"
        "for helper in ('type_label', 'code_label', 'auth_reason', '_consumer_label',"
        " '_child'):\n"
        "    setattr(metrics, helper, worked)\n"
        "consumer = SimpleNamespace(close_code=4401)\n"
        "calls = [metrics.connection_opened(consumer),"
        " metrics.connection_closed(consumer),"
        " metrics.closing(SimpleNamespace(detail='ticket expired'), 4401),"
        " metrics.frame_in('x'), metrics.frame_out('x', 3), metrics.error('invalid'),"
        " metrics.published('x', metrics.now()), metrics.fanout('x', 10),"
        " metrics.repaired(), metrics.reset('layer_restarted'), metrics.lost('x', 2),"
        " metrics.recovery(1, False)]\n"
        "print(len(calls), set(calls))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "12 {None}", done.stderr
