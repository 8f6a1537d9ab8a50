"""Region fall-back for emission factors: province → regional grid → country → anywhere.

Grid regions follow the seven regional grids of the MEE/NBS electricity factors (2021 onwards).
"""

from __future__ import annotations

GRID_REGION: dict[str, str] = {}
for grid, provinces in {
    "CN-NORTH-GRID": "BJ TJ HE SX SD NM",
    "CN-NORTHEAST-GRID": "LN JL HL",
    "CN-EAST-GRID": "SH JS ZJ AH FJ",
    "CN-CENTRAL-GRID": "HA HB HN JX",
    "CN-NORTHWEST-GRID": "SN GS QH NX XJ",
    "CN-SOUTHWEST-GRID": "SC CQ XZ",
    "CN-SOUTHERN-GRID": "GD GX YN GZ HI",
}.items():
    for province in provinces.split():
        GRID_REGION[f"CN-{province}"] = grid


def region_chain(region_code: str) -> list[str]:
    """Regions to try, most specific first, ending with "*" (a factor valid anywhere)."""
    chain = [region_code]
    grid = GRID_REGION.get(region_code)
    if grid:
        chain.append(grid)
    country = region_code.split("-", 1)[0]
    if country != region_code:
        chain.append(country)
    chain.append("*")
    return chain
