"""`humpback sql` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/sql.py."""
import sys

from humpback.stages.sql import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
