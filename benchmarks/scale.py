"""A large study simulated on one machine: datasets, a Dask cluster, driver memory, resume.

Run with ``python benchmarks/scale.py``. The study: ``--sets`` image sets
(16 seeded noise images of 32 x 32 each, so 16 x 16 RDMs) x 4 small seeded CNNs
(every layer, 'corr', both activation types: 16 RDMs per image set x model).
The images are PNG files in a temporary folder.
Prints:

1. wall time of the study written to a dataset, run here (serial, with
   torch's threads and with one thread) and on a Dask cluster of a scheduler
   and 2 workers (one thread each), each a process of its own started with
   the ``dask`` command, the ratio, and whether the cluster's dataset
   equals the one-thread serial one bit for bit (float sums depend on the
   thread count in their last digits);
2. the driver's peak memory at several study sizes (``--sets`` / 2,
   ``--sets`` and, on the cluster, 4 x ``--sets``), each in a process of its
   own: the peak resident memory above
   that before the call (sampled every 5 ms) and the peak of the Python and
   numpy allocations during the call (tracemalloc), for a dataset on the
   cluster (``collect=False``: it
   should stay flat) and for a single file run here (the whole frame is
   held and rewritten: it grows with the study);
3. the time to resume the study: with every part on disk (listing only), and
   with half of the parts removed (listing plus the missing half);
4. bytes on disk per RDM, whole float64 and ``matrix_storage='condensed_float32'``.

Every run but ``--threaded``'s uses one torch thread in the driver. Options:
``--sets`` (default 200), ``--skip-memory``, ``--threaded`` (also the serial
run with torch's own thread count).
"""

import argparse
import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis.testing import assert_frames_identical

WIDTHS = (4, 8, 12, 16)
TRANSFORM = transforms.ToTensor()
IMAGES = tempfile.mkdtemp()
atexit.register(shutil.rmtree, IMAGES, ignore_errors=True)


def small_cnn(width, seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2), nn.ReLU(), nn.Conv2d(width, width, 3, stride=2),
        nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, 10),
    ).eval()


def study(num_sets):
    """Image sets of 16 seeded noise images, 32 x 32, as files (as a real study's)."""
    folder = Path(IMAGES)
    image_sets = []
    for number in range(num_sets):
        images = {}
        for entry in range(16):
            path = folder / f"obj{number:04d}_{entry:02d}.png"
            if not path.exists():
                pixels = np.random.default_rng([number, entry]).integers(0, 256, (32, 32, 3))
                Image.fromarray(pixels.astype(np.uint8)).save(path)
            images[(f"{entry:02d}",)] = os.fspath(path)
        image_sets.append(({"obj": f"obj{number:04d}"}, images, ("entry",), []))
    models = {f"cnn{width}": small_cnn(width, seed) for seed, width in enumerate(WIDTHS)}
    return image_sets, models


def run(num_sets, out, client=False, made=None, **options):
    image_sets, models = made or study(num_sets)
    start = time.perf_counter()
    result = pfa.get_rdms(image_sets, models, out, "scale", transform=TRANSFORM, verbose=False,
                          client=client, **options)
    return time.perf_counter() - start, result


@contextlib.contextmanager
def cluster():
    """A client of a scheduler and 2 workers (one thread each), each in a process of its own.

    As on a real cluster, the scheduler does not run in this (the driver's) process.
    """
    import distributed

    with tempfile.TemporaryDirectory() as tmp:
        address_file = f"{tmp}/scheduler.json"
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes = [subprocess.Popen(["dask", "scheduler", "--port", "0", "--no-dashboard",
                                       "--scheduler-file", address_file], **quiet)]
        try:
            processes.append(subprocess.Popen(
                ["dask", "worker", "--scheduler-file", address_file, "--nworkers", "2",
                 "--nthreads", "1", "--no-dashboard"], **quiet))
            while not os.path.exists(address_file):
                time.sleep(0.1)
            with distributed.Client(scheduler_file=address_file) as client:
                client.wait_for_workers(2)
                yield client
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait()


def folder_bytes(folder):
    return sum(p.stat().st_size for p in Path(folder).rglob("*.parquet"))


def sorted_frame(frame):
    keys = ["model", "obj", "layer_num", "activation_type"]
    return frame.sort_values(keys).reset_index(drop=True)


