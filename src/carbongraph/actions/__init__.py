"""Low-carbon actions: the catalog, recording (self-reported or partner-verified), credits and
the reductions they feed into the roll-up."""
