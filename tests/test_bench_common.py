"""The benchmark's record of the machine it ran on (``bench/common.py``, loaded from the repository: the
benchmark is not part of the installed package)."""

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
