"""moto's server with Kinesis resharding as AWS does it, for the stream tests.

moto 5 moves a split shard's records into its children and copies merged shards' records
into the new shard; AWS leaves every record in the shard it was written to (a closed
parent keeps its records until they expire) and the children get only new records. A
consumer that reads parents before children would read moto's moved records twice. This
wrapper closes the parents and creates the children without moving anything, then runs
``moto.server`` as usual; records go to open shards only: ``python -m tests.streaming.kinesis_moto -H 127.0.0.1 -p PORT``.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from moto.kinesis.exceptions import InvalidArgumentError
from moto.kinesis.models import Shard, Stream


def _next_index(stream: Any) -> int:
    return int(sorted(stream.shards.values(), key=attrgetter("_shard_id"))[-1]._shard_id) + 1


def split_shard(self: Any, shard_to_split: str, new_starting_hash_key: str) -> None:
    key = int(new_starting_hash_key)
    shard = self.shards[shard_to_split]
    if not shard.starting_hash < key < shard.ending_hash or not shard.is_open:
        raise InvalidArgumentError(message=f"cannot split {shard_to_split} at {key}")
    first = _next_index(self)
    for index, lo, hi in (
        (first, shard.starting_hash, key - 1),
        (first + 1, key, shard.ending_hash),
    ):
        child = Shard(index, starting_hash=lo, ending_hash=hi, parent=shard.shard_id)
        self.shards[child.shard_id] = child
    shard.is_open = False


def merge_shards(self: Any, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
    one, two = self.shards[shard_to_merge], self.shards[adjacent_shard_to_merge]
    if one.ending_hash + 1 != two.starting_hash and two.ending_hash + 1 != one.starting_hash:
        raise InvalidArgumentError(adjacent_shard_to_merge)
    child = Shard(
        _next_index(self),
        starting_hash=min(one.starting_hash, two.starting_hash),
        ending_hash=max(one.ending_hash, two.ending_hash),
        parent=one.shard_id,
        adjacent_parent=two.shard_id,
    )
    self.shards[child.shard_id] = child
    one.is_open = two.is_open = False


def get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
    """The open shard whose hash range holds the key (moto would also pick a closed one,
    and misses the last key of each range)."""
    from moto.utilities.utils import md5_hash

    key = (
        int(explicit_hash_key)
        if explicit_hash_key
        else int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    )
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    return None


Stream.get_shard_for_key = get_shard_for_key  # type: ignore[method-assign]
Stream.split_shard = split_shard  # type: ignore[method-assign]
Stream.merge_shards = merge_shards  # type: ignore[method-assign]


if __name__ == "__main__":
    from moto.server import main

    main()
