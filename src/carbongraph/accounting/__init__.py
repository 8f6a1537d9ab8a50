"""The carbon accounting core: activity types and units, emission factors, computation of
emissions from activity records, the roll-up of totals to every ancestor, and reads."""
