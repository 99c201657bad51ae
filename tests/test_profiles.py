"""Device profiles choose a precision by CPU feature: their `[[choose]]` rules are data, `Profile.choose` reads
them with what a quantize record measured (plain figures here: the choice must not depend on this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.profiles import load_profile

ROOT = Path(__file__).resolve().parents[1]
AMX = frozenset({"avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16", "avx512_bf16"})
VNNI = frozenset({"avx2", "avx512f", "avx512_vnni"})
AVX2 = frozenset({"avx2", "fma"})
PI5 = frozenset({"fp", "asimd", "asimddp", "fphp", "asimdhp"})
PI4 = frozenset({"fp", "asimd", "crc32"})


@pytest.mark.parametrize(("measured", "chosen"), [
    ({"fp32": (30.0, True), "int8": (10.1, True), "bf16": (12.0, True)}, "int8"),  # int8 measured faster
    ({"fp32": (30.0, True), "int8": (12.5, True), "bf16": (12.0, True)}, "bf16"),  # bf16 measured faster
    ({"fp32": (30.0, True), "int8": (10.1, False), "bf16": (12.0, True)}, "bf16"),  # int8 over budget
    ({"fp32": (30.0, True), "int8": (10.1, True)}, "int8"),  # no bf16 was made
])
def test_on_amx_the_faster_of_bf16_and_int8_within_budget_is_chosen(measured, chosen):
    choice = load_profile("intel-cpu").choose(AMX, measured, measured_on=AMX)
    assert choice.precision == chosen and "AMX or AVX512-BF16 (amx_bf16, avx512_bf16)" in choice.reason
    assert "quantize record" in choice.reason and "\n" not in choice.reason


def test_a_record_measured_on_a_cpu_of_another_rule_does_not_decide():
    """Latency measured where bf16 has no unit says nothing of a bf16 machine: the rule's first, said so."""
    choice = load_profile("intel-cpu").choose(AMX, {"int8": (10.0, True), "bf16": (50.0, True)}, measured_on=VNNI)
    assert choice.precision == "bf16" and "no quantize record measured bf16 or int8 on such a CPU" in choice.reason


@pytest.mark.parametrize(("flags", "chosen", "says"), [
    (VNNI, "int8", "VNNI (avx512_vnni)"),
    (AVX2, "int8", "overflow fix"),
    (frozenset(), "int8", "no [[choose]] rule of intel-cpu matches this CPU"),
])
def test_without_bf16_intel_cpus_prefer_int8_and_say_why(flags, chosen, says):
    choice = load_profile("intel-cpu").choose(flags, {"int8": (10.0, True), "bf16": (5.0, True)}, measured_on=AMX)
    assert choice.precision == chosen and says in choice.reason


def test_a_raspberry_pi_5_weighs_fp16_against_int8_and_a_pi_4_takes_int8():
    pi = load_profile("raspberry-pi")
    assert pi.choose(PI5, {"int8": (80.0, True), "fp16": (60.0, True)}, measured_on=PI5).precision == "fp16"
    assert pi.choose(PI5, {"int8": (50.0, True), "fp16": (60.0, True)}, measured_on=PI5).precision == "int8"
    assert pi.choose(PI4, {"int8": (90.0, True), "fp16": (60.0, True)}, measured_on=PI5).precision == "int8"


@pytest.mark.parametrize(("rule", "message"), [
    ('cpu = "x"\nflags = []\nprecisions = ["int8"]\nwhy = "y"', "'choose[0].flags' must list CPU flags"),
    ('cpu = "x"\nflags = ["avx2"]\nprecisions = ["int4"]\nwhy = "y"', "'choose[0].precisions' must list"),
    ('cpu = "x"\nflags = ["avx2"]\nprecisions = ["int8"]', "'choose[0]' has no 'why'"),
    ('cpu = "x"\nflag = ["avx2"]', "unknown key 'choose[0].flag'"),
])
def test_a_bad_choose_rule_is_one_line_naming_it(tmp_path, rule, message):
    path = tmp_path / "profile.toml"
    path.write_text(f'backends = ["openvino"]\n[[choose]]\n{rule}\n')
    with pytest.raises(RtmwEdgeError) as caught:
        load_profile(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_profiles_threads_beyond_the_cores_this_process_may_use_become_all_of_them(tmp_path):
    """The Raspberry Pi profile's 4 threads on one core (a smaller board, a container): it runs on that core,
    never 'threads must be from 1 to 1' (the explicit --threads check is for what the user typed)."""
    import json
    import subprocess
    import sys

    from tiny_artifact import constant_artifact

    assert load_profile("raspberry-pi").threads == 4
    pose = constant_artifact(tmp_path / "pose", 0.5)
    code = ("import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
            "from rtmw_edge.profiles import load_profile\n"
            "print(load_profile('raspberry-pi').runner_options('ncnn')['threads'], flush=True)\n"
            "from rtmw_edge.cli import main\n"
            f"sys.exit(main(['predict', {str(ROOT / 'calib_data' / 'astronaut.jpg')!r}, '--model', {str(pose)!r}, "
            f"'--detector', 'none', '--device-profile', 'raspberry-pi', '--out', {str(tmp_path / 'out')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "1"
    assert len(json.loads((tmp_path / "out" / "predictions.json").read_text())) == 1
