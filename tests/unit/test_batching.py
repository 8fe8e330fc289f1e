"""Unit tests for stream_aimass.batching.TokenBudgetBatcher, driven by a fake clock."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_aimass.batching import Batch, TokenBudgetBatcher


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Item:
    """A distinct object per enqueue, so identity and equality agree."""

    def __init__(self, n: int, cost: int) -> None:
        self.n = n
        self.cost = cost

    def __repr__(self) -> str:
        return f"Item({self.n}, cost={self.cost})"


def make(
    max_tokens: int = 100, max_items: int = 10, max_wait_s: float = 1.0
) -> tuple[TokenBudgetBatcher[Item], FakeClock]:
    clock = FakeClock()
    return TokenBudgetBatcher(max_tokens, max_items, max_wait_s, clock=clock), clock


def add(batcher: TokenBudgetBatcher[Item], *costs: int, start: int = 0) -> list[Item]:
    items = [Item(start + i, c) for i, c in enumerate(costs)]
    for item in items:
        batcher.add(item, item.cost)
    return items


def released(batches: list[Batch[Item]]) -> list[Item]:
    return [item for batch in batches for item in batch.items]


def check_batch_invariants(batcher: TokenBudgetBatcher[Item], batches: list[Batch[Item]]) -> None:
    for batch in batches:
        assert len(batch) >= 1
        assert len(batch.items) == len(batch.costs)
        assert len(batch) <= batcher.max_items
        assert batch.costs == sorted(batch.costs), "items must be sorted by cost ascending"
        assert batch.padded_cost == len(batch) * max(batch.costs)
        if len(batch) > 1:
            assert batch.padded_cost <= batcher.max_tokens, batch


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("max_tokens", "max_items", "max_wait_s"),
    [(0, 1, 0.0), (-5, 1, 0.0), (1, 0, 0.0), (1, -1, 0.0), (1, 1, -0.001)],
)
def test_constructor_rejects_bad_limits(max_tokens: int, max_items: int, max_wait_s: float) -> None:
    with pytest.raises(ValueError):
        TokenBudgetBatcher(max_tokens, max_items, max_wait_s, clock=FakeClock())


def test_constructor_accepts_smallest_limits() -> None:
    batcher: TokenBudgetBatcher[int] = TokenBudgetBatcher(1, 1, 0.0, clock=FakeClock())
    assert len(batcher) == 0
    assert batcher.pending_tokens == 0


def test_empty_batcher() -> None:
    batcher, _ = make()
    assert batcher.deadline() is None
    assert batcher.next_batch() is None
    assert batcher.next_batch(now=True) is None
    assert batcher.flush() == []
    assert Batch([], [], 0.0).padded_cost == 0


# --------------------------------------------------------------------------- holding back


def test_nothing_released_before_budget_or_wait() -> None:
    batcher, clock = make(max_tokens=100, max_items=10, max_wait_s=1.0)
    add(batcher, 10, 20, 30)
    assert batcher.next_batch() is None
    clock.advance(0.999)
    assert batcher.next_batch() is None
    assert len(batcher) == 3
    assert batcher.pending_tokens == 60


def test_deadline_is_oldest_enqueue_plus_max_wait() -> None:
    batcher, clock = make(max_wait_s=0.25)
    start = clock.now
    add(batcher, 5)
    assert batcher.deadline() == pytest.approx(start + 0.25)
    clock.advance(0.1)
    add(batcher, 7, start=1)
    assert batcher.deadline() == pytest.approx(start + 0.25)


def test_expired_wait_releases_the_oldest_with_what_fits() -> None:
    batcher, clock = make(max_tokens=100, max_items=10, max_wait_s=0.5)
    items = add(batcher, 30, 10, 20)
    clock.advance(0.5)
    batch = batcher.next_batch()
    assert batch is not None
    assert batch.items == [items[1], items[2], items[0]]
    assert batch.costs == [10, 20, 30]
    assert batch.oldest_enqueued == pytest.approx(clock.now - 0.5)
    assert len(batcher) == 0
    assert batcher.pending_tokens == 0
    assert batcher.deadline() is None
    assert batcher.next_batch() is None


def test_expired_wait_still_keeps_the_budget() -> None:
    batcher, clock = make(max_tokens=100, max_items=10, max_wait_s=0.5)
    add(batcher, 40, 40, 40)
    clock.advance(1.0)
    first, second = batcher.next_batch(), batcher.next_batch()
    assert first is not None and second is not None
    check_batch_invariants(batcher, [first, second])
    assert [first.costs, second.costs] == [[40, 40], [40]]
    assert len(batcher) == 0


def test_zero_wait_releases_at_once() -> None:
    batcher, _ = make(max_wait_s=0.0)
    items = add(batcher, 3)
    batch = batcher.next_batch()
    assert batch is not None and batch.items == items


# --------------------------------------------------------------------------- releasing when full


def test_max_items_keeps_the_remainder_pending() -> None:
    batcher, clock = make(max_tokens=10_000, max_items=4, max_wait_s=60.0)
    items = add(batcher, 1, 2, 3, 4, 5, 6)
    batch = batcher.next_batch()
    assert batch is not None and batch.items == items[:4]
    assert len(batcher) == 2
    assert batcher.pending_tokens == 11
    assert batcher.next_batch() is None  # two items, 11 tokens: not full, not expired
    clock.advance(60.0)
    rest = batcher.next_batch()
    assert rest is not None and rest.items == items[4:]


def test_released_when_padded_token_budget_reached() -> None:
    batcher, _ = make(max_tokens=100, max_items=100, max_wait_s=60.0)
    first = add(batcher, 25, 25, 25)
    assert batcher.next_batch() is None
    last = add(batcher, 25, start=3)
    batch = batcher.next_batch()
    assert batch is not None
    assert batch.padded_cost == 100
    assert batch.items == first + last
    assert len(batcher) == 0


def test_budget_counts_padding_not_raw_sum() -> None:
    # Raw sum 80 + 10 + 10 + 10 = 110 fills a batch; padded, the 80 (the oldest, so it goes
    # first) cannot share a batch of 100 tokens with any of the others.
    batcher, clock = make(max_tokens=100, max_items=100, max_wait_s=60.0)
    items = add(batcher, 80, 10, 10, 10)
    batch = batcher.next_batch()
    assert batch is not None and batch.items == [items[0]]
    assert batcher.next_batch() is None  # 30 tokens left: they wait to fill or expire
    clock.advance(60.0)
    rest = batcher.next_batch()
    assert rest is not None and rest.items == items[1:] and rest.costs == [10, 10, 10]


def test_full_batches_go_one_after_another() -> None:
    batcher, _ = make(max_tokens=100, max_items=100, max_wait_s=60.0)
    add(batcher, 50, 50, 50, 50)
    first, second = batcher.next_batch(), batcher.next_batch()
    assert first is not None and second is not None
    check_batch_invariants(batcher, [first, second])
    assert [first.costs, second.costs] == [[50, 50], [50, 50]]
    assert len(batcher) == 0


def test_items_sorted_by_cost_ascending_in_each_batch() -> None:
    batcher, _ = make(max_tokens=64, max_items=5, max_wait_s=1.0)
    costs = [9, 1, 14, 3, 3, 7, 2, 12, 5, 8, 1, 11, 6, 4, 10]
    add(batcher, *costs)
    batches = []
    while (batch := batcher.next_batch(now=True)) is not None:
        batches.append(batch)
    check_batch_invariants(batcher, batches)
    assert sorted(c for b in batches for c in b.costs) == sorted(costs)


def test_oversize_item_alone_is_released_immediately() -> None:
    batcher, _ = make(max_tokens=100, max_items=100, max_wait_s=60.0)
    (big,) = add(batcher, 101)
    batch = batcher.next_batch()  # over the budget on its own: full, no wait
    assert batch is not None and batch.items == [big]


def test_equal_costs_keep_enqueue_order() -> None:
    batcher, clock = make(max_tokens=1000, max_items=100, max_wait_s=1.0)
    items = add(batcher, 5, 5, 5, 5)
    clock.advance(1.0)
    batch = batcher.next_batch()
    assert batch is not None and batch.items == items


def test_non_positive_cost_counts_as_one() -> None:
    batcher, _ = make(max_tokens=100, max_items=100, max_wait_s=1.0)
    add(batcher, 0, -7)
    assert batcher.pending_tokens == 2
    batch = batcher.next_batch(now=True)
    assert batch is not None and batch.costs == [1, 1]


def test_flush_empties_and_respects_limits() -> None:
    batcher, _ = make(max_tokens=20, max_items=3, max_wait_s=60.0)
    items = add(batcher, 5, 1, 9, 2, 2)
    batches = batcher.flush()
    check_batch_invariants(batcher, batches)
    assert Counter(map(id, released(batches))) == Counter(map(id, items))
    assert len(batcher) == 0
    assert batcher.pending_tokens == 0
    assert batcher.deadline() is None
    assert batcher.next_batch(now=True) is None
    assert batcher.flush() == []


def test_oversize_item_in_a_flush_goes_alone() -> None:
    batcher, _ = make(max_tokens=100, max_items=100, max_wait_s=1.0)
    items = add(batcher, 3, 250, 4)
    batches = batcher.flush()
    check_batch_invariants(batcher, batches)
    assert [b.costs for b in batches] == [[3, 4], [250]]
    assert batches[1].items == [items[1]]
    assert batches[1].padded_cost == 250


def test_oldest_enqueued_and_the_deadline_of_what_remains() -> None:
    batcher, clock = make(max_tokens=1000, max_items=2, max_wait_s=10.0)
    t0 = clock.now
    add(batcher, 5)
    clock.advance(1.0)
    add(batcher, 1, start=1)
    clock.advance(1.0)
    add(batcher, 9, start=2)
    batch = batcher.next_batch()  # three pending, max_items 2: full
    assert batch is not None and batch.costs == [1, 5]
    assert batch.oldest_enqueued == t0
    # The remaining item keeps its own enqueue time for the deadline.
    assert batcher.deadline() == pytest.approx(t0 + 2.0 + 10.0)


def test_deadline_moves_to_the_oldest_remaining_item() -> None:
    batcher, clock = make(max_tokens=1000, max_items=2, max_wait_s=5.0)
    t0 = clock.now
    add(batcher, 50)  # the oldest: it goes first, with its nearest shorter neighbour
    clock.advance(1.0)
    add(batcher, 1, 2, start=1)
    batch = batcher.next_batch()
    assert batch is not None and batch.costs == [2, 50]
    assert batcher.deadline() == pytest.approx(t0 + 1.0 + 5.0)


def test_same_object_enqueued_twice_is_released_exactly_twice() -> None:
    clock = FakeClock()
    batcher: TokenBudgetBatcher[str] = TokenBudgetBatcher(10, 100, 1.0, clock=clock)
    batcher.add("same", 1)
    batcher.add("other", 9)
    batcher.add("same", 9)
    out: list[str] = []
    while (batch := batcher.next_batch(now=True)) is not None:
        out.extend(batch.items)
    assert Counter(out) == Counter({"same": 2, "other": 1})


# --------------------------------------------------------------------------- property

operation = st.one_of(
    st.tuples(st.just("add"), st.integers(min_value=-3, max_value=300)),
    st.tuples(st.just("tick"), st.floats(min_value=0.0, max_value=0.6)),
    st.tuples(st.just("next"), st.just(0)),  # the model is free
    st.tuples(st.just("now"), st.just(0)),  # the model is idle or draining
    st.tuples(st.just("flush"), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(
    max_tokens=st.integers(min_value=1, max_value=256),
    max_items=st.integers(min_value=1, max_value=12),
    max_wait_s=st.floats(min_value=0.0, max_value=1.0),
    ops=st.lists(operation, max_size=80),
)
def test_no_item_lost_or_duplicated_budgets_kept_and_the_oldest_served_first(
    max_tokens: int, max_items: int, max_wait_s: float, ops: list[tuple[str, float]]
) -> None:
    clock = FakeClock()
    batcher: TokenBudgetBatcher[Item] = TokenBudgetBatcher(
        max_tokens, max_items, max_wait_s, clock=clock
    )
    added: list[Item] = []
    enqueued: dict[int, float] = {}
    out: list[Item] = []
    for name, arg in ops:
        if name == "add":
            item = Item(len(added), int(arg))
            added.append(item)
            enqueued[id(item)] = clock.now
            batcher.add(item, item.cost)
        elif name == "tick":
            clock.advance(arg)
        elif name == "flush":
            batches = batcher.flush()
            check_batch_invariants(batcher, batches)
            out.extend(released(batches))
            assert len(batcher) == 0
        else:
            pending_before = len(batcher)
            tokens_before = batcher.pending_tokens
            taken = set(map(id, out))
            first = next((i for i in added if id(i) not in taken), None)  # the oldest pending
            oldest = None if first is None else enqueued[id(first)]
            expired = oldest is not None and clock.now >= oldest + max_wait_s
            batch = batcher.next_batch(now=name == "now")
            if batch is None:
                # Nothing pending, or (not asked for now) nothing worth running yet.
                assert pending_before == 0 or (
                    name == "next"
                    and not expired
                    and pending_before < max_items
                    and tokens_before < max_tokens
                )
                continue
            check_batch_invariants(batcher, [batch])
            assert batch.costs == [max(1, i.cost) for i in batch.items]
            assert any(i is first for i in batch.items)  # the oldest pending item is in it
            assert batch.oldest_enqueued == oldest
            out.extend(batch.items)
            assert len(batcher) == pending_before - len(batch)
        released_ids = set(map(id, out))
        still_pending = [i for i in added if id(i) not in released_ids]
        assert len(batcher) == len(still_pending)
        assert batcher.pending_tokens == sum(max(1, i.cost) for i in still_pending)
    while (batch := batcher.next_batch(now=True)) is not None:
        check_batch_invariants(batcher, [batch])
        out.extend(batch.items)
    assert Counter(map(id, out)) == Counter(map(id, added))
    assert len(out) == len(added)


# -- next_batch: batches formed when the model is free ------------------------------------


def test_next_batch_waits_until_full_or_expired_unless_now() -> None:
    batcher, clock = make(max_tokens=100, max_items=10, max_wait_s=0.5)
    assert batcher.next_batch() is None and batcher.next_batch(now=True) is None  # empty
    batcher.add(Item(0, 10), 10)
    clock.advance(0.2)
    batcher.add(Item(1, 10), 10)
    assert batcher.next_batch() is None  # neither full nor expired: worth waiting
    clock.advance(0.3)  # the oldest has waited 0.5 s
    batch = batcher.next_batch()
    assert batch is not None and [i.n for i in batch.items] == [0, 1]
    assert batch.oldest_enqueued == pytest.approx(1000.0)
    batcher.add(Item(2, 10), 10)
    batch = batcher.next_batch(now=True)  # an idle model or a drain: at once
    assert batch is not None and [i.n for i in batch.items] == [2]
    assert len(batcher) == 0 and batcher.pending_tokens == 0


def test_next_batch_goes_as_soon_as_the_pending_items_fill_a_batch() -> None:
    batcher, _ = make(max_tokens=1000, max_items=4, max_wait_s=10.0)
    for n in range(3):
        batcher.add(Item(n, 5), 5)
    assert batcher.next_batch() is None
    batcher.add(Item(3, 5), 5)
    batch = batcher.next_batch()
    assert batch is not None and len(batch) == 4


def test_next_batch_holds_the_oldest_with_its_nearest_lengths() -> None:
    # Budget 100 tokens: the oldest (cost 20) rides with the items just shorter than it,
    # then just longer while the padded cost fits; far-off lengths stay pending.
    batcher, clock = make(max_tokens=100, max_items=10, max_wait_s=0.1)
    batcher.add(Item(0, 20), 20)  # the oldest
    clock.advance(0.01)
    for n, cost in ((1, 2), (2, 19), (3, 18), (4, 21), (5, 90), (6, 17), (7, 3)):
        batcher.add(Item(n, cost), cost)
    clock.advance(1.0)
    batch = batcher.next_batch()
    assert batch is not None
    # As many as fit at the oldest's width (100 // 20 = 5): 20 and the four just shorter;
    # 21 would make it 6 x 21 = 126 > 100.
    assert sorted(i.cost for i in batch.items) == [3, 17, 18, 19, 20]
    assert batch.padded_cost <= 100
    assert {i.n for i in batch.items} >= {0}
    assert sorted(i.cost for i in _drain(batcher)) == [2, 21, 90]


def test_next_batch_runs_an_item_over_budget_alone() -> None:
    batcher, clock = make(max_tokens=50, max_items=10, max_wait_s=0.0)
    batcher.add(Item(0, 80), 80)
    clock.advance(0.01)
    batcher.add(Item(1, 5), 5)
    batch = batcher.next_batch()
    assert batch is not None and [i.n for i in batch.items] == [0]
    batch = batcher.next_batch()
    assert batch is not None and [i.n for i in batch.items] == [1]


def _drain(batcher: TokenBudgetBatcher[Item]) -> list[Item]:
    out: list[Item] = []
    while (batch := batcher.next_batch(now=True)) is not None:
        out.extend(batch.items)
    return out


# -- adaptive batching ----------------------------------------------------------------------


def test_adaptive_limits_grow_with_the_backlog_within_bounds() -> None:
    from stream_aimass.batching import AdaptiveBatching

    policy = AdaptiveBatching(min_tokens=256, max_tokens=4096, max_wait_s=0.05, full_backlog=1000)
    assert policy.limits(0) == (256, 0.0)
    tokens, wait = policy.limits(500)
    assert tokens == 2176 and wait == pytest.approx(0.025)
    assert policy.limits(1000) == (4096, 0.05)
    assert policy.limits(10**6) == (4096, 0.05)  # never past the configured bounds
    assert policy.limits(-5) == (256, 0.0)
    with pytest.raises(ValueError):
        AdaptiveBatching(min_tokens=5000, max_tokens=4096, max_wait_s=0.05, full_backlog=10)


def test_quiet_stream_releases_at_once_and_backlog_waits_for_full_batches() -> None:
    from stream_aimass.batching import AdaptiveBatching

    now = [0.0]
    batcher: TokenBudgetBatcher[str] = TokenBudgetBatcher(4096, 128, 0.05, clock=lambda: now[0])
    policy = AdaptiveBatching(min_tokens=64, max_tokens=4096, max_wait_s=0.05, full_backlog=100)
    # Quiet: one short document -> a wait of 1/100 of the maximum; it goes within a ms.
    batcher.add("q", 20)
    batcher.set_limits(*policy.limits(len(batcher)))
    assert batcher.max_wait_s == pytest.approx(0.0005)
    now[0] += 0.001
    batch = batcher.next_batch()
    assert batch is not None and batch.items == ["q"]
    # Backlog: 200 documents pending -> full budget and the full wait; full batches go,
    # the partial rest waits to fill.
    for i in range(200):
        batcher.add(f"d{i}", 30)
    batcher.set_limits(*policy.limits(200))
    assert batcher.max_tokens == 4096
    full = batcher.next_batch()
    assert full is not None and len(full) == 128
    assert batcher.next_batch() is None
    now[0] += 0.06
    rest = batcher.next_batch()
    assert rest is not None and len(rest) == 72


def test_set_limits_validates() -> None:
    batcher: TokenBudgetBatcher[str] = TokenBudgetBatcher(100, 10, 0.1)
    with pytest.raises(ValueError):
        batcher.set_limits(0, 0.1)
    with pytest.raises(ValueError):
        batcher.set_limits(10, -1)
