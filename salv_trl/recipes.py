"""
What the training recipes (`recipes/sft.py`, `recipes/dpo.py`) share: their [`RecipeArguments`], a check
that `accelerate launch` runs as its config says, loading a dataset from anywhere, the download-free tiny
assets, the pass-rate callback, and the run's hyperparameters saved as JSON beside the weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import DatasetDict, load_dataset, load_from_disk
from transformers import Trainer, TrainingArguments
from trl import ScriptArguments

from .data.hub import file_builder, local_or_hub, saved_to_disk
from .model_card import training_hyperparameters

#: Written by [`save_training_hyperparameters`] in the output folder.
HYPERPARAMETERS_FILE = "training_hyperparameters.json"


@dataclass
class RecipeArguments(ScriptArguments):
    """
    [`~trl.ScriptArguments`] plus the tiny, download-free set-up.

    Args:
        make_tiny (`bool`, *optional*, defaults to `False`):
            When `model_name_or_path` or `dataset_name` does not exist yet, create it: a synthetic
            signal-aware preference set ([`salv_trl.tiny.tiny_preference_rows`], as `train.jsonl` in
            `dataset_name`) and a tiny Qwen2 with a tokenizer trained on it ([`salv_trl.tiny`]) saved at
            `model_name_or_path`.
        tiny_rows (`int`, *optional*, defaults to `64`):
            Number of synthetic rows made by `make_tiny`.
        pass_rate_benchmark (`str`, *optional*):
            Measure the greedy pass rate on this benchmark ([`salv_trl.evaluation.BENCHMARKS`]) while
            training, every `pass_rate_steps` steps ([`salv_trl.evaluation.callback.PassRateCallback`]; needs
            `SALV_TRL_ALLOW_CODE_EXECUTION=1`). Use problems that are neither trained nor scored on.
        pass_rate_data_dir (`str`, *optional*):
            Its location (see [`salv_trl.evaluation.load_benchmark`]); for `custom`, a tasks file or folder.
        pass_rate_steps (`int`, *optional*, defaults to `100`):
            Steps between two measurements.
        stop_at_pass_rate (`float`, *optional*):
            Stop training once the measured pass rate reaches this fraction.
        pass_rate_max_new_tokens (`int`, *optional*, defaults to `1024`):
            Token budget of each decoded completion.
    """

    make_tiny: bool = field(
        default=False, metadata={"help": "Create a tiny model and dataset where they are missing."}
    )
    tiny_rows: int = field(default=64, metadata={"help": "Number of synthetic rows made by make_tiny."})
    pass_rate_benchmark: str | None = field(
        default=None, metadata={"help": "Benchmark whose greedy pass rate is measured while training."}
    )
    pass_rate_data_dir: str | None = field(default=None, metadata={"help": "Location of that benchmark."})
    pass_rate_steps: int = field(default=100, metadata={"help": "Steps between two pass-rate measurements."})
    stop_at_pass_rate: float | None = field(
        default=None, metadata={"help": "Stop training once the measured pass rate reaches this fraction."}
    )
    pass_rate_max_new_tokens: int = field(
        default=1024, metadata={"help": "Token budget of each completion decoded for the pass rate."}
    )

    def __post_init__(self):
        # checked before the model loads: an option that would be ignored is an error
        if self.pass_rate_benchmark is None and (
            self.stop_at_pass_rate is not None or self.pass_rate_data_dir is not None
        ):
            raise ValueError("stop_at_pass_rate and pass_rate_data_dir need pass_rate_benchmark")
        if self.stop_at_pass_rate is not None and not 0 < self.stop_at_pass_rate <= 1:
            raise ValueError(f"stop_at_pass_rate is a fraction in (0, 1], got {self.stop_at_pass_rate}")


def load_any_dataset(name: str, config: str | None = None, streaming: bool = False) -> DatasetDict:
    """
    Load a dataset by Hub id, from a local folder of data files, a single data file (`.jsonl`, `.json`,
    `.parquet`, `.csv`, as the `train` split), or a folder written by `Dataset.save_to_disk` /
    `DatasetDict.save_to_disk`.

    Args:
        name (`str`):
            Hub id or local path.
        config (`str`, *optional*):
            Dataset configuration (Hub datasets).
        streaming (`bool`, *optional*, defaults to `False`):
            Stream instead of downloading (Hub ids and data files).

    Returns:
        [`~datasets.DatasetDict`]: splits by name.
    """
    path = local_or_hub(name)  # a missing local path fails here, not after Hub retries
    if isinstance(path, str):
        return load_dataset(name, name=config, streaming=streaming)
    if path.is_dir() and saved_to_disk(path):
        dataset = load_from_disk(str(path))
        return dataset if isinstance(dataset, DatasetDict) else DatasetDict(train=dataset)
    if path.is_file():
        return load_dataset(file_builder(path), data_files={"train": str(path)}, streaming=streaming)
    return load_dataset(name, name=config, streaming=streaming)


def make_tiny_assets(model_dir: str, dataset_dir: str, rows: int, seed: int = 0) -> None:
    """
    Write a synthetic preference set to `dataset_dir/train.jsonl` and a tiny Qwen2 with its tokenizer to
    `model_dir`, skipping whichever already exists. Call it on the main process only.

    Args:
        model_dir (`str`):
            Where the model and tokenizer are saved.
        dataset_dir (`str`):
            Where `train.jsonl` is written.
        rows (`int`):
            Number of synthetic rows.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the rows and of the model's initialisation.
    """
    from .tiny import tiny_preference_rows, tiny_qwen2, train_tokenizer

    data = tiny_preference_rows(rows, seed=seed)
    if not os.path.exists(dataset_dir):
        os.makedirs(dataset_dir)
        with open(os.path.join(dataset_dir, "train.jsonl"), "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in data)
    if not os.path.exists(model_dir):
        tokenizer = train_tokenizer([r["prompt"] + r["chosen"] + r["rejected"] for r in data], vocab_size=512)
        model = tiny_qwen2(tokenizer, seed=seed)
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)


def check_launch(training_args: TrainingArguments) -> None:
    """
    Refuse, before the model loads, an `accelerate launch` that would not run as its config says.

    accelerate (1.x) builds FSDP only on an accelerator (CUDA, XPU, NPU, ...): without one, an FSDP config
    fails inside accelerate ("no available devices") or, with `fsdp_sync_module_states` and
    `fsdp_cpu_ram_efficient_loading` off, trains as plain DDP without a word. DeepSpeed runs on CPU (over
    gloo), but with `use_cpu` accelerate replaces it by plain DDP, and without `use_cpu` and without a
    `ddp_backend` each process counts itself alone and trains on all the rows.

    Args:
        training_args ([`~transformers.TrainingArguments`]):
            The recipe's training arguments; their device set-up (the process group) is made here if it is
            not yet.

    Raises:
        `ValueError`: the launch's processes do not see each other, or its config cannot run on this machine.
    """
    from accelerate.utils import parse_flag_from_env

    training_args.device  # noqa: B018 (sets up the process group)
    state = training_args.distributed_state
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise ValueError(
            f"accelerate launched {launched} processes but each sees {state.num_processes}: on a machine "
            "without GPUs set `use_cpu: true` (DDP over gloo), or `use_cpu: false` with `ddp_backend: gloo` "
            "(DeepSpeed)"
        )
    if state.default_device.type != "cpu":
        return
    if parse_flag_from_env("ACCELERATE_USE_FSDP"):
        raise ValueError(
            "FSDP needs an accelerator: accelerate builds it only on CUDA, XPU, NPU, ... devices, and on CPU "
            "it fails or trains as plain DDP; on CPU use recipes/accelerate_configs/ddp.yaml or zero3.yaml"
        )
    if parse_flag_from_env("ACCELERATE_USE_DEEPSPEED") and training_args.use_cpu:
        raise ValueError(
            "DeepSpeed on CPU needs `use_cpu: false` and `ddp_backend: gloo`: with use_cpu, accelerate "
            "trains with plain DDP instead"
        )


def prepare_run(script_args: RecipeArguments, training_args, model_args) -> DatasetDict:
    """
    The common start of the recipes: check the launch ([`check_launch`]), make the tiny assets when asked
    (main process first), pass the model arguments on as `model_init_kwargs`, and load the dataset.

    Args:
        script_args ([`RecipeArguments`]):
            Dataset and tiny set-up arguments.
        training_args ([`~transformers.TrainingArguments`] subclass with `model_init_kwargs`):
            Updated in place.
        model_args ([`~trl.ModelConfig`]):
            Model arguments.

    Returns:
        [`~datasets.DatasetDict`]: the loaded dataset.
    """
    from accelerate import PartialState

    check_launch(training_args)
    if script_args.make_tiny:
        with PartialState().main_process_first():
            if PartialState().is_main_process:
                make_tiny_assets(
                    model_args.model_name_or_path, script_args.dataset_name, script_args.tiny_rows
                )
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }
    return load_any_dataset(
        script_args.dataset_name, script_args.dataset_config, script_args.dataset_streaming
    )


def add_pass_rate_callback(trainer: Trainer, script_args: RecipeArguments) -> None:
    """
    Attach a [`~salv_trl.evaluation.callback.PassRateCallback`] to `trainer` if `pass_rate_benchmark` is set.

    Args:
        trainer ([`~transformers.Trainer`]):
            The recipe's trainer.
        script_args ([`RecipeArguments`]):
            The `pass_rate_*` and `stop_at_pass_rate` arguments.
    """
    if script_args.pass_rate_benchmark is None:
        return
    from .evaluation import load_benchmark
    from .evaluation.callback import PassRateCallback

    problems = load_benchmark(script_args.pass_rate_benchmark, script_args.pass_rate_data_dir)
    trainer.add_callback(
        PassRateCallback(
            trainer,
            problems,
            freq=script_args.pass_rate_steps,
            stop_at=script_args.stop_at_pass_rate,
            max_new_tokens=script_args.pass_rate_max_new_tokens,
        )
    )


def save_training_hyperparameters(trainer: Trainer) -> dict[str, Any]:
    """
    Write the run's hyperparameters ([`~salv_trl.model_card.training_hyperparameters`], the model card's
    table) to `output_dir/training_hyperparameters.json` on the main process, and return them. A tool that
    re-renders the card later (e.g. with test scores) reads this file instead of unpickling
    `training_args.bin`.

    Args:
        trainer ([`~transformers.Trainer`]):
            The recipe's trainer, after training (a PEFT model adds its LoRA settings).

    Returns:
        `dict[str, Any]`: name → value, as written.
    """
    hyperparameters = training_hyperparameters(trainer.args, trainer.model)
    if trainer.is_world_process_zero():
        path = Path(trainer.args.output_dir) / HYPERPARAMETERS_FILE
        path.write_text(json.dumps(hyperparameters, indent=2) + "\n")
    return hyperparameters
