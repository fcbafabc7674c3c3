"""Preference data: tasks (and the benchmark checkouts they can be read from), sampling, verified rollouts
with per-signal slices, signal-aware pairs, Hub datasets. Evaluation reads its problems from here;
nothing here imports `salv_trl.evaluation`.

Stages and their CLI verbs: `salv-trl sample` (tasks → rollouts) or `salv-trl import` (completions made
elsewhere → rollouts, `salv_trl.data.importing`), `salv-trl verify --dataset` (rollouts → verdicts and
slices), `salv-trl pairs` (rollouts → pairs). See `salv_trl.data.stages`.
"""
