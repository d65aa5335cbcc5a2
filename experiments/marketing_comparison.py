"""The personalized-marketing comparison of arXiv 2506.06316, as a script (same as ``abgym marketing compare``).

    python experiments/marketing_comparison.py --quick --out results/marketing-quick
    python experiments/marketing_comparison.py --seeds 5 --arrivals 3000 --out results/marketing

The study lives in ``abgym.studies.marketing_comparison``, so that the installed command runs it too.
"""
import sys

from abgym.studies.marketing_comparison import main

if __name__ == "__main__":
    sys.exit(main())
