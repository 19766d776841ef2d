"""An aarch64 interpreter on an x86-64 Linux host: a Debian arm64 root run by qemu-user.

``python -m audit platform aarch64`` builds (or reuses) the root and prints the path of an
interpreter wrapper that ``run --python``, ``sweep --python`` and the matrix accept.  The
worker runs emulated; the host stays native.

Layout under :data:`ARM_DIR` (``.nox/arm64`` unless ``AUDIT_ARM64_DIR``)::

    base/                debootstrap --arch=arm64 --variant=minbase bookworm (python3, venv)
    wheels/<key>/        aarch64 wheels, downloaded natively by the host's pip
    <key>/root/          a copy of base with /opt/venv holding torch, numpy and xxhash
    <key>/python         the wrapper: QEMU_CPU=<class> picks the CPU class

The wheels are installed by the *host's* pip (``--target`` with aarch64 platform tags), which
is minutes faster than pip under emulation.  A root is reused while its marker says it was
built from the same pins; :func:`check_tools` fails in one line before anything starts when
root or a Debian package is missing.

Each CPU class gets a synthetic ``/proc/cpuinfo`` and ``/sys/devices/system/cpu`` inside the
root (MIDR and caches of the real part; the feature list is qemu's own ``AT_HWCAP`` answer
for that model), so torch's cpuinfo, oneDNN and OpenBLAS see the emulated CPU, as they
would on the hardware, and never the host's.  The wrapper mounts them in a private mount
namespace (``unshare --mount``), so runs of different classes can go on at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from audit.errors import UsageError
from audit.runner import cells

ROOT = cells.ROOT
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
GUEST_PYTHON = "3.11"  # bookworm's python3
DEFAULT_TORCH = "2.13.0"
DEFAULT_NUMPY = "2.4.6"
# the x86 reference's: without pandas its probes would 'no longer run' on arm64
DEFAULT_PANDAS = "3.1.1"
MARKER = ".audit-arm64.json"
PACKAGES = ("python3", "python3-venv", "ca-certificates")

#: glibc tags the aarch64 wheels on the index use (pip's --platform takes no ranges).
PLATFORMS = tuple(f"manylinux_2_{v}_aarch64" for v in (17, 24, 25, 26, 27, 28, 29, 31, 34, 35)) + (
    "manylinux2014_aarch64",
    "linux_aarch64",
    "any",
)


@dataclass(frozen=True)
class CpuClass:
    """One ARM CPU class: qemu's model string and the MIDR/caches of the part it imitates (the
    environment names the part from the MIDR: :data:`audit.worker.environment.ARM_PARTS`)."""

    name: str
    qemu: str  # what QEMU_CPU / -cpu gets
    implementer: int
    part: int
    variant: int
    revision: int
    caches: Tuple[Tuple[int, str, str], ...]  # (level, type, size)
    like: str  # real machines of this class, for the reader

    @property
    def midr(self) -> int:
        return (
            (self.implementer << 24)
            | (self.variant << 20)
            | (0xF << 16)
            | (self.part << 4)
            | self.revision
        )


_N1_CACHES = (
    (1, "Data", "64K"),
    (1, "Instruction", "64K"),
    (2, "Unified", "1024K"),
    (3, "Unified", "32768K"),
)

#: The CPU classes ``QEMU_CPU`` takes.  ``max``'s MIDR is qemu's own (implementer 0, part 'Q').
CPU_CLASSES: Dict[str, CpuClass] = {
    c.name: c
    for c in (
        CpuClass(
            "neoverse-n1",
            "neoverse-n1",
            0x41,
            0xD0C,
            4,
            1,
            _N1_CACHES,
            "NEON only: Graviton 2, Ampere Altra",
        ),
        CpuClass(
            "a64fx",
            "a64fx",
            0x46,
            0x001,
            1,
            0,
            ((1, "Data", "64K"), (1, "Instruction", "64K"), (2, "Unified", "8192K")),
            "SVE-512: Fugaku",
        ),
        CpuClass(
            "max-sve256",
            "max,sve-default-vector-length=32",
            0x00,
            0x051,
            0,
            0,
            _N1_CACHES,
            "SVE-256: Graviton 3, Grace",
        ),
        CpuClass(
            "max",
            "max",
            0x00,
            0x051,
            0,
            0,
            _N1_CACHES,
            "every feature qemu has",
        ),
    )
}
DEFAULT_CLASS = "neoverse-n1"

#: Linux's arm64 hwcap names, by bit (arch/arm64/include/uapi/asm/hwcap.h).
HWCAP = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma "
    "lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg"
).split()
HWCAP2 = (
    "dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm "
    "svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme sme_i16i64 sme_f64f64 sme_i8i32 "
    "sme_f16f32 sme_b16f32 sme_f32f32 sme_fa64 wfxt ebf16 sve_ebf16 cssc rprfm sve2p1"
).split()

Run = Callable[[Sequence[str]], object]
Log = Callable[[str], None]


#: The arm64 environment could not be built (a cell's error: exit 3, one line).
BuildError = cells.BuildError


def arm_dir() -> str:
    return os.environ.get("AUDIT_ARM64_DIR") or os.path.join(ROOT, ".nox", "arm64")


def pins(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """torch/numpy/pandas versions from ``AUDIT_TORCH``/``AUDIT_NUMPY``/``AUDIT_PANDAS`` (one
    version each here; pandas ``none`` leaves it out)."""
    environ = dict(os.environ) if environ is None else environ
    out = {}
    for name, default in (
        ("torch", DEFAULT_TORCH),
        ("numpy", DEFAULT_NUMPY),
        ("pandas", DEFAULT_PANDAS),
    ):
        value = environ.get(f"AUDIT_{name.upper()}", default).split()
        if len(value) != 1:
            raise UsageError(
                f"AUDIT_{name.upper()}={environ.get(f'AUDIT_{name.upper()}')!r}: the arm64 "
                f"environment takes one {name} version"
            )
        out[name] = value[0]
    return out


def key(wanted: Dict[str, str]) -> str:
    text = json.dumps({**wanted, "suite": SUITE, "python": GUEST_PYTHON}, sort_keys=True)
    return (
        f"torch{wanted['torch']}-numpy{wanted['numpy']}-"
        + hashlib.sha256(text.encode()).hexdigest()[:8]
    )


def check_tools(
    which: Callable[[str], Optional[str]] = shutil.which,
    euid: Callable[[], int] = lambda: os.geteuid() if hasattr(os, "geteuid") else -1,
    binfmt: str = "/proc/sys/fs/binfmt_misc/qemu-aarch64",
    platform: str = sys.platform,
) -> None:
    """One UsageError naming what is missing (Linux, root, debootstrap, qemu-user-static)."""
    if not platform.startswith("linux"):
        raise UsageError(
            f"the arm64 environment needs a Linux host (this is {platform}); on an ARM machine "
            f"run the audit natively"
        )
    if euid() != 0:
        raise UsageError(
            "the arm64 environment needs root (debootstrap, chroot and mounts): run it with sudo"
        )
    missing = [
        pkg
        for tool, pkg in (
            ("debootstrap", "debootstrap"),
            ("qemu-aarch64-static", "qemu-user-static"),
            ("unshare", "util-linux"),
            ("chroot", "coreutils"),
        )
        if which(tool) is None
    ]
    if missing:
        raise UsageError(
            f"the arm64 environment needs the Debian package(s) {' '.join(missing)}: "
            f"apt-get install {' '.join(missing)} binfmt-support"
        )
    if not os.path.exists(binfmt):
        raise UsageError(
            "qemu-aarch64 is not registered with binfmt_misc: apt-get install binfmt-support "
            "(and mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc in a container)"
        )


def qemu_version(run: Callable[[Sequence[str]], str]) -> str:
    """'qemu-aarch64 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)': the first line qemu prints."""
    line = run(["qemu-aarch64-static", "--version"]).splitlines()[0].strip()
    return line.replace(" version ", " ", 1)


def _capture(args: Sequence[str]) -> str:
    return cells.capture(args, named=True)


# --------------------------------------------------------------------------- build


def build(
    run: Run = _capture, log: Log = lambda _: None, environ: Optional[Dict[str, str]] = None
) -> str:
    """The wrapper's path, building the root unless one from the same pins exists."""
    check_tools()
    wanted = pins(environ)
    home = os.path.join(arm_dir(), key(wanted))
    wrapper, root = os.path.join(home, "python"), os.path.join(home, "root")
    marker = {**wanted, "suite": SUITE, "python": GUEST_PYTHON, "qemu": qemu_version(_capture)}
    if _marker(home) == marker and os.path.exists(wrapper):
        log(f"reusing {home}")
        return wrapper
    start = time.perf_counter()
    base = _base(run, log)
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home)
    try:
        log("copying the base root")
        run(["cp", "-a", base, root])
        run(["chroot", root, "/usr/bin/python3", "-m", "venv", "--without-pip", "/opt/venv"])
        wheels = _download(wanted, run, log)
        site = os.path.join(root, "opt", "venv", "lib", f"python{GUEST_PYTHON}", "site-packages")
        log(f"installing {len(os.listdir(wheels))} wheels into {site}")
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-compile",
                "--only-binary=:all:",
                "--target",
                site,
                "--upgrade",
                *_platform_options(),
                *sorted(os.path.join(wheels, w) for w in os.listdir(wheels) if w.endswith(".whl")),
            ]
        )
        for name in CPU_CLASSES:
            write_cpu_files(root, CPU_CLASSES[name], hwcaps(root, CPU_CLASSES[name]))
        write_wrapper(wrapper, root, marker["qemu"])
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    cells.write_marker(home, marker, MARKER)
    log(f"built {home} in {time.perf_counter() - start:.0f} s")
    return wrapper


