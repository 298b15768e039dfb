"""preprocess is called from runner threads: concurrent calls give serial results; the
pool is sized to the CPUs the process may use and runs torch single-threaded."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import torch

from encoders.media import preprocess
from encoders.media.threads import usable_cpus
from tests.unit.encoders.media.conftest import MEDIA


def test_concurrent_calls_match_serial(media, make):
    items = [
        ("image", media("bird_image.jpg")),
        ("thermal", media("190662.jpg")),
        ("audio", media("bird_audio.wav")),
        ("audio", make.audio(make.sine(2.2, 22050, channels=2), 22050)),
        ("video", make.video(make.frames(30, 48, 64), 15)),
    ]
    serial = [preprocess(modality, data) for modality, data in items]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(preprocess, m, d) for m, d in items * 2]
        results = [f.result() for f in futures]
    for index, result in enumerate(results):
        assert torch.equal(result, serial[index % len(items)])


# --- the preprocessing pool: sized to the CPUs this process may use ---


def _cgroup(tmp_path, files: dict[str, str], proc: str):
    for name, text in files.items():
        path = tmp_path / "sys" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "proc").write_text(proc)
    return tmp_path / "sys", tmp_path / "proc"


def test_usable_cpus_follows_a_cgroup_v2_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    root, proc = _cgroup(
        tmp_path,
        {"cpu.max": "max 100000\n", "kubepods/pod1/cpu.max": "150000 100000\n"},
        "0::/kubepods/pod1\n",
    )
    assert usable_cpus(root, proc) == 2  # 1.5 CPUs of quota → 2 threads
    root, proc = _cgroup(tmp_path, {"kubepods/pod1/cpu.max": "max 100000\n"}, "0::/kubepods/pod1\n")
    assert usable_cpus(root, proc) == 16


def test_usable_cpus_follows_a_cgroup_v1_quota_and_the_affinity(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    root, proc = _cgroup(
        tmp_path,
        {"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "300000\n",
         "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n"},
        "4:cpu,cpuacct:/docker/x\n1:name=systemd:/docker/x\n",
    )  # fmt: skip
    assert usable_cpus(root, proc) == 3
    assert usable_cpus(tmp_path / "none", tmp_path / "missing") == 4  # no cgroup: affinity


def test_the_pool_is_capped_and_preprocesses_single_threaded(media, monkeypatch):
    import asyncio

    import encoders.micro_batcher as micro_batcher
    from encoders.imagebind.config import ImageBindConfig
    from encoders.imagebind.model import ImageBindModel

    monkeypatch.setattr(micro_batcher, "usable_cpus", lambda: 2)
    config = json.loads((MEDIA.parent / "imagebind" / "tiny_config.json").read_text())
    model = ImageBindModel(ImageBindConfig(**config["constructor_args"])).eval()
    seen: list[int] = []
    real = micro_batcher.Encoder._forward

    def forward(self, *args):
        seen.append(torch.get_num_threads())
        return real(self, *args)

    monkeypatch.setattr(micro_batcher.Encoder, "_forward", forward)

    async def run() -> list[int]:
        async with micro_batcher.Encoder(model, preprocess_workers=8) as encoder:
            assert encoder.preprocess_workers == 2
            loop = asyncio.get_running_loop()
            threads = await loop.run_in_executor(encoder._preprocess_pool, torch.get_num_threads)
            await encoder.encode("image", media("dog_image.jpg"))
            return [threads]

    before = torch.get_num_threads()
    assert asyncio.run(run()) == [1]
    assert seen == [before]  # the forward thread keeps the encoder's thread count
    assert torch.get_num_threads() == before
