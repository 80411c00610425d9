"""Per-row sampling seeds: stable, independent of order, different per row and per sample."""
from humpback.inference.base import Request
from humpback.inference.seeding import SEED_RANGE, request_seeds, row_seed, sample_seeds


def test_a_row_seed_depends_on_the_run_seed_and_the_key_only():
    assert row_seed(0, "seg-a") == row_seed(0, "seg-a")
    assert row_seed(0, "seg-a") != row_seed(0, "seg-b")
    assert row_seed(0, "seg-a") != row_seed(1, "seg-a")
    assert all(0 <= row_seed(run, f"seg-{i}") < SEED_RANGE for run in (0, 7) for i in range(100))


def test_seeds_of_many_rows_do_not_collide():
    seeds = {row_seed(0, f"segment-{i}") for i in range(20_000)}
    assert len(seeds) >= 19_990  # 32-bit seeds: a handful of birthday collisions at most


def test_a_rows_samples_start_with_its_own_seed_and_differ():
    seeds = sample_seeds(1234, 4)
    assert seeds[0] == 1234 and len(set(seeds)) == 4
    assert sample_seeds(1234, 2) == seeds[:2]  # asking for more samples keeps the first ones
    assert sample_seeds(5, 0) == [5]


def test_requests_use_their_own_seed_else_one_from_the_run_and_their_place():
    messages = ({"role": "user", "content": "hi"},)
    requests = [Request(messages, seed=42), Request(messages), Request(messages)]
    seeds = request_seeds(requests, run_seed=3, n=2)
    assert seeds[0] == sample_seeds(42, 2)
    assert seeds[1] == sample_seeds(row_seed(3, "#1"), 2) and seeds[1] != seeds[2]