def _marker(home: str) -> object:
    return cells.read_marker(home, MARKER)


def _base(run: Run, log: Log) -> str:
    base = os.path.join(arm_dir(), "base")
    wanted = {"suite": SUITE, "packages": list(PACKAGES), "mirror": MIRROR}
    if _marker(base) == wanted:
        return base
    shutil.rmtree(base, ignore_errors=True)
    log(f"debootstrap {SUITE} arm64 into {base} (minutes)")
    run(
        [
            "debootstrap",
            "--arch=arm64",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            base,
            MIRROR,
        ]
    )
    cells.write_marker(base, wanted, MARKER)
    return base


def _platform_options() -> List[str]:
    options = []
    for tag in PLATFORMS:
        options += ["--platform", tag]
    return options + ["--python-version", GUEST_PYTHON, "--implementation", "cp"]


def requirements(torch_metadata: str) -> List[str]:
    """torch's Linux requirements from its METADATA, triton left out (GPU compiler only), and
    NVIDIA's ``==`` pins relaxed to ``>=``: the index lacks some aarch64 builds of the exact
    pins (nvidia-nccl-cu13 2.29.7); the CUDA libraries only satisfy the loader on a CPU run."""
    out = []
    for line in torch_metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        spec, _, marker = line.split(":", 1)[1].strip().partition(";")
        if "extra ==" in marker or spec.startswith("triton"):
            continue
        if spec.startswith("nvidia-") and "==" in spec:
            spec = spec.replace("==", ">=")
        out.append(spec.strip())
    return out


