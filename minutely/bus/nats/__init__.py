"""The JetStream bus: ``NatsBus``, the ``Bus`` on NATS JetStream (durable, clusterable).

The package, each module one part, each part built without I/O and used by the others only
through its public methods:

- ``broker.py``: ``Broker``, the one connection: the client's event loop thread
  (``loop.py``), nats-py's client with fewer copies of a large message (``client.py``, the
  only module touching nats-py's private parts), JetStream, reconnects, stream requests;
- ``layout.py``: ``Layout``, what the streams and the group's durable consumers are called
  and how they are configured;
- ``ledger.py``: ``Ledger``, the books of the byte bound, shared by the bus and its consumers;
- ``consumer.py``: ``NatsConsumer``, a member of the consumer group (pull consumers, poll,
  commit), built from a broker, a ledger, a layout and its partitions;
- ``bus.py``: ``NatsBus``, which builds the others, opens the broker, makes the streams,
  publishes, keeps the bound and the stats, and hands out consumers;
- ``wire.py``: a message's bytes.

``NatsBus(...)`` only stores its settings; ``open()`` connects and makes the streams.

Owns the layout of the bus on the broker, the wire form of a message, the byte bound and the
consumer group's pull consumers. Passes ``tests/contracts/test_bus_contract.py`` like
``MemoryBus``; ``tests/bus/test_nats.py`` covers what only a broker can do.

On the broker::

    stream MINUTELY_<p>           one per partition p, subject  minutely.points.<p>
    │   retention WorkQueue       a message stays until it is acked (committed), then it goes
    │   discard New               a full stream rejects a publish: Backpressure, never a drop
    │   stream_max_bytes          JetStream's hard limit per stream, in stored bytes
    │   max_age                   0 (the default): kept until committed, however old
    │   duplicate_window          Nats-Msg-Id "<idempotency key>:<p>:<chunk>" is stored once
    └── consumer "minutely-<id>"  durable pull consumer, AckExplicit: the group's one member

- **One stream per partition**, not one stream with N subjects: a stream's sequence numbers
  are dense (a rejected or deduplicated publish takes none), so ``offset = sequence - 1``
  counts ``0, 1, 2, ...`` per partition in publish order, the same for every consumer and
  every process. It also lets a cluster spread the partitions' stream leaders over its nodes.
- **A message** is one Arrow IPC stream holding one partition's piece of a published batch,
  its name dictionaries cut down to the names it uses and its columns narrowed where that
  loses nothing (``wire.py``). A piece larger than the server's ``max_payload`` is cut into
  row chunks, one message each.
- **publish** splits the batch, checks the bound, publishes every piece and awaits each
  JetStream ack before returning, so an answered ingest is durable: stored by the server
  (on a quorum of replicas in a cluster; flushed to disk per its ``sync_interval``).
  JetStream cannot take back an acked message, so all-or-nothing holds for the bound this
  bus checks itself (nothing is published when the batch does not fit), not for a failure
  half-way (broker full, connection lost): the error says how many pieces were stored, and a
  retry with the same ``idempotency_key`` within ``duplicate_window`` stores each piece once.
- **The bound** counts ``PointBatch.nbytes`` of uncommitted messages, as ``MemoryBus`` does,
  from a ledger this bus keeps (pieces it published or delivered) plus, for messages it never
  saw (other processes', or left from an earlier run), their stored bytes (an overestimate),
  re-read from the streams every ``sync_interval``. JetStream's own ``stream_max_bytes`` is a
  hard backstop in stored bytes for producers the ledger does not see.
- **Redelivery.** ``consumer()`` deletes the group's durable consumer of each partition,
  whoever made it, and creates its own (``<group>-<random id>``, so a consumer that lost a
  partition cannot pull from its successor: its ``poll`` raises ``RuntimeError``), which
  delivers from the oldest message still in the stream: with WorkQueue retention that is
  exactly the oldest uncommitted one (and a committed message is gone: the bus does not
  replay what was committed). So ``close`` (which deletes the consumer) and a crash
  (the next process takes the partition over) both hand every uncommitted message, in
  order, to the next consumer at once. ``ack_wait`` plays no part in that: it only paces
  the redeliveries JetStream makes to a consumer that holds a message longer, and those are
  dropped, not handed out twice. ``commit`` acks with AckAck (``ack_sync``): it returns once
  JetStream has removed the messages.
- **Threads.** The nats client runs on the broker's event loop thread. ``publish`` is awaited on
  the caller's loop and bridged to it; ``poll`` blocks the aggregator's thread on a
  condition fed by one pump task per owned partition (long-polling pull requests; what is
  buffered plus what they may still bring stays under ``prefetch_bytes``, below the server's
  ``max_pending``); ``stats``, ``consumer``, ``commit`` and ``close`` block on the loop.
- **Connection.** Reconnects forever with capped exponential backoff. While disconnected,
  ``publish`` and ``stats`` raise ``Unavailable`` at once; ``commit`` raises ``Unavailable``
  when an ack cannot be confirmed (the message then goes to the partition's next consumer).
"""

from __future__ import annotations

from minutely.bus.nats.broker import Broker
from minutely.bus.nats.bus import NatsBus
from minutely.bus.nats.consumer import NatsConsumer
from minutely.bus.nats.layout import Layout
from minutely.bus.nats.ledger import Ledger
from minutely.bus.nats.wire import decode, encode

__all__ = ["Broker", "Layout", "Ledger", "NatsBus", "NatsConsumer", "decode", "encode"]
