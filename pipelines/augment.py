"""`humpback augment` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/augment.py."""
import sys

from humpback.stages.augment import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
