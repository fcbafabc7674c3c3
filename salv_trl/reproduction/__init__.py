"""
The tiny CPU reproduction behind `recipes/tiny/reproduce.py`: [`~salv_trl.reproduction.pipeline`] runs the
stages (synthetic data, SFT, rollouts, pairs, the DPO grid and variants, scoring; resumable),
[`~salv_trl.reproduction.report`] turns their results into the tables, learning curves and model cards.
"""
