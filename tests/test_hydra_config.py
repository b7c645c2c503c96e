# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The shipped Hydra config through verl's real CLI (``--cfg job``), and the doctor's verdicts."""

import socket
import subprocess
import sys
import threading
import time

import pytest

from verl_fair.configs import folder as configs_folder


def _main_ppo(*overrides):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "verl.trainer.main_ppo",
            f"--config-path={configs_folder()}",
            "--config-name=fair_grpo_trainer",
            "--cfg",
            "job",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plain_overrides_of_fair_grpo_keys_are_accepted():
    result = _main_ppo(
        "algorithm.fair_grpo.variant=official",
        "algorithm.fair_grpo.history={window: 8}",
        "algorithm.fair_grpo.cluster.k_max=2",
    )
    assert result.returncode == 0, result.stderr
    job = result.stdout
    assert "adv_estimator: fair_grpo" in job and "variant: official" in job and "window: 8" in job
    assert "name: FairReplayBuffer" in job and "FairStateCallback" in job


def test_a_misspelt_key_is_rejected_by_hydra():
    result = _main_ppo("algorithm.fair_grpo.varient=official")
    assert result.returncode != 0
    assert "varient" in result.stderr


def _doctor(*args):
    return subprocess.run(
        [sys.executable, "-m", "verl_fair.cli", "doctor", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "v1 trainer: labelled"),
        (("--config-name", "ppo_trainer", "algorithm.adv_estimator=fair_grpo"), "LABEL-FREE"),
        (("--config-name", "ppo_trainer", "algorithm.adv_estimator=grpo"), "verl-fair stays idle"),
        (("algorithm.fair_grpo.variant=official",), "assumes non-negative rewards"),
        (("trainer.v1.trainer_mode=colocate_async",), "colocate_async: the metadata sampler serves it"),
        (("trainer.v1.trainer_mode=separate_async",), "separate_async is UNTESTED with FairGRPO"),
        (("trainer.use_v1=False",), "RayPPOTrainer (trainer.use_v1=False): labelled"),
    ],
)
def test_doctor_says_what_the_run_will_do(args, expected):
    result = _doctor(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("algorithm.fair_grpo.variant=fast",), "variant='fast'"),
        (("algorithm.adv_estimator=fair_grpoo",), "Did you mean 'fair_grpo'?"),
        (("reward.custom_reward_function.reward_kwargs.age_bins=[40,60]",), "reward_kwargs.age_bins=[40, 60]"),
        (("reward.custom_reward_function.reward_kwargs.group_attributes=[sex,race]",), "has ['race']"),
        (
            (
                "algorithm.fair_grpo.cluster.seed=-5",
                "algorithm.fair_grpo.epsilon=1e9",
                "algorithm.fair_grpo.cluster.k_max=50",
            ),
            "3 problems in algorithm.fair_grpo",
        ),
        (
            ("~trainer.v1.sampler.sampler_kwargs.fair_grpo", "algorithm.fair_grpo.group_attributes=[race]"),
            "sampler_kwargs.fair_grpo",
        ),
        (("algorithm.fair_grpo.varient=x",), "varient"),
        (
            (
                "--config-name",
                "ppo_trainer",
                "algorithm.adv_estimator=fair_grpo",
                "+algorithm.fair_grpo.labels=required",
            ),
            "labels=required but no metadata sampler",
        ),
    ],
)
def test_doctor_fails_on_configuration_mistakes(args, expected):
    result = _doctor(*args)
    assert result.returncode == 1
    assert expected in result.stdout


def _plan(capsys, *overrides):
    """The doctor's verdict on a run of the shipped config (after its installation checks)."""
    from verl_fair.cli import doctor

    code = doctor._plan(None, "fair_grpo_trainer", list(overrides))
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "algorithm.fair_grpo.weighting=${oc.env:NOPE}",
            "the override 'algorithm.fair_grpo.weighting=${oc.env:NOPE}': ${oc.env:NOPE} cannot be resolved "
            "(Environment variable 'NOPE' not found)",
        ),
        (
            "algorithm.fair_grpo.weighting=${nosuch.key}",
            "the override 'algorithm.fair_grpo.weighting=${nosuch.key}': ${nosuch.key} cannot be resolved "
            "(Interpolation key 'nosuch.key' not found)",
        ),
    ],
)
def test_doctor_names_an_interpolation_it_cannot_resolve(capsys, override, expected):
    code, out = _plan(capsys, override)
    assert code == 1
    assert f"[FAIL] {expected}" in out and "or give algorithm.fair_grpo.weighting a value itself" in out


def test_doctor_command_prints_no_traceback_for_an_unresolvable_override():
    result = _doctor("algorithm.fair_grpo.weighting=${oc.env:NOPE}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "${oc.env:NOPE} cannot be resolved" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ("++reward.custom_reward_function.reward_kwargs.format_weight=5",),
            "reward.custom_reward_function.reward_kwargs.format_weight=5 is not valid: expected a number in [0, 1]",
        ),
        (
            ("++reward.custom_reward_function.reward_kwargs.synonyms={b: ''}",),
            "reward.custom_reward_function.reward_kwargs.synonyms has 'b': '', whose name is an empty label",
        ),
        (
            ("custom_reward_function.path=my_reward.py", "custom_reward_function.name=score"),
            "custom_reward_function.path='my_reward.py' and custom_reward_function.name='score' are ignored: verl "
            "0.9.1 reads reward.custom_reward_function. Set reward.custom_reward_function.path=my_reward.py and "
            "reward.custom_reward_function.name=score instead",
        ),
        (("algorithm.fair_grpo.reward_floor=1e9",), "algorithm.fair_grpo.reward_floor=1000000000.0 is not valid"),
    ],
)
def test_doctor_checks_the_reward_settings_as_the_run_reads_them(capsys, overrides, expected):
    code, out = _plan(capsys, *overrides)
    assert code == 1
    assert expected in out


@pytest.mark.parametrize("answer", ["nothing", "http"], ids=["silent", "not-ray"])
def test_doctor_cluster_gives_up_within_seconds_on_an_address_that_is_no_ray_head(answer):
    """A port that accepts connections but is no Ray head: one line, no Ray log (ray.init retried or hung)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        if answer == "http":
            reply = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            threading.Thread(target=lambda: server.accept()[0].sendall(reply), daemon=True).start()
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from verl_fair.cli import doctor; raise SystemExit(doctor.check_cluster({address!r}))",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert time.monotonic() - started < 20
    assert result.returncode == 1 and result.stderr == ""
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"[FAIL] no Ray cluster reachable at {address!r}: {address} answers, but ")
    assert line.endswith("start one (ray start --head) or give its address: --cluster <head-ip>:6379")


def test_the_reward_s_default_attributes_are_not_a_mistake(capsys):
    code, out = _plan(
        capsys,
        "~reward.custom_reward_function.reward_kwargs.group_attributes",
        "algorithm.fair_grpo.group_attributes=[sex]",
    )
    assert code == 0 and "group_attributes has" not in out, out
