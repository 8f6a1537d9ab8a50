"""Low-carbon actions, credits, rewards and campaigns."""