def _download(wanted: Dict[str, str], run: Run, log: Log) -> str:
    """aarch64 wheels for the pins and torch's dependencies, fetched once by the host's pip."""
    folder = os.path.join(arm_dir(), "wheels", key(wanted))
    done = os.path.join(folder, ".complete")
    if os.path.exists(done):
        return folder
    os.makedirs(folder, exist_ok=True)
    log(f"downloading aarch64 wheels into {folder}")
    pip = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--only-binary=:all:",
        *_platform_options(),
        "-d",
        folder,
    ]
    extra = (
        [f"pandas=={wanted['pandas']}", "python-dateutil", "six"]
        if wanted.get("pandas", "none") != "none"
        else []
    )
    run(
        [
            *pip,
            "--no-deps",
            f"torch=={wanted['torch']}",
            f"numpy=={wanted['numpy']}",
            "xxhash",
            *extra,
        ]
    )
    wheel = [w for w in os.listdir(folder) if w.startswith("torch-")]
    if wheel:
        import zipfile

        with zipfile.ZipFile(os.path.join(folder, wheel[0])) as z:
            meta = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")][0]
            needed = requirements(z.read(meta).decode("utf-8", "replace"))
        if needed:
            run([*pip, *needed])
    open(done, "w").close()
    return folder


# --------------------------------------------------------------------------- CPU classes

