"""Use-case templates: plans with parameters, and the steps that read their revealed aggregates.

Each template is a function returning a LazyFrame (a plan) over the reference region's
datasets; each ``read`` step works on revealed, disclosure-controlled aggregates only.
See docs/usecases.md.
"""

from .fall_risk import (
    auc_from_table,
    calibration_by_bin,
    calibration_by_tier,
    decile_bins,
    fall_admissions_by_gemeente,
    fall_risk,
    fall_risk_auc_table,
    fall_risk_data,
    fall_risk_deciles,
    fall_risk_evaluation,
    fall_risk_tiers,
    hosmer_lemeshow,
    region_age_structure,
    standard_from,
)
from .hotspots import chronic_notifications, early_warning, incidence, infection_hotspots, iso_year_bounds
from .stacking import KINDS, care_overlap, care_stacking, overlap_table, stacking_table
from .union import admissions_across_hospitals, hospital_datasets
from .waiting import waiting_list

__all__ = [
    "KINDS",
    "admissions_across_hospitals",
    "auc_from_table",
    "calibration_by_bin",
    "calibration_by_tier",
    "care_overlap",
    "care_stacking",
    "chronic_notifications",
    "decile_bins",
    "early_warning",
    "fall_admissions_by_gemeente",
    "fall_risk",
    "fall_risk_auc_table",
    "fall_risk_data",
    "fall_risk_deciles",
    "fall_risk_evaluation",
    "fall_risk_tiers",
    "hosmer_lemeshow",
    "hospital_datasets",
    "incidence",
    "infection_hotspots",
    "iso_year_bounds",
    "overlap_table",
    "region_age_structure",
    "stacking_table",
    "standard_from",
    "waiting_list",
]
