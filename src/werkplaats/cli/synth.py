"""`werkplaats synth`: generate the synthetic reference region."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def synth(
    out: Annotated[Path, typer.Option(help="Directory to write the region to (created if needed).")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and size give the same bytes.")] = 1,
    persons: Annotated[int, typer.Option(help="Number of residents (default 200K; up to a few million).")] = 200_000,
    hospitals: Annotated[
        int,
        typer.Option(
            help="Split the hospital admissions over this many hospitals "
            "(ziekenhuis_a/opnamen, ...); 1 keeps ziekenhuis/opnamen."
        ),
    ] = 1,
    gp_practices: Annotated[
        int,
        typer.Option(
            help="Split the GP records over this many practices (huisartsenpraktijk_01/..., ...); 1 keeps huisartsen/."
        ),
    ] = 1,
) -> None:
    """Generate a synthetic region: map, per-organisation sources with schemas, code lists, truth."""
    from ..synth.generate import generate
    from ..synth.write import write_region

    if out.exists() and any(out.iterdir()) and not (out / "datapackage.json").exists():
        msg = f"{out} exists and is not a region directory; choose an empty or new directory"
        raise typer.BadParameter(msg)
    t0 = time.perf_counter()
    try:
        region = generate(seed, persons, hospitals=hospitals, gp_practices=gp_practices)
    except ValueError as e:
        hint = "--persons" if "persons" in str(e) else "--hospitals" if "hospitals" in str(e) else "--gp-practices"
        raise typer.BadParameter(str(e), param_hint=hint) from None
    write_region(region, out)
    typer.echo(f"Region (seed {seed}, {persons:,} persons, {len(region.gemeenten)} gemeenten, "
               f"{len(region.wijken)} wijken) written to {out} in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    for name, df in region.tables.items():
        typer.echo(f"  {name:<26} {len(df):>10,} rows  -> {out / (name + '.csv')}")
    ob = region.truth["outbreak"]
    typer.echo(f"Injected: {ob['disease']} outbreak in {ob['wijk']} ({ob['gemeente']}), ISO weeks "
               f"{ob['iso_weeks'][0]}-{ob['iso_weeks'][-1]} of {ob['iso_year']}; GGZ bottleneck in "
               f"{region.truth['waiting_list']['bottleneck_gemeente']}; kwetsbare wijk "
               f"{region.truth['care_stacking']['kwetsbare_wijk']}. See {out / 'truth.json'}.")  # fmt: skip
