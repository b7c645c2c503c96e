"""The shipped Hydra config through verl's real CLI (``--cfg job``), and the doctor's verdicts."""

import subprocess
import sys

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
        (("+reward.custom_reward_function.reward_kwargs.group_values.race=[a,b]",), "has ['race']"),
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
