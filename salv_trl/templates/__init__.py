"""Package data: `model_card.md`, the Jinja template of the Hub model card (see `salv_trl.model_card`)."""
