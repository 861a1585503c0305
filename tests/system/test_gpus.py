"""GPUs through NVML: a test double at the nvidia-ml-py boundary (``fake_nvml``),
and the real library where an NVIDIA driver is (skipped here, with the reason)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from trainwatch.core.box import BoxFacts
from trainwatch.system import gpus
from trainwatch.system.gpus import Nvml
from trainwatch.system.probe import BoxWatch

from .fake_nvml import FakeGpu, FakeNvml, pynvml
from .helpers import launched, python, script, session, wait_for

NO_DRIVER = "no NVIDIA driver on this machine (/proc/driver/nvidia/version is absent)"


def test_without_a_driver_nothing_is_imported_or_shown() -> None:
    if gpus.driver_present():
        pytest.skip("this machine has an NVIDIA driver")
    code = (
        "import sys; from trainwatch.system.gpus import Nvml; "
        "assert Nvml.open() is None; assert 'pynvml' not in sys.modules; print('ok')"
    )
    out = subprocess.run([python(), "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_driver_without_a_working_nvml_is_no_error() -> None:
    assert Nvml.open(FakeNvml([FakeGpu()], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)) is None
    assert Nvml.open(FakeNvml([FakeGpu()], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)) is None


def test_several_gpus_in_the_units_the_library_gives() -> None:
    lib = FakeNvml([FakeGpu(procs={10: 512}), FakeGpu(name="NVIDIA H100 80GB HBM3", util=3, power_mw=None)])
    nvml = Nvml.open(lib)
    assert nvml is not None
    first, second = nvml.sample()
    assert (first.index, first.name, first.util_pct) == (0, "NVIDIA A100-SXM4-80GB", 97.0)
    assert (first.mem_used_mib, first.mem_total_mib) == (71_000.0, 81_920.0)
    assert (first.power_w, first.power_limit_w, first.temp_c) == (380.5, 400.0, 63.0)
    assert first.processes == {10: 512.0}
    assert second.power_w is None  # NVML_ERROR_NOT_SUPPORTED: this GPU does not say
    assert second.util_pct == 3.0 and second.processes == {}
    nvml.close()
    assert lib.shut


def test_a_gpu_lost_mid_run_is_left_out_and_remembered() -> None:
    lib = FakeNvml([FakeGpu(), FakeGpu()])
    nvml = Nvml.open(lib)
    assert nvml is not None
    assert [d.index for d in nvml.sample()] == [0, 1]
    lib.gpus[1].lost = True
    assert [d.index for d in nvml.sample()] == [0]
    assert nvml.lost == {1}
    lib.gpus[1].lost = False  # a lost GPU does not come back without a reset: not asked again
    assert [d.index for d in nvml.sample()] == [0]


def _probe(lib: FakeNvml, clock: list[float], wall: list[float]) -> BoxWatch:
    return BoxWatch(nvml=Nvml.open(lib), clock=lambda: clock[0], wall=lambda: wall[0], sample_every=5.0)


def test_a_runs_gpus_are_those_of_its_processes_and_their_children(tmp_path: Path) -> None:
    """Writer on GPU 0, a quiet worker (a child that does not hold the log) on
    GPUs 0 and 2, a stranger on GPU 1: the run has GPUs 0 and 2."""
    loop, log = script(tmp_path), tmp_path / "train.log"
    command = f"exec {python()} {loop} --workers 1 --quiet-workers > {log}"
    with launched(command, log) as proc:
        wait_for(lambda: len(session(proc.pid)) >= 2)
        (worker,) = [p for p in session(proc.pid) if p != proc.pid]
        lib = FakeNvml(
            [
                FakeGpu(util=97, procs={proc.pid: 30_000, worker: 1_000}),
                FakeGpu(util=50, procs={1: 2_000}),
                FakeGpu(util=88, procs={worker: None}),
            ]
        )
        clock, wall = [100.0], [1_000_000.0]
        probe = _probe(lib, clock, wall)
        try:
            facts = probe.look([str(log)], [str(log)])[str(log)]
            assert facts.writer is not None and facts.writer.pid == proc.pid
            assert facts.writer.pids == (proc.pid,)  # the quiet worker does not write the log
            assert [g.index for g in facts.gpus] == [0, 2]
            assert [g.run_mem_mib for g in facts.gpus] == [31_000.0, None]
            assert facts.gpus[0].util_history == ((1_000_000.0, 97.0),)
            # Five seconds on: sampled again; a GPU lost meanwhile is said so.
            lib.gpus[0].util = 2
            lib.gpus[2].lost = True
            clock[0], wall[0] = 105.0, 1_000_005.0
            later = probe.look([str(log)], [])[str(log)]
            assert [g.index for g in later.gpus] == [0]
            assert later.gpus[0].util_history == ((1_000_000.0, 97.0), (1_000_005.0, 2.0))
            assert later.lost_gpus == (2,)
            assert later.writer is not None and later.writer.cpu_pct is not None  # a second sample measures
        finally:
            probe.close()


def test_no_sample_between_samples(tmp_path: Path) -> None:
    loop, log = script(tmp_path), tmp_path / "train.log"
    with launched(f"exec {python()} {loop} > {log}", log) as proc:
        lib = FakeNvml([FakeGpu(procs={proc.pid: 100})])
        clock, wall = [0.0], [0.0]
        probe = _probe(lib, clock, wall)
        try:
            first = probe.look([str(log)], [str(log)])[str(log)]
            lib.gpus[0].util = 5
            clock[0] = 4.0
            assert probe.look([str(log)], [str(log)])[str(log)] == first  # under 5 s: the same facts
            assert probe.next_due() == 5.0
        finally:
            probe.close()


def test_idle_gpus_and_impossible_mfu_become_warnings() -> None:
    from trainwatch.core import box
    from trainwatch.core.box import Gpu

    def facts(utils: list[float]) -> BoxFacts:
        history = tuple((1000.0 + 5 * k, u) for k, u in enumerate(utils))
        gpu = Gpu(0, "A100", utils[-1], 1.0, 2.0, 100.0, 400.0, 50.0, util_history=history)
        return BoxFacts(gpus=(gpu,))

    idle = facts([90.0] + [1.0] * 13)  # 65 s of samples, the last minute under 5 %
    assert any("GPUs idle" in w for w in box.gpu_warnings(idle, True, None))
    assert not any("GPUs idle" in w for w in box.gpu_warnings(idle, False, None))  # finished: fine
    assert box.gpu_warnings(facts([1.0] * 5), True, None) == ()  # not yet a minute of samples
    busy = facts([30.0] * 14)
    (mfu,) = box.gpu_warnings(busy, True, 55.0)
    assert mfu.startswith("logged MFU 55.0 % is more than the GPUs' utilisation allows (busy 30 %")
    assert box.gpu_warnings(busy, True, 27.0) == ()


@pytest.mark.skipif(not gpus.driver_present(), reason=NO_DRIVER)
def test_the_real_library_on_this_machine() -> None:  # pragma: no cover (needs a GPU)
    nvml = Nvml.open()
    assert nvml is not None, "a driver is here, but NVML did not start"
    try:
        for device in nvml.sample():
            assert isinstance(device.name, str) and device.name
            assert device.mem_total_mib is None or device.mem_total_mib > 0
            assert device.util_pct is None or 0 <= device.util_pct <= 100
            assert all(isinstance(pid, int) for pid in device.processes)
    finally:
        nvml.close()


@pytest.mark.skipif(not gpus.driver_present(), reason=NO_DRIVER)
def test_the_real_library_sees_a_cuda_process(tmp_path: Path) -> None:  # pragma: no cover (needs a GPU)
    torch = pytest.importorskip("torch", reason="torch is not installed: no CUDA process to start")
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available to torch")
    loop = tmp_path / "cuda_loop.py"
    loop.write_text(
        "import time, torch\n"
        "x = torch.ones(1 << 20, device='cuda')\n"
        "for i in range(10_000):\n"
        "    print(f'iter {i}: loss 1.0, time 1.00ms, mfu 1.00%', flush=True)\n"
        "    time.sleep(0.05)\n"
    )
    log = tmp_path / "train.log"
    with launched(f"exec {python()} {loop} > {log}", log) as proc:
        probe = BoxWatch()
        try:
            facts = probe.look([str(log)], [str(log)])[str(log)]
            assert facts.writer is not None and facts.writer.pid == proc.pid
            assert facts.gpus, "NVML lists no GPU with the run's process on it"
            assert all(g.mem_total_mib for g in facts.gpus)
        finally:
            probe.close()