def speed(num_sets, tmp, threaded):
    threads = torch.get_num_threads()
    threaded_s = run(num_sets, f"{tmp}/threaded/", collect=False)[0] if threaded else None
    torch.set_num_threads(1)  # as each worker: the same sums, so the same bits
    serial_s, _ = run(num_sets, f"{tmp}/serial/", collect=False)
    with cluster() as client:
        cluster_s, _ = run(num_sets, f"{tmp}/cluster/", client=client, collect=False)
    equal = True
    try:
        assert_frames_identical(sorted_frame(pfa.load_frame(f"{tmp}/serial")),
                                    sorted_frame(pfa.load_frame(f"{tmp}/cluster")))
    except AssertionError:
        equal = False
    tasks = num_sets * len(WIDTHS)
    print(f"1. {num_sets} image sets x {len(WIDTHS)} models = {tasks} parts, "
          f"{tasks * 16} RDMs")
    if threaded:
        print(f"   serial, {threads} torch threads: {threaded_s:7.1f} s  "
              f"({1000 * threaded_s / tasks:.0f} ms/part)")
    print(f"   serial, 1 torch thread:  {serial_s:7.1f} s  ({1000 * serial_s / tasks:.0f} ms/part)")
    print(f"   2-worker Dask cluster:   {cluster_s:7.1f} s  ({1000 * cluster_s / tasks:.0f} ms/part)"
          f"  serial / cluster = {serial_s / cluster_s:.2f}")
    print(f"   cluster dataset equal to the 1-thread serial one bit for bit: {equal}")


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class ResidentPeak(threading.Thread):
    """The peak resident memory above its start, sampled every 5 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.start_bytes = self.peak = resident_bytes()
        self.running = True

    def run(self):
        while self.running:
            self.peak = max(self.peak, resident_bytes())
            time.sleep(0.005)

    def stop(self):
        self.running = False
        self.join()
        return self.peak - self.start_bytes


def memory_case(mode, num_sets):
    """Run one study in this process; print the driver's peaks (for the parent to read)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp, (
            cluster() if mode == "cluster" else contextlib.nullcontext(False)) as client:
        run(2, f"{tmp}/warm/", client=client, collect=False)  # imports, first calls
        made = study(num_sets)  # the image sets are the user's input, held before the call
        sampler = ResidentPeak()
        sampler.start()
        tracemalloc.start()
        if mode == "cluster":
            run(num_sets, f"{tmp}/study/", client=client, made=made, collect=False)
        else:
            run(num_sets, f"{tmp}/study.parquet", made=made)
        peak = tracemalloc.get_traced_memory()[1]
        rss = sampler.stop()
    print(f"{rss} {peak}")


def memory(num_sets):
    print("2. driver peak memory during the call (resident above the start / Python and numpy "
          "allocations)")
    sizes = {"cluster": (num_sets // 2, num_sets, 4 * num_sets), "file": (num_sets // 2, num_sets)}
    for mode, label in (("cluster", "dataset on the cluster"), ("file", "single file, here")):
        for size in sizes[mode]:
            output = subprocess.run([sys.executable, __file__, "--memory-case", mode, str(size)],
                                    capture_output=True, text=True, check=True).stdout
            rss, peak = map(int, output.split()[-2:])
            print(f"   {label:24s} {size:4d} sets: {rss / 1e6:7.1f} MB resident, "
                  f"{peak / 1e6:7.1f} MB allocated")


def resume(num_sets, tmp):
    folder = f"{tmp}/serial/"
    full_s, _ = run(num_sets, folder, collect=False)
    parts = sorted(Path(folder).rglob("*.parquet"))
    for path in parts[::2]:
        path.unlink()
    half_s, _ = run(num_sets, folder, collect=False)
    print(f"3. resume: {len(parts)} parts all on disk {full_s:.1f} s (listing only); "
          f"{len(parts[::2])} parts missing {half_s:.1f} s")


def disk(tmp):
    num_sets = 20
    for storage in ("float64", "condensed_float32"):
        folder = f"{tmp}/disk_{storage}/"
        _, frame = run(num_sets, folder, matrix_storage=storage)
        print(f"4. bytes on disk per RDM ({storage}, 16 x 16 matrices, metadata included): "
              f"{folder_bytes(folder) / len(frame):.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=200)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--threaded", action="store_true",
                        help="also time the serial run with torch's own thread count")
    parser.add_argument("--memory-case", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_case:
        memory_case(args.memory_case[0], int(args.memory_case[1]))
        return
    print(f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}")
    tmp = tempfile.mkdtemp()
    try:
        speed(args.sets, tmp, args.threaded)
        if not args.skip_memory:
            memory(args.sets)
        resume(args.sets, tmp)
        disk(tmp)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
