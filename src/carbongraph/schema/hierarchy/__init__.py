"""Enterprise, Community, Household and Individual: types, root queries, mutations."""
