"""
Signal-aware DPO (QiMeng-SALV) on a preference dataset with signal spans.

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/dpo.py \
    --config recipes/Qwen2.5-Coder-7B-Instruct/dpo/config_salv.yaml

# tiny CPU run, nothing downloaded
accelerate launch --num_processes 1 recipes/dpo.py --config recipes/tiny-qwen2/dpo/config_cpu.yaml
```

Every field of [`~salv_trl.recipes.RecipeArguments`], [`~salv_trl.trainer.SignalAwareDPOConfig`] and
[`~trl.ModelConfig`] can be set in the YAML file or overridden on the command line (`--signal_mask full`
trains plain DPO on the same rows).
"""

from __future__ import annotations

from trl import ModelConfig, TrlParser, get_peft_config, get_quantization_config

from salv_trl.recipes import (
    RecipeArguments,
    add_pass_rate_callback,
    prepare_run,
    save_training_hyperparameters,
)
from salv_trl.trainer import SignalAwareDPOConfig, SignalAwareDPOTrainer


def main(script_args: RecipeArguments, training_args: SignalAwareDPOConfig, model_args: ModelConfig) -> None:
    dataset = prepare_run(script_args, training_args, model_args)
    trainer = SignalAwareDPOTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        eval_dataset=dataset[script_args.dataset_test_split] if training_args.eval_strategy != "no" else None,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
    )
    add_pass_rate_callback(trainer, script_args)
    for name, stats in trainer.signal_span_stats.items():  # what max_length takes away, before training
        trainer.accelerator.print(f"Signal spans of the {name} dataset: {stats.describe()}")
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json: the log history (learning curves) beside the weights
    save_training_hyperparameters(trainer)  # read back by recipes/tiny/reproduce.py's model cards
    trainer.create_model_card(dataset_name=script_args.dataset_name)
    trainer.accelerator.print(f"Model and model card saved to {training_args.output_dir}.")
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
        trainer.accelerator.print(f"Model pushed to https://huggingface.co/{trainer.hub_model_id}.")
    trainer.accelerator.end_training()


if __name__ == "__main__":
    parser = TrlParser((RecipeArguments, SignalAwareDPOConfig, ModelConfig))
    main(*parser.parse_args_and_config())
