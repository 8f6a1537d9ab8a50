"""Footprints, reductions, activities and emission factors."""
