"""``charaid discover`` with the labels hidden: does it find the characters, and save clicks?

    python benchmarks/discover.py [--quantiles 0.99,0.995,0.999,0.9995]

Each set's faces (the default embedder, as enrol cuts them) are clustered as ``discover`` does:
average linkage, cut at the cosine that only (1 - quantile) of the impostor cohort's pairs
exceed. BCubed precision, recall and F against the hidden labels; and clicks to name 90% of the
faces right, biggest clusters first (one click names a cluster by its majority character, one
more per face of another character in it), against one click per face in today's queue.

The quantile is chosen on moeimouto10's training half (the tuning set) and reported on the
others, which never chose it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import load_sets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.config import Thresholds  # noqa: E402
from charaid.jobs.discover import average_linkage, bcubed, clicks_to_name, cohort_link  # noqa: E402
from charaid.models.cohort import load_cohort  # noqa: E402
from charaid.models.embedders import default_embedder  # noqa: E402
from charaid.pipeline.prepare import DetectorSpec  # noqa: E402

TUNE = "moeimouto10 train (tuning)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quantiles", default="0.99,0.995,0.998,0.999,0.9995")
    args = ap.parse_args()
    emb = default_embedder()
    sets = load_sets(emb, DetectorSpec(), only={"moeimouto10 (split)", "danbooru6 (5-fold)", "newgame8 (5-fold)"})
    data = {
        TUNE: sets["moeimouto10 (split)"][0],
        "moeimouto10 test": sets["moeimouto10 (split)"][1],
        "danbooru6": sets["danbooru6 (5-fold)"][0],
        "newgame8": sets["newgame8 (5-fold)"][0],
    }
    cohort = load_cohort(emb.model_id)
    default_q = Thresholds().discover_cohort_quantile
    print(f"# discover: {machine()}; {time.strftime('%Y-%m-%d')}; cohort of {0 if cohort is None else len(cohort)} faces\n")
    rows = []
    for q in [float(x) for x in args.quantiles.split(",")]:
        link = cohort_link(cohort, q)
        for name, d in data.items():
            ids = average_linkage(d.X, link)
            p, r, f = bcubed(d.labels, ids)
            clicks = clicks_to_name(d.labels, ids)
            one_by_one = int(np.ceil(0.9 * len(d.labels)))
            rows.append(
                [
                    f"{q}{' (default)' if q == default_q else ''}",
                    f"{link:.3f}",
                    name,
                    len(d.labels),
                    len(set(d.labels.tolist())),
                    len(set(ids.tolist())),
                    f"{p:.3f}",
                    f"{r:.3f}",
                    f"{f:.3f}",
                    clicks,
                    one_by_one,
                    f"{clicks / one_by_one:.2f}",
                ]
            )
    print(
        table(
            [
                "cohort quantile",
                "link",
                "set",
                "faces",
                "characters",
                "clusters",
                "BCubed P",
                "BCubed R",
                "BCubed F",
                "clicks to 90%",
                "one by one",
                "ratio",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
