"""One error rule: `InputError` for users' data, `ConfigError` for options, `ValueError`/`TypeError` for
programmer misuse of tensor APIs (places that broke it, fixed in the vocabulary wave)."""
from __future__ import annotations

import pytest

from uniembed.errors import ConfigError, InputError
from uniembed.mining.run import mine_shard


def test_an_out_of_range_shard_index_is_an_option_error(tmp_path):
    with pytest.raises(ConfigError, match="--shard-index 3 is outside 0..1") as caught:
        mine_shard(None, None, None, tmp_path, shard_index=3, num_shards=2)
    assert not isinstance(caught.value, InputError)
