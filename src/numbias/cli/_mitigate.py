"""``numbias mitigate``: every mitigation chosen on development items and proven on test, and its table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from numbias.cli._common import RUNNING, Column, console, interval, number, print_table, rich_progress, text
from numbias.cli._options import ForceOpt, Server, StudyFlags, TaskFlags, WaitOpt, grouped
from numbias.util.fmt import fmt_p

if TYPE_CHECKING:
    import pandas as pd

    from numbias.studies.mitigation import MitigateConfig


@dataclass(frozen=True)
class MitigateFlags:
    """The options of how the mitigation study chooses and checks its setting, each one of its settings."""

    dev: Annotated[int | None, typer.Option(help="Development items; the rest are the test split.")] = None
    folds: Annotated[int | None, typer.Option(help="k-fold instead of one dev/test split.")] = None
    criterion: Annotated[
        str | None, typer.Option(help="pearson or group_pearson (dev labels), entropy or kurtosis (label-free).")
    ] = None
    mitigation: Annotated[
        list[str] | None, typer.Option(help="A mitigation to compare (repeat; default: every built-in but ordinal).")
    ] = None
    ensemble: Annotated[
        list[str] | None,
        typer.Option(help="A range ensemble, scales joined by + (repeat; 'none': no ensemble; default: all scales)."),
    ] = None
    resamples: Annotated[
        int | None,
        typer.Option(
            help="Bootstrap resamples of dev for the choice's stability (0: none; the cross-fitted check "
            "against the default and the nested estimate are always made)."
        ),
    ] = None
    label_draws: Annotated[
        int | None, typer.Option(help="Seeded draws per number of labels for the label-efficiency curve (0: no curve).")
    ] = None
    n_jobs: Annotated[
        int | None,
        typer.Option(help="Processes comparing the judge × task pairs in parallel (the results do not depend on it)."),
    ] = None
    oracle: Annotated[
        bool | None,
        typer.Option("--oracle/--no-oracle", help="Add the setting best on test, labelled as such (not a method)."),
    ] = None
    formats: Annotated[
        str | None,
        typer.Option(
            help="The format family at this range (e.g. 1-5): digits, reversed digits, letters and words, worst "
            "and best first, and their ensembles."
        ),
    ] = None
    amateur: Annotated[
        str | None,
        typer.Option(
            help="The contrast family: contrast each judge with this amateur judge (λ fixed, fitted on dev, "
            "label-free)."
        ),
    ] = None

    def settings(self) -> dict[str, Any]:
        """The settings given, by the study's names (``--ensemble none``: no ensemble)."""
        ensembles = None if not self.ensemble else [] if self.ensemble == ["none"] else self.ensemble
        given = {
            "ensembles": ensembles,
            "mitigations": self.mitigation,
            "resamples": self.resamples,
            "label_draws": self.label_draws,
            "oracle": self.oracle,
            "n_jobs": self.n_jobs,
            "dev": self.dev,
            "folds": self.folds,
            "criterion": self.criterion,
            "formats": self.formats,
            "contrast": {"amateur": self.amateur} if self.amateur else None,
        }
        return {k: v for k, v in given.items() if v is not None}


@grouped
def mitigate_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML mitigation-study config (optional).")] = None,
    study: StudyFlags = StudyFlags(),
    tasks: TaskFlags = TaskFlags(),
    sample: Annotated[bool, typer.Option(help="Also run the sampling protocol at T 0.4/0.7/1.0/1.3.")] = False,
    choice: MitigateFlags = MitigateFlags(),
    save: Annotated[
        str | None,
        typer.Option(
            help="Save the automatic choice as a calibrated judge (JSON); an "
            "existing file must be a saved judge (or --force)."
        ),
    ] = None,
    wait: WaitOpt = False,
    force: ForceOpt = False,
    server: Server = Server(),
) -> None:
    """Compare temperature, calibration, mapping and range; choose on dev, prove on test."""
    from numbias.studies.mitigation import parse_mitigate

    configs = tasks.configs()
    settings = study.read("mitigate-config.yaml", config, study.judge or configs or sample)
    settings.update(study.settings(configs))
    if sample:
        settings["sample"] = sample
    given = choice.settings()
    if "contrast" in given:  # --amateur keeps the config's λ
        given["contrast"] = {**(settings.get("contrast") or {}), **given["contrast"]}
    settings.update(given)
    _run_mitigate(parse_mitigate(settings), save, wait, force, server, study.source)


def _run_mitigate(
    parsed: MitigateConfig, save: str | None, wait: bool, force: bool, server: Server, source: Path | None = None
) -> None:
    """Check what it writes, run the study (its judges on the user's server, if given)
    under the folder's lock, or re-analyse the ``source`` folder's files, write it,
    save the choice, print the table."""
    from numbias.judge.config import use_server
    from numbias.report.build import MITIGATE_FILES, write
    from numbias.studies.calibrated import check_save
    from numbias.studies.mitigation import mitigate
    from numbias.studies.recompute import mitigate_from
    from numbias.util.output import claim, one_writer

    claim(parsed.out, MITIGATE_FILES, force=force)
    if save is not None:
        check_save(save, force=force)
    if source is None:
        use_server(parsed.judges, server.base_url, server.api_key_env)
        RUNNING["store"] = Path(parsed.store_path)
    with one_writer(parsed.out, wait=wait):
        results = mitigate_from(source, parsed) if source is not None else mitigate(parsed, progress=rich_progress)
        folder = write(results, force=force)
        path = results.comparisons[0].calibrated().save(save, force=force) if save is not None else None
    from numbias.report.verdict import mitigate_verdicts

    _print_mitigation(results.table)
    for v in mitigate_verdicts(results):
        console.print(f"{v.judge} on {v.task}: {v.advice()}", highlight=False)
    for note in results.notes:
        console.print(f"note: {note}")
    if path:
        console.print(f"saved the automatic choice of {results.comparisons[0].task} as {path}")
    console.print(f"results in {folder}/ (mitigation.csv, dev_scores.csv, report.html)")


def _print_mitigation(frame: pd.DataFrame) -> None:
    """The mitigation table: each row's test r, its change against the paper's default
    with the paired interval and the Holm-adjusted p (group-level Pearson and interval
    coverage, each with its interval, where measured)."""
    columns: dict[str, Column] = {
        "judge": text("judge"),
        "task": text("task"),
        "row": text("row"),
        "setting": text("setting"),
        "dev score": number("dev score"),
        "kurtosis": number("kurtosis"),
        "Pearson [95% CI]": interval("pearson"),
        "Δ r vs default [95% CI]": interval("Δ r", signed=True),
        "p (Holm)": lambda r: fmt_p(r.get("p adjusted")),
        "vs default": lambda r: str(r.get("vs default", "")),
    }
    if "group pearson" in frame:
        columns["group r [95% CI]"] = interval("group pearson")
    if "interval coverage" in frame:
        columns["90% interval coverage [95% CI]"] = interval("interval coverage")
    print_table(
        "mitigations: test split (settings chosen on development items only)",
        columns,
        frame.to_dict("records"),
        words={"judge", "task", "row", "setting", "vs default"},
        caption=(
            "Δ r: test r minus the paper's default's, paired bootstrap over the test items; p adjusted by "
            "Holm over the rows of each judge × task; better or worse only where the adjusted p < 0.05"
        ),
    )
