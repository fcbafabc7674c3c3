"""Preference data: tasks, sampling, verified rollouts with per-signal slices, signal-aware pairs, Hub
datasets.

Stages and their CLI verbs: `salv-trl sample` (tasks → rollouts), `salv-trl verify --dataset` (rollouts →
verdicts and slices), `salv-trl pairs` (rollouts → pairs). See `salv_trl.data.stages`.
"""
