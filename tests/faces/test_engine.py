"""FaceEngine: the process pool with real dlib workers, its faults and its shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sozy.config import EngineSettings
from sozy.faces import (
    CorruptImage,
    EmptyImage,
    EngineClosed,
    FaceEngine,
    FaceEngineError,
    ImageTooLarge,
    NotAnImage,
    TaskTimeout,
    WorkerDied,
    plan_workers,
)
from sozy.faces.devices import worker_env as _worker_env
from sozy.faces.worker import TEST_EXIT, TEST_SLEEP
from tests.faces.images import distance
from tests.faces.test_decode import png_declaring

REPO_ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def settings(**changes) -> EngineSettings:
    return EngineSettings(**{"workers": 1, "device": "cpu", **changes})


# -- planning (pure: device counts are injected) ---------------------------------------------


def test_plan_on_cpu_uses_one_worker_per_core() -> None:
    plan = plan_workers(EngineSettings(), cpu_count=2, cuda_build=False, gpu_count=0)
    assert (plan.device, plan.workers, plan.batch, plan.detector) == ("cpu", 2, 1, "hog")
    assert plan.gpus == (None, None)
    assert plan.capacity == 8  # 4 per worker
    assert plan.model_id == "dlib_resnet_v1+5pt/hog-up0..1"


def test_plan_on_a_cuda_build_uses_one_batched_cnn_worker_per_gpu() -> None:
    plan = plan_workers(EngineSettings(), cpu_count=16, cuda_build=True, gpu_count=2)
    assert (plan.device, plan.workers, plan.batch, plan.detector) == ("cuda", 2, 16, "cnn")
    assert plan.gpus == (0, 1)
    assert plan.capacity == 2 * 32  # a batch running and the next one gathering, per worker
    assert plan.model_id == "dlib_resnet_v1+5pt/cnn-up0..1"


def test_plan_with_more_workers_than_gpus_shares_them_round_robin() -> None:
    plan = plan_workers(EngineSettings(workers=3, gpu_batch=4), cpu_count=8, cuda_build=True, gpu_count=2)
    assert plan.gpus == (0, 1, 0) and plan.batch == 4


def test_plan_falls_back_to_cpu_without_a_usable_gpu() -> None:
    assert plan_workers(EngineSettings(), cpu_count=4, cuda_build=True, gpu_count=0).device == "cpu"
    assert plan_workers(EngineSettings(), cpu_count=4, cuda_build=False, gpu_count=3).device == "cpu"
    forced_cpu = plan_workers(EngineSettings(device="cpu"), cpu_count=4, cuda_build=True, gpu_count=1)
    assert (forced_cpu.device, forced_cpu.workers) == ("cpu", 4)


def test_plan_refuses_cuda_that_is_not_there() -> None:
    with pytest.raises(FaceEngineError, match="without CUDA"):
        plan_workers(EngineSettings(device="cuda"), cpu_count=2, cuda_build=False, gpu_count=0)
    with pytest.raises(FaceEngineError, match="no GPU"):
        plan_workers(EngineSettings(device="cuda"), cpu_count=2, cuda_build=True, gpu_count=0)


def test_plan_with_onnxruntime_gpu_keeps_detection_on_every_core() -> None:
    plan = plan_workers(EngineSettings(), cpu_count=4, cuda_build=False, gpu_count=2, onnx_cuda=True)
    assert (plan.device, plan.workers, plan.batch, plan.detector) == ("cuda", 4, 16, "hog")
    assert (plan.dlib_device, plan.descriptor, plan.descriptor_device) == ("cpu", "onnx", "cuda")
    assert plan.gpus == (0, 1, 0, 1)
    assert plan.model_id == "dlib_resnet_v1+5pt/hog-up0..1"  # same vectors, same id
    both = plan_workers(EngineSettings(), cpu_count=4, cuda_build=True, gpu_count=1, onnx_cuda=True)
    assert (both.workers, both.detector, both.dlib_device, both.descriptor_device) == (1, "cnn", "cuda", "cuda")
    cpu = plan_workers(EngineSettings(device="cpu"), cpu_count=4, cuda_build=False, gpu_count=2, onnx_cuda=True)
    assert (cpu.device, cpu.descriptor_device, cpu.gpus) == ("cpu", "cpu", (None,) * 4)


def test_plan_descriptor_backends() -> None:
    plan = plan_workers(EngineSettings(), cpu_count=2, cuda_build=False, gpu_count=0)
    assert (plan.descriptor, plan.descriptor_device) == ("onnx", "cpu")
    # a CUDA dlib without onnxruntime-gpu: dlib's descriptor on the GPU beats ONNX on a CPU
    dlib_gpu = plan_workers(EngineSettings(), cpu_count=8, cuda_build=True, gpu_count=1)
    assert (dlib_gpu.descriptor, dlib_gpu.descriptor_device) == ("dlib", "cuda")
    # descriptor = dlib asks nothing of onnxruntime, even when it could use the GPU
    no_dlib_gpu = plan_workers(
        EngineSettings(descriptor="dlib"), cpu_count=2, cuda_build=False, gpu_count=1, onnx_cuda=True
    )
    assert (no_dlib_gpu.device, no_dlib_gpu.descriptor) == ("cpu", "dlib")


def test_plan_refuses_cuda_without_onnxruntime_gpu_or_a_gpu() -> None:
    with pytest.raises(FaceEngineError, match=r"onnxruntime-gpu \(pip install 'sozy\[gpu\]'"):
        plan_workers(EngineSettings(device="cuda"), cpu_count=2, cuda_build=False, gpu_count=1)
    with pytest.raises(FaceEngineError, match="no GPU"):
        plan_workers(EngineSettings(device="cuda"), cpu_count=2, cuda_build=False, gpu_count=0, onnx_cuda=True)


def test_plan_overrides() -> None:
    plan = plan_workers(
        EngineSettings(workers=3, max_in_flight=5, detector="cnn", upsample=0),
        cpu_count=2,
        cuda_build=False,
        gpu_count=0,
        batch_size=2,
    )
    assert (plan.workers, plan.capacity, plan.batch, plan.detector) == (3, 5, 2, "cnn")
    assert plan.model_id == "dlib_resnet_v1+5pt/cnn-up0"


def test_worker_environment() -> None:
    env = _worker_env("/opt/fast-dlib", gpu=1)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == "/opt/fast-dlib"
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["OPENBLAS_NUM_THREADS"] == "1" and env["OMP_NUM_THREADS"] == "1"
    # CPU workers keep whatever the caller had (a CUDA build of dlib still needs its GPUs visible).
    assert _worker_env("", gpu=None).get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
    assert _worker_env("", gpu=None)["PYTHONPATH"].split(os.pathsep)[0] != "/opt/fast-dlib"


# -- embedding -----------------------------------------------------------------------------


async def test_embed_gives_the_same_faces_as_the_analyzer(photo_bytes, shared_embeddings, caplog) -> None:
    caplog.set_level(logging.INFO, logger="sozy.faces.engine")
    async with FaceEngine(EngineSettings(workers=2)) as engine:
        assert (engine.workers, engine.device, engine.capacity) == (2, "cpu", 8)
        assert engine.model_id == "dlib_resnet_v1+5pt/hog-up0..1"
        assert len(engine.worker_pids) == 2
        rels = ["obama/obama.jpg", "group/obama-biden-and-one-more.jpg", "kit_harington/kit-harington2.jpg"]
        results = await asyncio.gather(*(engine.embed(photo_bytes(r)) for r in rels))
        assert engine.in_flight == 0
    assert "2 worker(s) on cpu" in caplog.text
    for rel, got in zip(rels, results, strict=False):
        expected = shared_embeddings[rel]
        assert (got.width, got.height, got.model) == (expected.width, expected.height, expected.model)
        assert [f.box for f in got.faces] == [f.box for f in expected.faces]
        for a, b in zip(got.faces, expected.faces, strict=False):
            assert distance(a.vector, b.vector) < 1e-5


async def test_bad_input_arrives_as_the_same_typed_error(photo_bytes) -> None:
    async with FaceEngine(settings(max_pixels=10_000_000)) as engine:
        with pytest.raises(NotAnImage):
            await engine.embed(b"<html><title>Forbidden</title></html>")
        with pytest.raises(EmptyImage):
            await engine.embed(b"")
        with pytest.raises(CorruptImage):
            await engine.embed(photo_bytes("obama/obama.jpg")[:4000])
        with pytest.raises(ImageTooLarge) as info:
            await engine.embed(png_declaring(5000, 5000))
        assert info.value.code == "too_many_pixels"
        results = await engine.embed_many([photo_bytes("obama/obama-small.jpg"), b"GIF89a broken", b"plain text"])
        assert len(results[0].faces) == 1
        assert isinstance(results[1], CorruptImage) and isinstance(results[2], NotAnImage)
        assert engine.stats["worker_deaths"] == 0  # bad photos never cost a worker


async def test_engine_must_be_started() -> None:
    engine = FaceEngine(settings())
    with pytest.raises(EngineClosed, match="not started"):
        await engine.embed(b"x")
    await engine.close()  # closing an engine that never started is fine


async def test_batched_worker_on_cpu(photo_bytes, shared_embeddings) -> None:
    """The GPU dispatch path (several photos per worker task), here with HOG on CPU."""
    async with FaceEngine(settings(max_side=1024), batch_size=3) as engine:
        assert engine.batch == 3 and engine.capacity == 6
        rels = ["obama/obama-small.jpg", "group/kit-harington-and-rose-leslie.jpg", "biden/biden.jpg"]
        results = await engine.embed_many([photo_bytes(r) for r in rels] + [b"not an image"])
        assert engine.stats["largest_batch"] == 3
        assert isinstance(results[3], NotAnImage)
    for rel, got in zip(rels, results, strict=False):
        assert [f.box for f in got.faces] == [f.box for f in shared_embeddings[rel].faces]


@pytest.mark.slow
async def test_batched_cnn_worker_on_cpu(photo_bytes) -> None:
    """The whole CUDA-style path (letterboxed batched mmod CNN) run by a CPU worker."""
    async with FaceEngine(settings(detector="cnn", max_side=300), batch_size=2) as engine:
        assert engine.model_id == "dlib_resnet_v1+5pt/cnn-up0..1"
        results = await engine.embed_many(
            [photo_bytes("obama/obama-small.jpg"), photo_bytes("group/kit-harington-and-rose-leslie.jpg")]
        )
        assert engine.stats["largest_batch"] == 2 and engine.stats["batches"] == 1
    assert [len(r.faces) for r in results] == [1, 2]


# -- faults ---------------------------------------------------------------------------------


async def test_sigkill_mid_task_fails_only_that_task(photo_bytes) -> None:
    async with FaceEngine(settings(workers=2), test_hooks=True) as engine:
        doomed = asyncio.ensure_future(engine._test_task(TEST_SLEEP, 60))
        await wait_until(lambda: len(engine.busy_pids) == 1)
        victim = engine.busy_pids[0]
        survivor = asyncio.ensure_future(engine.embed(photo_bytes("obama/obama.jpg")))
        await wait_until(lambda: len(engine.busy_pids) == 2)
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerDied, match="SIGKILL") as info:
            await doomed
        assert info.value.code == "worker_died"
        assert len((await survivor).faces) == 1  # the other worker carried on
        await wait_until(lambda: len(engine.worker_pids) == 2)  # a replacement took the slot
        assert victim not in engine.worker_pids and not alive(victim)
        assert len((await engine.embed(photo_bytes("obama/obama-small.jpg"))).faces) == 1
        assert engine.stats["worker_deaths"] == 1


async def test_os_exit_in_a_worker_is_reported_with_its_code(photo_bytes) -> None:
    async with FaceEngine(settings(), test_hooks=True) as engine:
        with pytest.raises(WorkerDied, match="exited with code 3"):
            await engine._test_task(TEST_EXIT, 3)
        # The single slot is refilled; queued work simply waits for the replacement.
        assert len((await engine.embed(photo_bytes("obama/obama-small.jpg"))).faces) == 1


async def test_test_tasks_need_the_test_hooks() -> None:
    async with FaceEngine(settings()) as engine:
        with pytest.raises(RuntimeError, match="test_hooks"):
            await engine._test_task(TEST_EXIT, 1)


async def test_timeout_kills_and_replaces_the_worker(photo_bytes) -> None:
    async with FaceEngine(settings(task_timeout_s=1.0), test_hooks=True) as engine:
        stuck = engine.worker_pids[0]
        started = time.monotonic()
        with pytest.raises(TaskTimeout) as info:
            await engine._test_task(TEST_SLEEP, 60)
        assert time.monotonic() - started < 10
        assert info.value.code == "task_timeout"
        await wait_until(lambda: not alive(stuck))
        assert len((await engine.embed(photo_bytes("obama/obama-small.jpg"))).faces) == 1
        assert stuck not in engine.worker_pids
        assert engine.stats["timeouts"] == 1


async def test_backpressure_bounds_the_tasks_in_flight() -> None:
    async with FaceEngine(settings(max_in_flight=2), test_hooks=True) as engine:
        assert engine.capacity == 2
        tasks = [asyncio.ensure_future(engine._test_task(TEST_SLEEP, 0.4)) for _ in range(3)]
        await wait_until(lambda: engine.in_flight == 2)
        await asyncio.sleep(0.1)
        assert engine.in_flight == 2  # the third caller waits for a slot
        assert not any(t.done() for t in tasks)
        peak = 0
        while not all(t.done() for t in tasks):
            peak = max(peak, engine.in_flight)
            await asyncio.sleep(0.02)
        assert peak <= 2
        assert len(set(await asyncio.gather(*tasks))) == 1  # all ran on the one worker
        assert engine.in_flight == 0


# -- shutdown -------------------------------------------------------------------------------


async def test_close_stops_every_worker_and_is_idempotent() -> None:
    engine = FaceEngine(settings(workers=2), test_hooks=True)
    await engine.start()
    pids = engine.worker_pids
    assert len(pids) == 2 and all(alive(p) for p in pids)
    running = asyncio.ensure_future(engine._test_task(TEST_SLEEP, 60))
    await wait_until(lambda: engine.busy_pids != [])
    await asyncio.gather(engine.close(), engine.close())
    with pytest.raises(EngineClosed):
        await running  # a task running at close is failed, not left hanging
    assert not any(alive(p) for p in pids)
    await engine.close()
    with pytest.raises(EngineClosed):
        await engine.embed(b"x")


WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from sozy.config import EngineSettings
    from sozy.faces import FaceEngine

    async def main(mode):
        engine = FaceEngine(EngineSettings(workers=2, device="cpu"))
        await engine.start()
        print(*engine.worker_pids, flush=True)
        if mode == "exit-without-close":
            return  # the atexit hook must stop the workers
        async with engine:
            await asyncio.sleep(120)  # Ctrl-C or SIGKILL arrives here

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["exit-without-close", "sigint", "sigkill-parent"])
def test_no_orphan_workers(mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        line = proc.stdout.readline().decode()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, line if line else proc.stderr.read().decode()[-2000:]
        if mode == "sigint":
            proc.send_signal(signal.SIGINT)
        elif mode == "sigkill-parent":
            proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids), f"orphans left after {mode}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
