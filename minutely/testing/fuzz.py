"""What a fuzzed request's answer must be, for the schemathesis test and ``bench/bench_fuzz.py``:
never a 5xx (except 503 with ``Retry-After``, which is backpressure), and every 4xx naming its
reason in the route's error shape (minutely's ``{"error": …}``, Prometheus'
``{"status": "error", "error": …}``, InfluxDB's ``{"code", "message"}``, OTLP's
``google.rpc.Status`` ``{"message": …}``, or remote_write's plain text)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import Phase

#: seconds an answer may take before the call counts as a hang
HANG = 30.0
#: the request bodies that are bytes of another format
BINARY_MEDIA = ("application/x-protobuf", "application/vnd.apache.arrow.stream")
#: 4xx answers whose status is the whole reason: the protocol or HTTP itself defines them
SELF_EXPLAINING = frozenset({404, 405})


def problem(status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """Why an answer breaks the rules, or None when it keeps them."""
    if status == 503 and headers.get("retry-after"):
        return None
    if status >= 500:
        return f"{status}: {body[:300]!r}"
    if status < 400 or status in SELF_EXPLAINING:
        return None
    text = body.decode("utf-8", "replace").strip()
    media = headers.get("content-type", "")
    if "json" in media:
        try:
            data = json.loads(text)
        except ValueError:
            return f"{status} with a body that is not JSON: {text[:300]!r}"
        reason = data.get("error") or data.get("message") if isinstance(data, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            return f"{status} without a reason: {text[:300]!r}"
        return None
    if media.startswith("text/plain") and text:
        return None
    if media.startswith("application/x-protobuf") and _rpc_status_message(body):
        return None  # OTLP's google.rpc.Status
    return f"{status} ({media or 'no content type'}) without a reason: {text[:300]!r}"


@dataclass
class FuzzRun:
    """What a pass sent and what came back."""

    cases: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    #: the answers that broke the rules (and calls that raised or hung), with a curl command
    problems: list[str] = field(default_factory=list)
    #: operations and modes schemathesis could not generate cases for, and why
    skipped: list[str] = field(default_factory=list)


def fuzz(app: Any, examples: int, *, derandomize: bool = False, timeout: float = HANG) -> FuzzRun:
    """Send ``examples`` generated requests per operation of ``app``'s ``/openapi.json`` and
    mode (valid and invalid), in process, and judge each answer with ``problem``."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import HypothesisException
    from schemathesis.core.result import Err
    from schemathesis.generation import GenerationMode

    # the binary bodies (protobuf, Arrow) are sent as the bytes generated for them
    schemathesis.serializer.alias(list(BINARY_MEDIA), "application/octet-stream")
    run = FuzzRun()
    began = time.perf_counter()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            run.problems.append(f"the document has an operation schemathesis cannot read: {result}")
            continue
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=examples,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=derandomize,
                database=None,
                phases=[Phase.generate],
            )
            @given(op.as_strategy(generation_mode=mode))
            def one(case: Any) -> None:
                run.cases += 1
                try:
                    response = case.call(timeout=timeout)
                except Exception as e:  # a hang is a timeout: both are findings, not crashes
                    run.problems.append(f"{type(e).__name__}: {e}\n{case.as_curl_command()}")
                    return
                run.statuses[response.status_code] += 1
                headers = {k.lower(): v[0] for k, v in response.headers.items()}
                found = problem(response.status_code, headers, response.content or b"")
                if found is not None:
                    run.problems.append(f"{found}\n{case.as_curl_command()}")

            try:
                one()
            except HypothesisException as e:
                run.skipped.append(f"{op.label} ({mode.value}): {type(e).__name__}")
    run.seconds = time.perf_counter() - began
    return run


def _rpc_status_message(body: bytes) -> str:
    """The message (field 2) of a protobuf ``google.rpc.Status``, or "" if it is not one."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    # the partial-success message has the same wire shape as a Status without details
    status = metrics_service_pb2.ExportMetricsPartialSuccess()
    try:
        status.ParseFromString(body)
    except DecodeError:
        return ""
    return str(status.error_message).strip()