_HWCAP_PROBE = (
    "import struct\n"
    "d=open('/proc/self/auxv','rb').read()\n"
    "v=dict(struct.iter_unpack('<QQ',d))\n"
    "print(v.get(16,0),v.get(26,0))\n"
)


def hwcaps(root: str, cpu: CpuClass) -> Tuple[int, int]:
    """AT_HWCAP and AT_HWCAP2 as qemu gives them to a process of this CPU model."""
    done = subprocess.run(
        ["chroot", root, "/usr/bin/python3", "-c", _HWCAP_PROBE],
        capture_output=True,
        text=True,
        env={**os.environ, "QEMU_CPU": cpu.qemu},
    )
    if done.returncode != 0:
        raise BuildError(
            f"qemu -cpu {cpu.qemu}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}"
        )
    first, second = done.stdout.split()
    return int(first), int(second)


def features(hwcap: int, hwcap2: int) -> List[str]:
    """Linux's ``Features`` names for the bits set."""
    return [n for i, n in enumerate(HWCAP) if hwcap >> i & 1] + [
        n for i, n in enumerate(HWCAP2) if hwcap2 >> i & 1
    ]


def cpuinfo(cpu: CpuClass, caps: Tuple[int, int], count: int) -> str:
    """``/proc/cpuinfo`` as an arm64 Linux kernel writes it."""
    block = [
        "BogoMIPS\t: 50.00",
        f"Features\t: {' '.join(features(*caps))}",
        f"CPU implementer\t: 0x{cpu.implementer:02x}",
        "CPU architecture: 8",
        f"CPU variant\t: 0x{cpu.variant:x}",
        f"CPU part\t: 0x{cpu.part:03x}",
        f"CPU revision\t: {cpu.revision}",
    ]
    return "".join(f"processor\t: {i}\n" + "\n".join(block) + "\n\n" for i in range(count))


def write_cpu_files(
    root: str, cpu: CpuClass, caps: Tuple[int, int], count: Optional[int] = None
) -> str:
    """The class's cpuinfo and sysfs tree under ``<root>/opt/audit-cpu/<class>``; returns that
    folder."""
    count = count or os.cpu_count() or 1
    folder = os.path.join(root, "opt", "audit-cpu", cpu.name)
    shutil.rmtree(folder, ignore_errors=True)
    span = "0" if count == 1 else f"0-{count - 1}"
    files = {"cpuinfo": cpuinfo(cpu, caps, count)}
    system = os.path.join("sys", "devices", "system", "cpu")
    for name in ("possible", "present", "online"):
        files[os.path.join(system, name)] = span + "\n"
    files[os.path.join(system, "kernel_max")] = f"{count - 1}\n"
    for i in range(count):
        cpu_dir = os.path.join(system, f"cpu{i}")
        files[os.path.join(cpu_dir, "regs", "identification", "midr_el1")] = f"0x{cpu.midr:016x}\n"
        files[os.path.join(cpu_dir, "regs", "identification", "revidr_el1")] = (
            "0x0000000000000000\n"
        )
        for name, number in (("core_id", i), ("physical_package_id", 0), ("cluster_id", 0)):
            files[os.path.join(cpu_dir, "topology", name)] = f"{number}\n"
        files[os.path.join(cpu_dir, "topology", "thread_siblings_list")] = f"{i}\n"
        files[os.path.join(cpu_dir, "topology", "core_siblings_list")] = span + "\n"
        for index, (level, kind, size) in enumerate(cpu.caches):
            cache = os.path.join(cpu_dir, "cache", f"index{index}")
            shared = f"{i}" if level < 3 else span
            for name, value in (
                ("level", level),
                ("type", kind),
                ("size", size),
                ("coherency_line_size", 64),
                ("shared_cpu_list", shared),
                ("ways_of_associativity", 4 if level == 1 else 8),
            ):
                files[os.path.join(cache, name)] = f"{value}\n"
    for rel, text in files.items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return folder


