"""A Pd's requests in the order Pd sent them, and each seeing the arrays as earlier ones left them."""
import asyncio

import pytest

from pdbridge.ordering import GAP_WAIT_S, PdGroup
from pdbridge.request import Request
from pdwire.specs import ANY, NONE, ArraySpec


class Conn:
    closed = False


def run(coro):
    return asyncio.run(coro)


def req(client, reads="", writes="", atoms=()):
    r = Request(client, "x", list(atoms))
    r.reads = ArraySpec.parse(reads).select(list(atoms)) if reads != "*" else ANY
    r.writes = ArraySpec.parse(writes).select(list(atoms)) if writes != "*" else ANY
    return r


def test_requests_are_released_in_the_order_pd_numbered_them():
    async def main():
        group, released = PdGroup(1), []
        group.arrive(10, 0, lambda: released.append(10))
        group.arrive(12, 0, lambda: released.append(12))  # 11 is still on its way
        group.arrive(11, 0, lambda: released.append(11))
        assert released == []  # the first request of a Pd waits a moment for earlier ones
        await asyncio.sleep(GAP_WAIT_S * 3)
        assert released == [10, 11, 12]
        group.arrive(14, 0, lambda: released.append(14))
        group.arrive(13, 0, lambda: released.append(13))
        assert released == [10, 11, 12, 13, 14]
        group.arrive(16, 0, lambda: released.append(16))  # 15 never comes
        assert released[-1] == 14
        await asyncio.sleep(GAP_WAIT_S * 3)
        assert released[-1] == 16
        group.arrive(15, 0, lambda: released.append(15))  # late: released at once
        assert released[-1] == 15
    run(main())


def test_a_gap_waits_longer_while_pd_says_requests_are_still_queued(monkeypatch):
    import pdbridge.ordering as ordering

    monkeypatch.setattr(ordering, "QUEUED_GAP_WAIT_S", 0.2)
    async def main():
        group, released = PdGroup(1), []
        group.arrive(2, 1, lambda: released.append(2))  # number 1 is queued in an object still connecting
        await asyncio.sleep(GAP_WAIT_S * 4)
        assert released == []
        group.arrive(1, 0, lambda: released.append(1))
        group.arrive(3, 0, lambda: released.append(3))
        await asyncio.sleep(GAP_WAIT_S * 4)
        assert released == [1, 2, 3]
        group.arrive(5, 1, lambda: released.append(5))  # 4 was queued and then refused: never comes
        await asyncio.sleep(0.1)
        assert released == [1, 2, 3]
        await asyncio.sleep(0.2)
        assert released == [1, 2, 3, 5]
    run(main())


def test_numbers_wrap_after_999999_and_order_holds():
    async def main():
        group, released = PdGroup(1), []
        group.arrive(999_998, 0, lambda: released.append("a"))
        await asyncio.sleep(GAP_WAIT_S * 3)
        group.arrive(1, 0, lambda: released.append("c"))  # 999999 is still on its way
        group.arrive(999_999, 0, lambda: released.append("b"))
        group.arrive(2, 0, lambda: released.append("d"))
        assert released == ["a", "b", "c", "d"]
    run(main())


def test_a_read_waits_for_an_earlier_write_of_that_array_to_land():
    async def main():
        a, b = Conn(), Conn()
        group = PdGroup(1)
        writer = req(a, writes="0", atoms=["arr"])
        reader = req(b, reads="0", writes="1", atoms=["arr", "out"])
        other = req(b, reads="0", atoms=["unrelated"])
        for r in (writer, reader, other):
            group.enter(r)
        assert group.read_blockers(reader, ["arr"]) == [writer]
        assert group.read_blockers(other, ["unrelated"]) == []
        waiting = asyncio.create_task(group.clear_to_read(reader, ["arr"]))
        await asyncio.sleep(0.01)
        writer.writes_sent = True  # written to a's socket: not enough for b's connection
        group.changed()
        await asyncio.sleep(0.01)
        assert not waiting.done()
        writer.writes_done = True  # Pd answered: the array is in place
        group.changed()
        await asyncio.wait_for(waiting, 1)
    run(main())


def test_on_one_connection_written_is_enough():
    async def main():
        a = Conn()
        group = PdGroup(1)
        writer, reader = req(a, writes="0", atoms=["arr"]), req(a, reads="0", atoms=["arr"])
        group.enter(writer)
        group.enter(reader)
        assert group.read_blockers(reader, ["arr"]) == [writer]
        writer.writes_sent = True
        assert group.read_blockers(reader, ["arr"]) == []
    run(main())


def test_a_write_waits_for_earlier_reads_and_writes_of_that_array():
    async def main():
        a, b = Conn(), Conn()
        group = PdGroup(1)
        reader = req(a, reads="0", atoms=["arr"])
        writer1 = req(a, writes="0", atoms=["arr"])
        writer2 = req(b, writes="0", atoms=["arr"])
        for r in (reader, writer1, writer2):
            group.enter(r)
        assert group.write_blockers(writer2, ["arr"]) == [reader, writer1]
        reader.reads_done = True
        writer1.writes_done = True
        group.changed()
        assert group.write_blockers(writer2, ["arr"]) == []
        assert group.pending == [writer2]  # requests that are through are forgotten
    run(main())


def test_undeclared_means_any_array_and_nothing_means_none():
    async def main():
        a = Conn()
        group = PdGroup(1)
        unknown = req(a, reads="*", writes="*")
        quiet = req(a)
        later = req(a, reads="0", atoms=["anything"])
        for r in (unknown, quiet, later):
            group.enter(r)
        assert quiet.reads_done and quiet.writes_done and quiet.reads == NONE
        assert group.read_blockers(later, ["anything"]) == [unknown]
        assert group.write_blockers(later, ["anything"]) == [unknown]
    run(main())


@pytest.mark.parametrize("family", ["lat-0", "lat-12"])
def test_a_family_declaration_covers_its_members(family):
    async def main():
        a = Conn()
        group = PdGroup(1)
        encoder = req(a, reads="0", writes="1-*", atoms=["in", "lat"])
        decoder = req(a, reads="0-*", writes="1", atoms=["lat", "out"])
        group.enter(encoder)
        group.enter(decoder)
        assert group.read_blockers(decoder, [family]) == [encoder]
        assert group.read_blockers(decoder, ["lat"]) == []
    run(main())
