"""`humpback tables` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/tables.py."""
import sys

from humpback.stages.tables import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
