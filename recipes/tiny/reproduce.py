"""
End-to-end reproduction on CPU: does signal-aware DPO beat module-level DPO on a tiny model?

```bash
python recipes/tiny/reproduce.py --config recipes/tiny/config_quick.yaml   # one seed
python recipes/tiny/reproduce.py --config recipes/tiny/config_full.yaml    # 3 seeds, 400/200 tasks, grid
```

The stages live in [`salv_trl.reproduction.pipeline`], the tables, curves and cards in
[`salv_trl.reproduction.report`]; `recipes/tiny/README.md` describes the design.
"""

import sys

from salv_trl.reproduction.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
