"""The fuzz passes and their judge.

What a fuzzed request's answer must be (``problem``): never a 5xx (except 503 with
``Retry-After``, which is backpressure), and every 4xx naming its reason in the route's error
shape (minutely's ``{"error": …}``, Prometheus' ``{"status": "error", "error": …}``, InfluxDB's
``{"code", "message"}``, OTLP's ``google.rpc.Status`` ``{"message": …}``, or remote_write's
plain text). A mixed batch's answer must count its good and bad points, and the aggregator
must fold exactly the good ones (``counted``).

Two passes: ``fuzz`` generates requests from ``/openapi.json`` with schemathesis (the short
pass in the test suite); ``fuzz_fast`` sends the seeded cases of ``fuzzcases`` to the app in
process (``asgi.call``) many at a time, and runs Graphite, Influx and remote_write bodies
through their decoders against the line-at-a-time references (the long pass,
``bench/bench_fuzz.py``, and a short one in the suite).
"""

from __future__ import annotations

import json
import re
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


# -- the fast pass ------------------------------------------------------------------------


@dataclass
class FastRun:
    """What ``fuzz_fast`` sent and what came back, per operation or decoder."""

    cases: int = 0
    seconds: float = 0.0
    #: cases per label (``GET /api/v1/servers/{name}/series``, ``decoder graphite``, …)
    labels: Counter[str] = field(default_factory=Counter)
    #: answers per label and status
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: mixed batches whose good points were checked against what the aggregator folded
    batches: int = 0
    #: the cases that broke a rule, each with why and how to send it again
    problems: list[str] = field(default_factory=list)

    def merge(self, other: FastRun) -> None:
        self.cases += other.cases
        self.labels.update(other.labels)
        self.statuses.update(other.statuses)
        self.batches += other.batches
        self.problems += other.problems


#: cases made and answered together, then their mixed batches together, then the next block
BLOCK = 64
#: requests in flight at once
LANES = 64
#: decoder cases run beside each block (Graphite, Influx, remote_write against references)
DECODER_CASES = 4


async def fuzz_fast(
    app: Any,
    node: Any,
    seeds: range,
    *,
    advance: Any = None,
    lanes: int = LANES,
    timeout: float = HANG,
    progress: Any = None,
) -> FastRun:
    """Send the case of each seed in ``seeds`` (``fuzzcases.Cases.make``) to ``app`` over
    ``node`` (a ``Service`` on the memory bus whose aggregator this drains; not started), a
    block of ``BLOCK`` at a time with ``lanes`` in flight, judging every answer; each
    block's mixed batches go together after the rest, between two drains, so the points
    folded are theirs alone.
    ``advance(seconds)`` moves ``node``'s clock one second a block, so minutes close as the
    pass goes on; ``progress(run)`` is called after each block."""
    import asyncio

    from minutely.testing import fuzzcases
    from minutely.testing.asgi import Hang, call

    document = json.loads((await call(app, "GET", "/openapi.json")).body)
    cases = fuzzcases.Cases(document, node.clock)
    run = FastRun()
    began = time.perf_counter()

    in_flight = asyncio.Semaphore(lanes)

    async def one(case: fuzzcases.Case) -> tuple[fuzzcases.Case, Any]:
        async with in_flight:
            return await sent(case)

    async def sent(case: fuzzcases.Case) -> tuple[fuzzcases.Case, Any]:
        began = time.perf_counter()
        try:
            answer = await call(
                app, case.method, case.path, case.query, case.headers, case.body, timeout=timeout
            )
        except Hang as e:
            return case, e
        except Exception as e:  # the app raised instead of answering: a 500 to a client
            return case, e
        took = time.perf_counter() - began
        if took > timeout:  # the answer held the event loop, so the timeout could not fire
            return case, Hang(f"{case.method} {case.path} took {took:.1f} s")
        return case, answer

    def judge(case: fuzzcases.Case, answer: Any) -> bool:
        """Count and judge one answer; whether its mixed batch's points count as folded."""
        run.cases += 1
        run.labels[case.label] += 1
        if isinstance(answer, Exception):
            run.statuses[case.label, 0] += 1
            run.problems.append(f"{type(answer).__name__}: {answer}\n{case.curl()}")
            return False
        run.statuses[case.label, answer.status] += 1
        found = problem(answer.status, answer.headers, answer.body)
        if found is None and case.expect is not None:
            found = counted(case.expect, answer.status, answer.headers, answer.body)
        if found is not None:
            run.problems.append(f"{case.label}: {found}\n{case.curl()}")
        return answer.status in (200, 204, 400)  # 400: remote_write and Influx keep the good

    def drain() -> int:
        while node.aggregator.drain(timeout=0):
            pass
        return int(node.aggregator.stats.points)

    for start in range(seeds.start, seeds.stop, BLOCK):
        block = [cases.make(seed) for seed in range(start, min(start + BLOCK, seeds.stop))]
        plain = [c for c in block if c.expect is None]
        mixed = [c for c in block if c.expect is not None]
        for case, answer in await asyncio.gather(*map(one, plain)):
            judge(case, answer)
        before = drain()
        expected = 0
        for case, answer in await asyncio.gather(*map(one, mixed)):
            if judge(case, answer) and case.expect is not None:
                expected += case.expect.good
        folded = drain() - before
        if mixed:
            run.batches += len(mixed)
            if folded != expected:
                run.problems.append(
                    f"mixed batches folded {folded} points, their answers counted {expected}:\n"
                    + "\n".join(c.curl() for c in mixed)
                )
        for seed in range(start, start + DECODER_CASES):
            decoder_case(node, seed, run)
        if advance is not None:
            advance(1.0)
        if progress is not None:
            progress(run)
    run.seconds = time.perf_counter() - began
    return run


