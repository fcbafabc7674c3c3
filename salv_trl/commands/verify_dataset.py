"""The dataset route of `salv-trl verify`: a dataset folder's rollouts → verdicts and per-output slices, in
place.

`salv_trl/commands/verify.py` adds these options with [`add_arguments`] and hands over to [`run`] when
`--dataset` is given. The simulation options shared with the file route (`--vectors`, `--seed`, `--simulator`,
`--timeout`, `--workers`) are read from the same namespace.

Example:

```bash
salv-trl verify --dataset data/salv                       # all local cores
salv-trl verify --dataset data/salv --ray auto            # a Ray cluster (pip install 'salv-trl[ray]')
```
Re-running after an interruption judges only the rollouts not judged yet.
"""

from __future__ import annotations

import argparse
from collections import Counter

from . import _dataset_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dataset route")
    group.add_argument(
        "--dataset", metavar="FOLDER", help="verify and slice the rollouts of this dataset folder"
    )
    group.add_argument(
        "--ray",
        metavar="ADDRESS",
        nargs="?",
        const="auto",
        default=None,
        help="run on Ray: `auto` (default) joins the cluster of this machine or starts a local one, "
        "or give a cluster address",
    )
    group.add_argument(
        "--chunk-size",
        type=int,
        default=256,
        help="rollouts per stored chunk / Ray task (default: %(default)s)",
    )
    _dataset_options.add_arguments(group)


def run(args: argparse.Namespace) -> int:
    from ..data.rollouts import VerifySettings
    from ..data.stages import verify_stage

    defaults = VerifySettings()
    settings = VerifySettings(
        vectors=getattr(args, "vectors", None) or defaults.vectors,
        seed=getattr(args, "seed", None) or defaults.seed,
        simulator=getattr(args, "simulator", None) or defaults.simulator,
        timeout=getattr(args, "timeout", None) or defaults.timeout,
        method=getattr(args, "method", None) or defaults.method,
        reset_every=getattr(args, "reset_every", defaults.reset_every),
        depth=getattr(args, "depth", None) or defaults.depth,
    )
    if args.ray is not None:
        import ray

        ray.init(address=None if args.ray == "auto" else args.ray, ignore_reinit_error=True)
    rollouts = verify_stage(
        args.dataset,
        settings,
        workers=getattr(args, "workers", None),
        chunk_size=args.chunk_size,
        use_ray=args.ray is not None,
        progress=not args.no_progress,
    )
    statuses = Counter(verdict["status"] for verdict in rollouts["verdict"])
    print(
        ", ".join(f"{status}: {count}" for status, count in statuses.most_common())
        + f" ({len(rollouts)} rollouts)"
    )
    _dataset_options.push(args, args.dataset)
    return 0
