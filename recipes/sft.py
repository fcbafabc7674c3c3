"""
Rejection-sampled SFT, the stage before signal-aware DPO in QiMeng-SALV: supervised fine-tuning on completions
that passed verification, with trl's [`~trl.SFTTrainer`].

```bash
accelerate launch --config_file recipes/accelerate_configs/ddp.yaml recipes/sft.py \
    --config recipes/Qwen2.5-Coder-7B-Instruct/sft/config_rejection.yaml

# tiny CPU run, nothing downloaded
accelerate launch --num_processes 1 recipes/sft.py --config recipes/tiny-qwen2/sft/config_cpu.yaml
```

The dataset needs `prompt` and `completion` columns (or `messages`); a preference dataset works too, its
`chosen` column being taken as the completion. Plain and conversational rows (as `salv-trl pairs` writes them
when the samples came through a chat template) both work.
"""

from __future__ import annotations

import os

from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser, get_peft_config, get_quantization_config

from salv_trl.model_card import render_model_card
from salv_trl.recipes import (
    RecipeArguments,
    add_pass_rate_callback,
    prepare_run,
    save_training_hyperparameters,
)


def as_prompt_completion(dataset):
    """A preference dataset's `prompt` and `chosen` as `prompt` / `completion` (plain or conversational
    alike); any other dataset as is."""
    if "completion" not in dataset.column_names and "chosen" in dataset.column_names:
        return dataset.select_columns(["prompt", "chosen"]).rename_column("chosen", "completion")
    return dataset


def main(script_args: RecipeArguments, training_args: SFTConfig, model_args: ModelConfig) -> None:
    dataset = prepare_run(script_args, training_args, model_args)
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=as_prompt_completion(dataset[script_args.dataset_train_split]),
        eval_dataset=as_prompt_completion(dataset[script_args.dataset_test_split])
        if training_args.eval_strategy != "no"
        else None,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
    )
    add_pass_rate_callback(trainer, script_args)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json: the log history (learning curves) beside the weights
    base_model = model_args.model_name_or_path
    card = render_model_card(
        model_name=training_args.hub_model_id or os.path.basename(os.path.normpath(training_args.output_dir)),
        base_model=None if os.path.isdir(base_model) else base_model,
        datasets=[script_args.dataset_name],
        hyperparameters=save_training_hyperparameters(trainer),
        method="rejection-sampled SFT",
        tags=["sft"],
    )
    if trainer.accelerator.is_main_process:
        card.save(os.path.join(training_args.output_dir, "README.md"))
    trainer.accelerator.print(f"Model and model card saved to {training_args.output_dir}.")
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
        if trainer.accelerator.is_main_process:
            card.push_to_hub(trainer.hub_model_id)  # replaces trl's generic card
        trainer.accelerator.print(f"Model pushed to https://huggingface.co/{trainer.hub_model_id}.")
    trainer.accelerator.end_training()


if __name__ == "__main__":
    parser = TrlParser((RecipeArguments, SFTConfig, ModelConfig))
    main(*parser.parse_args_and_config())
