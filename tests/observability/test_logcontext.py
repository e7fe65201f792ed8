"""Log lines carry the workflow instance id and step they were written for."""

from __future__ import annotations

import logging

from flows import Greets

from liteflow.core import LogContextFilter, configure_workflow_host


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_step_s_own_log_lines_carry_its_workflow_and_step() -> None:
    handler = Collect()
    handler.addFilter(LogContextFilter())
    steps = logging.getLogger("tests.observability.steps")
    steps.addHandler(handler)
    steps.setLevel(logging.INFO)
    try:
        with configure_workflow_host() as host:
            host.register_workflow(Greets())
            workflow_id = host.start_workflow("Greets")
            host.publish_event("go", "k")
            host.wait_for_workflow(workflow_id, timeout=10)
        logging.getLogger("tests.observability.steps").info("outside")
    finally:
        steps.removeHandler(handler)
    fields = [(r.getMessage(), r.workflow_id, r.step) for r in handler.records]  # type: ignore[attr-defined]
    assert fields == [("greeting", workflow_id, "greet"), ("greeting", workflow_id, "again"), ("outside", None, None)]


def test_the_host_s_own_records_carry_the_fields(caplog: object) -> None:
    record = logging.LogRecord("liteflow", logging.WARNING, __file__, 1, "x", None, None)
    assert logging.getLogger("liteflow").filter(record)
    assert record.workflow_id is None and record.step is None  # type: ignore[attr-defined]
