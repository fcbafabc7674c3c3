"""Options the dataset stage verbs share (`sample`, `import`, `verify --dataset`, `pairs`): upload and
progress bars."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse._ActionsContainer) -> None:
    """Add `--push-to-hub REPO` and `--no-progress` to a parser or an argument group."""
    parser.add_argument(
        "--push-to-hub", metavar="REPO", help="upload the folder's configs and card to this Hub dataset"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def hide_progress() -> None:
    """What `--no-progress` does besides `progress=False` to the stages: hide the bars of `datasets` (writing
    parquet, loading, mapping) and `huggingface_hub` (uploads) too."""
    import datasets
    from huggingface_hub.utils import disable_progress_bars

    datasets.disable_progress_bars()
    disable_progress_bars()


def push(args: argparse.Namespace, folder: str) -> None:
    """Upload the dataset folder when `--push-to-hub` was given."""
    if args.push_to_hub:
        from ..data.hub import push_to_hub

        push_to_hub(folder, args.push_to_hub)
