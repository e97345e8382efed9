"""The cluster's control plane: partition keys, leases, membership, global names, checkpoints."""

from minutely.cluster.keys import (
    assignment,
    copy_of,
    decode_name,
    encode_name,
    owner_of,
    partition_key,
)

__all__ = [
    "assignment",
    "copy_of",
    "decode_name",
    "encode_name",
    "owner_of",
    "partition_key",
]
