"""Stage check_params: validate all of params.yaml before any other stage (and DVC) touches an output.

Every stage depends on this stage's output, so DVC runs it first whenever params.yaml changes. Its
output is the same bytes whenever the params are valid, so a valid change reruns only the stages
whose own params changed; an invalid one stops `dvc repro` here, before DVC deletes any output.
"""

import argparse

from robustdf.params import validate_all
from robustdf.runtime import StageRun, main_guard, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/params_valid.json")
    args = ap.parse_args()
    run = StageRun("check_params")
    groups = validate_all(args.params)
    run.read(args.params, f"({len(groups)} groups valid)")
    write_json(args.out, {"valid": True, "groups": groups})
    run.wrote(args.out)
    run.save(args.out)


if __name__ == "__main__":
    main_guard(main)
