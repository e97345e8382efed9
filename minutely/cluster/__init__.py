"""The cluster: nodes that share the partitions of both copies, and their control plane.

The control plane is the cluster's shared state, kept in JetStream KV and Object Store (no
consensus code of ours: JetStream's RAFT agrees). ``ControlPlane(ControlConfig(...)).open()``
binds or makes these buckets, every one with ``replicas`` copies::

    bucket (TTL)                   key                         value          written by
    <prefix>_nodes (lease_ttl)     <encoded node name>         NodeInfo JSON  each node, put
                                                                              every ttl/3
    <prefix>_leases (lease_ttl)    s.<p> | m.<p>               holder JSON    its holder: create,
                                                                              then CAS renewals
    <prefix>_names (none)          next.<kind>                 next free id   any node, by CAS
                                   <kind>.<encoded name>       its id         whoever creates it
    <prefix>_kinds (none)          <encoded metric name>       counter|gauge  the node a kind
                                                                              was declared to
    <prefix>_checkpoints (none)    s.<p> | m.<p>               pointer JSON   the claimant, by CAS
    object store                   <key>/<r>/<node>/<random>   the blob       the claimant
      <prefix>_checkpoints

- ``keys.py``: partition keys, who should own them (rendezvous hashing), KV-safe names;
- ``kv.py``: blocking calls onto the connection's loop, bucket setup, whole-bucket reads;
- ``leases.py``: ``Membership`` (who is alive) and ``Leases`` (who holds which key);
- ``names.py``: ``GlobalNames``, dense server and metric ids shared by every node;
- ``kinds.py``: ``GlobalKinds``, the metric kinds declared on any node;
- ``checkpoints.py``: ``Checkpoints``, each key's last checkpoint, fenced by the pointer's
  revision;
- ``control.py``: ``ControlConfig`` and ``ControlPlane``, which builds the rest.

Decisions are made by the result of a compare-and-set, never by a read (a read may come
from a lagging follower). A lease tells a node to start or stop; the checkpoint pointer's
compare-and-set is what stops a node that missed the news (``Fenced``).
"""

from minutely.cluster.checkpoints import Checkpoints, Claim, Fenced
from minutely.cluster.control import ControlConfig, ControlPlane
from minutely.cluster.keys import (
    assignment,
    copy_of,
    decode_name,
    encode_name,
    owner_of,
    partition_key,
)
from minutely.cluster.kinds import GlobalKinds
from minutely.cluster.leases import Holder, Lease, LeaseLost, Leases, Membership, NodeInfo
from minutely.cluster.names import GlobalNames

__all__ = [
    "Checkpoints",
    "Claim",
    "ControlConfig",
    "ControlPlane",
    "Fenced",
    "GlobalKinds",
    "GlobalNames",
    "Holder",
    "Lease",
    "LeaseLost",
    "Leases",
    "Membership",
    "NodeInfo",
    "assignment",
    "copy_of",
    "decode_name",
    "encode_name",
    "owner_of",
    "partition_key",
]
