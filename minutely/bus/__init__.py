"""The bus: partitioned, bounded pub/sub of point batches between ingest and aggregation.

``base`` holds the seam (``Bus``, ``Consumer``, ``Message``, ``PartitionStats``) and the
partitioning rule; ``memory`` the embedded implementation. ``nats`` (JetStream) will sit next
to them and is imported on its own, so its client stays an optional dependency.
"""

from minutely.bus.base import (
    Bus,
    Consumer,
    Message,
    PartitionStats,
    partition_of,
    split_by_partition,
)
from minutely.bus.memory import MemoryBus, MemoryConsumer

__all__ = [
    "Bus",
    "Consumer",
    "MemoryBus",
    "MemoryConsumer",
    "Message",
    "PartitionStats",
    "partition_of",
    "split_by_partition",
]
