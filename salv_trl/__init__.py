"""salv-trl: signal-aware preference learning for Verilog code models (QiMeng-SALV) on the Hugging Face
stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# The trainer pulls in torch and trl; import it only when one of its names is used, so that `salv_trl.hdl`
# stays light.
_LAZY = {
    "DataCollatorForSignalAwarePreference": "salv_trl.trainer",
    "SignalAwareDPOConfig": "salv_trl.trainer",
    "SignalAwareDPOTrainer": "salv_trl.trainer",
}

if TYPE_CHECKING:
    from .trainer import DataCollatorForSignalAwarePreference as DataCollatorForSignalAwarePreference
    from .trainer import SignalAwareDPOConfig as SignalAwareDPOConfig
    from .trainer import SignalAwareDPOTrainer as SignalAwareDPOTrainer


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'salv_trl' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
