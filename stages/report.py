"""Stage `report`: reports/report.html and report.md with their figures, and the CSV series behind
`dvc plots`, from the pipeline's outputs (the generations' gold scores come from stage `gold`)."""

from _common import Timer, params_or_exit, parser

from rlhf.analytics.report import build_report


def main() -> None:
    p = parser(__doc__)
    args = p.parse_args()
    params = params_or_exit(args.params)
    with Timer("report"):
        data = build_report(params)
    for c in data.claims:
        status = {True: "holds", False: "does NOT hold", None: "not measured"}[c.holds]
        print(f"[{status}] {c.text}: {c.evidence}")


if __name__ == "__main__":
    main()
