"""salv-trl: signal-aware preference learning for Verilog code models (QiMeng-SALV) on the Hugging Face stack."""

__version__ = "0.1.0"
