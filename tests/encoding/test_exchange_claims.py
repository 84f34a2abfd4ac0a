"""`exchange.ChunkClaims` (work stealing among ranks): each rank takes its own share first, in order, then the
others' unstarted chunks from the end of their shares; every chunk is encoded by exactly one rank."""
from __future__ import annotations

from uniembed.encoding.exchange import ChunkClaims, PartFolder

CHUNKS = [[i] for i in range(7)]
OWNERS = [0, 1, 0, 1, 0, 1, 1]  # rank 0: chunks 0 2 4; rank 1: chunks 1 3 5 6


def claims(folder: PartFolder, rank: int, size: int = 2, run: str = "abc") -> ChunkClaims:
    return ChunkClaims(folder, run, CHUNKS, OWNERS, rank, size)


def test_a_rank_that_starts_late_finds_its_share_taken(tmp_path):
    folder = PartFolder(tmp_path)
    first = [chunk[0] for chunk in claims(folder, 0)]
    assert first == [0, 2, 4, 6, 5, 3, 1]  # its own in order, then rank 1's from the end
    assert list(claims(folder, 1)) == []


def test_ranks_that_run_side_by_side_meet_in_the_middle(tmp_path):
    folder = PartFolder(tmp_path)
    zero, one = iter(claims(folder, 0)), iter(claims(folder, 1))
    got = {0: [], 1: []}
    for rank, source in [(0, zero), (1, one)] * 2:  # each encodes two chunks in turn
        got[rank].append(next(source)[0])
    got[0] += [chunk[0] for chunk in zero]  # rank 0 is done first and steals what rank 1 has not started
    got[1] += [chunk[0] for chunk in one]
    assert got == {0: [0, 2, 4, 6, 5], 1: [1, 3]}
    assert sorted(got[0] + got[1]) == list(range(7))


def test_claims_belong_to_one_run_and_are_removed_with_it(tmp_path):
    folder = PartFolder(tmp_path)
    assert folder.claim("abc", 3) and not folder.claim("abc", 3)
    assert folder.claim("def", 3)  # another job's run claims its own chunks
    folder.remove("abc")
    assert folder.claim("abc", 3) and not folder.claim("def", 3)
    folder.remove(None)
    assert not list(tmp_path.glob("*.claim"))


def test_three_ranks_steal_from_the_next_rank_first(tmp_path):
    owners = [0, 1, 2, 1, 2]
    order = ChunkClaims(PartFolder(tmp_path), "r", [[i] for i in range(5)], owners, 1, 3).order
    assert order == [1, 3, 4, 2, 0]
