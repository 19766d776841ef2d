"""The emulated aarch64 environment: tool checks, the wheels' requirements, the synthetic CPU files,
the wrapper, the QEMU_CPU axis and the environment fields on arm64, macOS and Windows (platform patched).

Building the root needs root, debootstrap and qemu-user-static: that test is ``slow`` and skips
without them; everything else here runs anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from typing import Any, List

import pytest

from audit.cli import main
from audit.errors import UsageError
from audit.runner import arm64, sweep
from audit.worker import environment


def _which_all(name: str) -> str:
    return f"/usr/bin/{name}"


# --------------------------------------------------------------------------- tools


def test_check_tools_passes_when_everything_is_there(tmp_path: Any) -> None:
    binfmt = tmp_path / "qemu-aarch64"
    binfmt.write_text("enabled\n")
    arm64.check_tools(which=_which_all, euid=lambda: 0, binfmt=str(binfmt), platform="linux")


@pytest.mark.parametrize("which, euid, platform, says", [
    (_which_all, lambda: 0, "darwin", "needs a Linux host"),
    (_which_all, lambda: 1000, "linux", "needs root"),
    (lambda n: None if n == "debootstrap" else "/x", lambda: 0, "linux", "debootstrap"),
    (lambda n: None if n == "qemu-aarch64-static" else "/x", lambda: 0, "linux", "qemu-user-static"),
])
def test_check_tools_names_what_is_missing(tmp_path: Any, which: Any, euid: Any, platform: str, says: str) -> None:
    binfmt = tmp_path / "qemu-aarch64"
    binfmt.write_text("enabled\n")
    with pytest.raises(UsageError, match=says):
        arm64.check_tools(which=which, euid=euid, binfmt=str(binfmt), platform=platform)


def test_check_tools_needs_binfmt(tmp_path: Any) -> None:
    with pytest.raises(UsageError, match="binfmt"):
        arm64.check_tools(which=_which_all, euid=lambda: 0, binfmt=str(tmp_path / "absent"), platform="linux")


def test_platform_command_without_root_is_one_line_exit_2(monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    assert main(["platform", "aarch64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs" in err[0] and "Traceback" not in err[0]


def test_pins_follow_the_matrix_variables() -> None:
    assert arm64.pins({}) == {"torch": "2.13.0", "numpy": "2.4.6", "pandas": "3.1.1"}
    assert arm64.pins({"AUDIT_TORCH": "2.4.1", "AUDIT_NUMPY": "1.26.4"})["numpy"] == "1.26.4"
    assert arm64.key({"torch": "2.4.1", "numpy": "1.26.4"}) != arm64.key({"torch": "2.13.0", "numpy": "1.26.4"})
    with pytest.raises(UsageError, match="one torch version"):
        arm64.pins({"AUDIT_TORCH": "2.4.1 2.13.0"})


def test_requirements_relax_nvidia_pins_and_leave_out_extras_and_triton() -> None:
    metadata = "\n".join([
        "Name: torch", "Requires-Dist: filelock", "Requires-Dist: sympy>=1.13.3",
        'Requires-Dist: nvidia-nccl-cu13==2.29.7; platform_system == "Linux"',
        'Requires-Dist: triton==3.7.1; platform_system == "Linux"',
        'Requires-Dist: pyyaml; extra == "pyyaml"',
    ])
    assert arm64.requirements(metadata) == ["filelock", "sympy>=1.13.3", "nvidia-nccl-cu13>=2.29.7"]


# --------------------------------------------------------------------------- CPU files


def test_midr_of_the_classes() -> None:
    assert arm64.CPU_CLASSES["neoverse-n1"].midr == 0x414FD0C1
    assert arm64.CPU_CLASSES["a64fx"].midr == 0x461F0010
    assert arm64.CPU_CLASSES["max-sve256"].midr == 0x000F0510  # qemu's 'max': implementer 0, part 'Q'


def test_features_from_hwcaps() -> None:
    assert arm64.features(0b11, 0) == ["fp", "asimd"]
    assert arm64.features(1 << 22, 1 << 1) == ["sve", "sve2"]


def test_cpu_files_name_the_emulated_cpu_not_the_host(tmp_path: Any) -> None:
    cpu = arm64.CPU_CLASSES["a64fx"]
    folder = arm64.write_cpu_files(str(tmp_path), cpu, (1 | 2 | 1 << 22, 0), count=2)
    text = open(os.path.join(folder, "cpuinfo")).read()
    assert text.count("processor\t:") == 2 and "Features\t: fp asimd sve" in text
    assert environment._cpuinfo_model(text) == "Fujitsu A64FX"
    system = os.path.join(folder, "sys", "devices", "system", "cpu")
    assert open(os.path.join(system, "possible")).read() == "0-1\n"
    assert open(os.path.join(system, "cpu1", "regs", "identification", "midr_el1")).read() == "0x00000000461f0010\n"
    assert open(os.path.join(system, "cpu0", "cache", "index2", "size")).read() == "8192K\n"


def test_cpuinfo_model_of_x86_and_unknown_arm_parts() -> None:
    assert environment._cpuinfo_model("processor\t: 0\nmodel name\t: AMD EPYC 9654\n") == "AMD EPYC 9654"
    arm = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd4f\n"
    assert environment._cpuinfo_model(arm) == "ARM Neoverse-V2"
    odd = "processor\t: 0\nCPU implementer\t: 0x99\nCPU part\t: 0x123\n"
    assert environment._cpuinfo_model(odd) == "arm64 implementer 0x99 part 0x123"
    assert environment._cpuinfo_model("processor\t: 0\n") is None


# --------------------------------------------------------------------------- the wrapper


def _wrapper(tmp_path: Any) -> str:
    path = str(tmp_path / "python")
    arm64.write_wrapper(path, str(tmp_path / "root"), "qemu-aarch64 7.2.22")
    return path


def test_wrapper_is_valid_sh(tmp_path: Any) -> None:
    assert subprocess.run(["sh", "-n", _wrapper(tmp_path)]).returncode == 0


def test_wrapper_refuses_an_unknown_cpu_class_before_anything_starts(tmp_path: Any) -> None:
    done = subprocess.run([_wrapper(tmp_path), "-c", "pass"], capture_output=True, text=True,
                          env={**os.environ, "QEMU_CPU": "cortex-z9"})
    assert done.returncode == 2
    assert "QEMU_CPU=cortex-z9 is not a CPU class" in done.stderr and done.stderr.count("\n") == 1


def test_wrapper_maps_each_class_to_its_qemu_model(tmp_path: Any) -> None:
    text = open(_wrapper(tmp_path)).read()
    assert "max-sve256) q='max,sve-default-vector-length=32';;" in text
    assert 'AUDIT_EMULATOR="qemu-aarch64 7.2.22 -cpu $q ($cls)"' in text


# --------------------------------------------------------------------------- the axis


def test_qemu_cpu_axis() -> None:
    axis = sweep.parse_axis("QEMU_CPU=neoverse-n1,a64fx,max-sve256")
    assert axis.values == ("neoverse-n1", "a64fx", "max-sve256")
    with pytest.raises(UsageError, match="not a valid value"):
        sweep.parse_axis("QEMU_CPU=pentium")
    spec = sweep.spec_for(sweep.RunSpec(), {"QEMU_CPU": "a64fx"})
    assert spec.env["QEMU_CPU"] == "a64fx"


def test_qemu_cpu_axis_is_honoured_only_when_emulated_as_that_class() -> None:
    setting = {"QEMU_CPU": "a64fx"}
    assert sweep.unhonoured(setting, {"emulator": "qemu-aarch64 7.2.22 -cpu a64fx (a64fx)"}) == []
    native = sweep.unhonoured(setting, {"emulator": None})
    assert native and "ran natively" in native[0]
    other = sweep.unhonoured(setting, {"emulator": "qemu-aarch64 7.2.22 -cpu neoverse-n1 (neoverse-n1)"})
    assert other and "neoverse-n1" in other[0]


# --------------------------------------------------------------------------- other platforms


def _completed(stdout: str) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], 0, stdout=stdout, stderr="")


def test_macos_capture_uses_sysctl(monkeypatch: Any) -> None:
    calls: List[List[str]] = []

    def fake_run(args: List[str], **_: Any) -> subprocess.CompletedProcess:
        calls.append(args)
        if args[:2] == ["sysctl", "-n"]:
            return _completed("Apple M2 Pro\n")
        return _completed("hw.optional.arm.FEAT_BF16: 1\nhw.optional.arm.FEAT_SME: 0\n"
                          "hw.optional.arm.FEAT_I8MM: 1\nhw.optional.armv8_crc32: 1\n")

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(subprocess, "run", fake_run)
    assert environment._cpu_model() == "Apple M2 Pro"
    assert environment._cpu_features() == "FEAT_BF16 FEAT_I8MM"
    assert ["sysctl", "-n", "machdep.cpu.brand_string"] in calls


def test_macos_without_sysctl_falls_back(monkeypatch: Any) -> None:
    def missing(*_: Any, **__: Any) -> Any:
        raise OSError("no sysctl")

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(subprocess, "run", missing)
    monkeypatch.setattr(environment, "_read", lambda path: None)
    monkeypatch.setattr(environment.platform, "processor", lambda: "arm")
    assert environment._cpu_model() == "arm"
    assert environment._cpu_features() is None


def test_windows_capture_reads_the_registry(monkeypatch: Any) -> None:
    class Key:
        def __enter__(self) -> Key:
            return self

        def __exit__(self, *_: Any) -> None:
            return None

    opened: List[str] = []
    fake = types.SimpleNamespace(
        HKEY_LOCAL_MACHINE="HKLM",
        OpenKey=lambda hive, path: opened.append(path) or Key(),
        QueryValueEx=lambda key, name: ("Intel(R) Core(TM) i7-1185G7 @ 3.00GHz  ", 1),
    )
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "winreg", fake)
    assert environment._cpu_model() == "Intel(R) Core(TM) i7-1185G7 @ 3.00GHz"
    assert opened and opened[0].endswith("CentralProcessor\\0")


def test_windows_without_registry_uses_platform_processor(monkeypatch: Any) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "winreg", None)  # import fails
    monkeypatch.setattr(environment, "_read", lambda path: None)
    monkeypatch.setattr(environment.platform, "processor", lambda: "Intel64 Family 6 Model 140")
    assert environment._cpu_model() == "Intel64 Family 6 Model 140"


def test_linux_arm64_features_from_cpuinfo(monkeypatch: Any) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(environment.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(environment, "_read",
                        lambda path: "processor\t: 0\nFeatures\t: fp asimd sve\nCPU implementer\t: 0x41\n"
                                     "CPU part\t: 0xd0c\n")
    assert environment._cpu_features() == "fp asimd sve"
    assert environment._cpu_model() == "ARM Neoverse-N1"


def test_native_runs_record_no_emulator(monkeypatch: Any) -> None:
    monkeypatch.delenv("AUDIT_EMULATOR", raising=False)
    env = environment.capture()
    assert env["emulator"] is None and "QEMU_CPU" in env and "cpu_features" in env
    monkeypatch.setenv("AUDIT_EMULATOR", "qemu-aarch64 7.2.22 -cpu a64fx (a64fx)")
    assert environment.capture()["emulator"] == "qemu-aarch64 7.2.22 -cpu a64fx (a64fx)"


# --------------------------------------------------------------------------- emulated, slow


def _can_emulate() -> bool:
    try:
        arm64.check_tools()
    except UsageError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _can_emulate(), reason="needs root, debootstrap, qemu-user-static and binfmt")
def test_emulated_interpreter_sees_the_cpu_class() -> None:
    wrapper = arm64.build()
    code = ("import platform, torch; from audit.worker import environment as e; c = e.capture(); "
            "print(platform.machine(), torch.backends.cpu.get_cpu_capability(), c['cpu_model'], c['emulator'])")
    for cpu, capability, model in (("max-sve256", "SVE256", "QEMU max"), ("neoverse-n1", "DEFAULT", "ARM Neoverse-N1")):
        done = subprocess.run([wrapper, "-c", code], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "QEMU_CPU": cpu, "PYTHONPATH": arm64.ROOT}, cwd=arm64.ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[:2] == ["aarch64", capability]
        assert model in done.stdout and done.stdout.strip().endswith(f"({cpu})")
    assert shutil.which("qemu-aarch64-static")


# --------------------------------------------------------------------------- report marks


def _comparison(envs: List[Any], reference: List[Any]) -> Any:
    from audit.compare.model import Comparison

    return Comparison(findings=[], unsupported=[], rows=0, runs=len(envs), skipped=[], envs=envs,
                      reference_envs=reference, baseline="x" if reference else None)


def test_report_marks_emulated_runs_and_a_torch_flavour_confound() -> None:
    from audit.report.view import environment_notes

    arm = {"emulator": "qemu-aarch64 7.2.22 -cpu a64fx (a64fx)", "torch_version": "2.13.0", "cuda_version": "13.0"}
    cpu_only = {"emulator": None, "torch_version": "2.13.0+cpu", "cuda_version": None}
    notes = environment_notes(_comparison([arm], [cpu_only]))
    assert notes[0] == "emulated: 1 of 1 environments ran under qemu-aarch64 7.2.22 (CPU a64fx)"
    assert "torch flavour differs: CUDA 13.0 build vs the baseline's CPU-only build" in notes[1]
    same = {**cpu_only, "torch_version": "2.13.0", "cuda_version": "13.0"}
    assert len(environment_notes(_comparison([arm], [cpu_only, same]))) == 1  # the baseline holds the flavour
    assert environment_notes(_comparison([cpu_only], [cpu_only])) == []  # native, same flavour: nothing


def test_the_arm_part_table_reads_every_entry_of_its_text() -> None:
    """The MIDR names are a text table: a misaligned entry must not be lost or merged."""
    import re

    parts = environment.ARM_PARTS
    entries = re.findall(r"\b[0-9a-f]{2} [0-9a-f]{3}\b", environment._ARM_PART_NAMES)
    assert len(parts) == len(entries) == 13
    assert parts[(0x41, 0xD0C)] == "ARM Neoverse-N1" and parts[(0x46, 0x001)] == "Fujitsu A64FX"
    assert parts[(0xC0, 0xAC4)] == "Ampere-1a" and parts[(0x00, 0x051)] == "QEMU max"
    assert all(name.strip() == name and "  " not in name for name in parts.values())
