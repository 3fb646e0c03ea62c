"""`--queue-policy` and `--queue-aging-s` of `dynabatch bench`."""

from __future__ import annotations

import argparse

from ..queue_order import QUEUE_POLICIES, QueueOrderConfig


def add_queue_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("admission order (docs/ADMISSION.md)")
    g.add_argument(
        "--queue-policy",
        choices=QUEUE_POLICIES,
        default="priority",
        help="order in which waiting requests are admitted (default priority, the server's)",
    )
    g.add_argument(
        "--queue-aging-s",
        type=float,
        default=10.0,
        help="a request waiting this long goes before every later arrival (0 = no aging; "
        "default 10, the server's queue_aging_ms)",
    )


def queue_order_from_args(args: argparse.Namespace) -> QueueOrderConfig:
    return QueueOrderConfig(
        policy=getattr(args, "queue_policy", "priority"),
        aging_s=max(0.0, getattr(args, "queue_aging_s", 10.0)),
    )