def counted(expect: Any, status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """Why a mixed batch's answer does not count its points as ``expect`` says, or None."""
    if status in (429, 503) and headers.get("retry-after"):
        return None  # backpressure: none of it taken, and the judge has checked the reason
    good, bad, kind = expect.good, expect.bad, expect.kind
    if kind == "points":
        if status != 200:
            return f"a mixed batch answered {status}, not 200: {body[:300]!r}"
        answer = json.loads(body)
        if (answer["accepted"], answer["rejected"]) != (good, bad):
            return f"counted {answer['accepted']}/{answer['rejected']}, sent {good}/{bad}"
        if not all(e["reason"].strip() for e in answer["errors"]):
            return f"an error without its reason: {answer['errors']}"
        return None
    if kind.startswith("otlp"):
        from google.protobuf import json_format
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceResponse,
        )

        if status != 200:
            return f"a mixed batch answered {status}, not 200: {body[:300]!r}"
        response = ExportMetricsServiceResponse()
        if kind == "otlp-json":
            json_format.Parse(body, response)
        else:
            response.ParseFromString(body)
        if response.partial_success.rejected_data_points != bad:
            return f"rejected {response.partial_success.rejected_data_points}, sent {bad} bad"
        return None
    # remote_write and InfluxDB: 204 when every point is good, else 400 counting both
    if not bad:
        return None if status == 204 else f"a good batch answered {status}: {body[:300]!r}"
    if status != 400:
        return f"a batch with {bad} bad points answered {status}, not 400"
    text = body.decode("utf-8", "replace")
    if kind == "influx-v2":
        text = json.loads(text)["message"]
    elif kind == "influx-v1":
        text = json.loads(text)["error"]
    found = re.search(r"accepted (\d+) points, rejected (\d+)", text)
    if found is None or (int(found[1]), int(found[2])) != (good, bad):
        return f"sent {good} good and {bad} bad points, the answer says: {text[:300]!r}"
    return None


def decoder_case(node: Any, seed: int, run: FastRun) -> None:
    """One decoder case of ``seed``: Graphite lines, an Influx body or a remote_write
    request, decoded by the scanner and by the line-at-a-time reference, which must agree;
    a mixed batch of Graphite lines must count its good lines."""
    import random

    from minutely.errors import DecodeError
    from minutely.ingest.graphite import decode_graphite, decode_graphite_reference
    from minutely.ingest.influx import decode_line_protocol, decode_line_protocol_reference
    from minutely.ingest.remote_write import decode_remote_write, decode_remote_write_reference
    from minutely.testing import fuzzcases

    rng = random.Random(seed ^ 0x5EED)
    now = int(node.clock())
    mapping, limits = node.label_mapping, node.limits()
    body, good, lines = fuzzcases.graphite_body(rng, now)
    pick = rng.randrange(3)
    label, decoders = (
        ("decoder graphite", (decode_graphite, decode_graphite_reference)),
        ("decoder influx", (decode_line_protocol, decode_line_protocol_reference)),
        ("decoder remote_write", (decode_remote_write, decode_remote_write_reference)),
    )[pick]
    if pick == 1:
        body = fuzzcases.influx_body(rng, now)
        precision = rng.choice(("ns", "us", "ms", "s", "m", "h"))
        args: tuple[Any, ...] = (precision, mapping, limits)
    elif pick == 2:
        body = fuzzcases.remote_write_body(rng, now)
        args = (mapping, limits)
    else:  # a mixed batch's good lines name their server in node 1
        args = (mapping, 1 if good is not None else rng.randrange(-1, 4), limits)
    run.cases += 1
    run.labels[label] += 1
    shown = f"{label} seed {seed}: {body[:500]!r}"
    outcomes = []
    for decode in decoders:
        try:
            outcomes.append(_points_of(decode(body, *args)))
        except DecodeError as e:
            outcomes.append(("DecodeError", str(e) != ""))
        except Exception as e:
            run.statuses[label, 0] += 1
            run.problems.append(f"{decode.__name__} raised {type(e).__name__}: {e}\n{shown}")
            return
    run.statuses[label, 200] += 1
    if outcomes[0] != outcomes[1]:
        run.problems.append(f"scanner and reference disagree: {outcomes}\n{shown}")
    elif pick == 0 and (
        outcomes[0][0] + outcomes[0][1] != lines or good not in (None, outcomes[0][0])
    ):
        run.problems.append(f"{lines} lines, {good} good, decoded {outcomes[0][:2]}\n{shown}")


def _points_of(decoded: Any) -> tuple[Any, ...]:
    """A decode's counts, its points in order, and whether every error says why."""
    decoded = getattr(decoded, "decoded", decoded)  # remote_write's result holds one
    batch = decoded.batch
    servers = batch.server_names[batch.server_codes].tolist()
    metrics = batch.metric_names[batch.metric_codes].tolist()
    points = list(zip(servers, metrics, batch.ts.tolist(), batch.value.tolist(), strict=True))
    reasons = all(e.reason.strip() for e in decoded.errors)
    return decoded.accepted, decoded.rejected, sorted(points), reasons
