"""`humpback curate` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/curate.py."""
import sys

from humpback.stages.curate import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
