"""Placement: how many layers go on the GPU, what each pool holds, and how much slower it decodes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from localforge.resources.placement import Pools, Shape, as_ollama_shows, place, processor
from localforge.schedule.policy import Fifo, Forge
from localforge.schedule.simulate import Arrival, SimModel, simulate

GB = 10**9
MODEL = Shape(layers=(100,) * 10, output=30, output_cpu=30, host=20, compute=50)


def test_the_last_layers_go_on_the_gpu_and_the_output_only_with_all_of_them() -> None:
    assert MODEL.memory(0) == Pools(0, 20 + 1000 + 30 + 50)
    assert MODEL.memory(3) == Pools(300 + 50, 20 + 700 + 30 + 50)
    assert MODEL.memory(10) == Pools(1000 + 50, 20 + 30 + 50)  # every repeating layer, not the output
    assert MODEL.memory(11) == Pools(1000 + 30 + 50, 20)  # "11/11 layers": no compute buffer in RAM
    assert MODEL.memory(99) == MODEL.memory(11)


def test_tied_embeddings_cost_ram_once_and_are_copied_to_the_gpu() -> None:
    tied = Shape(layers=(100,) * 4, output=60, output_cpu=1, host=60, compute=0)
    assert tied.memory(0).ram == 60 + 400 + 1
    assert tied.memory(5) == Pools(400 + 60, 60)


def test_the_cpus_repacked_copy_costs_ram_only_for_what_stays_there() -> None:
    amx = Shape(layers=(100,) * 4, output=60, output_cpu=1, host=60, compute=0, repack=(90,) * 4,
                output_repack=70)
    assert amx.memory(0).ram == 60 + 400 + 1 + 4 * 90 + 70
    assert amx.memory(2) == Pools(200, 60 + 200 + 1 + 2 * 90 + 70)
    assert amx.memory(5) == Pools(400 + 60, 60)  # nothing in RAM for the CPU's kernels to copy
    assert amx.slowdown(2) == Shape(layers=(100,) * 4, output=60, output_cpu=1).slowdown(2)


def test_partial_offload_is_slower_the_more_lies_in_ram() -> None:
    times = [MODEL.slowdown(g, cpu_speed=0.1) for g in range(MODEL.max_layers + 1)]
    assert times[-1] == 1.0 and times == sorted(times, reverse=True)
    assert 8 < times[0] <= 10  # all of it read at a tenth of the speed


def test_the_most_layers_that_fit_else_none() -> None:
    assert place(MODEL, Pools(10**9, 10**9)) == 11
    assert place(MODEL, Pools(450, 10**9)) == 4  # 4 layers and the compute buffer
    assert place(MODEL, Pools(0, 10**9)) == 0
    assert place(MODEL, Pools(10**9, 10)) is None  # even all on the GPU leaves 20 bytes in RAM
    assert place(MODEL, Pools(450, 500)) is None  # 4 layers leave 700 bytes in RAM


def test_the_users_num_gpu_wins_or_the_load_is_refused() -> None:
    assert place(MODEL, Pools(10**9, 10**9), wanted=2) == 2
    assert place(MODEL, Pools(10**9, 10**9), wanted=500) == 11
    assert place(MODEL, Pools(100, 10**9), wanted=2) is None  # 2 layers + compute > 100
    assert place(MODEL, Pools(0, 10**9), wanted=5, gpu=False) == 0  # no GPU: num_gpu is moot


def test_all_or_nothing_refuses_what_does_not_fit_on_the_gpu() -> None:
    assert place(MODEL, Pools(1000, 10**9), partial=False) is None
    assert place(MODEL, Pools(2000, 10**9), partial=False) == 11


def test_processor_reads_as_ollama_ps() -> None:
    assert processor(Pools(0, 5)) == "100% CPU"
    assert processor(Pools(5, 0)) == "100% GPU"
    assert processor(Pools(52, 48)) == "48%/52% CPU/GPU"


shapes = st.builds(lambda n, size, out, host, compute: Shape((size,) * n, out, out, host, compute),
                   st.integers(0, 48), st.integers(1, 10**9), st.integers(0, 10**9),
                   st.integers(0, 10**9), st.integers(0, 10**9))
pools = st.builds(Pools, st.integers(0, 50 * GB), st.integers(0, 80 * GB))


@settings(max_examples=400, deadline=None)
@given(shapes, pools, st.one_of(st.none(), st.integers(0, 60)), st.booleans())
def test_a_placement_never_goes_over_either_pool(shape: Shape, free: Pools, wanted: int | None,
                                                 partial: bool) -> None:
    g = place(shape, free, wanted, partial=partial)
    if g is None:
        if wanted is None and partial:  # nothing fits: not even everything in RAM
            assert not free.holds(shape.memory(0))
        return
    assert free.holds(shape.memory(g))
    if wanted is not None:
        assert g == shape.clamp(wanted)
    elif partial:  # the most layers that fit: one more goes over
        assert g == shape.max_layers or not free.holds(shape.memory(g + 1))


def layered(gb: float, layers: int = 40) -> Shape:
    size = int(gb * GB)
    return Shape((size // layers,) * layers, size // 50, size // 50, size // 50, size // 30)


def gaming_pc() -> tuple[dict[str, SimModel], Pools]:
    models = {n: SimModel(n, layered(gb), load_s=gb * 2, vram_load_s_per_gb=0.25)
              for n, gb in {"small": 5.0, "mid": 9.0, "big": 16.0}.items()}
    return models, Pools(12 * GB, 32 * GB)


def test_a_model_larger_than_the_gpu_runs_partly_offloaded_where_all_or_nothing_refuses_it() -> None:
    models, memory = gaming_pc()
    trace = [Arrival(0.0, "big", 6.0)]
    assert simulate(Fifo(memory, partial=False), models, trace).outcomes[0].error
    for policy in (Fifo(memory), Forge(memory)):
        run = simulate(policy, models, trace)
        assert run.outcomes[0].finished and run.placements["big"] == [policy.config("big").gpu_layers]
        assert 0 < policy.config("big").gpu_layers < layered(16).max_layers
        assert policy.used.vram <= memory.vram and policy.used.ram <= memory.ram


def test_idle_models_are_evicted_for_more_layers_when_that_is_faster() -> None:
    """A queue of 20 for the big model: evicting the idle small one (a 10 s reload) buys layers
    that save more than that; one request does not."""
    models, memory = gaming_pc()
    warm = [Arrival(0.0, "small", 1.0), Arrival(0.0, "mid", 1.0)]
    busy = simulate(Forge(memory), models, warm + [Arrival(200.0, "big", 20.0) for _ in range(20)])
    once = simulate(Forge(memory), models, warm + [Arrival(200.0, "big", 0.5)])
    assert busy.evictions >= 1 and once.evictions == 0
    assert busy.placements["big"][0] > once.placements["big"][0]


def test_the_users_num_gpu_is_the_placement_in_the_scheduler() -> None:
    policy = Forge(Pools(12 * GB, 32 * GB))
    policy.register("m", "m", layered(5), 1.0, wanted_layers=7)
    run = simulate(policy, {"m": SimModel("m", layered(5), 1.0)}, [Arrival(0.0, "m", 1.0)])
    assert run.placements["m"] == [7] and policy.used.vram == layered(5).memory(7).vram


def test_every_layer_on_the_gpu_shows_as_ollama_shows_it() -> None:
    """llama.cpp keeps the input embeddings in RAM; Ollama still says `100% GPU` (issue 21)."""
    on_gpu = MODEL.memory(MODEL.max_layers)
    assert on_gpu.ram > 0  # what llama.cpp really holds in RAM
    for all_layers in (MODEL.max_layers, 99, -1):
        shown = as_ollama_shows(MODEL, all_layers, on_gpu)
        assert shown == Pools(on_gpu.total, 0)
        assert processor(shown) == "100% GPU"
    partly = MODEL.memory(5)
    assert as_ollama_shows(MODEL, 5, partly) == partly and processor(partly).endswith("CPU/GPU")
    cpu_build = Pools(0, on_gpu.total)  # llama.cpp without GPU offload: nothing went to a GPU
    assert as_ollama_shows(MODEL, -1, cpu_build) == cpu_build
    assert processor(as_ollama_shows(MODEL, -1, cpu_build)) == "100% CPU"


@settings(max_examples=300, deadline=None)
@given(shapes, pools, st.integers(0, 2 * GB), st.one_of(st.none(), st.integers(0, 60)))
def test_once_the_runner_overhead_is_known_no_placement_goes_over_the_vram_budget(
        bare: Shape, free: Pools, overhead: int, wanted: int | None) -> None:
    """What a runner really holds on the GPU is its buffers and its overhead (issue 21)."""
    g = place(bare.with_overhead(overhead), free, wanted)
    if g is not None and g > 0:
        assert bare.memory(g).vram + overhead <= free.vram
    if g == 0:
        assert bare.memory(0).vram == 0  # nothing on the GPU: no runner overhead there either


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 20), st.sampled_from(["small", "mid", "big"]), st.floats(0.1, 5)),
                min_size=1, max_size=25),
       st.integers(0, 3 * GB), st.integers(1, 14))
def test_policies_keep_every_runner_and_its_overhead_within_the_vram_budget(
        arrivals: list[tuple[float, str, float]], overhead: int, vram_gb: int) -> None:
    models, memory = gaming_pc()
    budget = Pools(vram_gb * GB, memory.ram)
    trace = sorted((Arrival(at, name, s) for at, name, s in arrivals), key=lambda a: a.at)
    for policy in (Fifo(budget), Forge(budget)):
        policy.know_overhead(overhead)
        run = simulate(policy, models, trace)
        assert run.peak_vram <= budget.vram
        for config in policy.configs.values():
            bare = models[config.key].footprint
            assert isinstance(bare, Shape)
            assert config.shape.memory(config.gpu_layers).vram == (
                bare.memory(config.gpu_layers).vram + (overhead if config.gpu_layers else 0))


def test_a_measured_load_corrects_the_layers_and_leaves_the_overhead_alone() -> None:
    shape = MODEL.with_overhead(500)
    measured = Pools(2 * (300 + 50) + 500, shape.memory(3).ram)  # buffers twice the estimate
    corrected = shape.corrected(3, measured)
    assert corrected.overhead == 500 and corrected.memory(3).vram == measured.vram
    assert corrected.memory(5).vram == 2 * (500 + 50) + 500  # the next placement: twice the layers
