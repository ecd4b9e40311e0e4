"""The benchmarks' record of the machine they ran on (``bench/common.py``) and the throughput benchmark's
configurations (``bench/throughput.py``), loaded from the repository: the benchmarks are not part of the
installed package."""

import functools
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def _common():
    spec = importlib.util.spec_from_file_location("bench_common", os.path.join(ROOT, "bench", "common.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look the module up while they are defined
    spec.loader.exec_module(module)
    return module


X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx fma avx2 avx512f avx512_bf16 sha_ni

processor\t: 1
vendor_id\t: OtherVendor
model name\t: Not the first CPU
flags\t\t: fpu
"""

ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm sve
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def test_cpuinfo_is_read_from_the_first_cpu_with_its_vector_extensions():
    common = _common()
    assert common.parse_cpuinfo(X86) == {
        "model": "AMD EPYC", "vendor": "AuthenticAMD", "family": "26", "model_number": "2",
        "vector_extensions": ["avx", "avx2", "fma", "avx512f", "avx512_bf16"],
    }
    assert common.parse_cpuinfo(ARM) == {"implementer": "0x41", "part": "0xd0c", "vector_extensions": ["asimd", "sve"]}
    assert common.parse_cpuinfo("") == {}


def test_machine_info_names_the_cpu():
    cpu = _common().machine_info()["cpu"]
    assert isinstance(cpu["model"], str) and cpu["model"]


@functools.cache
def _throughput():
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)  # bench/throughput.py imports bench.common as a package
    import bench.throughput

    return bench.throughput


def test_the_throughput_benchmark_measures_every_width_at_every_depth_asked_for():
    tp = _throughput()
    args = tp.parse_args(["--path", "engine", "--widths", "32,128", "--depths", "1,3", "--no-mixed",
                          "--out", os.devnull])
    configs = tp.configurations(args)
    assert [name for name, _, _ in configs] == ["W32xD1", "W128xD1", "W32xD3", "W128xD3"]
    for name, layout, members_of in configs:
        width, depth = (int(v) for v in name[1:].split("xD"))
        assert (layout.max_units, layout.max_layers) == (width, depth)  # a program of exactly that depth
        assert members_of(3) == [(depth, width)] * 3
    # The default keeps the names of earlier result files (depth 2 only), and the mixed population.
    default = tp.configurations(tp.parse_args(["--widths", "32", "--out", os.devnull]))
    assert [name for name, _, _ in default] == ["W32", "mixed"]
    assert default[0][1].max_layers == 2
