"""``Layout``: the names and settings of the bus on the broker, as a frozen value.

Owns what a stream and a group member's durable consumer are called and how they are
configured (the drawing is in the package docstring). ``NatsBus`` makes the streams from it;
every ``NatsConsumer`` names and configures its durable consumers from it, so two processes
built with the same layout meet on the same streams and in the same consumer group.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from nats.js import api


@dataclass(frozen=True, slots=True)
class Layout:
    """``partitions`` streams ``<stream>_<p>`` on subjects ``<subjects>.<p>``, consumed by
    the group ``group``.

    ``max_age`` (seconds, 0 = none) lets JetStream drop uncommitted messages older than that;
    ``duplicate_window`` (seconds) is how long a ``Nats-Msg-Id`` is remembered; ``replicas``
    is each stream's replica count; ``ack_wait`` (seconds) paces JetStream's redeliveries to
    a member holding a message unacked.
    """

    partitions: int
    stream: str = "MINUTELY"
    subjects: str = "minutely.points"
    group: str = "minutely"
    max_age: float = 0.0
    duplicate_window: float = 120.0
    replicas: int = 1
    ack_wait: float = 600.0

    def __post_init__(self) -> None:
        if self.partitions < 1:
            msg = f"partitions must be at least 1, got {self.partitions}"
            raise ValueError(msg)
        if self.max_age < 0 or self.duplicate_window < 0:
            msg = "max_age and duplicate_window must be >= 0"
            raise ValueError(msg)

    def stream_name(self, partition: int) -> str:
        return f"{self.stream}_{partition}"

    def subject(self, partition: int) -> str:
        return f"{self.subjects}.{partition}"

    def stream_config(self, partition: int, max_bytes: int) -> api.StreamConfig:
        """Partition ``partition``'s stream, holding at most ``max_bytes`` stored bytes."""
        return api.StreamConfig(
            name=self.stream_name(partition),
            description=f"minutely bus: partition {partition} of {self.partitions}",
            subjects=[self.subject(partition)],
            retention=api.RetentionPolicy.WORK_QUEUE,
            discard=api.DiscardPolicy.NEW,
            max_bytes=max_bytes,
            max_age=self.max_age,
            storage=api.StorageType.FILE,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window,
        )

    def member_name(self) -> str:
        """A new durable consumer name in the group: the group's, made unique, so that a
        member that lost its partitions can never pull from its successor."""
        return f"{self.group}-{secrets.token_hex(6)}"

    def is_member(self, consumer_name: str) -> bool:
        """Whether a durable consumer of one of the streams belongs to the group."""
        return consumer_name == self.group or consumer_name.startswith(f"{self.group}-")

    def consumer_config(self, partition: int, name: str) -> api.ConsumerConfig:
        """The group member ``name``'s durable pull consumer of ``partition``: every message
        still in the stream, oldest first, each acked explicitly."""
        return api.ConsumerConfig(
            durable_name=name,
            description=f"minutely consumer group, partition {partition}",
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=-1,
        )
