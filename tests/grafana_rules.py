"""Grafana's evaluation of an alert rule, written out for the tests: each InfluxQL step runs on a
real InfluxQL engine (the caller's ``run``), then the server-side expressions twin-stream's rules
use are applied as Grafana applies them.

* ``reduce``: each series to one number (``last``, ``max``, ``min``, ``mean``), its labels kept;
* ``threshold``: each number to 1 (condition met) or 0;
* ``math`` ``$X <op> $Y``: two sets of numbers joined by their labels, as Grafana's expressions
  join them: an item of one set with an item of the other whose labels are the same or a subset
  of its own (the result has the larger label set);
* the condition (the rule's last step): each item is an alert instance, firing if non-zero. No
  item at all is "no data": firing only if the rule's ``no_data_state`` is ``Alerting``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from twin_stream.grafana import queries as q
from twin_stream.grafana.alert_rules import rule_queries
from twin_stream.grafana.model import AlertRule

#: One item: an alert instance's labels and its value (a number, or a series' values).
Item = tuple[dict[str, str], Any]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


def _reduce(values: list[Any], reducer: str) -> float:
    numbers = [v for v in values if v is not None]
    if reducer == "last":
        return float(numbers[-1])
    if reducer == "max":
        return float(max(numbers))
    if reducer == "min":
        return float(min(numbers))
    return float(sum(numbers) / len(numbers))


def _join(a: list[Item], b: list[Item], op: Callable[[float, float], bool]) -> list[Item]:
    joined = []
    for la, va in a:
        for lb, vb in b:
            sa, sb = set(la.items()), set(lb.items())
            if sa == sb or sa <= sb or sb <= sa:
                joined.append((la if len(la) >= len(lb) else lb, 1.0 if op(va, vb) else 0.0))
    return joined


def evaluate(rule: AlertRule, run: Callable[[q.Query], list[dict[str, Any]]]) -> list[Item]:
    """The alert instances of ``rule`` now: (labels, firing). ``run`` answers a query's series
    (InfluxDB's JSON: ``tags``, ``columns``, ``values``)."""
    queries = rule_queries(rule)
    results: dict[str, list[Item]] = {}
    for step in rule.data:
        model = step.model
        if step.ref_id in queries:
            results[step.ref_id] = [
                (dict(s.get("tags") or {}), [row[1] for row in s["values"]])
                for s in run(queries[step.ref_id])
            ]
        elif model["type"] == "reduce":
            results[step.ref_id] = [
                (labels, _reduce(values, model["reducer"]))
                for labels, values in results[model["expression"]]
            ]
        elif model["type"] == "threshold":
            evaluator = model["conditions"][0]["evaluator"]
            op = _OPS[">" if evaluator["type"] == "gt" else "<"]
            limit = evaluator["params"][0]
            results[step.ref_id] = [
                (labels, 1.0 if op(value, limit) else 0.0)
                for labels, value in results[model["expression"]]
            ]
        elif model["type"] == "math":
            match = re.fullmatch(r"\$(\w+) (==|!=|>|<) \$(\w+)", model["expression"])
            assert match, f"math not emulated here: {model['expression']}"
            left, op_name, right = match.groups()
            results[step.ref_id] = _join(results[left], results[right], _OPS[op_name])
        else:
            raise AssertionError(f"{rule.uid}: step type {model['type']} not emulated here")
    condition = results[rule.condition]
    if not condition:
        return [({}, True)] if rule.no_data_state == "Alerting" else []
    return [(labels, bool(value)) for labels, value in condition]


def firing(rule: AlertRule, run: Callable[[q.Query], list[dict[str, Any]]]) -> list[dict[str, str]]:
    """The labels of the instances of ``rule`` that fire now."""
    return [labels for labels, on in evaluate(rule, run) if on]