# --------------------------------------------------------------------------- the wrapper

#: Top-level folders that are the root's own: a path under one is bound itself, not its top.
SYSTEM_TOPS = (
    "usr",
    "lib",
    "lib64",
    "bin",
    "sbin",
    "etc",
    "opt",
    "proc",
    "sys",
    "dev",
    "var",
    "run",
    "boot",
    "",
)

WRAPPER = r"""#!/bin/sh
# determinism-audit: python3 of a Debian arm64 root, emulated by qemu-user (audit/runner/arm64.py).
# QEMU_CPU picks the CPU class: @CLASSES@ (default @DEFAULT@).
root=@ROOT@
cls=${QEMU_CPU:-@DEFAULT@}
case "$cls" in
@CASES@
  *) echo "error: QEMU_CPU=$cls is not a CPU class of this environment (@CLASSES@)" >&2; exit 2;;
esac
export QEMU_CPU="$q" AUDIT_EMULATOR="@QEMU@ -cpu $q ($cls)"
binds=/tmp
add() {
  case "$1" in /*) ;; *) return;; esac
  top=$(printf '%s' "$1" | cut -d/ -f2)
  case "$top" in
    @SYSTEM@) if [ -d "$1" ]; then d=$1; else d=$(dirname "$1"); fi;;
    *) d=/$top;;
  esac
  [ -d "$d" ] && binds="$binds
$d"
  return 0
}
add "$(pwd)"
old_ifs=$IFS; IFS=:; for p in $PYTHONPATH; do add "$p"; done; IFS=$old_ifs
for a in "$@"; do add "$a"; done
exec unshare --mount --propagation private /bin/sh -c '
root=$1; cls=$2; cwd=$3; binds=$4; shift 4
mount -t proc proc "$root/proc" &&
mount --bind "$root/opt/audit-cpu/$cls/cpuinfo" "$root/proc/cpuinfo" &&
mount --bind "$root/opt/audit-cpu/$cls/sys" "$root/sys" &&
mount --rbind /dev "$root/dev" || exit 125
printf "%s\n" "$binds" | sort -u | while IFS= read -r d; do
  mkdir -p "$root$d" && mount --bind "$d" "$root$d" || exit 125
done || exit 125
exec chroot "$root" /bin/sh -c "cd \"\$0\" && exec /opt/venv/bin/python \"\$@\"" "$cwd" "$@"
' arm64 "$root" "$cls" "$(pwd)" "$binds" "$@"
"""


def wrapper_text(root: str, qemu: str) -> str:
    cases = "\n".join(f"  {c.name}) q='{c.qemu}';;" for c in CPU_CLASSES.values())
    quoted = "'" + root.replace("'", "'\\''") + "'"
    return (
        WRAPPER.replace("@ROOT@", quoted)
        .replace("@CASES@", cases)
        .replace("@DEFAULT@", DEFAULT_CLASS)
        .replace("@CLASSES@", ", ".join(CPU_CLASSES))
        .replace("@QEMU@", qemu.replace("'", ""))
        .replace("@SYSTEM@", "|".join(t for t in SYSTEM_TOPS if t) + "|''")
    )


def write_wrapper(path: str, root: str, qemu: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(wrapper_text(root, qemu))
    os.chmod(path, 0o755)
