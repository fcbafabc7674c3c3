"""Signal-aware DPO on trl: the config, the trainer and its collator."""

from .signal_dpo_config import SignalAwareDPOConfig
from .signal_dpo_trainer import (
    DataCollatorForSignalAwarePreference,
    SignalAwareDPOTrainer,
    SignalSpanStats,
    token_signal_mask,
)

__all__ = [
    "DataCollatorForSignalAwarePreference",
    "SignalAwareDPOConfig",
    "SignalAwareDPOTrainer",
    "SignalSpanStats",
    "token_signal_mask",
]
